"""POET (Fan, Liao & Mincheva 2013): principal components plus a thresholded residual correlation.

With ``K = num_factors`` principal components of the ``p × n`` data ``Y``, the low-rank part is ``Λ Λ'`` with
``Λ = Y F / n`` and ``F`` the top ``K`` eigenvectors of ``Y'Y`` scaled by ``√n``; the residual covariance ``S_u``
is turned into a correlation ``R`` whose off-diagonal entries are thresholded at
``λ = thresh · (1/√p + √(log p / n))`` (``thresh · √(log p / n)`` without factors):

- ``soft``: ``sign(r)·max(|r| − λ, 0)``;
- ``hard``: ``r·[|r| > λ]``;
- ``scad``: soft below ``2λ``, ``(2.7·r − 3.7·sign(r)·λ)/1.7`` up to ``3.7λ``, ``r`` beyond.

Eigenvectors come from the symmetric solver (``eigh``); only the span of the top ``K`` matters, so the result is
Qlib's (which calls the general ``eig``) wherever the ``K``-th and ``K+1``-th eigenvalues differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qcore.errors import ConfigError, DataError
from qportfolio.risk.base import CovarianceEstimator, filled

THRESH_METHODS = ("soft", "hard", "scad")


class POETCovEstimator(CovarianceEstimator):
    """Principal Orthogonal complEment Thresholding (Qlib's ``POETCovEstimator``).

    :param num_factors: principal components to keep (0: threshold the sample covariance itself).
    :param thresh: the constant ``C`` of the threshold ``λ``.
    :param thresh_method: ``soft``, ``hard`` or ``scad``.
    """

    supports_mask = False

    def __init__(self, num_factors: int = 0, thresh: float = 1.0, thresh_method: str = "soft",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if not isinstance(num_factors, int) or isinstance(num_factors, bool) or num_factors < 0:
            raise ConfigError(f"expected a non-negative integer, got {num_factors!r}", path="num_factors")
        if not isinstance(thresh, int | float) or isinstance(thresh, bool) or not thresh >= 0:
            raise ConfigError(f"expected a non-negative number, got {thresh!r}", path="thresh")
        if thresh_method not in THRESH_METHODS:
            raise ConfigError(f"expected one of {', '.join(THRESH_METHODS)}, got {thresh_method!r}",
                              path="thresh_method")  # fmt: skip
        self.num_factors = num_factors
        self.thresh = float(thresh)
        self.thresh_method = thresh_method

    def _estimate(self, x: np.ndarray | np.ma.MaskedArray) -> np.ndarray:
        y = filled(x).T
        p, n = y.shape
        k = self.num_factors
        if k >= n:
            raise DataError(f"num_factors ({k}) must be below the number of observations ({n})")
        if k > 0:
            values, vectors = np.linalg.eigh(y.T @ y)
            f = vectors[:, np.argsort(values)[::-1][:k]] * np.sqrt(n)
            loadings = y @ f / n
            residual = y - loadings @ f.T
            low_rank = loadings @ loadings.T
            rate = 1 / np.sqrt(p) + np.sqrt(np.log(p) / n)
        else:
            residual = y
            low_rank = 0.0
            rate = np.sqrt(np.log(p) / n)
        lam = rate * self.thresh
        su = residual @ residual.T / n
        sd = np.sqrt(np.diag(su))
        if (sd <= 0).any():
            raise DataError(f"{int((sd <= 0).sum())} instrument(s) have no residual variance; POET cannot scale them")
        r = su / np.outer(sd, sd)
        m = self._threshold(r, lam)
        m[np.diag_indices_from(m)] = 1.0
        return np.outer(sd, sd) * m + low_rank

    def _threshold(self, r: np.ndarray, lam: float) -> np.ndarray:
        a = np.abs(r)
        if self.thresh_method == "hard":
            return r * (a > lam)
        if self.thresh_method == "soft":
            return np.sign(r) * np.maximum(a - lam, 0.0)
        soft = (a < 2 * lam) * np.sign(r) * (a - lam) * (a > lam)
        mid = (a < 3.7 * lam) * (a >= 2 * lam) * (2.7 * r - 3.7 * np.sign(r) * lam) / 1.7
        return soft + mid + (a >= 3.7 * lam) * r
