"""A statistical factor model: ``X = B·F' + U`` with latent factors from PCA or factor analysis.

``Σ = F·cov(B)·F' + diag(var(U))``, where ``F`` (instruments × factors) are the model's loadings, ``B`` the
factor values on each date (``cov`` with ``ddof=1``), ``U`` the residuals (``var`` with ``ddof=0``) — Qlib's
``StructuredCovEstimator``, which fits scikit-learn's ``PCA`` / ``FactorAnalysis``. Both are computed here with
numpy's exact SVD (no scikit-learn):

- ``pca``: ``F`` = the top right singular vectors of the centred data, signs fixed so that each vector's largest
  entry is positive (scikit-learn's convention), ``B = X·F``;
- ``fa``: the maximum-likelihood factor analysis of Barber's iterated SVD (``max_iter`` 1000, ``tol`` 0.01 on the
  log-likelihood, as scikit-learn's defaults), ``B`` the posterior means. scikit-learn's default
  ``svd_method="randomized"`` approximates the SVD; the two agree exactly when ``num_factors + 10`` is at least
  the number of instruments and closely otherwise (a documented difference: ours is the exact one).

NaN returns are filled with 0 (``nan_option="fill"``, the only option, as in Qlib).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qportfolio.risk.base import CovarianceEstimator, FactorRisk, _as_matrix

FACTOR_MODELS = ("pca", "fa")
_SMALL = 1e-12


class StructuredCovEstimator(CovarianceEstimator):
    """Statistical factor risk model (Qlib's ``StructuredCovEstimator``).

    :param factor_model: ``pca`` or ``fa``.
    :param num_factors: latent factors to keep.
    """

    supports_mask = False

    def __init__(self, factor_model: str = "pca", num_factors: int = 10, **kwargs: Any) -> None:
        nan_option = kwargs.pop("nan_option", "fill")
        if nan_option != "fill":
            raise ConfigError(f"only nan_option='fill' is supported here, got {nan_option!r}", path="nan_option")
        super().__init__(nan_option="fill", **kwargs)
        if factor_model not in FACTOR_MODELS:
            raise ConfigError(f"expected one of {', '.join(FACTOR_MODELS)}, got {factor_model!r}",
                              path="factor_model")  # fmt: skip
        if not isinstance(num_factors, int) or isinstance(num_factors, bool) or num_factors < 1:
            raise ConfigError(f"expected a positive integer, got {num_factors!r}", path="num_factors")
        self.factor_model = factor_model
        self.num_factors = num_factors

    def _estimate(self, x: np.ndarray | np.ma.MaskedArray) -> np.ndarray:
        f, cov_b, var_u = self._decompose(x)
        cov = f @ cov_b @ f.T
        cov[np.diag_indices_from(cov)] += var_u
        return cov

    def _decompose(self, x: np.ndarray | np.ma.MaskedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        n, p = x.shape
        k = self.num_factors
        if k > min(n, p):
            raise DataError(f"num_factors ({k}) exceeds min(observations, instruments) = {min(n, p)}")
        if self.factor_model == "pca":
            loadings, scores = _pca(x, k)
        else:
            loadings, scores = _factor_analysis(x, k)
        residual = x - scores @ loadings.T
        cov_b = np.atleast_2d(np.cov(scores.T))
        var_u = np.var(residual, axis=0)
        return loadings, cov_b, var_u

    def factor_risk(self, returns: pd.DataFrame, *, is_price: bool = False) -> FactorRisk:
        """The decomposition of a returns frame as a :class:`FactorRisk` (σ = √var_u), labelled ``f0..``."""
        values, columns = _as_matrix(returns)
        f, cov_b, var_u = self._decompose(self.prepare(values, is_price=is_price))
        names = [f"f{i}" for i in range(f.shape[1])]
        index = pd.Index([str(c) for c in columns], name="instrument") if columns is not None else None
        return FactorRisk(pd.DataFrame(f, index=index, columns=names), pd.DataFrame(cov_b, index=names, columns=names),
                          pd.Series(np.sqrt(var_u), index=index, name="specific_risk"))  # fmt: skip


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:k]
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    vt = vt * signs[:, None]
    return vt.T, centred @ vt.T


def _factor_analysis(x: np.ndarray, k: int, max_iter: int = 1000, tol: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    n, p = x.shape
    centred = x - x.mean(axis=0)
    var = centred.var(axis=0)
    psi = np.ones(p)
    root_n = np.sqrt(n)
    constant = p * np.log(2 * np.pi) + k
    old = -np.inf
    w = np.zeros((k, p))
    for _ in range(max_iter):
        scale = np.sqrt(psi) + _SMALL
        _, s, vt = np.linalg.svd(centred / (scale * root_n), full_matrices=False)
        s2 = s**2
        unexplained = float(np.sum(s2[k:]))
        s2, vt = s2[:k], vt[:k]
        w = np.sqrt(np.maximum(s2 - 1.0, 0.0))[:, None] * vt * scale
        loglike = -n / 2 * (constant + np.sum(np.log(s2)) + unexplained + np.sum(np.log(psi)))
        if loglike - old < tol:
            break
        old = loglike
        psi = np.maximum(var - np.sum(w**2, axis=0), _SMALL)
    w_psi = w / psi
    cov_z = np.linalg.inv(np.eye(k) + w_psi @ w.T)
    return w.T, centred @ w_psi.T @ cov_z
