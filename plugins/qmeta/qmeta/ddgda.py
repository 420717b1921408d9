"""DDG-DA (Li et al., AAAI 2022; Qlib's ``DDGDA``) as a qcore reweighter learned per rolling window.

``reweighter: {name: ddgda, kwargs: {...}}`` with a ``rolling:`` section: the rolling step binds the reweighter
to each window (``for_window(window, frame)``, called with the raw rows of the window's *train span only*), which

1. picks the proxy features: the ``top_k`` most important features of ``proxy_model`` fitted on the span (every
   feature when the model has no ``feature_importance`` or ``proxy_model`` is null);
2. cuts the span into periods of ``step`` dates and measures how each period's data predicts every date
   (:mod:`qmeta.proxy`);
3. trains the meta-model on the span's own meta-tasks and weighs the span's periods for the next, unseen period
   (:mod:`qmeta.meta`);
4. returns a :class:`TimeWeights` reweighter: each training row gets its period's weight, any other row (``valid``)
   weight 1, as Qlib's ``TimeReweighter``.

Everything a window's weights depend on lies in its train span, which ends before its test span starts (with the
rolling ``gap`` for the label's horizon): the weights are causal by construction (tested).

Differences from Qlib: the meta-model is retrained for every window on the meta-tasks inside that window's train
span (Qlib trains it once, on the first 62% of the tasks, and reuses it), so it learns from the most recent drift
and never from the future; the proxy models are ridge regressions on the proxy features (Qlib: linear), and the
meta-loss is the next period's mean squared error of the weighted ridge model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError
from qmeta.meta import MetaResult, train_meta
from qmeta.proxy import feature_frame, period_data, proxy_importance, select_features

logger = logging.getLogger(__name__)


@attrs.frozen
class TimeWeights:
    """Per-date sample weights (Qlib's ``TimeReweighter``): a row of a listed date gets that date's weight, any other
    row 1.

    :ivar weights: weight by date.
    :ivar result: the meta-model's training summary for these weights (None when they were given).
    :ivar features: the proxy features used.
    """

    weights: pd.Series = attrs.field(repr=False)
    result: MetaResult | None = attrs.field(default=None, repr=False)
    features: tuple[str, ...] = ()

    def reweight(self, index: pd.MultiIndex) -> pd.Series:
        """One weight per date of ``index`` (dates the weights do not list: 1)."""
        level = "datetime" if "datetime" in (index.names or ()) else 0
        days = pd.DatetimeIndex(index.get_level_values(level).unique())
        return self.weights.reindex(days).fillna(1.0)


class DDGDA:
    """The ``ddgda`` reweighter: sample weights of each rolling window's training data, learned by DDG-DA.

    :param step: dates per period (Qlib: the rolling step, 20).
    :param hist_steps: periods of similarity history the meta-model reads (Qlib's ``hist_step_n``).
    :param top_k: proxy features (Qlib's ``fea_imp_n``, 30).
    :param proxy_model: the model whose importances pick the proxy features: a registered model name or
        ``{name, kwargs}`` (default a small LightGBM), or null for every feature.
    :param proxy_rows: at most this many random rows fit the proxy model.
    :param alpha: ridge penalty of the proxy and meta regressions, relative to the Gram matrix's mean diagonal.
    :param clip_weight: weights lie in ``[1/clip_weight, clip_weight]``.
    :param epochs: full-batch Adam steps of the meta-model.
    :param lr: its learning rate.
    :param min_train: periods a meta-task trains on at least.
    :param seed: seeds the proxy rows' sample and torch.
    """

    registry_name = "ddgda"

    def __init__(
        self,
        step: int = 20,
        hist_steps: int = 6,
        top_k: int = 30,
        proxy_model: str | Mapping[str, Any] | None = "lightgbm",
        proxy_rows: int = 50_000,
        alpha: float = 0.01,
        clip_weight: float = 2.0,
        epochs: int = 200,
        lr: float = 0.05,
        min_train: int = 2,
        seed: int = 0,
        *,
        kernel: Any = None,
    ) -> None:
        for name, value, low in (("step", step, 1), ("hist_steps", hist_steps, 1), ("top_k", top_k, 1),
                                 ("proxy_rows", proxy_rows, 100), ("epochs", epochs, 0), ("min_train", min_train, 1),
                                 ("seed", seed, 0)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}", path=name)
        for name, value, low in (("alpha", alpha, 0.0), ("clip_weight", clip_weight, 1.0), ("lr", lr, 0.0)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value <= low:
                raise ConfigError(f"{name} must be a number > {low}, got {value!r}", path=name)
        self.proxy = _proxy_spec(proxy_model)
        self.step, self.hist_steps, self.top_k, self.proxy_rows = step, hist_steps, top_k, proxy_rows
        self.alpha, self.clip_weight, self.epochs, self.lr = float(alpha), float(clip_weight), epochs, float(lr)
        self.min_train, self.seed = min_train, seed
        self.kernel = kernel

    def __getstate__(self) -> dict[str, Any]:
        """Picklable for execution backends that run windows in other processes: the kernel stays behind (a worker
        loads its own when it needs the proxy model)."""
        return {**self.__dict__, "kernel": None}

    def _proxy_model(self) -> Any:
        if self.proxy is None:
            return None
        kernel = self.kernel
        if kernel is None:
            from qcore.kernel import Kernel

            kernel = self.kernel = Kernel.load()
        name, kwargs = self.proxy
        return kernel.create("model", name, **kwargs)

    def learn(self, frame: pd.DataFrame) -> TimeWeights:
        """The weights of the dates of ``frame`` (a train span's raw rows) for the period that follows them."""
        features, label = feature_frame(frame)
        importance = proxy_importance(self._proxy_model(), frame, rows=self.proxy_rows, seed=self.seed)
        names = select_features(features, self.top_k, importance)
        data = period_data(features, label, names, self.step, self.alpha)
        result = train_meta(data, hist_steps=self.hist_steps, clip_weight=self.clip_weight, alpha=self.alpha,
                            epochs=self.epochs, lr=self.lr, seed=self.seed, min_train=self.min_train)  # fmt: skip
        by_date = pd.Series(result.weights[data.period_of_day], index=data.dates, name="weight")
        return TimeWeights(by_date, result, tuple(names))

    def for_window(self, window: Any, frame: pd.DataFrame) -> TimeWeights:
        """Bind to one rolling window: learn from ``frame``, the raw rows of the window's train span."""
        weights = self.learn(frame)
        result = weights.result
        assert result is not None
        logger.info("ddgda %s: %d periods, %d meta-tasks, loss %.5f -> %.5f, weights %.3f..%.3f (last %.3f)",
                    getattr(window, "name", window), len(result.weights), result.tasks, result.loss_before,
                    result.loss_after, float(result.weights.min()), float(result.weights.max()),
                    float(result.weights[-1]))  # fmt: skip
        return weights

    def reweight(self, index: pd.MultiIndex) -> pd.Series:
        """Refused: DDG-DA learns weights per rolling window."""
        raise ConfigError("the ddgda reweighter learns sample weights per rolling window: add a 'rolling:' section "
                          "(or use it through `qcore ddgda`)", path="reweighter")  # fmt: skip


def _proxy_spec(value: Any) -> tuple[str, dict[str, Any]] | None:
    """``proxy_model`` as ``(name, kwargs)``: a name, ``{name, kwargs}``, or None (every feature); the default
    LightGBM is small (50 rounds, one thread)."""
    if value is None or value is False:
        return None
    if value == "lightgbm":
        return "lightgbm", {"num_boost_round": 50, "num_leaves": 31, "learning_rate": 0.1, "num_threads": 1,
                            "early_stopping_rounds": None, "dataset_cache": False}  # fmt: skip
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping) and isinstance(value.get("name"), str) and not set(value) - {"name", "kwargs"}:
        kwargs = value.get("kwargs") or {}
        if isinstance(kwargs, Mapping):
            return str(value["name"]), dict(kwargs)
    raise ConfigError(f"proxy_model must be a model name, {{name, kwargs}} or null, got {value!r}",
                      path="proxy_model")  # fmt: skip
