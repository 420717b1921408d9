"""Qlib's ``KRNN`` and ``SFM`` with Qlib's arguments and defaults, on the shared trainer.

They read data like the other sequence models (:class:`~qmodel_zoo.nn.models.SequenceModel`): the tabular view
reshaped to ``(steps, d_feat)`` (Qlib's Alpha360 configs) or ``step_len``-day windows. Both train as Qlib does:
shuffled mini-batches, masked MSE, gradients clipped at 3, early stopping on the valid segment's score.

One difference from Qlib, on purpose: Qlib's KRNN reads an Alpha360 row with ``view(batch, -1, fea_dim)``, which
cuts the row into consecutive groups of ``fea_dim`` columns, i.e. six lags of one field per "step" rather than the
six fields of one day (its LSTM/GRU/SFM transpose the row properly). KRNN here reads ``(steps, fea_dim)`` like the
others, so each step is one day's fields.
"""

from __future__ import annotations

from typing import Any

from qmodel_zoo._base import check_number
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.models import SequenceModel


class KRNNModel(SequenceModel):
    """Qlib's ``KRNN``: a convolution over time, ``rnn_dups`` parallel GRUs averaged, a head on the last step.

    ``fea_dim`` is the number of fields per step (Qlib's name for ``d_feat``; ``None`` with ``step_len``: all the
    time-series view's features).
    """

    registry_name = "krnn"
    kind = "krnn"

    def __init__(self, fea_dim: int | None = 6, cnn_dim: int = 64, cnn_kernel_size: int = 3, rnn_dim: int = 64,
                 rnn_dups: int = 3, rnn_layers: int = 2, dropout: float = 0.0, n_epochs: int = 200, lr: float = 0.001,
                 metric: str = "", batch_size: int = 2000, early_stop: int = 20, loss: str = "mse",
                 optimizer: str = "adam", GPU: Any = 0, seed: int | None = None, step_len: int | None = None,
                 batching: str = "shuffle", weight_decay: float = 0.0, n_jobs: int | None = None,
                 **kwargs: Any) -> None:
        params = collect_params(locals())
        for name, value in (("cnn_dim", cnn_dim), ("cnn_kernel_size", cnn_kernel_size), ("rnn_dim", rnn_dim),
                            ("rnn_dups", rnn_dups), ("rnn_layers", rnn_layers)):
            check_number(name, value, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=0.99)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=weight_decay)
        self._sequence_setup(fea_dim, step_len, batching)
        self.cnn_dim, self.cnn_kernel_size, self.rnn_dim = int(cnn_dim), int(cnn_kernel_size), int(rnn_dim)
        self.rnn_dups, self.rnn_layers, self.dropout = int(rnn_dups), int(rnn_layers), float(dropout)

    def _network_args(self) -> dict[str, Any]:
        return {"cnn_dim": self.cnn_dim, "cnn_kernel_size": self.cnn_kernel_size, "rnn_dim": self.rnn_dim,
                "rnn_dups": self.rnn_dups, "rnn_layers": self.rnn_layers, "dropout": self.dropout}


class SFMModel(SequenceModel):
    """Qlib's ``SFM``: the State Frequency Memory recurrent cell (:class:`~qmodel_zoo.nn.recurrent_networks.SFMNet`).

    ``dropout_W``/``dropout_U`` and ``eval_steps`` are checked and, as in Qlib 0.9.7 (whose dropout masks are
    constant ones and whose loop evaluates every epoch), have no effect.
    """

    registry_name = "sfm"
    kind = "sfm"

    def __init__(self, d_feat: int | None = 6, hidden_size: int = 64, output_dim: int = 1, freq_dim: int = 10,
                 dropout_W: float = 0.0, dropout_U: float = 0.0, n_epochs: int = 200, lr: float = 0.001,
                 metric: str = "", batch_size: int = 2000, early_stop: int = 20, eval_steps: int = 5,
                 loss: str = "mse", optimizer: str = "gd", GPU: Any = 0, seed: int | None = None,
                 step_len: int | None = None, batching: str = "shuffle", weight_decay: float = 0.0,
                 n_jobs: int | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        for name, value in (("hidden_size", hidden_size), ("output_dim", output_dim), ("freq_dim", freq_dim),
                            ("eval_steps", eval_steps)):
            check_number(name, value, low=1, integer=True)
        check_number("dropout_W", dropout_W, low=0.0, high=0.99)
        check_number("dropout_U", dropout_U, low=0.0, high=0.99)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=weight_decay)
        self._sequence_setup(d_feat, step_len, batching)
        self.hidden_size, self.output_dim, self.freq_dim = int(hidden_size), int(output_dim), int(freq_dim)

    def _network_args(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "output_dim": self.output_dim, "freq_dim": self.freq_dim}
