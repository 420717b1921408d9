"""Qlib's ``TCN``, ``LocalformerModel`` and ``GATs`` with Qlib's arguments and defaults, on the shared trainer.

They read data like the other sequence models (:class:`~qmodel_zoo.nn.models.SequenceModel`): the tabular view
reshaped to ``(steps, d_feat)`` (Qlib's Alpha360 configs) or ``step_len``-day windows (Qlib's ``*_ts`` variants
with ``TSDatasetH``).
"""

from __future__ import annotations

from typing import Any

import attrs

from qcore.errors import ConfigError
from qmodel_zoo._base import check_choice, check_number
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.models import SequenceModel, TransformerModel, _check_rnn


class TCNModel(SequenceModel):
    """Qlib's ``TCN``: ``num_layers`` dilated causal convolution blocks of ``n_chans`` channels."""

    registry_name = "tcn"
    kind = "tcn"

    def __init__(self, d_feat: int | None = 6, n_chans: int = 128, kernel_size: int = 5, num_layers: int = 5,
                 dropout: float = 0.5, n_epochs: int = 200, lr: float = 0.0001, metric: str = "",
                 batch_size: int = 2000, early_stop: int = 20, loss: str = "mse", optimizer: str = "adam",
                 GPU: Any = 0, seed: int | None = None, step_len: int | None = None, batching: str = "shuffle",
                 weight_decay: float = 0.0, n_jobs: int | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        check_number("n_chans", n_chans, low=1, integer=True)
        check_number("kernel_size", kernel_size, low=1, integer=True)
        check_number("num_layers", num_layers, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=0.99)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=weight_decay)
        self._sequence_setup(d_feat, step_len, batching)
        self.n_chans, self.kernel_size, self.num_layers = int(n_chans), int(kernel_size), int(num_layers)
        self.dropout = float(dropout)

    def _network_args(self) -> dict[str, Any]:
        return {"n_chans": self.n_chans, "kernel_size": self.kernel_size, "num_layers": self.num_layers,
                "dropout": self.dropout}


class LocalformerModel(TransformerModel):
    """Qlib's ``LocalformerModel``: the Transformer's arguments; convolutions beside each encoder layer and a GRU
    after the encoder (:class:`~qmodel_zoo.nn.more_networks.LocalformerNet`)."""

    registry_name = "localformer"
    kind = "localformer"


class GATsModel(SequenceModel):
    """Qlib's ``GATs``: a GRU/LSTM base (``base_model``) and graph attention across one day's stocks.

    It trains on one date's cross-section per batch (shuffled dates, as Qlib) and predicts day by day, so the
    attention always spans a day's stocks. As in Qlib, the early-stopping loss (``metric`` ``""``/``"loss"``) is the
    mean over the valid dates of each date's MSE, not the MSE of all valid rows; unlike Qlib, a date with a single
    stock is not trained on (its attention is trivially that stock). ``model_path`` names a pre-trained base: the
    folder a zoo ``lstm``/``gru`` model was saved to, or a state-dict file (``torch.save`` of tensors, or
    ``.safetensors``) such as Qlib's saved LSTM/GRU; parameters of the same name (``rnn.*``, and the head when shapes
    agree) start from it, as in Qlib. Without it, the base starts from torch's default initialisation, as Qlib's
    (which copies a freshly built LSTM/GRU's parameters: the same distribution).
    """

    registry_name = "gats"
    kind = "gats"

    def __init__(self, d_feat: int | None = 6, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 n_epochs: int = 200, lr: float = 0.001, metric: str = "", early_stop: int = 20, loss: str = "mse",
                 base_model: str = "GRU", model_path: str | None = None, optimizer: str = "adam", GPU: Any = 0,
                 seed: int | None = None, step_len: int | None = None, batch_size: int = 2000,
                 weight_decay: float = 0.0, n_jobs: int | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        _check_rnn(hidden_size, num_layers, dropout)
        check_choice("base_model", base_model, ("GRU", "LSTM"))
        if model_path is not None and (not isinstance(model_path, str) or not model_path.strip()):
            raise ConfigError(f"model_path must be a path to saved weights, got {model_path!r}", path="model_path")
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=weight_decay)
        self._sequence_setup(d_feat, step_len, "daily")
        self.settings = attrs.evolve(self.settings, by_day=True, daily_loss=True)
        self.hidden_size, self.num_layers, self.dropout = int(hidden_size), int(num_layers), float(dropout)
        self.base_model, self.model_path = base_model, model_path

    def _network_args(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "dropout": self.dropout,
                "base_model": self.base_model}

    def _prepare_network(self, network: Any) -> None:
        if self.model_path is not None:
            from qmodel_zoo.nn.weights import load_pretrained_base

            load_pretrained_base(network, self.model_path, "GATs")
