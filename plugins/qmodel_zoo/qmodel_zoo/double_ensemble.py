"""DoubleEnsemble: LightGBM sub-models with sample re-weighting and feature selection (Qlib's ``DEnsembleModel``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError
from qcore.modelio import write_manifest
from qcore.protocols import Dataset, Reweighter
from qcore.reweight import sample_weights as reweighter_weights
from qmodel_zoo import _de_steps as steps
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
from qmodel_zoo._lgb import booster_params, read_booster, training_arrays, weighted_arrays, write_booster
from qmodel_zoo._lightgbm import lgb
from qmodel_zoo.gbdt import check_extra_names, check_lightgbm_values

DEFAULT_SAMPLE_RATIOS = (0.8, 0.7, 0.6, 0.5, 0.4)


class DEnsembleModel:
    """An ensemble of ``num_models`` LightGBM sub-models, each trained on re-weighted samples and a feature subset.

    After each sub-model the samples the ensemble still fits badly, or that the last sub-model learned slowly, get
    more weight (``enable_sr``), and features whose shuffling hurts the ensemble least are dropped at random
    (``enable_fs``); see :mod:`qmodel_zoo._de_steps`. Predictions are the ``sub_weights``-weighted average.

    Qlib's arguments and defaults, except: ``decay`` defaults to 0.5 (Qlib's benchmark value; its default ``None``
    fails as soon as re-weighting runs), and ``seed`` seeds both the shuffles and draws (Qlib uses numpy's global
    generator) and LightGBM. ``valid`` is optional (it only serves ``early_stopping_rounds``). Any further keyword
    is a LightGBM parameter.

    :param epochs: boosting rounds of each sub-model.
    """

    registry_name = "double_ensemble"

    def __init__(
        self,
        base_model: str = "gbm",
        loss: str = "mse",
        num_models: int = 6,
        enable_sr: bool = True,
        enable_fs: bool = True,
        alpha1: float = 1.0,
        alpha2: float = 1.0,
        bins_sr: int = 10,
        bins_fs: int = 5,
        decay: float = 0.5,
        sample_ratios: Sequence[float] | None = None,
        sub_weights: Sequence[float] | None = None,
        epochs: int = 100,
        early_stopping_rounds: int | None = None,
        seed: int | None = 0,
        **kwargs: Any,
    ) -> None:
        check_choice("base_model", base_model, ("gbm",))
        check_choice("loss", loss, ("mse",))
        check_number("num_models", num_models, low=1, integer=True)
        check_number("bins_sr", bins_sr, low=1, integer=True)
        check_number("bins_fs", bins_fs, low=1, integer=True)
        check_number("decay", decay, low=0.0, low_open=True)
        check_number("epochs", epochs, low=1, integer=True)
        for name, value in (("alpha1", alpha1), ("alpha2", alpha2)):
            check_number(name, value)
        check_choice("enable_sr", enable_sr, (True, False))
        check_choice("enable_fs", enable_fs, (True, False))
        if early_stopping_rounds is not None:
            check_number("early_stopping_rounds", early_stopping_rounds, low=0, integer=True)
        for name, values in (("sample_ratios", sample_ratios), ("sub_weights", sub_weights)):
            if values is not None and (isinstance(values, str | bytes) or not isinstance(values, Sequence)):
                raise ConfigError(f"{name} must be a list of numbers, got {values!r}", path=name)
        sample_ratios = list(DEFAULT_SAMPLE_RATIOS if sample_ratios is None else sample_ratios)
        sub_weights = [1.0] * int(num_models) if sub_weights is None else list(sub_weights)
        if len(sample_ratios) != bins_fs:
            raise ConfigError(f"sample_ratios needs bins_fs={bins_fs} values, got {len(sample_ratios)}",
                              path="sample_ratios")  # fmt: skip
        if len(sub_weights) != num_models:
            raise ConfigError(f"sub_weights needs num_models={num_models} values, got {len(sub_weights)}",
                              path="sub_weights")  # fmt: skip
        for ratio in sample_ratios:
            check_number("each sample_ratios value", ratio, low=0.0, high=1.0, low_open=True, path="sample_ratios")
        for weight in sub_weights:
            check_number("each sub_weights value", weight, low=0.0, path="sub_weights")
        if sum(sub_weights) <= 0:
            raise ConfigError("sub_weights must not all be 0", path="sub_weights")
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        check_extra_names("the double_ensemble model", type(self), kwargs)
        self.params = booster_params("the double_ensemble model", loss, kwargs)
        check_lightgbm_values("the double_ensemble model", self.params, kwargs)
        if seed is not None:
            self.params.setdefault("seed", int(seed))
        self.base_model, self.loss = base_model, loss
        self.num_models, self.enable_sr, self.enable_fs = int(num_models), bool(enable_sr), bool(enable_fs)
        self.alpha1, self.alpha2, self.decay = float(alpha1), float(alpha2), float(decay)
        self.bins_sr, self.bins_fs, self.epochs = int(bins_sr), int(bins_fs), int(epochs)
        self.sample_ratios = [float(r) for r in sample_ratios]
        self.sub_weights = [float(w) for w in sub_weights]
        self.early_stopping_rounds = early_stopping_rounds
        self.seed = seed
        self._kwargs = jsonable(kwargs)
        self.ensemble: list[lgb.Booster] = []
        self.sub_features: list[list[str]] = []
        self.feature_names_: list[str] = []

    @property
    def init_params(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model (saved in ``model.json``)."""
        names = ("base_model", "loss", "num_models", "enable_sr", "enable_fs", "alpha1", "alpha2", "bins_sr",
                 "bins_fs", "decay", "sample_ratios", "sub_weights", "epochs", "early_stopping_rounds", "seed")
        return {**{name: getattr(self, name) for name in names}, **self._kwargs}

    def _train_submodel(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray, columns: np.ndarray,
                        valid: tuple[np.ndarray, np.ndarray] | None) -> lgb.Booster:
        train_set = lgb.Dataset(np.ascontiguousarray(x[:, columns]), label=y, weight=weights, free_raw_data=True)
        sets, names = [train_set], ["train"]
        if valid is not None:
            sets.append(lgb.Dataset(np.ascontiguousarray(valid[0][:, columns]), label=valid[1], reference=train_set))
            names.append("valid")
        callbacks = []
        if self.early_stopping_rounds and valid is not None:
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        return lgb.train(self.params, train_set, num_boost_round=self.epochs, valid_sets=sets, valid_names=names,
                         callbacks=callbacks)

    def fit(self, dataset: Dataset, reweighter: Reweighter | None = None) -> DEnsembleModel:
        """Train the sub-models one after the other on ``train`` (``valid`` early-stops each when configured).

        With a ``reweighter``, its weights of the ``train`` rows multiply the ensemble's own sample re-weighting
        (rows of weight 0 are left out; the others are scaled to a mean of 1, so uniform weights change nothing).
        """
        features, label = labelled(dataset, "train")
        self.feature_names_ = [str(c) for c in features.columns]
        if reweighter is None:
            x, y = training_arrays(features, label)
            base = np.ones(len(y))
        else:
            x, y, base = weighted_arrays(features, label, reweighter_weights(reweighter, features.index))
        valid = None
        if has_segment(dataset, "valid"):
            valid_x, valid_y = labelled(dataset, "valid")
            valid = training_arrays(valid_x[list(features.columns)], valid_y)
        rng = np.random.default_rng(self.seed)
        weights = base
        columns = np.arange(x.shape[1])
        column_sets: list[np.ndarray] = []
        self.ensemble = []
        sub_pred = np.zeros((len(y), self.num_models))
        for k in range(self.num_models):
            column_sets.append(columns)
            booster = self._train_submodel(x, y, weights, columns, valid)
            self.ensemble.append(booster)
            if k + 1 == self.num_models:
                break
            inputs = np.ascontiguousarray(x[:, columns])
            sub_pred[:, k] = booster.predict(inputs)
            used = np.asarray(self.sub_weights[: k + 1])
            loss_values = steps.squared_loss(y, sub_pred[:, : k + 1] @ used / used.sum())
            if self.enable_sr:
                l_start, l_end = steps.loss_curve_ends(booster, inputs, y)
                weights = base * steps.sample_weights(l_start, l_end, loss_values, k_th=k + 1, alpha1=self.alpha1,
                                                      alpha2=self.alpha2, bins=self.bins_sr, decay=self.decay)
            if self.enable_fs:
                scores = steps.permutation_scores(x, y, self.ensemble, column_sets, loss_values, rng)
                columns = steps.select_features(scores, bins=self.bins_fs, sample_ratios=self.sample_ratios, rng=rng)
        self.sub_features = [[self.feature_names_[c] for c in cols] for cols in column_sets]
        return self

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """The ``sub_weights``-weighted average of the sub-models' scores on ``segment``."""
        if not self.ensemble:
            raise not_fitted("double_ensemble")
        features, _ = dataset.xy(segment)
        x = feature_matrix(features, self.feature_names_, np.float32)
        position = {name: i for i, name in enumerate(self.feature_names_)}
        pred = np.zeros(len(x))
        for booster, names, weight in zip(self.ensemble, self.sub_features, self.sub_weights):
            cols = [position[name] for name in names]
            pred += booster.predict(np.ascontiguousarray(x[:, cols])) * weight
        return score_series(pred / sum(self.sub_weights), features.index)

    def feature_importance(self, importance_type: str = "split") -> pd.Series:
        """Sub-model feature importances summed with ``sub_weights``, by feature name, largest first."""
        if not self.ensemble:
            raise not_fitted("double_ensemble")
        parts = [pd.Series(b.feature_importance(importance_type=importance_type), index=names) * w
                 for b, names, w in zip(self.ensemble, self.sub_features, self.sub_weights)]
        return pd.concat(parts, axis=1).sum(axis=1).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        """Write ``model.json``, one LightGBM text model per sub-model (``sub_<k>.txt``) and the feature subsets."""
        if not self.ensemble:
            raise not_fitted("double_ensemble")
        write_manifest(folder, self.registry_name, self.init_params)
        for k, booster in enumerate(self.ensemble):
            write_booster(booster, Path(folder) / f"sub_{k}.txt")
        write_state(folder, {"features": self.feature_names_, "sub_features": self.sub_features})

    def restore(self, folder: Path) -> None:
        """Load the sub-models written by :meth:`save`."""
        state = read_state(folder)
        self.feature_names_ = list(state["features"])
        self.sub_features = [list(names) for names in state["sub_features"]]
        self.ensemble = [read_booster(Path(folder) / f"sub_{k}.txt") for k in range(len(self.sub_features))]
