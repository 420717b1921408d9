"""CatBoost trees with early stopping on the ``valid`` segment (Qlib's ``CatBoostModel``)."""

from __future__ import annotations

import difflib
import io
import logging
import re
from collections.abc import Mapping
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
#: CatBoost's own binary model format, beside ``model.json``.
MODEL_FILE = "catboost.cbm"
#: the losses Qlib's CatBoostModel accepts.
LOSSES = ("RMSE", "Logloss")
#: CatBoost names of the number of trees: here (as in Qlib's ``fit``) that is ``num_boost_round``.
_ROUNDS = ("iterations", "num_boost_round", "n_estimators", "num_trees")
#: arguments of this model that are not CatBoost parameters.
_OWN = ("loss", "num_boost_round", "early_stopping_rounds", "verbose_eval")
_UNKNOWN = re.compile(r"Unknown option \{([^}]*)\}")


def _catboost() -> Any:
    import catboost

    return catboost


@cache
def gpu_count() -> int:
    """CUDA devices CatBoost can train on (0 without a GPU, a driver or CatBoost's GPU support); CatBoost's own
    complaint on stderr when it finds no usable driver is kept out of the user's terminal."""
    import os
    import tempfile

    from catboost.utils import get_gpu_device_count

    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            return int(get_gpu_device_count())
        except Exception:  # a CatBoost built without CUDA
            return 0
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _tiny_pool() -> Any:
    x = np.arange(40, dtype=np.float32).reshape(20, 2) % 7
    return _catboost().Pool(x, label=np.arange(20, dtype=np.float64) % 5)


def _fit_probe(params: dict[str, Any]) -> Any:
    """Fit 2 trees on 20 rows with ``params`` (CatBoost parses and checks its options there)."""
    model = _catboost().CatBoost({**params, "iterations": 2, "verbose": False, "allow_writing_files": False})
    model.fit(_tiny_pool())
    return model


@cache
def catboost_parameter_names() -> frozenset[str]:
    """The parameter names CatBoost reports for a CPU model (for did-you-mean hints)."""
    names = set(_fit_probe({"thread_count": 1}).get_all_params())
    return frozenset(names | {"thread_count", "verbose", "task_type", "devices", "bootstrap_type", "max_depth",
                              "num_leaves", "reg_lambda", "random_state", "colsample_bylevel", "min_child_samples"})


def _accepts(params: dict[str, Any]) -> bool:
    try:
        _fit_probe({**params, "thread_count": 1})
    except Exception:  # CatBoostError, or TypeError/ValueError from its Python layer
        return False
    return True


def check_catboost_params(params: dict[str, Any], given: Mapping[str, Any]) -> None:
    """Refuse an option CatBoost does not know, or a value it refuses, now (a 2-tree fit on 20 rows), naming the
    argument of ``given`` (the user's keywords) at fault."""
    catboost = _catboost()
    try:
        _fit_probe({**params, "thread_count": 1})
    except catboost.CatBoostError as exc:
        message = re.sub(r"^\S+\.cpp:\d+: ", "", str(exc).strip().splitlines()[0])
        unknown = _UNKNOWN.search(message)
        if unknown:
            name = unknown.group(1)
            close = difflib.get_close_matches(name, sorted(catboost_parameter_names() | set(_OWN)), n=3)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown parameter {name!r} for the catboost model{hint}", path=name) from None
        culprit = next((k for k in params if re.search(rf"\b{re.escape(str(k))}\b", message, re.IGNORECASE)), "")
        if not culprit:  # CatBoost's messages often name the option in words ("Maximum tree depth is 16")
            base = {k: v for k, v in params.items() if k not in given}
            culprit = next((k for k in given if not _accepts({**base, k: params[k]})), "")
        shown = f"{culprit}={params[culprit]!r}" if culprit else "the parameters"
        raise ConfigError(f"CatBoost refuses {shown} for the catboost model: {message}", path=culprit) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"CatBoost refuses the parameters of the catboost model: {exc}") from None


class _LogLines(io.TextIOBase):
    """A text stream that hands CatBoost's progress lines to the log (instead of the terminal)."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                logger.info("catboost: %s", line.strip())
        return len(text)


class CatBoostModel:
    """CatBoost regressor (or ``Logloss`` classifier) trained on ``train``, early-stopped on ``valid`` (Qlib's
    ``CatBoostModel``).

    Every keyword that is not one of the arguments below is a CatBoost parameter (``learning_rate``, ``max_depth``,
    ``subsample``, ``num_leaves``, ``grow_policy``, ``bootstrap_type``, ``thread_count``, ``random_seed``...), as in
    Qlib; an unknown name is an error with a did-you-mean and a bad value is refused before any data is read. As in
    Qlib, training runs on the GPU when CatBoost sees one (``task_type`` overrides), keeps the best round on
    ``valid`` (``use_best_model``), and rows with a NaN label are left out.

    CatBoost's Poisson bootstrap exists on the GPU only (Qlib's benchmark configs ask for it); on the CPU this model
    uses Bernoulli sampling with the same ``subsample`` instead and logs it, where Qlib's run would fail.

    :param loss: ``RMSE`` or ``Logloss`` (Qlib's choices).
    :param num_boost_round: trees at most (CatBoost's ``iterations``; Qlib: 1000).
    :param early_stopping_rounds: rounds without gain on ``valid`` before stopping (Qlib: 50; None: never).
    :param verbose_eval: log the metrics every this many rounds (Qlib prints every 20; 0: silent).
    """

    registry_name = "catboost"

    def __init__(self, loss: str = "RMSE", num_boost_round: int = 1000, early_stopping_rounds: int | None = 50,
                 verbose_eval: int = 0, **kwargs: Any) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)} (Qlib's CatBoostModel), got {loss!r}",
                              path="loss")
        rounds = [k for k in kwargs if k in _ROUNDS or k == "early_stopping_rounds"]
        if rounds:
            raise ConfigError(f"{rounds[0]!r} is set by the model's num_boost_round / early_stopping_rounds "
                              "arguments (Qlib's fit arguments)", path=rounds[0])
        if "loss_function" in kwargs:
            raise ConfigError("give the loss as 'loss' (RMSE or Logloss), as in Qlib", path="loss_function")
        self.loss = loss
        self.num_boost_round = check_int("num_boost_round", num_boost_round, 1)
        self.early_stopping_rounds = (None if early_stopping_rounds is None
                                      else check_int("early_stopping_rounds", early_stopping_rounds, 1))
        self.verbose_eval = check_int("verbose_eval", verbose_eval, 0)
        self._kwargs = jsonable(kwargs)
        params: dict[str, Any] = {"loss_function": loss, **self._kwargs}
        params.setdefault("allow_writing_files", False)  # CatBoost writes catboost_info/ into the working directory
        params.setdefault("task_type", "GPU" if gpu_count() > 0 else "CPU")
        if str(params["task_type"]).upper() == "CPU" and str(params.get("bootstrap_type", "")).lower() == "poisson":
            logger.warning("catboost: the Poisson bootstrap exists on the GPU only; Bernoulli with the same subsample "
                           "is used on the CPU")  # fmt: skip
            params["bootstrap_type"] = "Bernoulli"
        self.params = params
        check_catboost_params(params, kwargs)
        self.model: Any = None
        self.feature_names_: list[str] = []
        #: the first metric's values per round: ``{"train": [...], "valid": [...]}`` (as Qlib's evals_result).
        self.evals_result_: dict[str, list[float]] = {}

    @property
    def init_params(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model (saved in ``model.json``)."""
        return {"loss": self.loss, "num_boost_round": self.num_boost_round,
                "early_stopping_rounds": self.early_stopping_rounds, "verbose_eval": self.verbose_eval,
                **self._kwargs}

    def fit(self, dataset: Dataset, reweighter: Reweighter | None = None) -> CatBoostModel:
        """Train on ``train`` (weighted by ``reweighter``); with a ``valid`` segment, stop early and keep its best
        round."""
        catboost = _catboost()
        train, self.feature_names_ = learning_segment(dataset, "train", reweighter=reweighter)
        train_pool = catboost.Pool(train.x, label=train.y, weight=train.weight)
        del train
        valid_pool = None
        if has_segment(dataset, "valid"):
            valid, _ = learning_segment(dataset, "valid", self.feature_names_)
            valid_pool = catboost.Pool(valid.x, label=valid.y)
            del valid
        params = {**self.params, "iterations": self.num_boost_round,
                  "verbose": self.verbose_eval if self.verbose_eval else False}
        if valid_pool is not None and self.early_stopping_rounds:
            params["early_stopping_rounds"] = self.early_stopping_rounds
        model = catboost.CatBoost(params)
        model.fit(train_pool, eval_set=valid_pool, use_best_model=valid_pool is not None,
                  log_cout=_LogLines(), log_cerr=_LogLines())
        self.model = model
        history = model.get_evals_result()
        self.evals_result_ = {}
        for source, target in (("learn", "train"), ("validation", "valid")):
            if history.get(source):
                self.evals_result_[target] = [float(v) for v in next(iter(history[source].values()))]
        logger.info("catboost: %d trees kept", model.tree_count_)
        return self

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment`` (raw values: the regression output, or log-odds for ``Logloss``)."""
        if self.model is None:
            raise not_fitted("catboost")
        features, _ = dataset.xy(segment)
        x = feature_matrix(features, self.feature_names_)
        return score_series(self.model.predict(x, prediction_type="RawFormulaVal"), features.index)

    def feature_importance(self) -> pd.Series:
        """CatBoost's ``PredictionValuesChange`` importance by feature name (they sum to 100), largest first."""
        if self.model is None:
            raise not_fitted("catboost")
        values = self.model.get_feature_importance(type="PredictionValuesChange")
        return pd.Series(np.asarray(values, dtype=np.float64), index=self.feature_names_).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        """Write ``model.json``, CatBoost's own model file (``catboost.cbm``) and the fitted state; no pickle."""
        if self.model is None:
            raise not_fitted("catboost")
        folder = Path(folder)
        write_manifest(folder, self.registry_name, self.init_params)
        with atomic.atomic_path(folder / MODEL_FILE) as tmp:
            self.model.save_model(str(tmp), format="cbm")
        write_state(folder, {"features": self.feature_names_, "evals_result": self.evals_result_})

    def restore(self, folder: Path) -> None:
        """Load the model written by :meth:`save`."""
        catboost = _catboost()
        state = read_state(folder)
        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            raise DataError("the saved catboost model has no model file", path=str(path))
        model = catboost.CatBoost()
        try:
            model.load_model(str(path), format="cbm")
        except catboost.CatBoostError as exc:
            raise DataError(f"CatBoost cannot read the model: {str(exc).splitlines()[0]}", path=str(path)) from None
        self.model = model
        self.feature_names_ = list(state["features"])
        self.evals_result_ = dict(state.get("evals_result", {}))
