"""XGBoost trees with early stopping on the ``valid`` segment (Qlib's ``XGBModel``)."""

from __future__ import annotations

import difflib
import json
import logging
import re
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore import atomic
from qcore.errors import ConfigError, DataError
from qcore.modelio import write_manifest
from qcore.protocols import Dataset, Reweighter
from qmodel_xgb_cat._data import (
    check_int,
    feature_matrix,
    has_segment,
    jsonable,
    learning_segment,
    not_fitted,
    read_state,
    score_series,
    write_state,
)

logger = logging.getLogger(__name__)
#: XGBoost's own binary model format (UBJSON), beside ``model.json``.
MODEL_FILE = "xgboost.ubj"
#: scikit-learn-API names Qlib's configs pass that XGBoost's training API does not read (``n_estimators``: the
#: rounds are ``num_boost_round``). Qlib hands them to ``xgb.train``, which ignores them with a warning; so does
#: this model, with one log line.
_IGNORED = ("n_estimators",)
_UNUSED = re.compile(r"Parameters: \{(.*?)\} (?:are|is) not used")


def _xgb() -> Any:
    import xgboost

    return xgboost


def _config_names(node: Any, names: set[str]) -> set[str]:
    """Every key of XGBoost's saved configuration (its parameter names, and some section names)."""
    if isinstance(node, dict):
        for key, value in node.items():
            names.add(str(key))
            _config_names(value, names)
    return names


@cache
def xgboost_parameter_names() -> frozenset[str]:
    """The parameter names XGBoost reports in a trained booster's configuration (for did-you-mean hints)."""
    xgb = _xgb()
    booster = xgb.train({"nthread": 1}, xgb.DMatrix(np.zeros((4, 1)), label=np.zeros(4)), num_boost_round=1)
    return frozenset(_config_names(json.loads(booster.save_config()), set()))


def _probe(params: dict[str, Any]) -> tuple[str | None, list[str]]:
    """Train one round on 4 rows with ``params``: XGBoost's error message (or None) and the names it did not use."""
    xgb = _xgb()
    data = xgb.DMatrix(np.arange(8, dtype=np.float32).reshape(4, 2), label=np.arange(4, dtype=np.float32))
    unused: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            xgb.train({**params, "nthread": 1}, data, num_boost_round=1, evals=[(data, "probe")], verbose_eval=False)
        except (xgb.core.XGBoostError, TypeError, ValueError) as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, []
    for warning in caught:
        match = _UNUSED.search(str(warning.message))
        if match:
            unused += [n.strip().strip('"') for n in match.group(1).split(",") if n.strip()]
    return None, unused


def check_xgboost_params(params: dict[str, Any]) -> None:
    """Refuse what XGBoost would ignore (a misspelt name) or refuse at training (a bad value), now, naming the
    argument: a 4-row, one-round training runs XGBoost's own parameter parser (a few milliseconds)."""
    problem, unused = _probe(params)
    if unused:
        name = unused[0]
        known = sorted(xgboost_parameter_names() | {"num_boost_round", "early_stopping_rounds", "verbose_eval",
                                                     "use_best_model"})
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown parameter {name!r} for the xgboost model (XGBoost does not use it){hint}",
                          path=name)
    if problem is None:
        return
    culprit = next((k for k in params if re.search(rf"\b{re.escape(str(k))}\b", problem)), None)
    if culprit is None:
        culprit = next((k for k in params if _probe({k: params[k]})[0] is not None), None)
    shown = f"{culprit}={params[culprit]!r}" if culprit else "the parameters"
    cleaned = re.sub(r"^\[[^\]]*\] ?", "", problem)
    raise ConfigError(f"XGBoost refuses {shown} for the xgboost model: {cleaned}", path=culprit or "")


class _LogEvery:
    """An XGBoost training callback that logs the evaluation every ``period`` rounds (instead of printing)."""

    def __new__(cls, period: int) -> Any:
        xgb = _xgb()

        class LogEvery(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
                if epoch % period == 0:
                    shown = ", ".join(f"{data}-{metric}: {values[-1]:.6g}" for data, metrics in evals_log.items()
                                      for metric, values in metrics.items())  # fmt: skip
                    logger.info("xgboost round %d: %s", epoch, shown)
                return False

        return LogEvery()


class XGBModel:
    """XGBoost regressor trained on ``train`` and early-stopped on ``valid`` (Qlib's ``XGBModel``).

    Every keyword that is not one of the training arguments below is an XGBoost parameter passed to
    ``xgboost.train`` (``eta``, ``max_depth``, ``subsample``, ``colsample_bytree``, ``eval_metric``, ``nthread``,
    ``objective``, ``seed``...), as Qlib does; a name XGBoost would not use is an error with a did-you-mean, a bad
    value is refused before any data is read. Rows with a NaN label are left out.

    Training follows Qlib's ``fit``: ``num_boost_round`` rounds at most, the ``train`` and ``valid`` sets evaluated
    each round, stop after ``early_stopping_rounds`` rounds without gain on ``valid``. One deliberate difference:
    predictions use the best round (Qlib's booster predicts with every round grown, up to ``early_stopping_rounds``
    past the best one; ``use_best_model: false`` does the same).

    :param num_boost_round: boosting rounds at most (Qlib: 1000).
    :param early_stopping_rounds: rounds without gain on ``valid`` before stopping (Qlib: 50; None: never).
    :param verbose_eval: log the metrics every this many rounds (Qlib prints every 20; 0: silent).
    :param use_best_model: predict with the best round on ``valid`` (false: with every round grown, as Qlib's
        ``XGBModel`` does).
    """

    registry_name = "xgboost"

    def __init__(self, num_boost_round: int = 1000, early_stopping_rounds: int | None = 50, verbose_eval: int = 0,
                 use_best_model: bool = True, **kwargs: Any) -> None:
        self.num_boost_round = check_int("num_boost_round", num_boost_round, 1)
        self.early_stopping_rounds = (None if early_stopping_rounds is None
                                      else check_int("early_stopping_rounds", early_stopping_rounds, 1))
        self.verbose_eval = check_int("verbose_eval", verbose_eval, 0)
        if not isinstance(use_best_model, bool):
            raise ConfigError(f"use_best_model must be true or false, got {use_best_model!r}", path="use_best_model")
        self.use_best_model = use_best_model
        self._kwargs = jsonable(kwargs)
        ignored = [k for k in kwargs if k in _IGNORED]
        if ignored:
            logger.warning("xgboost: %s not used by XGBoost's training API (as in Qlib); the rounds are "
                           "num_boost_round=%d", ", ".join(ignored), self.num_boost_round)
        self.params = {k: v for k, v in self._kwargs.items() if k not in _IGNORED}
        check_xgboost_params(self.params)
        self.model: Any = None
        self.feature_names_: list[str] = []
        self.best_iteration_: int = 0
        #: the first metric's values per round: ``{"train": [...], "valid": [...]}`` (as Qlib's evals_result).
        self.evals_result_: dict[str, list[float]] = {}

    @property
    def init_params(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model (saved in ``model.json``)."""
        return {"num_boost_round": self.num_boost_round, "early_stopping_rounds": self.early_stopping_rounds,
                "verbose_eval": self.verbose_eval, **({} if self.use_best_model else {"use_best_model": False}),
                **self._kwargs}

    def fit(self, dataset: Dataset, reweighter: Reweighter | None = None) -> XGBModel:
        """Train on ``train`` (weighted by ``reweighter``); with a ``valid`` segment, stop early on it."""
        xgb = _xgb()
        train, self.feature_names_ = learning_segment(dataset, "train", reweighter=reweighter)
        evals = [(xgb.DMatrix(train.x, label=train.y, weight=train.weight), "train")]
        if has_segment(dataset, "valid"):
            valid, _ = learning_segment(dataset, "valid", self.feature_names_)
            evals.append((xgb.DMatrix(valid.x, label=valid.y), "valid"))
        del train
        history: dict[str, dict[str, list[float]]] = {}
        stopping = self.early_stopping_rounds if len(evals) > 1 else None
        callbacks = [_LogEvery(self.verbose_eval)] if self.verbose_eval else None
        self.model = xgb.train(self.params, evals[0][0], num_boost_round=self.num_boost_round, evals=evals,
                               early_stopping_rounds=stopping, evals_result=history, verbose_eval=False,
                               callbacks=callbacks)
        rounds = self.model.num_boosted_rounds()
        self.best_iteration_ = int(self.model.best_iteration) + 1 if stopping and self.use_best_model else rounds
        self.evals_result_ = {name: [float(v) for v in next(iter(metrics.values()))]
                              for name, metrics in history.items() if metrics}
        logger.info("xgboost: %d rounds grown, %d used", rounds, self.best_iteration_)
        return self

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment`` from the best round."""
        if self.model is None:
            raise not_fitted("xgboost")
        xgb = _xgb()
        features, _ = dataset.xy(segment)
        x = feature_matrix(features, self.feature_names_)
        values = self.model.predict(xgb.DMatrix(x), iteration_range=(0, self.best_iteration_))
        return score_series(values, features.index)

    def feature_importance(self, importance_type: str = "weight") -> pd.Series:
        """XGBoost's importance by feature name, largest first: ``weight`` (splits), ``gain``, ``cover``,
        ``total_gain`` or ``total_cover``; a feature never split on scores 0."""
        if self.model is None:
            raise not_fitted("xgboost")
        kinds = ("weight", "gain", "cover", "total_gain", "total_cover")
        if importance_type not in kinds:
            raise ConfigError(f"importance_type must be one of {', '.join(kinds)}, got {importance_type!r}",
                              path="importance_type")
        scores = self.model[: self.best_iteration_].get_score(importance_type=importance_type)
        values = [float(scores.get(f"f{i}", 0.0)) for i in range(len(self.feature_names_))]
        return pd.Series(values, index=self.feature_names_, dtype=np.float64).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        """Write ``model.json``, XGBoost's own model file (``xgboost.ubj``) and the fitted state; no pickle."""
        if self.model is None:
            raise not_fitted("xgboost")
        folder = Path(folder)
        write_manifest(folder, self.registry_name, self.init_params)
        atomic.write_bytes(folder / MODEL_FILE, bytes(self.model.save_raw(raw_format="ubj")))
        write_state(folder, {"features": self.feature_names_, "best_iteration": self.best_iteration_,
                             "evals_result": self.evals_result_})

    def restore(self, folder: Path) -> None:
        """Load the model written by :meth:`save`."""
        xgb = _xgb()
        state = read_state(folder)
        path = Path(folder) / MODEL_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataError("the saved xgboost model has no model file", path=str(path)) from None
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError as exc:
            raise DataError(f"XGBoost cannot read the model: {str(exc).splitlines()[0]}", path=str(path)) from None
        self.model = booster
        self.feature_names_ = list(state["features"])
        self.best_iteration_ = int(state["best_iteration"])
        self.evals_result_ = dict(state.get("evals_result", {}))
