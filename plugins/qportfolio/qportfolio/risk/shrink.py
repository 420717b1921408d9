"""Shrinkage covariance: ``Ŝ = (1 − α)·S + α·T`` for a target ``T`` and an intensity ``α``.

Targets: ``const_var`` (mean sample variance on the diagonal, no correlation), ``const_corr`` (the sample
variances with the mean sample correlation), ``single_factor`` (a market model whose market is the equal-weighted
mean return, sample variances on the diagonal), or a given matrix. Intensities: a number in ``[0, 1]``, ``lw``
(Ledoit–Wolf's estimate for the chosen target, clipped to ``[0, 1]``) or ``oas`` (constant-variance target only).

OAS follows Chen, Wiesel, Eldar & Hero (2010), eq. (23), clipped to ``[0, 1]``::

    ρ = ((1 − 2/p)·tr(S²) + tr²(S)) / ((n + 1 − 2/p)·(tr(S²) − tr²(S)/p))

Qlib 0.9.7 codes the denominator with ``+ tr²(S)/p`` and the numerator with ``tr(S²) + tr²(S)`` scaled by
``(1 − 2/p)``, unclipped; ``oas_variant="qlib"`` reproduces that for comparison (a deliberate, documented
difference: the default is the published formula).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qcore.errors import ConfigError
from qportfolio.risk.base import CovarianceEstimator, filled, sample_covariance

TARGETS = ("const_var", "const_corr", "single_factor")
INTENSITIES = ("lw", "oas")
OAS_VARIANTS = ("published", "qlib")


class ShrinkCovEstimator(CovarianceEstimator):
    """Shrinkage towards a structured target (Qlib's ``ShrinkCovEstimator``).

    :param alpha: intensity: a number in ``[0, 1]``, ``"lw"`` or ``"oas"``.
    :param target: ``const_var``, ``const_corr``, ``single_factor``, or an ``N × N`` array.
    :param oas_variant: ``published`` (Chen et al., clipped) or ``qlib`` (Qlib 0.9.7's formula).
    :param kwargs: see :class:`~qportfolio.risk.base.CovarianceEstimator`.
    """

    def __init__(self, alpha: str | float = 0.0, target: str | Any = "const_var", oas_variant: str = "published",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if isinstance(alpha, str):
            if alpha not in INTENSITIES:
                raise ConfigError(f"expected a number in [0, 1], 'lw' or 'oas', got {alpha!r}", path="alpha")
        elif isinstance(alpha, int | float | np.floating) and not isinstance(alpha, bool):
            if not 0.0 <= float(alpha) <= 1.0:
                raise ConfigError(f"alpha must be in [0, 1], got {alpha}", path="alpha")
            alpha = float(alpha)
        else:
            raise ConfigError(f"expected a number in [0, 1], 'lw' or 'oas', got {alpha!r}", path="alpha")
        if isinstance(target, str):
            if target not in TARGETS:
                raise ConfigError(f"expected one of {', '.join(TARGETS)} or a matrix, got {target!r}", path="target")
        else:
            target = np.asarray(target, dtype=np.float64)
            if target.ndim != 2 or target.shape[0] != target.shape[1]:
                raise ConfigError(f"a target matrix must be square, got shape {target.shape}", path="target")
        if alpha == "oas" and not (isinstance(target, str) and target == "const_var"):
            raise ConfigError("'oas' is defined for the const_var target only", path="alpha")
        if alpha == "lw" and not isinstance(target, str):
            raise ConfigError("'lw' needs a named target (const_var, const_corr or single_factor)", path="alpha")
        if oas_variant not in OAS_VARIANTS:
            raise ConfigError(f"expected one of {', '.join(OAS_VARIANTS)}, got {oas_variant!r}", path="oas_variant")
        self.alpha = alpha
        self.target = target
        self.oas_variant = oas_variant
        #: the intensity used by the last estimate.
        self.last_alpha: float | None = None

    def _estimate(self, x: np.ndarray | np.ma.MaskedArray) -> np.ndarray:
        s = sample_covariance(x)
        data = filled(x)
        target = self._target(data, s)
        alpha = self._intensity(data, s, target)
        self.last_alpha = alpha
        return (1.0 - alpha) * s + alpha * target if alpha > 0 else s

    # -- targets -----------------------------------------------------------------------------------------------

    def _target(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        if not isinstance(self.target, str):
            if self.target.shape != s.shape:
                raise ConfigError(f"the target is {self.target.shape} but the covariance is {s.shape}",
                                  path="target")  # fmt: skip
            return self.target.copy()
        if self.target == "const_var":
            return np.eye(len(s)) * np.mean(np.diag(s))
        var = np.diag(s)
        if self.target == "const_corr":
            scale = np.sqrt(np.outer(var, var))
            r_bar = _mean_correlation(s, scale)
            out = r_bar * scale
        else:
            cov_mkt, var_mkt = _market_moments(x)
            out = np.outer(cov_mkt, cov_mkt) / var_mkt
        out[np.diag_indices_from(out)] = var
        return out

    # -- intensities -------------------------------------------------------------------------------------------

    def _intensity(self, x: np.ndarray, s: np.ndarray, target: np.ndarray) -> float:
        if not isinstance(self.alpha, str):
            return self.alpha
        if self.alpha == "oas":
            return self._oas(x, s)
        if self.target == "const_var":
            return self._lw_const_var(x, s, target)
        if self.target == "const_corr":
            return self._lw_const_corr(x, s, target)
        return self._lw_single_factor(x, s, target)

    def _oas(self, x: np.ndarray, s: np.ndarray) -> float:
        n, p = x.shape
        tr_s2 = float(np.sum(s * s))  # tr(S²) for a symmetric S
        tr2_s = float(np.trace(s)) ** 2
        if self.oas_variant == "qlib":
            return (1 - 2 / p) * (tr_s2 + tr2_s) / ((n + 1 - 2 / p) * (tr_s2 + tr2_s / p))
        denominator = (n + 1 - 2 / p) * (tr_s2 - tr2_s / p)
        if denominator <= 0:  # S is already a multiple of the identity
            return 1.0
        return float(min(1.0, max(0.0, ((1 - 2 / p) * tr_s2 + tr2_s) / denominator)))

    @staticmethod
    def _clip(kappa: float, t: int) -> float:
        return float(max(0.0, min(1.0, kappa / t)))

    def _lw_const_var(self, x: np.ndarray, s: np.ndarray, target: np.ndarray) -> float:
        t = len(x)
        sq = x * x
        pi_hat = float(np.sum(sq.T @ sq / t - s * s))
        gamma = float(np.sum((s - target) ** 2))
        return self._clip(pi_hat / gamma, t) if gamma > 0 else 1.0

    def _lw_const_corr(self, x: np.ndarray, s: np.ndarray, target: np.ndarray) -> float:
        t = len(x)
        var = np.diag(s)
        vol = np.sqrt(var)
        r_bar = _mean_correlation(s, np.outer(vol, vol))
        sq = x * x
        pi_mat = sq.T @ sq / t - s * s
        pi_hat = float(np.sum(pi_mat))
        theta = (x**3).T @ x / t - var[:, None] * s
        theta[np.diag_indices_from(theta)] = 0.0
        rho = float(np.sum(np.diag(pi_mat))) + r_bar * float(np.sum(np.outer(1 / vol, vol) * theta))
        gamma = float(np.sum((s - target) ** 2))
        return self._clip((pi_hat - rho) / gamma, t) if gamma > 0 else 1.0

    def _lw_single_factor(self, x: np.ndarray, s: np.ndarray, target: np.ndarray) -> float:
        t = len(x)
        mkt = np.mean(x, axis=1)
        cov_mkt, var_mkt = _market_moments(x)
        sq = x * x
        pi_hat = float(np.sum(sq.T @ sq)) / t - float(np.sum(s * s))
        rho_diag = float(np.sum(sq * sq)) / t - float(np.sum(np.diag(s) ** 2))
        z = x * mkt[:, None]
        v1 = sq.T @ z / t - cov_mkt[:, None] * s
        r1 = (float(np.sum(v1 * cov_mkt[None, :])) - float(np.sum(np.diag(v1) * cov_mkt))) / var_mkt
        v3 = z.T @ z / t - var_mkt * s
        r3 = (float(np.sum(v3 * np.outer(cov_mkt, cov_mkt))) - float(np.sum(np.diag(v3) * cov_mkt**2))) / var_mkt**2
        rho = rho_diag + 2 * r1 - r3
        gamma = float(np.sum((s - target) ** 2))
        return self._clip((pi_hat - rho) / gamma, t) if gamma > 0 else 1.0


def _mean_correlation(s: np.ndarray, scale: np.ndarray) -> float:
    n = len(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((np.sum(s / scale) - n) / (n * (n - 1)))


def _market_moments(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Covariances with the equal-weighted market return, and its variance (both ``/ T``, as ``S``)."""
    mkt = np.mean(x, axis=1)
    return x.T @ mkt / len(x), float(mkt @ mkt) / len(x)
