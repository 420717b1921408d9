"""Qlib's ``Sandwich``: two convolution + parallel-GRU encoders stacked (CNN → KRNN → CNN → KRNN), a linear head.

It reads data like the other sequence models (:class:`~qmodel_zoo.nn.models.SequenceModel`) and trains as Qlib
does: shuffled mini-batches, masked MSE, gradients clipped at 3, early stopping on the valid score. As with KRNN
(:mod:`qmodel_zoo.nn.recurrent_models`), an Alpha360 row is read as ``(steps, fea_dim)`` — one day's fields per
step — where Qlib's ``view(batch, -1, fea_dim)`` would cut it into groups of six lags of one field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from qmodel_zoo._base import check_number
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.models import SequenceModel


class ConvKRNNEncoder(nn.Module):
    """A 1-D convolution over time ("same" length for odd kernels), then ``dups`` parallel GRUs averaged; returns
    the whole sequence ``(batch, steps, rnn_dim)``."""

    def __init__(self, in_dim: int, cnn_dim: int, kernel_size: int, rnn_dim: int, dups: int, layers: int,
                 dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, cnn_dim, kernel_size, padding=(kernel_size - 1) // 2)
        self.rnns = nn.ModuleList(nn.GRU(cnn_dim, rnn_dim, num_layers=layers, dropout=dropout, batch_first=True)
                                  for _ in range(dups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded sequence of ``x`` ``(batch, steps, in_dim)``."""
        encoded = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return torch.stack([rnn(encoded)[0] for rnn in self.rnns], dim=-1).mean(dim=-1)


class SandwichNet(nn.Module):
    """Two :class:`ConvKRNNEncoder` in a row and a linear head on the last step."""

    def __init__(self, d_feat: int, cnn_dim_1: int, cnn_dim_2: int, cnn_kernel_size: int, rnn_dim_1: int,
                 rnn_dim_2: int, rnn_dups: int, rnn_layers: int, dropout: float) -> None:
        super().__init__()
        self.first_encoder = ConvKRNNEncoder(d_feat, cnn_dim_1, cnn_kernel_size, rnn_dim_1, rnn_dups, rnn_layers,
                                             dropout)
        self.second_encoder = ConvKRNNEncoder(rnn_dim_1, cnn_dim_2, cnn_kernel_size, rnn_dim_2, rnn_dups,
                                              rnn_layers, dropout)
        self.out_fc = nn.Linear(rnn_dim_2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        return self.out_fc(self.second_encoder(self.first_encoder(x))[:, -1, :]).squeeze(-1)


class SandwichModel(SequenceModel):
    """Qlib's ``Sandwich`` with its arguments and defaults (``fea_dim`` is the number of fields per step)."""

    registry_name = "sandwich"
    kind = "sandwich"

    def __init__(self, fea_dim: int | None = 6, cnn_dim_1: int = 64, cnn_dim_2: int = 32, cnn_kernel_size: int = 3,
                 rnn_dim_1: int = 16, rnn_dim_2: int = 8, rnn_dups: int = 3, rnn_layers: int = 2, dropout: float = 0,
                 n_epochs: int = 200, lr: float = 0.001, metric: str = "", batch_size: int = 2000,
                 early_stop: int = 20, loss: str = "mse", optimizer: str = "adam", GPU: Any = 0,
                 seed: int | None = None, step_len: int | None = None, batching: str = "shuffle",
                 weight_decay: float = 0.0, n_jobs: int | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        for name, value in (("cnn_dim_1", cnn_dim_1), ("cnn_dim_2", cnn_dim_2), ("cnn_kernel_size", cnn_kernel_size),
                            ("rnn_dim_1", rnn_dim_1), ("rnn_dim_2", rnn_dim_2), ("rnn_dups", rnn_dups),
                            ("rnn_layers", rnn_layers)):
            check_number(name, value, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=0.99)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=weight_decay)
        self._sequence_setup(fea_dim, step_len, batching)
        self.net_args = {"cnn_dim_1": int(cnn_dim_1), "cnn_dim_2": int(cnn_dim_2),
                         "cnn_kernel_size": int(cnn_kernel_size), "rnn_dim_1": int(rnn_dim_1),
                         "rnn_dim_2": int(rnn_dim_2), "rnn_dups": int(rnn_dups), "rnn_layers": int(rnn_layers),
                         "dropout": float(dropout)}

    def _network_args(self) -> dict[str, Any]:
        return dict(self.net_args)

    def _build_network(self, spec: Mapping[str, Any]) -> nn.Module:
        return SandwichNet(**{k: v for k, v in spec.items() if k != "kind"})
