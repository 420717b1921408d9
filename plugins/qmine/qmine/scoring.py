"""Scoring candidate factors on whole panels: daily cross-sectional IC and Rank IC, their mean and IR, turnover,
factor-to-factor correlation, and the multiple-testing threshold that flags lucky factors.

Every function takes ``(dates, instruments)`` float arrays with NaN where an instrument is not a member or has no
value; a day counts when at least :data:`MIN_NAMES` instruments have both a factor value and a label.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import attrs
import numpy as np
import pandas as pd

#: Fewest instruments with a value for a day's correlation to count.
MIN_NAMES = 5


def rank_rows(x: np.ndarray) -> np.ndarray:
    """Cross-sectional ranks (average ties, NaN kept) of each row."""
    return pd.DataFrame(x).rank(axis=1).to_numpy(dtype=np.float64)


def row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` over cells where both are finite;
    NaN for rows with fewer than :data:`MIN_NAMES` such cells or no variance."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    valid = np.isfinite(a) & np.isfinite(b)
    count = valid.sum(axis=1)
    a0 = np.where(valid, a, 0.0)
    b0 = np.where(valid, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = a0.sum(axis=1) / count
        mb = b0.sum(axis=1) / count
        da = np.where(valid, a0 - ma[:, None], 0.0)
        db = np.where(valid, b0 - mb[:, None], 0.0)
        cov = (da * db).sum(axis=1)
        var = np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
        out = cov / var
    out[(count < MIN_NAMES) | ~(var > 1e-12 * np.maximum(1.0, count))] = np.nan
    return out


def joint(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` with NaN wherever either is missing (so both rank over the same names)."""
    both = np.isfinite(x) & np.isfinite(y)
    return np.where(both, x, np.nan), np.where(both, y, np.nan)


@attrs.frozen
class Stats:
    """A factor's predictive power on one span.

    :ivar ic: mean daily Pearson IC. :ivar icir: its mean over its standard deviation.
    :ivar rank_ic: mean daily Spearman (Rank) IC. :ivar rank_icir: its IR.
    :ivar rank_ic_t: t statistic of the mean Rank IC (``rank_icir * sqrt(days)``).
    :ivar days: days with a correlation.
    """

    ic: float
    icir: float
    rank_ic: float
    rank_icir: float
    rank_ic_t: float
    days: int

    def metric(self, name: str) -> float:
        """``ic``, ``icir``, ``rank_ic`` or ``rank_icir``."""
        return float(getattr(self, name))

    def as_dict(self) -> dict[str, float]:
        """Plain numbers for a JSON file."""
        return {k: (None if not math.isfinite(v) else round(float(v), 6)) for k, v in attrs.asdict(self).items()}


def _mean_ir(daily: np.ndarray) -> tuple[float, float, int]:
    daily = daily[np.isfinite(daily)]
    if len(daily) < 2:
        return math.nan, math.nan, len(daily)
    sd = float(daily.std(ddof=1))
    mean = float(daily.mean())
    return mean, (mean / sd if sd > 0 else math.nan), len(daily)


def factor_stats(factor: np.ndarray, label: np.ndarray) -> Stats:
    """IC, Rank IC and their IRs of ``factor`` against ``label`` (both ``(dates, instruments)``)."""
    f, y = joint(factor, label)
    ic, icir, _ = _mean_ir(row_corr(f, y))
    rank_ic, rank_icir, days = _mean_ir(row_corr(rank_rows(f), rank_rows(y)))
    t = rank_icir * math.sqrt(days) if math.isfinite(rank_icir) else math.nan
    return Stats(ic, icir, rank_ic, rank_icir, t, days)


def turnover(factor: np.ndarray) -> float:
    """One minus the mean day-to-day rank autocorrelation of the factor (0: ranks never change)."""
    ranks = rank_rows(factor)
    auto = row_corr(ranks[1:], ranks[:-1])
    auto = auto[np.isfinite(auto)]
    return float(1.0 - auto.mean()) if len(auto) else math.nan


def factor_corr(a_ranks: np.ndarray, b_ranks: np.ndarray) -> float:
    """Mean daily cross-sectional correlation of two rank panels (a Spearman correlation of the factors)."""
    daily = row_corr(a_ranks, b_ranks)
    daily = daily[np.isfinite(daily)]
    return float(daily.mean()) if len(daily) else math.nan


def bonferroni_t(tries: int, alpha: float = 0.05) -> float:
    """The two-sided t (normal) threshold a factor's mean-IC t statistic must pass for a family-wise error
    ``alpha`` over ``tries`` candidates (Bonferroni): ``Phi^-1(1 - alpha / (2 * tries))``."""
    if tries < 1:
        raise ValueError("tries must be at least 1")
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * tries))
