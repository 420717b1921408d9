"""Qlib's high-frequency LightGBM (``HFLGBModel``): a classifier of the sign of each row's excess return.

Qlib's model turns the label into an alpha (the label minus its cross-sectional mean of the same bar) and that into
a class (1 when the alpha is >= 0, else 0), then fits LightGBM with ``objective = loss`` on the classes (``mse`` by
default, ``binary`` for log-loss), early-stopped on ``valid``. Its signal test (:meth:`HFLGBModel.hf_signal_test`)
ranks each bar's rows by score and reports how often the top and bottom ``threshold`` fractions get the sign of their
alpha right (precision) and their mean alpha.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import DataError, QcoreError
from qcore.modelio import write_manifest
from qcore.protocols import Dataset
from qmodel_zoo._base import (
    check_choice,
    check_number,
    feature_matrix,
    has_segment,
    jsonable,
    labelled,
    not_fitted,
    read_state,
    score_series,
    write_state,
)
from qmodel_zoo._lgb import LOSSES, booster_params, read_booster, write_booster
from qmodel_zoo._lightgbm import lgb
from qmodel_zoo.gbdt import check_extra_names, check_lightgbm_values

logger = logging.getLogger(__name__)
MODEL_FILE = "model.txt"
#: fewer rows than this in a bar's top (or bottom) fraction and the bar is left out of the signal test (Qlib's 10).
MIN_ROWS = 10


def alpha(label: pd.Series) -> pd.Series:
    """The label minus its mean over the rows of the same bar (level 0 of the index: the datetime)."""
    return label - label.groupby(level=0, sort=False).transform("mean")


def alpha_classes(label: pd.Series) -> np.ndarray:
    """Qlib's training target: 1 where the alpha is >= 0, else 0 (float64)."""
    return (alpha(label).to_numpy(dtype=np.float64) >= 0).astype(np.float64)


def signal_metrics(score: pd.Series, label: pd.Series, threshold: float = 0.2) -> dict[str, float]:
    """Qlib's high-frequency signal test of ``score`` against ``label`` (rows with a NaN in either are dropped).

    Per bar, rows sorted by score: the lowest ``threshold`` fraction is the "down" group, the rows from the
    ``1 - threshold`` quantile on the "up" group; precision is the share of the down group with a negative alpha
    (of the up group with a positive one), and alpha is the group's mean alpha. Bars whose group would hold fewer
    than :data:`MIN_ROWS` rows are left out (with a warning, as in Qlib). Returns the means over bars:
    ``up_precision``, ``down_precision``, ``up_alpha``, ``down_alpha`` and ``bars``.
    """
    check_number("threshold", threshold, low=0, high=0.5, low_open=True)
    frame = pd.DataFrame({"score": score, "label": label.reindex(score.index)}).dropna()
    frame["alpha"] = alpha(frame["label"])
    up_p, down_p, up_a, down_a = [], [], [], []
    skipped = 0
    for _, day in frame.groupby(level=0, sort=True):
        ordered = day.sort_values("score", kind="mergesort")["alpha"].to_numpy()
        low, high = int(threshold * len(ordered)), int((1 - threshold) * len(ordered))
        if low < MIN_ROWS:
            skipped += 1
            continue
        down, up = ordered[:low], ordered[high:]
        down_p.append(float(np.mean(down < 0)))
        up_p.append(float(np.mean(up > 0)))
        down_a.append(float(down.mean()))
        up_a.append(float(up.mean()))
    if skipped:
        warnings.warn(f"signal test: {skipped} bar(s) left out, whose {threshold:g} fraction holds fewer than "
                      f"{MIN_ROWS} rows", stacklevel=2)  # fmt: skip
    nan = float("nan")
    return {"up_precision": float(np.mean(up_p)) if up_p else nan,
            "down_precision": float(np.mean(down_p)) if down_p else nan,
            "up_alpha": float(np.mean(up_a)) if up_a else nan, "down_alpha": float(np.mean(down_a)) if down_a else nan,
            "bars": float(len(up_p))}


class HFLGBModel:
    """LightGBM on the sign of the cross-sectional alpha (Qlib's ``HFLGBModel``), early-stopped on ``valid``.

    ``loss`` is LightGBM's objective on the 0/1 classes: ``mse`` (Qlib's default) or ``binary``. Any LightGBM
    parameter by name or alias is accepted and checked as by the ``lightgbm`` model. Training needs ``train`` and
    ``valid`` segments, as Qlib's; rows with a NaN label are left out. Predictions use the best round.

    :param verbose_eval: log the metrics every this many rounds (Qlib prints every 20; 0: silent).
    """

    registry_name = "hf_lightgbm"

    def __init__(self, loss: str = "mse", num_boost_round: int = 1000, early_stopping_rounds: int = 50,
                 verbose_eval: int = 0, **kwargs: Any) -> None:
        check_choice("loss", loss, tuple(LOSSES))
        check_extra_names("the hf_lightgbm model", type(self), kwargs)
        self.params = booster_params("the hf_lightgbm model", loss, kwargs)
        check_lightgbm_values("the hf_lightgbm model", self.params, kwargs)
        check_number("num_boost_round", num_boost_round, low=1, integer=True)
        check_number("early_stopping_rounds", early_stopping_rounds, low=1, integer=True)
        check_number("verbose_eval", verbose_eval, low=0, integer=True)
        self.loss = loss
        self.num_boost_round = int(num_boost_round)
        self.early_stopping_rounds = int(early_stopping_rounds)
        self.verbose_eval = int(verbose_eval)
        self._kwargs = jsonable(kwargs)
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

    def _classes(self, dataset: Dataset, segment: str) -> Any:
        """A LightGBM dataset of ``segment``: features and the alpha classes of the rows with a label."""
        features, label = labelled(dataset, segment)
        keep = label.notna().to_numpy()
        if not keep.any():
            raise DataError(f"the {segment} segment has no row with a label to learn from")
        features, label = features[keep], label[keep]
        if segment == "train" or not self.feature_names_:
            self.feature_names_ = [str(c) for c in features.columns]
        x = feature_matrix(features, self.feature_names_, np.float32)
        return lgb.Dataset(x, label=alpha_classes(label), params=self.params, free_raw_data=True)

    def _callbacks(self, history: dict) -> list[Any]:
        callbacks = [lgb.record_evaluation(history)]
        if self.verbose_eval:
            callbacks.append(lgb.log_evaluation(period=self.verbose_eval))
        return callbacks

    def fit(self, dataset: Dataset) -> HFLGBModel:
        """Train on the alpha classes of ``train``, stop after ``early_stopping_rounds`` rounds without gain on
        ``valid``."""
        if not has_segment(dataset, "valid"):
            raise QcoreError("the hf_lightgbm model needs a valid segment (Qlib's HFLGBModel early-stops on it)")
        train = self._classes(dataset, "train")
        valid = self._classes(dataset, "valid")
        valid.set_reference(train)
        history: dict[str, dict[str, list[float]]] = {}
        callbacks = [*self._callbacks(history),
                     lgb.early_stopping(self.early_stopping_rounds, verbose=bool(self.verbose_eval))]
        self.model = lgb.train(self.params, train, num_boost_round=self.num_boost_round, valid_sets=[train, valid],
                               valid_names=["train", "valid"], callbacks=callbacks)
        self.evals_result_ = {name: [float(v) for v in next(iter(metrics.values()))]
                              for name, metrics in history.items() if metrics}
        return self

    def finetune(self, dataset: Dataset, num_boost_round: int = 10) -> HFLGBModel:
        """Grow ``num_boost_round`` more rounds on ``train`` from the fitted model (Qlib's ``finetune``; it starts from
        the best round here, where Qlib's starts from every round grown, up to ``early_stopping_rounds`` past it)."""
        if self.model is None:
            raise not_fitted("hf_lightgbm")
        check_number("num_boost_round", num_boost_round, low=1, integer=True)
        history: dict[str, dict[str, list[float]]] = {}
        start = lgb.Booster(model_str=self.model.model_to_string(num_iteration=self.best_iteration_))
        train = self._classes(dataset, "train")
        self.model = lgb.train(self.params, train, num_boost_round=int(num_boost_round), init_model=start,
                               valid_sets=[train], valid_names=["train"], callbacks=self._callbacks(history))
        return self

    @property
    def best_iteration_(self) -> int:
        """Boosting rounds the predictions use (the early-stopping optimum, else every round)."""
        if self.model is None:
            raise not_fitted("hf_lightgbm")
        return int(self.model.best_iteration or self.model.current_iteration())

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment`` (higher: more likely a positive alpha)."""
        if self.model is None:
            raise not_fitted("hf_lightgbm")
        features, _ = dataset.xy(segment)
        x = feature_matrix(features, self.feature_names_, np.float32)
        return score_series(self.model.predict(x, num_iteration=self.best_iteration_), features.index)

    def hf_signal_test(self, dataset: Dataset, threshold: float = 0.2, segment: str = "test") -> dict[str, float]:
        """Qlib's high-frequency signal test on ``segment`` (:func:`signal_metrics`); also logged."""
        _, label = dataset.xy(segment)
        if label is None:
            raise QcoreError(f"the {segment} segment has no label to test the signal against")
        result = signal_metrics(self.predict(dataset, segment), label, threshold)
        logger.info("hf_lightgbm signal test (%s): precision up %.4f down %.4f; alpha up %.6g down %.6g over %d bars",
                    segment, result["up_precision"], result["down_precision"], result["up_alpha"],
                    result["down_alpha"], result["bars"])  # fmt: skip
        return result

    def feature_importance(self, importance_type: str = "split") -> pd.Series:
        """LightGBM's feature importance (``split`` or ``gain``) by feature name, largest first."""
        if self.model is None:
            raise not_fitted("hf_lightgbm")
        values = self.model.feature_importance(importance_type=importance_type, iteration=self.best_iteration_)
        return pd.Series(values, index=self.feature_names_).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        """Write ``model.json``, LightGBM's text model and the feature names; no pickle."""
        if self.model is None:
            raise not_fitted("hf_lightgbm")
        write_manifest(folder, self.registry_name, self.init_params)
        write_booster(self.model, Path(folder) / MODEL_FILE)
        write_state(folder, {"features": self.feature_names_, "best_iteration": self.best_iteration_,
                             "evals_result": self.evals_result_})

    def restore(self, folder: Path) -> None:
        """Load the text model written by :meth:`save`."""
        state = read_state(folder)
        self.model = read_booster(Path(folder) / MODEL_FILE)
        self.model.best_iteration = int(state["best_iteration"])
        self.feature_names_ = list(state["features"])
        self.evals_result_ = dict(state.get("evals_result", {}))
