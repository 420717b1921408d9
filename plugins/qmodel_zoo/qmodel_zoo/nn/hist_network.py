"""HIST's network (Xu et al., 2021, "HIST: A Graph-based Framework for Stock Trend Forecasting via Mining Concept-
Oriented Shared Information"), as Qlib's ``pytorch_hist`` builds it.

Its input is one date's cross-section: each row is a stock's flattened feature sequence (Alpha360's layout,
``d_feat`` fields × steps) followed by its concept memberships (one column per concept, 0/1 or weights). A
recurrent base encodes each stock; the predefined-concept module pools stocks into their concepts and back
(cosine attention), the hidden-concept module does the same over concepts found among the stocks themselves, and
the individual module keeps what is left; the three outputs are summed and projected to a score.
"""

from __future__ import annotations

import torch
from torch import nn


def _xavier(width: int) -> nn.Linear:
    layer = nn.Linear(width, width)
    nn.init.xavier_uniform_(layer.weight)
    return layer


def cosine_similarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity of the rows of ``x`` and ``y`` (``1e-6`` added to the norm product)."""
    norms = x.norm(dim=1, keepdim=True) @ y.norm(dim=1, keepdim=True).t()
    return (x @ y.t()) / (norms + 1e-6)


class HISTNet(nn.Module):
    """See the module docstring. ``n_features`` is the width of the feature part of a row."""

    def __init__(self, d_feat: int, n_features: int, hidden_size: int = 64, num_layers: int = 2,
                 dropout: float = 0.0, base_model: str = "GRU") -> None:
        super().__init__()
        self.d_feat, self.n_features = d_feat, n_features
        recurrent = {"GRU": nn.GRU, "LSTM": nn.LSTM}[base_model]
        self.rnn = recurrent(input_size=d_feat, hidden_size=hidden_size, num_layers=num_layers, batch_first=True,
                             dropout=dropout)
        for name in ("fc_es", "fc_is", "fc_es_middle", "fc_is_middle", "fc_es_fore", "fc_is_fore", "fc_indi_fore",
                     "fc_es_back", "fc_is_back", "fc_indi"):
            setattr(self, name, _xavier(hidden_size))
        self.leaky_relu = nn.LeakyReLU()
        self.fc_out_es = nn.Linear(hidden_size, 1)
        self.fc_out_is = nn.Linear(hidden_size, 1)
        self.fc_out_indi = nn.Linear(hidden_size, 1)
        self.fc_out = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of one cross-section, shape ``(stocks,)``."""
        features, concepts = x[:, : self.n_features], x[:, self.n_features :]
        sequence = features.reshape(len(x), self.d_feat, -1).permute(0, 2, 1)
        stock = self.rnn(sequence)[0][:, -1, :]

        # predefined concepts: stocks pooled into their concepts (weights normalised per concept), then back
        weights = concepts / (concepts.sum(dim=0, keepdim=True) * concepts + 1)
        concept_hidden = weights.t() @ stock
        concept_hidden = concept_hidden[concept_hidden.sum(dim=1) != 0]
        shared = torch.softmax(cosine_similarity(stock, concept_hidden), dim=1) @ concept_hidden
        shared = self.fc_es(shared)
        shared_back = self.fc_es_back(shared)
        output_es = self.leaky_relu(self.fc_es_fore(shared))

        # hidden concepts: each stock's most similar other stock defines a concept around it
        residual = stock - shared_back
        similarity = cosine_similarity(residual, residual)
        n = similarity.shape[0]
        diagonal = similarity.diagonal().clone()
        off = similarity * (1 - torch.eye(n, device=x.device, dtype=x.dtype))
        best_value, best_column = off.max(dim=1)
        links = torch.zeros_like(off)
        links[torch.arange(n, device=x.device), best_column] = best_value
        links = links + torch.diag_embed((links.sum(dim=0) != 0).to(x.dtype) * diagonal)
        hidden_concepts = (residual.t() @ links).t()
        hidden_concepts = hidden_concepts[hidden_concepts.sum(dim=1) != 0]
        implicit = torch.softmax(cosine_similarity(residual, hidden_concepts), dim=1) @ hidden_concepts
        implicit = self.fc_is(implicit)
        implicit_back = self.fc_is_back(implicit)
        output_is = self.leaky_relu(self.fc_is_fore(implicit))

        # what neither kind of concept explains
        output_indi = self.leaky_relu(self.fc_indi(stock - shared_back - implicit_back))
        return self.fc_out(output_es + output_is + output_indi).squeeze(-1)
