"""Network architectures of Qlib's PyTorch models, as ``nn.Module`` classes that return one score per sample.

Sequence networks take ``(batch, steps, d_feat)``; the MLP takes ``(batch, features)``. Each network is rebuilt
from :func:`build_network` with the JSON-able ``spec`` saved next to its weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


class MLPNet(nn.Module):
    """Qlib's ``DNNModelPytorch`` net: input dropout, [Linear → BatchNorm → LeakyReLU(0.1)] per layer, dropout,
    a linear output; Kaiming-normal weights."""

    def __init__(self, input_dim: int, layers: Sequence[int] = (256,), dropout: float = 0.05) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Dropout(dropout)]
        width = input_dim
        for hidden in layers:
            blocks.append(nn.Sequential(nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.1)))
            width = hidden
        blocks += [nn.Dropout(dropout), nn.Linear(width, 1)]
        self.layers = nn.Sequential(*blocks)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, a=0.1, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        return self.layers(x).squeeze(-1)


class RNNNet(nn.Module):
    """Qlib's LSTM/GRU models: a stacked recurrent layer and a linear head on the last step's output."""

    def __init__(self, cell: str, d_feat: int, hidden_size: int = 64, num_layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        recurrent = {"LSTM": nn.LSTM, "GRU": nn.GRU}[cell]
        self.rnn = recurrent(input_size=d_feat, hidden_size=hidden_size, num_layers=num_layers, batch_first=True,
                             dropout=dropout)
        self.fc_out = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        out, _ = self.rnn(x)
        return self.fc_out(out[:, -1, :]).squeeze(-1)


class ALSTMNet(nn.Module):
    """Qlib's ALSTM: a tanh input projection, a recurrent layer (GRU by default), temporal attention; the head
    reads the last step's output next to the attention-weighted sum of all steps."""

    def __init__(self, d_feat: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 rnn_type: str = "GRU") -> None:
        super().__init__()
        recurrent = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[rnn_type.upper()]
        self.net = nn.Sequential(nn.Linear(d_feat, hidden_size), nn.Tanh())
        self.rnn = recurrent(input_size=hidden_size, hidden_size=hidden_size, num_layers=num_layers,
                             batch_first=True, dropout=dropout)
        half = hidden_size // 2
        self.att_net = nn.Sequential(nn.Linear(hidden_size, half), nn.Dropout(dropout), nn.Tanh(),
                                     nn.Linear(half, 1, bias=False), nn.Softmax(dim=1))
        self.fc_out = nn.Linear(hidden_size * 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        out, _ = self.rnn(self.net(x))
        attended = (out * self.att_net(out)).sum(dim=1)
        return self.fc_out(torch.cat((out[:, -1, :], attended), dim=1)).squeeze(-1)


class PositionalEncoding(nn.Module):
    """Fixed sine/cosine position encodings added to a batch-first sequence."""

    def __init__(self, d_model: int, max_len: int = 1000) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
        self.register_buffer("pe", table.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus the encodings of its positions."""
        return x + self.pe[:, : x.size(1)]


class TransformerNet(nn.Module):
    """Qlib's Transformer: linear feature embedding, position encodings, a post-norm encoder stack, and a linear
    head on the last step."""

    def __init__(self, d_feat: int, d_model: int = 64, nhead: int = 2, num_layers: int = 2, dropout: float = 0.0,
                 dim_feedforward: int = 2048) -> None:
        super().__init__()
        self.feature_layer = nn.Linear(d_feat, d_model)
        self.pos_encoder = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward,
                                           dropout=dropout, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.decoder_layer = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        hidden = self.transformer_encoder(self.pos_encoder(self.feature_layer(x)))
        return self.decoder_layer(hidden[:, -1, :]).squeeze(-1)


def build_network(spec: Mapping[str, Any]) -> nn.Module:
    """The network described by ``spec``: ``{"kind": "mlp" | "lstm" | "gru" | "alstm" | "transformer" | "tcn" |
    "localformer" | "gats" | "krnn" | "sfm", ...}``."""
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"]
    if kind == "mlp":
        return MLPNet(**kwargs)
    if kind in ("lstm", "gru"):
        return RNNNet(kind.upper(), **kwargs)
    if kind == "alstm":
        return ALSTMNet(**kwargs)
    if kind == "transformer":
        return TransformerNet(**kwargs)
    from qmodel_zoo.nn.more_networks import build_more

    network = build_more(kind, kwargs)
    if network is not None:
        return network
    from qmodel_zoo.nn.recurrent_networks import build_recurrent

    network = build_recurrent(kind, kwargs)
    if network is not None:
        return network
    from qmodel_zoo.nn.zoo_b_networks import build_zoo_b

    network = build_zoo_b(kind, kwargs)
    if network is not None:
        return network
    raise ValueError(f"unknown network kind {kind!r}")
