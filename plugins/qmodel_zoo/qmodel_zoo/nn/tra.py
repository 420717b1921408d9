"""Qlib's ``TRAModel`` (Temporal Routing Adaptor) on the memory-augmented sampler of
:mod:`qmodel_zoo.nn.mts_dataset` (Qlib's ``MTSDatasetH``, whose arguments are the model's ``sampler``; a Qlib YAML's
``MTSDatasetH`` kwargs land there).

Training follows Qlib's (0.9): Adam; with ``pretrain`` the backbone and the predictors are first trained with
the ``oracle`` transport (early-stopped on valid IC), then everything with ``transport_method``. With a transport
each batch's per-predictor losses, min-max scaled, are written to the memory; the transport plan is the Sinkhorn
solution on those losses fused with the remembered ones (``alpha``); the router learns to predict the plan (weight
``lamb * rho**(step // 100)``) while the prediction loss goes through its Gumbel choice (``router``) or the plan
itself (``oracle``). Gradients are applied every ``update_freq`` batches. After each epoch the train memory is
refreshed by an evaluation pass (``router``, or ``eval_train``), and the valid segment's mean daily rank IC decides
early stopping.

Prediction recomputes the memory it needs (every predictor's loss on the dates before and within the segment —
they do not depend on the router) and then routes date by date, so a saved and restored model predicts exactly as
the fitted one. ``oracle`` picks, at prediction, the predictor with the lowest loss on the label itself: a
research diagnostic, as in Qlib. With ``logdir`` the fitted weights are also written to ``logdir/model.bin`` in
Qlib's layout, which a later config's ``model_init_state`` reads (TRA's research configs chain ``*_tra_init`` into
``*_tra`` this way); the run's recorder keeps the model and its history, and Qlib's TensorBoard logs and prediction
pickles are not written.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch

from qcore.errors import ConfigError, QcoreError
from qcore.modelio import write_manifest
from qcore.protocols import Dataset
from qmodel_zoo._base import (
    check_choice,
    check_known,
    check_number,
    has_segment,
    not_fitted,
    read_state,
    score_series,
    write_state,
)
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.mts_dataset import Batch, MemoryDataset, MTSSettings
from qmodel_zoo.nn.tra_network import SRC_INFO, TRANSPORTS, TRANet, masked_mse, transport
from qmodel_zoo.nn.trainer import resolve_device, seeded
from qmodel_zoo.nn.weights import load_weights, save_weights

_RNN_KEYS = ("input_size", "hidden_size", "num_layers", "rnn_arch", "use_attn", "dropout")
_TRANSFORMER_KEYS = ("input_size", "hidden_size", "num_layers", "num_heads", "dropout")
_TRA_KEYS = ("num_states", "hidden_size", "rnn_arch", "num_layers", "dropout", "tau", "src_info")
#: Backbone names of TRA's research configs: ``LSTM``/``GRU`` are the RNN backbone with that cell.
_MODEL_TYPES = ("RNN", "Transformer", "LSTM", "GRU")


def _sub_config(name: str, value: Any, known: tuple[str, ...], ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping, got {value!r}", path=name)
    try:
        check_known(f"TRA's {name}", value, (*known, *ignored))
    except ConfigError as exc:
        raise ConfigError(exc.message, path=f"{name}.{exc.path}") from None
    return {k: v for k, v in value.items() if k in known and v is not None}


def _rank_ic(score: np.ndarray, label: np.ndarray) -> float:
    keep = ~np.isnan(label)
    if keep.sum() < 2:
        return float("nan")
    a = pd.Series(score[keep]).rank().to_numpy()
    b = pd.Series(label[keep]).rank().to_numpy()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _mean_ic(ics: list[float]) -> float:
    """The mean of the finite daily ICs (NaN when there is none)."""
    finite = [v for v in ics if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


class TRAModel:
    """Qlib's ``TRAModel`` with its arguments and defaults; see the module docstring.

    :param model_config: the backbone's arguments (RNN: ``input_size, hidden_size, num_layers, rnn_arch, use_attn,
        dropout``; Transformer: ``input_size, hidden_size, num_layers, num_heads, dropout``).
    :param tra_config: the head's (``num_states, hidden_size, rnn_arch, num_layers, dropout, tau, src_info``).
    :param model_type: ``RNN`` or ``Transformer`` (``LSTM``/``GRU``: the RNN with that cell).
    :param sampler: ``MTSDatasetH``'s arguments (``seq_len, horizon, num_states, memory_mode, batch_size,
        n_samples, shuffle, drop_last, input_size``); its ``num_states`` defaults to the head's.
    :param init_state: a file of initial weights (``{"model": ..., "tra": ...}`` tensors, Qlib's ``model.bin``)
        or a folder a TRA model was saved to; ``model_init_state`` is its older name.
    """

    registry_name = "tra"

    def __init__(self, model_config: Mapping[str, Any] | None = None, tra_config: Mapping[str, Any] | None = None,
                 model_type: str = "RNN", lr: float = 1e-3, n_epochs: int = 500, early_stop: int = 50,
                 update_freq: int = 1, max_steps_per_epoch: int | None = None, lamb: float = 0.0, rho: float = 0.99,
                 alpha: float = 1.0, seed: int | None = None, logdir: str | None = None, eval_train: bool = False,
                 eval_test: bool = False, pretrain: bool = False, init_state: str | None = None,
                 reset_router: bool = False, freeze_model: bool = False, freeze_predictors: bool = False,
                 transport_method: str = "none", memory_mode: str = "sample",
                 sampler: Mapping[str, Any] | None = None, GPU: Any = 0, model_init_state: str | None = None,
                 **kwargs: Any) -> None:
        params = collect_params(locals())
        check_known("the TRA model", kwargs, params)
        check_choice("model_type", model_type, _MODEL_TYPES)
        backbone = "Transformer" if model_type == "Transformer" else "RNN"
        keys = _RNN_KEYS if backbone == "RNN" else _TRANSFORMER_KEYS
        self.model_config = _sub_config("model_config", model_config or {}, keys,
                                        tuple(set(_RNN_KEYS + _TRANSFORMER_KEYS) - set(keys)))
        if model_type in ("LSTM", "GRU"):
            self.model_config.setdefault("rnn_arch", model_type)
        self.tra_config = _sub_config("tra_config", tra_config or {}, _TRA_KEYS)
        for key in ("input_size", "hidden_size", "num_layers", "num_heads"):
            if key in self.model_config:
                check_number(key, self.model_config[key], low=1, integer=True, path=f"model_config.{key}")
        if "rnn_arch" in self.model_config:
            check_choice("rnn_arch", self.model_config["rnn_arch"], ("GRU", "LSTM", "RNN"),
                         path="model_config.rnn_arch")
        for key in ("num_states", "hidden_size", "num_layers"):
            if key in self.tra_config:
                check_number(key, self.tra_config[key], low=1, integer=True, path=f"tra_config.{key}")
        if "rnn_arch" in self.tra_config:
            check_choice("rnn_arch", self.tra_config["rnn_arch"], ("GRU", "LSTM", "RNN"), path="tra_config.rnn_arch")
        if "tau" in self.tra_config:
            check_number("tau", self.tra_config["tau"], low=0.0, low_open=True, path="tra_config.tau")
        check_choice("src_info", self.tra_config.get("src_info", "LR_TPE"), SRC_INFO, path="tra_config.src_info")
        check_number("lr", lr, low=0.0, low_open=True)
        check_number("n_epochs", n_epochs, low=1, integer=True)
        check_number("early_stop", early_stop, low=1, integer=True)
        check_number("update_freq", update_freq, low=1, integer=True)
        check_number("alpha", alpha, low=0.0, high=1.0)
        if max_steps_per_epoch is not None:
            check_number("max_steps_per_epoch", max_steps_per_epoch, low=1, integer=True)
        check_number("lamb", lamb, low=0.0)
        check_number("rho", rho, low=0.0, high=1.0)
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        check_choice("transport_method", transport_method, TRANSPORTS)
        check_choice("memory_mode", memory_mode, ("sample", "daily"))
        num_states = int(self.tra_config.get("num_states", 1))
        if transport_method != "none" and num_states < 2:
            raise ConfigError("optimal transport needs tra_config.num_states > 1", path="transport_method")
        if memory_mode == "daily" and self.tra_config.get("src_info", "LR_TPE") != "TPE":
            raise ConfigError("daily transport supports only src_info 'TPE'", path="tra_config.src_info")
        given = dict(sampler or {})
        if given.get("num_states") is None:
            given["num_states"] = num_states
        if given.get("memory_mode") is None:
            given["memory_mode"] = memory_mode
        self.sampler = MTSSettings.parse(given)
        if self.sampler.memory_mode != memory_mode:
            raise ConfigError(f"memory_mode {memory_mode!r} differs from the sampler's "
                              f"{self.sampler.memory_mode!r}", path="memory_mode")
        if num_states > 1 and self.sampler.num_states != num_states:
            raise ConfigError(f"the sampler keeps {self.sampler.num_states} memory states but tra_config has "
                              f"num_states={num_states}", path="sampler.num_states")
        for key, value in (("eval_train", eval_train), ("eval_test", eval_test), ("pretrain", pretrain),
                           ("reset_router", reset_router), ("freeze_model", freeze_model),
                           ("freeze_predictors", freeze_predictors)):
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false, got {value!r}", path=key)
        if init_state is not None and model_init_state is not None:
            raise ConfigError("give init_state or its older name model_init_state, not both", path="model_init_state")
        if GPU is not None and (isinstance(GPU, bool | float) or not str(GPU).strip().lstrip("-").isdigit()):
            raise ConfigError(f"GPU must be a device index (or None for the CPU), got {GPU!r}", path="GPU")
        self.init_params = params
        self.model_type = backbone
        self.lr, self.n_epochs, self.early_stop, self.update_freq = float(lr), int(n_epochs), int(early_stop), \
            int(update_freq)
        self.alpha, self.reset_router = float(alpha), reset_router
        self.max_steps_per_epoch = max_steps_per_epoch
        self.lamb, self.rho, self.seed = float(lamb), float(rho), None if seed is None else int(seed)
        self.eval_train, self.eval_test, self.pretrain = eval_train, eval_test, pretrain
        self.init_state = init_state if init_state is not None else model_init_state
        if logdir is not None and (not isinstance(logdir, str) or not logdir.strip()):
            raise ConfigError(f"logdir must be a folder path, got {logdir!r}", path="logdir")
        self.logdir = logdir
        self.freeze_model, self.freeze_predictors = freeze_model, freeze_predictors
        self.transport_method = transport_method
        self.device = resolve_device(GPU)
        self.network: TRANet | None = None
        self.spec_: dict[str, Any] = {}
        self.feature_names_: list[str] = []
        self.history_: dict[str, Any] = {}
        self.seed_: int | None = None
        self._global_step = -1

    # -- building -------------------------------------------------------------------------------------------------

    def _build(self, spec: Mapping[str, Any]) -> TRANet:
        return TRANet(spec["model_type"], dict(spec["model_config"]), dict(spec["tra_config"]))

    def _load_init_state(self, network: TRANet) -> None:
        path = Path(str(self.init_state)).expanduser()
        if path.is_dir():
            from qmodel_zoo.nn.weights import read_weights

            flat = read_weights(path)
            parts = {"model": {k[6:]: v for k, v in flat.items() if k.startswith("model.")},
                     "tra": {k[4:]: v for k, v in flat.items() if k.startswith("tra.")}}
        else:
            try:
                parts = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ConfigError(f"cannot read init_state {path}: {exc}", path="init_state") from None
            if not isinstance(parts, Mapping) or "model" not in parts:
                raise ConfigError("init_state must hold {'model': ..., 'tra': ...} state dicts", path="init_state")
        try:
            network.model.load_state_dict(parts["model"])
        except RuntimeError as exc:
            raise ConfigError(f"init_state does not fit the backbone: {exc}".splitlines()[0],
                              path="init_state") from None
        try:
            network.tra.load_state_dict(parts.get("tra", {}))
        except RuntimeError:
            pass  # as Qlib: a head of another shape is skipped, the backbone is kept

    # -- training ---------------------------------------------------------------------------------------------------

    def _forward(self, batch: Batch, grad_backbone: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        data = torch.from_numpy(batch.data).to(self.device)
        state = torch.from_numpy(batch.state).to(self.device)
        with torch.set_grad_enabled(grad_backbone and torch.is_grad_enabled()):
            hidden = self.network.model(data)
        return self.network.tra(hidden, state)

    def _method(self, is_pretrain: bool) -> str:
        """The transport of a phase: ``oracle`` while pre-training (with several predictors), else the model's."""
        if is_pretrain:
            return "oracle" if self.network.tra.num_states > 1 else "none"
        return self.transport_method

    def _transport(self, batch: Batch, all_preds: torch.Tensor, choice: torch.Tensor | None,
                   prob: torch.Tensor | None, method: str, training: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        label = torch.from_numpy(batch.label).to(self.device)
        hist_loss = torch.from_numpy(batch.state).to(self.device).mean(dim=1)
        counts = batch.counts if self.sampler.memory_mode == "daily" else None
        return transport(all_preds, label, choice, prob, hist_loss, counts, method, self.alpha, training)

    def _train_epoch(self, data: MemoryDataset, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                     is_pretrain: bool) -> float:
        self.network.train()
        optimizer.zero_grad()
        method = self._method(is_pretrain)
        losses = []
        for step, batch in enumerate(data.train_batches("train", rng), start=1):
            if self.max_steps_per_epoch is not None and step > self.max_steps_per_epoch:
                break
            if np.isnan(batch.label).all():
                continue
            if not is_pretrain:
                self._global_step += 1
            all_preds, choice, prob = self._forward(batch, grad_backbone=not self.freeze_model)
            if method != "none":
                loss, _, normalised, plan = self._transport(batch, all_preds, choice, prob, method, training=True)
                data.assign(batch, normalised.cpu().numpy())
                if not is_pretrain and prob is not None:
                    lamb = self.lamb * self.rho ** (self._global_step // 100)
                    loss = loss - lamb * prob.clamp_min(1e-12).log().mul(plan).sum(dim=1).mean()
            else:
                loss = masked_mse(all_preds.mean(dim=1), torch.from_numpy(batch.label).to(self.device))
            (loss / self.update_freq).backward()
            if step % self.update_freq == 0:
                optimizer.step()
                optimizer.zero_grad()
            losses.append(loss.item())
        return float(np.mean(losses)) if losses else float("nan")

    def _evaluate(self, data: MemoryDataset, days: range, is_pretrain: bool,
                  assign: bool = True) -> tuple[np.ndarray, np.ndarray, list[float]]:
        """Rows, scores and daily rank ICs of one pass over ``days`` in order (the memory updated on the way)."""
        self.network.eval()
        method = self._method(is_pretrain)
        rows, scores, ics = [], [], []
        with torch.no_grad():
            for batch in data.eval_batches(days):
                all_preds, choice, prob = self._forward(batch)
                if method != "none":
                    _, pred, normalised, _ = self._transport(batch, all_preds, choice, prob, method, training=False)
                    if assign:
                        data.assign(batch, normalised.cpu().numpy())
                else:
                    pred = all_preds.mean(dim=1)
                score = pred.float().cpu().numpy()
                rows.append(batch.rows)
                scores.append(score)
                ics.append(_rank_ic(score, batch.label))
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0), []
        return np.concatenate(rows), np.concatenate(scores), ics

    def _fit_phase(self, data: MemoryDataset, rng: np.random.Generator, is_pretrain: bool,
                   history: dict[str, list]) -> None:
        network = self.network
        params = list(network.model.parameters()) + list(
            network.tra.predictors.parameters() if is_pretrain else network.tra.parameters())
        optimizer = torch.optim.Adam(params, lr=self.lr)
        best_score, stale = -1.0, 0
        best = copy.deepcopy(network.state_dict())
        routed = not is_pretrain and self.transport_method != "none"
        if routed:
            self._evaluate(data, data.segment_days("train"), is_pretrain)  # fill the memory first
        for _ in range(self.n_epochs):
            history["train_loss"].append(self._train_epoch(data, optimizer, rng, is_pretrain))
            if routed and (self.transport_method == "router" or self.eval_train):
                data.clear_memory()
                history["train_ic"].append(_mean_ic(self._evaluate(data, data.segment_days("train"), is_pretrain)[2]))
            score = _mean_ic(self._evaluate(data, data.segment_days("valid"), is_pretrain)[2])
            history["valid_ic"].append(score)
            if self.eval_test and data.has_segment("test"):
                history["test_ic"].append(_mean_ic(self._evaluate(data, data.segment_days("test"), is_pretrain)[2]))
            if score > best_score:
                best_score, stale = score, 0
                best = copy.deepcopy(network.state_dict())
                history["best_epoch"] = len(history["valid_ic"]) - 1
            else:
                stale += 1
                if stale >= self.early_stop:
                    break
        network.load_state_dict(best)

    def fit(self, dataset: Dataset) -> TRAModel:
        """Train on ``train``, early-stopped on the mean daily rank IC of ``valid`` (see the module docstring)."""
        for segment in ("train", "valid"):
            if not has_segment(dataset, segment):
                raise QcoreError(f"TRA needs a {segment!r} segment (its early stopping reads valid, as Qlib's)")
        segments = ["train", "valid"] + (["test"] if self.eval_test and has_segment(dataset, "test") else [])
        data = MemoryDataset(dataset, self.sampler, segments)
        width = data.input_width
        model_config = dict(self.model_config)
        if model_config.get("input_size", width) != width:
            raise QcoreError(f"model_config.input_size={model_config['input_size']} but a sample has {width} "
                             "features per step")
        model_config["input_size"] = width
        self.seed_ = self.seed if self.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self.spec_ = {"model_type": self.model_type, "model_config": model_config, "tra_config": self.tra_config,
                      "sampler": attrs.asdict(data.settings)}
        history: dict[str, Any] = {"train_loss": [], "train_ic": [], "valid_ic": [], "test_ic": [],
                                   "best_epoch": -1}
        rng = np.random.default_rng(self.seed_)
        with seeded(self.seed_, self.device):
            self.network = self._build(self.spec_).to(self.device)
            if self.init_state:
                self._load_init_state(self.network)
                if self.reset_router and self.network.tra.num_states > 1:
                    self.network.tra.fc.reset_parameters()
                    if hasattr(self.network.tra, "router"):
                        self.network.tra.router.reset_parameters()
            if self.freeze_model:
                self.network.model.requires_grad_(False)
            if self.freeze_predictors:
                self.network.tra.predictors.requires_grad_(False)
            self._global_step = -1
            if self.pretrain:
                self._fit_phase(data, rng, True, history)
            self._fit_phase(data, rng, False, history)
        self.network.eval()
        self.feature_names_ = list(data.feature_names)
        self.history_ = history
        if self.logdir:
            self._write_logdir_weights(Path(str(self.logdir)).expanduser())
        return self

    def _write_logdir_weights(self, folder: Path) -> None:
        """``folder/model.bin``: the fitted backbone and head as Qlib's TRA writes them (``{"model": ..., "tra":
        ...}`` state dicts, CPU tensors only), which a later config's ``model_init_state`` reads (Qlib's
        ``*_tra_init`` → ``*_tra`` chain); written to a temporary file and renamed."""
        from qcore.atomic import atomic_path

        assert self.network is not None
        parts = {name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
                 for name, module in (("model", self.network.model), ("tra", self.network.tra))}
        with atomic_path(folder / "model.bin") as tmp:  # makes the folder
            torch.save(parts, tmp)

    # -- prediction -------------------------------------------------------------------------------------------------

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment``'s rows (its learning rows, as Qlib's MTSDatasetH)."""
        if self.network is None:
            raise not_fitted(self.registry_name)
        settings = MTSSettings(**self.spec_["sampler"])
        segments = [s for s in getattr(dataset, "segments", [segment]) if s == segment or s in ("train", "valid")]
        data = MemoryDataset(dataset, settings, list(dict.fromkeys([*segments, segment])), self.feature_names_)
        days = data.segment_days(segment)
        routed = self.transport_method != "none"
        if routed:  # every date up to the segment's end, in order: the memory each routed sample reads
            self._evaluate(data, range(0, days.stop), False)
        rows, scores, _ = self._evaluate(data, days, False, assign=routed)
        order = np.argsort(rows)
        index = data.index[rows[order]]
        series = score_series(scores[order], index)
        return series.sort_index(level=["datetime", "instrument"])

    # -- saving -----------------------------------------------------------------------------------------------------

    @property
    def evals_result_(self) -> dict[str, list[float]]:
        """Per-epoch training loss and valid IC of the last fit."""
        return {"train": list(self.history_.get("train_loss", [])), "valid": list(self.history_.get("valid_ic", []))}

    def save(self, folder: Path) -> None:
        """Write ``model.json``, the weights and ``state.json`` (network description, features, history)."""
        if self.network is None:
            raise not_fitted(self.registry_name)
        write_manifest(folder, self.registry_name, self.init_params)
        save_weights(self.network, Path(folder))
        write_state(folder, {"network": self.spec_, "features": self.feature_names_, "seed": self.seed_,
                             "history": self.history_})

    def restore(self, folder: Path) -> None:
        """Rebuild the network from ``state.json`` and load its weights."""
        state = read_state(folder)
        self.spec_ = dict(state["network"])
        self.feature_names_ = list(state["features"])
        self.seed_ = state.get("seed")
        self.history_ = dict(state.get("history", {}))
        self.network = self._build(self.spec_)
        load_weights(self.network, Path(folder), self.device)
        self.network.eval()
