"""Linear models: ordinary least squares, ridge, lasso and non-negative least squares (Qlib's ``LinearModel``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError
from qcore.modelio import write_manifest
from qcore.protocols import Dataset, Reweighter
from qcore.reweight import sample_weights
from qmodel_zoo._base import (
    check_choice,
    check_number,
    feature_matrix,
    has_segment,
    labelled,
    not_fitted,
    read_state,
    score_series,
    write_state,
)
from qmodel_zoo._solvers import lasso_gram, nnls_gram

ESTIMATORS = ("ols", "ridge", "lasso", "nnls")


class LinearModel:
    """Least-squares linear model on a dataset's features.

    Objectives (``w`` the coefficients, ``n`` the rows; the intercept is never penalised):

    - ``ols``: ``|y - Xw|^2``;
    - ``ridge``: ``|y - Xw|^2 + alpha*|w|^2``;
    - ``lasso``: ``|y - Xw|^2/(2n) + alpha*|w|_1`` (coordinate descent);
    - ``nnls``: ``|y - Xw|^2`` with ``w >= 0``. The intercept is free (Qlib appends a column of ones to the
      non-negative problem, which also forces the intercept to be >= 0).

    Rows with a NaN feature or label are left out of the fit; a NaN feature at prediction gives a NaN score.

    With a ``reweighter`` every squared residual is weighted (weighted least squares; the lasso's ``n`` becomes the
    weights' sum). The weights are scaled so that the rows with a positive weight average 1: a zero weight is the
    row's absence and uniform weights give the unweighted fit, whatever their scale.

    :param estimator: ``ols``, ``ridge``, ``lasso`` or ``nnls``.
    :param alpha: the ridge or lasso penalty; must be 0 for ``ols`` and ``nnls``.
    :param fit_intercept: fit a constant term (Qlib's default is ``False``; qcore's is ``True``).
    :param include_valid: also fit on the ``valid`` segment when the dataset has one.
    :param max_iter: sweeps of the lasso's coordinate descent.
    :param tol: the lasso's stopping tolerance (largest coefficient step relative to the largest coefficient).
    """

    registry_name = "linear"

    def __init__(
        self,
        estimator: str = "ols",
        alpha: float = 0.0,
        fit_intercept: bool = True,
        include_valid: bool = False,
        max_iter: int = 1000,
        tol: float = 1e-6,
    ) -> None:
        check_choice("estimator", estimator, ESTIMATORS)
        check_number("alpha", alpha, low=0.0)
        if alpha and estimator not in ("ridge", "lasso"):
            raise ConfigError(f"alpha applies to ridge and lasso only; the {estimator} estimator takes alpha=0",
                              path="alpha")  # fmt: skip
        check_number("max_iter", max_iter, low=1, integer=True)
        check_number("tol", tol, low=0.0, low_open=True)
        check_choice("fit_intercept", fit_intercept, (True, False))
        check_choice("include_valid", include_valid, (True, False))
        self.estimator = estimator
        self.alpha = float(alpha)
        self.fit_intercept = fit_intercept
        self.include_valid = include_valid
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.coef_: pd.Series | None = None
        self.intercept_: float = 0.0
        self.n_iter_: int | None = None

    @property
    def init_params(self) -> dict[str, object]:
        """The keyword arguments that rebuild this model (saved in ``model.json``)."""
        return {
            "estimator": self.estimator,
            "alpha": self.alpha,
            "fit_intercept": self.fit_intercept,
            "include_valid": self.include_valid,
            "max_iter": self.max_iter,
            "tol": self.tol,
        }

    def _training_rows(self, dataset: Dataset,
                       reweighter: Reweighter | None = None) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
        """Columns, features, label and weights of the complete rows with a positive weight (weights average 1)."""
        features, label = labelled(dataset, "train")
        weights = None if reweighter is None else sample_weights(reweighter, features.index, segment="train")
        if self.include_valid and has_segment(dataset, "valid"):
            valid_x, valid_y = labelled(dataset, "valid")
            if weights is not None:
                weights = np.concatenate([weights, sample_weights(reweighter, valid_x.index, segment="valid")])
            features = pd.concat([features, valid_x[features.columns]])
            label = pd.concat([label, valid_y])
        x = features.to_numpy(dtype=np.float64)
        y = label.to_numpy(dtype=np.float64)
        rows = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if weights is not None:
            rows &= weights > 0
        if rows.sum() <= x.shape[1]:
            raise QcoreError(f"only {int(rows.sum())} complete rows with a positive weight to fit {x.shape[1]} "
                             "features" if weights is not None else
                             f"only {int(rows.sum())} complete rows to fit {x.shape[1]} features")
        w = np.ones(int(rows.sum())) if weights is None else weights[rows] * (rows.sum() / weights[rows].sum())
        return features.columns, x[rows], y[rows], w

    def fit(self, dataset: Dataset, reweighter: Reweighter | None = None) -> LinearModel:
        """Fit on the ``train`` segment (and ``valid`` with ``include_valid``), each row weighted by ``reweighter``
        when one is given."""
        columns, x, y, w = self._training_rows(dataset, reweighter)
        total = float(w.sum())
        if not self.fit_intercept:
            x_mean, y_mean = np.zeros(x.shape[1]), 0.0
        elif reweighter is None:
            x_mean, y_mean = x.mean(axis=0), float(y.mean())
        else:
            x_mean, y_mean = (w @ x) / total, float(w @ y) / total
        x = x - x_mean
        y = y - y_mean
        if reweighter is not None:  # rows scaled by sqrt(w): |sqrt(w)(y - Xb)|^2 is the weighted objective
            root = np.sqrt(w)
            x = x * root[:, None]
            y = y * root
        gram = x.T @ x
        xty = x.T @ y
        if self.estimator == "lasso":
            coef, self.n_iter_ = lasso_gram(gram / total, xty / total, self.alpha, max_iter=self.max_iter,
                                            tol=self.tol)
        elif self.estimator == "nnls":
            coef = nnls_gram(gram, xty, x, y)
        else:
            penalty = self.alpha * np.eye(x.shape[1])
            coef = np.linalg.lstsq(gram + penalty, xty, rcond=None)[0]
        self.coef_ = pd.Series(coef, index=columns)
        self.intercept_ = y_mean - float(x_mean @ coef)
        return self

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment``."""
        if self.coef_ is None:
            raise not_fitted("linear")
        features, _ = dataset.xy(segment)
        x = feature_matrix(features, list(self.coef_.index))
        return score_series(x @ self.coef_.to_numpy() + self.intercept_, features.index)

    def save(self, folder: Path) -> None:
        """Write ``model.json`` and the coefficients as JSON (``state.json``)."""
        if self.coef_ is None:
            raise not_fitted("linear")
        write_manifest(folder, self.registry_name, self.init_params)
        write_state(folder, {
            "features": list(self.coef_.index),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        })

    def restore(self, folder: Path) -> None:
        """Load the coefficients written by :meth:`save`."""
        state = read_state(folder)
        self.coef_ = pd.Series(np.asarray(state["coef"], dtype=np.float64), index=pd.Index(state["features"]))
        self.intercept_ = float(state["intercept"])
