"""Qlib's ``GeneralPTNN``: the general PyTorch model, training the network that ``pt_model_uri`` names.

Which networks it builds (decided here, on purpose): ``pt_model_uri`` is looked up in a fixed table — the zoo's
network names (``mlp``, ``gru``, ``lstm``, ``alstm``, ``transformer``) or the Qlib class paths of the same networks
(``qlib.contrib.model.pytorch_nn.Net``, ``qlib.contrib.model.pytorch_gru_ts.GRUModel``...). No module is ever
imported from a path in a config: a config is data, and importing by name would run whatever code a path names.
``pt_model_kwargs`` are the Qlib class's arguments, checked by name, with that class's defaults.

Flat networks (``Net``) read feature rows; sequence networks read ``step_len``-day windows of the time-series view
when ``step_len`` is given (Qlib's ``TSDatasetH``), else each row reshaped to ``(steps, d_feat)``. Training is
Qlib's: shuffled mini-batches, masked MSE (sample weights through ``fit(dataset, reweighter=...)``), gradients
clipped at 3, the learning rate halved when the valid loss stalls for 5 epochs (to 1e-6 at least), early stopping
on the valid loss (``metric`` ``""``/``"loss"``). The valid loss is unweighted (Qlib also weights it with the
reweighter's valid weights).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from qcore.errors import ConfigError, QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import check_choice, check_known, check_number
from qmodel_zoo.nn.base import TorchModel, collect_params
from qmodel_zoo.nn.batching import shuffled_batches
from qmodel_zoo.nn.samples import Samples, TabularSamples, WindowSamples

_RNN = {"d_feat": 6, "hidden_size": 64, "num_layers": 2, "dropout": 0.0}
#: network name → (zoo network kind, the Qlib class's arguments with their defaults; ``None``: required).
NETWORKS: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("mlp", {"input_dim": None, "output_dim": 1, "layers": [256], "act": "LeakyReLU"}),
    "gru": ("gru", _RNN),
    "lstm": ("lstm", _RNN),
    "alstm": ("alstm", {**_RNN, "rnn_type": "GRU"}),
    "transformer": ("transformer", {"d_feat": 6, "d_model": 8, "nhead": 4, "num_layers": 2, "dropout": 0.5,
                                    "device": None}),
}
_QLIB = "qlib.contrib.model."
#: Qlib's class paths of the same networks.
QLIB_NETWORKS = {
    f"{_QLIB}pytorch_nn.Net": "mlp",
    **{f"{_QLIB}pytorch_{m}{ts}.{c}": n for n, m, c in (("gru", "gru", "GRUModel"), ("lstm", "lstm", "LSTMModel"),
                                                      ("alstm", "alstm", "ALSTMModel"),
                                                      ("transformer", "transformer", "Transformer"))
       for ts in ("", "_ts")},
}


def resolve_network(uri: Any) -> str:
    """The zoo network name of ``pt_model_uri`` (a zoo name or one of Qlib's class paths), or a ConfigError."""
    if isinstance(uri, str) and uri in NETWORKS:
        return uri
    if isinstance(uri, str) and uri in QLIB_NETWORKS:
        return QLIB_NETWORKS[uri]
    known = ", ".join([*NETWORKS, *sorted(QLIB_NETWORKS)])
    raise ConfigError(f"pt_model_uri {uri!r} is not a network qcore knows (no class is imported by path); known: "
                      f"{known}", path="pt_model_uri")


class GeneralPTNN(TorchModel):
    """Qlib's ``GeneralPTNN`` with its arguments and defaults (see the module docstring)."""

    registry_name = "general_ptnn"

    def __init__(self, n_epochs: int = 200, lr: float = 0.001, metric: str = "", batch_size: int = 2000,
                 early_stop: int = 20, loss: str = "mse", weight_decay: float = 0.0, optimizer: str = "adam",
                 n_jobs: int = 10, GPU: Any = 0, seed: int | None = None,
                 pt_model_uri: str = "qlib.contrib.model.pytorch_gru_ts.GRUModel",
                 pt_model_kwargs: Mapping[str, Any] | None = None, step_len: int | None = None,
                 **kwargs: Any) -> None:
        if pt_model_kwargs is None:
            pt_model_kwargs = {"d_feat": 6, "hidden_size": 64, "num_layers": 2, "dropout": 0.0}
        params = collect_params(locals())
        check_choice("metric", metric, ("", "loss"))
        network = resolve_network(pt_model_uri)
        if not isinstance(pt_model_kwargs, Mapping):
            raise ConfigError(f"pt_model_kwargs must be a mapping, got {pt_model_kwargs!r}", path="pt_model_kwargs")
        kind, defaults = NETWORKS[network]
        try:
            check_known(f"the {pt_model_uri} network", pt_model_kwargs, defaults)
        except ConfigError as exc:
            raise ConfigError(exc.message, path=f"pt_model_kwargs.{exc.path}") from None
        args = {**defaults, **pt_model_kwargs}
        self._check_network(kind, args)
        if step_len is not None:
            check_number("step_len", step_len, low=1, integer=True)
            if kind == "mlp":
                raise ConfigError("step_len (windows of days) needs a sequence network, not Qlib's Net",
                                  path="step_len")
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=weight_decay)
        self.settings = attrs.evolve(self.settings, plateau=True, plateau_patience=5, plateau_threshold=1e-5,
                                     plateau_min_lr=1e-6)
        self.kind, self.net_args = kind, args
        self.step_len = None if step_len is None else int(step_len)

    @staticmethod
    def _check_network(kind: str, args: dict[str, Any]) -> None:
        where = "pt_model_kwargs"
        if kind == "mlp":
            if args["input_dim"] is not None:
                check_number("input_dim", args["input_dim"], low=1, integer=True, path=f"{where}.input_dim")
            if args["output_dim"] != 1 or isinstance(args["output_dim"], bool):
                raise ConfigError(f"output_dim must be 1 (one score per sample), got {args['output_dim']!r}",
                                  path=f"{where}.output_dim")
            if args["act"] != "LeakyReLU":
                raise ConfigError(f"act must be 'LeakyReLU' (Qlib's Net), got {args['act']!r}", path=f"{where}.act")
            if not isinstance(args["layers"], list | tuple) or not args["layers"]:
                raise ConfigError(f"layers must be a non-empty list of widths, got {args['layers']!r}",
                                  path=f"{where}.layers")
            for width in args["layers"]:
                check_number("each layers value", width, low=1, integer=True, path=f"{where}.layers")
            return
        for name in ("d_feat", "hidden_size", "d_model", "nhead", "num_layers"):
            if name in args:
                check_number(name, args[name], low=1, integer=True, path=f"{where}.{name}")
        check_number("dropout", args["dropout"], low=0.0, high=0.99, path=f"{where}.dropout")
        if kind == "alstm":
            check_choice("rnn_type", str(args["rnn_type"]).upper(), ("GRU", "LSTM", "RNN"), path=f"{where}.rnn_type")
        if kind == "transformer" and args["d_model"] % args["nhead"]:
            raise ConfigError(f"d_model={args['d_model']} must be a multiple of nhead={args['nhead']}",
                              path=f"{where}.nhead")

    def _samples(self, dataset: Dataset, segment: str, feature_names: list[str] | None) -> Samples:
        if self.kind == "mlp":
            return TabularSamples(dataset, segment, feature_names)
        if self.step_len is not None:
            samples = WindowSamples(dataset, segment, self.step_len, feature_names)
            if samples.d_feat != self.net_args["d_feat"]:
                raise QcoreError(f"pt_model_kwargs.d_feat={self.net_args['d_feat']} but the time-series view has "
                                 f"{samples.d_feat} features per step")
            return samples
        return TabularSamples(dataset, segment, feature_names, d_feat=int(self.net_args["d_feat"]), as_sequence=True)

    def _spec(self, samples: Samples) -> dict[str, Any]:
        args = self.net_args
        if self.kind == "mlp":
            width = len(samples.feature_names)
            if args["input_dim"] is not None and args["input_dim"] != width:
                raise QcoreError(f"pt_model_kwargs.input_dim={args['input_dim']} but the dataset has {width} "
                                 "features")
            return {"kind": "mlp", "input_dim": width, "layers": [int(w) for w in args["layers"]], "dropout": 0.05}
        spec = {"kind": self.kind, "d_feat": int(args["d_feat"]), "num_layers": int(args["num_layers"]),
                "dropout": float(args["dropout"])}
        if self.kind == "transformer":
            return {**spec, "d_model": int(args["d_model"]), "nhead": int(args["nhead"])}
        spec["hidden_size"] = int(args["hidden_size"])
        if self.kind == "alstm":
            spec["rnn_type"] = str(args["rnn_type"]).upper()
        return spec

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        n, size = len(samples), self.batch_size
        return lambda rng: shuffled_batches(n, size, rng)
