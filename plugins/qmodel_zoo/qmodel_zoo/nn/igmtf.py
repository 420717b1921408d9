"""Qlib's ``IGMTF``: a recurrent encoder whose scores also read the most similar stocks of the most similar
training days (an instance graph over a memory of the train segment).

At the start of every epoch the encoder (in evaluation mode) encodes each training date's cross-section; that memory
holds each date's hidden states and their mean. A batch is one date: its mean hidden state picks the ``k_day``
(10) most cosine-similar training dates, their stocks' states pass once more through the encoder's MLP, and each
stock aggregates its ``n_neighbor`` (10) most similar of them (cosine similarity of two projections, divided by
``n_neighbor``). The head reads the stock's own state next to that aggregate. Training follows Qlib's
``pytorch_igmtf``: dates in random order, one per batch, masked MSE, gradients clipped at 3, early stopping on the
valid score (``ic``: mean daily IC; ``""``/``"loss"``: minus the MSE — Qlib 0.9.7 fails on these by comparing the
metric to a tuple).

Prediction rebuilds the memory from the dataset's ``train`` segment with the fitted encoder, as Qlib does, so a
saved model predicts on any dataset that has that segment. Where fewer than 10 training dates (or candidate stocks)
exist, all of them are used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from qcore.errors import ConfigError, QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import check_choice, check_number, has_segment
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.batching import daily_batches
from qmodel_zoo.nn.models import SequenceModel, _check_rnn
from qmodel_zoo.nn.samples import Samples
from qmodel_zoo.nn.trainer import Objective


def _cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``x`` with every row of ``y`` (Qlib's ``+1e-6`` in the denominator)."""
    return x @ y.t() / (x.norm(dim=1, keepdim=True) @ y.norm(dim=1, keepdim=True).t() + 1e-6)


class IGMTFNet(nn.Module):
    """The network of Qlib's ``IGMTFModel``; :meth:`remember` sets the training memory its forward reads."""

    def __init__(self, d_feat: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 base_model: str = "GRU", k_day: int = 10, n_neighbor: int = 10) -> None:
        super().__init__()
        cls = {"GRU": nn.GRU, "LSTM": nn.LSTM}[base_model]
        self.rnn = cls(input_size=d_feat, hidden_size=hidden_size, num_layers=num_layers, batch_first=True,
                       dropout=dropout)
        self.lins = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.LeakyReLU(),
                                  nn.Linear(hidden_size, hidden_size), nn.LeakyReLU())
        self.fc_output = nn.Linear(hidden_size * 2, hidden_size * 2)  # in Qlib's network, unused by its forward
        self.project1 = nn.Linear(hidden_size, hidden_size, bias=False)
        self.project2 = nn.Linear(hidden_size, hidden_size, bias=False)
        self.fc_out_pred = nn.Linear(hidden_size * 2, 1)
        self.k_day, self.n_neighbor = k_day, n_neighbor
        self.memory: list[torch.Tensor] = []
        self.memory_days: torch.Tensor | None = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden state of each sample of ``x`` ``(batch, steps, d_feat)``."""
        out, _ = self.rnn(x)
        return self.lins(out[:, -1, :])

    def remember(self, days: list[torch.Tensor]) -> None:
        """Set the memory: the hidden states of each training date's stocks."""
        if not days:
            raise QcoreError("IGMTF's memory of the train segment is empty")
        self.memory = days
        self.memory_days = torch.stack([d.mean(dim=0) for d in days])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of one date's cross-section ``x``, shape ``(batch,)``."""
        if self.memory_days is None:
            raise QcoreError("IGMTF has no memory of its train segment (remember() was not called)")
        own = self.encode(x)
        day_similarity = _cosine(own.mean(dim=0, keepdim=True), self.memory_days.to(x.device))
        picked = torch.topk(day_similarity, min(self.k_day, len(self.memory)), dim=1).indices[0].tolist()
        candidates = self.lins(torch.cat([self.memory[i] for i in picked]).to(x.device))
        projected = self.project2(candidates)
        similarity = _cosine(self.project1(own), projected)
        n = min(self.n_neighbor, len(candidates))
        top = torch.topk(similarity, n, dim=1)
        aggregate = ((top.values / n).unsqueeze(-1) * projected[top.indices]).sum(dim=1)
        return self.fc_out_pred(torch.cat([own, aggregate], dim=1)).squeeze(-1)


def build_memory(network: IGMTFNet, samples: Samples, device: torch.device) -> None:
    """Encode every date of ``samples`` in evaluation mode and store it as the network's memory."""
    was_training = network.training
    network.eval()
    with torch.no_grad():
        days = [network.encode(torch.from_numpy(samples.batch(rows)).to(device)).cpu()
                for rows in samples.day_groups()]
    network.remember(days)
    network.train(was_training)


class IGMTFObjective(Objective):
    """Masked MSE; the memory of ``train_set`` is rebuilt at the start of each epoch."""

    def __init__(self, train_set: Samples | None, device: torch.device) -> None:
        self.train_set, self.device = train_set, device

    def start_epoch(self, network: nn.Module, epoch: int) -> None:
        if self.train_set is not None:
            build_memory(network, self.train_set, self.device)


class IGMTFModel(SequenceModel):
    """Qlib's ``IGMTF`` with its arguments and defaults (see the module docstring); ``batch_size`` is accepted and
    unused (a batch is one date), as in Qlib."""

    registry_name = "igmtf"
    kind = "igmtf"

    def __init__(self, d_feat: int | None = 6, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 n_epochs: int = 200, lr: float = 0.001, metric: str = "", early_stop: int = 20, loss: str = "mse",
                 base_model: str = "GRU", model_path: str | None = None, optimizer: str = "adam", GPU: Any = 0,
                 seed: int | None = None, step_len: int | None = None, batch_size: int = 800,
                 n_jobs: int | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        _check_rnn(hidden_size, num_layers, dropout)
        check_choice("base_model", base_model, ("GRU", "LSTM"))
        if model_path is not None and (not isinstance(model_path, str) or not model_path.strip()):
            raise ConfigError(f"model_path must be a path to saved weights, got {model_path!r}", path="model_path")
        check_number("batch_size", batch_size, low=2, integer=True)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=0.0)
        self._sequence_setup(d_feat, step_len, "daily")
        self.settings = attrs.evolve(self.settings, by_day=True)
        self.net_args = {"hidden_size": int(hidden_size), "num_layers": int(num_layers), "dropout": float(dropout),
                         "base_model": base_model}
        self.model_path = model_path
        self._train_set: Samples | None = None

    def _network_args(self) -> dict[str, Any]:
        return dict(self.net_args)

    def _build_network(self, spec: Mapping[str, Any]) -> nn.Module:
        return IGMTFNet(**{k: v for k, v in spec.items() if k != "kind"})

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        days = samples.day_groups()
        return lambda rng: daily_batches(days, rng)

    def _train(self, network: Any, train_set: Samples, valid_set: Samples | None, weights: np.ndarray | None,
               rng: np.random.Generator) -> Any:
        self._train_set = train_set
        try:
            return super()._train(network, train_set, valid_set, weights, rng)
        finally:
            self._train_set = None

    def _objective(self, samples: Samples) -> Objective:
        return IGMTFObjective(self._train_set, self.device)

    def _before_predict(self, dataset: Dataset) -> None:
        if not has_segment(dataset, "train"):
            raise QcoreError("IGMTF predicts with a memory of the dataset's train segment, and this dataset has none")
        build_memory(self.network, self._samples(dataset, "train", self.feature_names_), self.device)

    def _prepare_network(self, network: Any) -> None:
        if self.model_path is not None:
            from qmodel_zoo.nn.weights import load_pretrained_base

            load_pretrained_base(network, self.model_path, "IGMTF")
