"""Linear models solved in closed form with numpy: ordinary least squares and ridge."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qcore.errors import QcoreError
from qcore.protocols import Dataset

ESTIMATORS = ("ols", "ridge")


class LinearModel:
    """Least-squares linear model on a dataset's features.

    Rows with a NaN feature or label are left out of the fit; a NaN feature at prediction gives a NaN score.

    :param estimator: ``ols`` or ``ridge``.
    :param alpha: the ridge penalty (on coefficients, not on the intercept).
    :param fit_intercept: fit a constant term.
    """

    def __init__(self, estimator: str = "ols", alpha: float = 0.0, fit_intercept: bool = True) -> None:
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.estimator = estimator
        self.alpha = float(alpha) if estimator == "ridge" else 0.0
        self.fit_intercept = fit_intercept
        self.coef_: pd.Series | None = None
        self.intercept_: float = 0.0

    def fit(self, dataset: Dataset) -> LinearModel:
        """Fit on the ``train`` segment."""
        features, label = dataset.xy("train")
        if label is None:
            raise QcoreError("the train segment has no label to fit on")
        x = features.to_numpy(dtype=np.float64)
        y = label.reindex(features.index).to_numpy(dtype=np.float64)
        rows = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if rows.sum() <= x.shape[1]:
            raise QcoreError(f"only {int(rows.sum())} complete rows to fit {x.shape[1]} features")
        x, y = x[rows], y[rows]
        if self.fit_intercept:
            x_mean, y_mean = x.mean(axis=0), y.mean()
            x, y = x - x_mean, y - y_mean
        gram = x.T @ x + self.alpha * np.eye(x.shape[1])
        coef = np.linalg.lstsq(gram, x.T @ y, rcond=None)[0]
        self.coef_ = pd.Series(coef, index=features.columns)
        self.intercept_ = float(y_mean - x_mean @ coef) if self.fit_intercept else 0.0
        return self

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment``."""
        if self.coef_ is None:
            raise QcoreError("the linear model is not fitted; call fit() first")
        features, _ = dataset.xy(segment)
        scores = features[self.coef_.index].to_numpy(dtype=np.float64) @ self.coef_.to_numpy() + self.intercept_
        return pd.Series(scores, index=features.index, name="score")
