"""The PyTorch models with Qlib's arguments and defaults: MLP (``DNNModelPytorch``), LSTM, GRU, ALSTM, Transformer.

The sequence models read either the tabular view (``step_len=None``: each row reshaped to ``(steps, d_feat)`` as
Qlib's ``pytorch_lstm`` does with Alpha360) or the time-series view (``step_len=N``: ``N``-day windows of the
features, as Qlib's ``*_ts`` models with ``TSDatasetH``). They train on shuffled mini-batches, or with
``batching="daily"`` on one date's cross-section per batch. ``n_jobs`` is accepted and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from qcore.errors import ConfigError, QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import check_choice, check_known, check_number
from qmodel_zoo.nn.base import TorchModel, collect_params
from qmodel_zoo.nn.batching import BATCHINGS, daily_batches, sampled_batches, shuffled_batches
from qmodel_zoo.nn.samples import Samples, TabularSamples, WindowSamples

#: The network Qlib's ``DNNModelPytorch`` builds by default (``pt_model_uri``), the only one :class:`MLPModel` builds.
QLIB_NET = "qlib.contrib.model.pytorch_nn.Net"


class MLPModel(TorchModel):
    """Qlib's ``DNNModelPytorch`` on flat feature rows.

    Each step draws ``batch_size`` rows with replacement; every ``eval_steps`` steps (one "epoch" here) the model
    is scored on ``valid``, the learning rate halves when the valid loss stalls for 10 rounds, and training stops
    after ``early_stop_rounds`` rounds without improvement. ``max_steps`` is rounded up to whole rounds.
    ``input_dim`` is read from the data (given, it must match); ``output_dim`` must be 1; ``lr_decay`` and
    ``lr_decay_steps`` are accepted and unused, as in Qlib. ``dropout`` is the input and output dropout (Qlib: 0.05).
    Qlib 0.9's ``pt_model_kwargs`` (``input_dim``, ``output_dim``, ``layers``, ``act``) set the same network
    arguments; ``pt_model_uri`` may only name Qlib's own ``Net`` (no class is imported by path).
    """

    registry_name = "mlp"

    def __init__(self, input_dim: int | None = None, output_dim: int = 1, layers: Sequence[int] = (256,),
                 lr: float = 0.001, max_steps: int = 300, batch_size: int = 2000, early_stop_rounds: int = 50,
                 eval_steps: int = 20, lr_decay: float = 0.96, lr_decay_steps: int = 100, optimizer: str = "gd",
                 loss: str = "mse", GPU: Any = 0, seed: int | None = None, weight_decay: float = 0.0,
                 dropout: float = 0.05, metric: str = "", pt_model_uri: str = QLIB_NET,
                 pt_model_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        if pt_model_uri != QLIB_NET:
            raise ConfigError(f"pt_model_uri {pt_model_uri!r} is not supported: only Qlib's {QLIB_NET} network "
                              "is built (qcore imports no class by path)", path="pt_model_uri")
        if pt_model_kwargs is not None:
            if not isinstance(pt_model_kwargs, Mapping):
                raise ConfigError(f"pt_model_kwargs must be a mapping, got {pt_model_kwargs!r}",
                                  path="pt_model_kwargs")
            try:
                check_known("the mlp model's network", pt_model_kwargs, ("input_dim", "output_dim", "layers", "act"))
            except ConfigError as exc:
                raise ConfigError(exc.message, path=f"pt_model_kwargs.{exc.path}") from None
            if pt_model_kwargs.get("act", "LeakyReLU") != "LeakyReLU":
                raise ConfigError(f"act must be 'LeakyReLU' (Qlib's Net), got {pt_model_kwargs['act']!r}",
                                  path="pt_model_kwargs.act")
            input_dim = pt_model_kwargs.get("input_dim", input_dim)
            output_dim = pt_model_kwargs.get("output_dim", output_dim)
            layers = pt_model_kwargs.get("layers", layers)
        check_number("max_steps", max_steps, low=1, integer=True)
        check_number("eval_steps", eval_steps, low=1, integer=True)
        check_number("early_stop_rounds", early_stop_rounds, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=0.99)
        if output_dim != 1 or isinstance(output_dim, bool):
            raise ConfigError(f"output_dim must be 1 (one score per sample), got {output_dim!r}", path="output_dim")
        if input_dim is not None:
            check_number("input_dim", input_dim, low=1, integer=True)
        if not isinstance(layers, list | tuple) or not layers:
            raise ConfigError(f"layers must be a non-empty list of layer widths, got {layers!r}", path="layers")
        for width in layers:
            check_number("each layers value", width, low=1, integer=True, path="layers")
        super().__init__(params, kwargs, n_epochs=math.ceil(max_steps / eval_steps), lr=lr, batch_size=batch_size,
                         early_stop=early_stop_rounds, loss=loss, optimizer=optimizer, metric=metric, GPU=GPU,
                         seed=seed, weight_decay=weight_decay)
        self.settings = attrs.evolve(self.settings, clip_value=None, plateau=True)
        self.input_dim, self.layers, self.dropout, self.eval_steps = input_dim, list(layers), dropout, eval_steps

    def _samples(self, dataset: Dataset, segment: str, feature_names: list[str] | None) -> Samples:
        return TabularSamples(dataset, segment, feature_names)

    def _spec(self, samples: Samples) -> dict[str, Any]:
        width = len(samples.feature_names)
        if self.input_dim is not None and self.input_dim != width:
            raise QcoreError(f"input_dim={self.input_dim} but the dataset has {width} features")
        return {"kind": "mlp", "input_dim": width, "layers": self.layers, "dropout": self.dropout}

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        n, size, steps = len(samples), self.batch_size, self.eval_steps
        return lambda rng: sampled_batches(n, size, steps, rng)


class SequenceModel(TorchModel):
    """Shared reading and batching of the sequence models (``d_feat``, ``step_len``, ``batching``)."""

    kind = ""

    def _sequence_setup(self, d_feat: int | None, step_len: int | None, batching: str) -> None:
        if d_feat is not None:
            check_number("d_feat", d_feat, low=1, integer=True)
        if step_len is not None:
            check_number("step_len", step_len, low=1, integer=True)
        check_choice("batching", batching, BATCHINGS)
        self.d_feat = None if d_feat is None else int(d_feat)
        self.step_len = None if step_len is None else int(step_len)
        self.batching = batching

    def _samples(self, dataset: Dataset, segment: str, feature_names: list[str] | None) -> Samples:
        if self.step_len is None:
            return TabularSamples(dataset, segment, feature_names, d_feat=self.d_feat, as_sequence=True)
        samples = WindowSamples(dataset, segment, self.step_len, feature_names)
        if self.d_feat is not None and self.d_feat != samples.d_feat:
            raise QcoreError(f"d_feat={self.d_feat} but the time-series view has {samples.d_feat} features per step "
                             "(pass d_feat=None to take them all)")
        return samples

    def _network_args(self) -> dict[str, Any]:
        raise NotImplementedError

    def _spec(self, samples: Samples) -> dict[str, Any]:
        d_feat = samples.d_feat if samples.d_feat is not None else len(samples.feature_names)
        return {"kind": self.kind, "d_feat": d_feat, **self._network_args()}

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        if self.batching == "daily":
            days = samples.day_groups()
            return lambda rng: daily_batches(days, rng)
        n, size = len(samples), self.batch_size
        return lambda rng: shuffled_batches(n, size, rng)


def _check_rnn(hidden_size: int, num_layers: int, dropout: float) -> None:
    check_number("hidden_size", hidden_size, low=1, integer=True)
    check_number("num_layers", num_layers, low=1, integer=True)
    check_number("dropout", dropout, low=0.0, high=0.99)


class RNNModel(SequenceModel):
    """Qlib's ``LSTM``/``GRU`` (``pytorch_lstm``, ``pytorch_gru`` and their ``_ts`` variants)."""

    def __init__(self, d_feat: int | None = 6, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 n_epochs: int = 200, lr: float = 0.001, metric: str = "", batch_size: int = 2000,
                 early_stop: int = 20, loss: str = "mse", optimizer: str = "adam", GPU: Any = 0,
                 seed: int | None = None, step_len: int | None = None, batching: str = "shuffle",
                 weight_decay: float = 0.0, n_jobs: int | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        _check_rnn(hidden_size, num_layers, dropout)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=weight_decay)
        self._sequence_setup(d_feat, step_len, batching)
        self.hidden_size, self.num_layers, self.dropout = int(hidden_size), int(num_layers), float(dropout)

    def _network_args(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "dropout": self.dropout}


class LSTMModel(RNNModel):
    """Qlib's ``LSTM``: stacked LSTM, linear head on the last step."""

    registry_name = "lstm"
    kind = "lstm"


class GRUModel(RNNModel):
    """Qlib's ``GRU``: stacked GRU, linear head on the last step."""

    registry_name = "gru"
    kind = "gru"


class ALSTMModel(RNNModel):
    """Qlib's ``ALSTM``: input projection, recurrent layer (``rnn_type``, GRU by default), temporal attention."""

    registry_name = "alstm"
    kind = "alstm"

    def __init__(self, *args: Any, rnn_type: str = "GRU", **kwargs: Any) -> None:
        check_choice("rnn_type", str(rnn_type).upper(), ("GRU", "LSTM", "RNN"))
        super().__init__(*args, **kwargs)
        self.rnn_type = str(rnn_type).upper()
        self.init_params["rnn_type"] = self.rnn_type

    def _network_args(self) -> dict[str, Any]:
        return {**super()._network_args(), "rnn_type": self.rnn_type}


class TransformerModel(SequenceModel):
    """Qlib's ``TransformerModel``: feature embedding, position encodings, encoder stack, head on the last step.

    ``reg`` is the Adam weight decay (Qlib's name); ``dim_feedforward`` is torch's default 2048 as in Qlib.
    """

    registry_name = "transformer"
    kind = "transformer"

    def __init__(self, d_feat: int | None = 20, d_model: int = 64, batch_size: int = 2048, nhead: int = 2,
                 num_layers: int = 2, dropout: float = 0.0, n_epochs: int = 100, lr: float = 0.0001,
                 metric: str = "", early_stop: int = 5, loss: str = "mse", optimizer: str = "adam", reg: float = 1e-3,
                 n_jobs: int | None = None, GPU: Any = 0, seed: int | None = None, step_len: int | None = None,
                 batching: str = "shuffle", dim_feedforward: int = 2048, **kwargs: Any) -> None:
        params = collect_params(locals())
        check_number("d_model", d_model, low=1, integer=True)
        check_number("nhead", nhead, low=1, integer=True)
        check_number("num_layers", num_layers, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=0.99)
        check_number("dim_feedforward", dim_feedforward, low=1, integer=True)
        check_number("reg", reg, low=0.0)
        if d_model % nhead:
            raise ConfigError(f"d_model={d_model} must be a multiple of nhead={nhead}", path="nhead")
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=reg)
        self._sequence_setup(d_feat, step_len, batching)
        self.d_model, self.nhead, self.num_layers = int(d_model), int(nhead), int(num_layers)
        self.dropout, self.dim_feedforward = float(dropout), int(dim_feedforward)

    def _network_args(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "nhead": self.nhead, "num_layers": self.num_layers, "dropout": self.dropout,
                "dim_feedforward": self.dim_feedforward}
