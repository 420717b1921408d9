"""Scoring candidate factors on whole panels: daily cross-sectional IC and Rank IC, their mean and IR, turnover,
decay, factor-to-factor correlation, and the honesty guards: the multiple-testing threshold that flags lucky
factors, with the daily ICs' autocorrelation taken into account (effective sample size), and the deflated Sharpe
ratio of the best factor.

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
    :ivar rank_ic_t: t statistic of the mean Rank IC (``rank_icir * sqrt(days)``), as if the days were independent.
    :ivar days: days with a correlation.
    :ivar n_eff: the daily Rank ICs' effective sample size (:func:`effective_size`): fewer than ``days`` when they
        are autocorrelated (a slow factor against an overlapping label).
    :ivar rank_ic_t_eff: the t statistic on ``n_eff`` (``rank_icir * sqrt(n_eff)``), what the threshold tests.
    :ivar skew: skewness of the daily Rank ICs. :ivar kurtosis: their kurtosis (3 for a normal series).
    :ivar ls_return: mean daily return of the long–short book after costs (:func:`long_short`).
    :ivar ls_sharpe: its annualised Sharpe ratio (252 days).
    :ivar ls_direction: +1 when the book is long the factor's top quantile, -1 when long its bottom one.
    """

    ic: float
    icir: float
    rank_ic: float
    rank_icir: float
    rank_ic_t: float
    days: int
    n_eff: float = math.nan
    rank_ic_t_eff: float = math.nan
    skew: float = math.nan
    kurtosis: float = math.nan
    ls_return: float = math.nan
    ls_sharpe: float = math.nan
    ls_direction: int = 0

    def metric(self, name: str) -> float:
        """``ic``, ``icir``, ``rank_ic``, ``rank_icir``, ``ls_return`` or ``ls_sharpe``."""
        return float(getattr(self, name))

    @property
    def direction(self) -> int:
        """The factor's sign: the long–short book's when it was scored, else the Rank IC's."""
        if self.ls_direction:
            return self.ls_direction
        return 1 if self.rank_ic > 0 else -1

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


def factor_stats(factor: np.ndarray, label: np.ndarray, *, long_short_book: tuple[float, float] | None = None,
                 direction: int | None = None) -> Stats:
    """IC, Rank IC and their IRs of ``factor`` against ``label`` (both ``(dates, instruments)``); with
    ``long_short_book=(quantile, cost)`` also the long–short book's return after costs (:func:`long_short`), in
    ``direction`` when given (the train span's, for a valid or test span)."""
    f, y = joint(factor, label)
    ic, icir, _ = _mean_ir(row_corr(f, y))
    daily = row_corr(rank_rows(f), rank_rows(y))
    rank_ic, rank_icir, days = _mean_ir(daily)
    book: dict[str, float] = {}
    if long_short_book is not None:
        ls_mean, ls_sharpe, ls_direction = long_short(f, y, *long_short_book, direction=direction)
        book = {"ls_return": ls_mean, "ls_sharpe": ls_sharpe, "ls_direction": ls_direction}
    if not math.isfinite(rank_icir):
        return Stats(ic, icir, rank_ic, rank_icir, math.nan, days, **book)
    daily = daily[np.isfinite(daily)]
    n_eff = effective_size(daily)
    skew, kurt = moments(daily)
    return Stats(ic, icir, rank_ic, rank_icir, rank_icir * math.sqrt(days), days, n_eff,
                 rank_icir * math.sqrt(n_eff), skew, kurt, **book)  # fmt: skip


def long_short(factor: np.ndarray, label: np.ndarray, quantile: float = 0.2, cost: float = 0.001, *,
               direction: int | None = None) -> tuple[float, float, int]:
    """The daily long–short book of a factor: equal weights long the top ``quantile`` of the names with a value
    and short the bottom one (at least one name each; days with fewer than :data:`MIN_NAMES` names are skipped),
    rebalanced every day. Gross return = mean label of the long leg − mean label of the short leg. The book goes
    long the factor's top when that earns more on average, else its bottom (``direction`` -1); a given
    ``direction`` fixes it (a valid span scored in the train span's direction). Costs: ``cost`` per
    unit traded, and a name replaced in a leg is sold and bought (``2 × cost ×`` the share of the leg replaced,
    both legs; the first day builds the book: one trade per name).

    Returns ``(mean daily return after costs, annualised Sharpe ratio after costs, direction)``; NaN, NaN, 0
    when fewer than two days count.
    """
    gross, long_sets, short_sets = [], [], []
    for f_row, y_row in zip(factor, label):
        ok = np.isfinite(f_row) & np.isfinite(y_row)
        n = int(ok.sum())
        if n < MIN_NAMES:
            continue
        names = np.flatnonzero(ok)
        order = names[np.argsort(f_row[ok], kind="stable")]
        k = max(1, math.floor(quantile * n))
        top, bottom = order[-k:], order[:k]
        gross.append(float(y_row[top].mean() - y_row[bottom].mean()))
        long_sets.append(frozenset(top.tolist()))
        short_sets.append(frozenset(bottom.tolist()))
    if len(gross) < 2:
        return math.nan, math.nan, 0
    values = np.asarray(gross)
    if direction is None:
        direction = 1 if values.mean() >= 0 else -1
    if direction < 0:
        values, long_sets, short_sets = -values, short_sets, long_sets
    traded = np.empty(len(values))
    traded[0] = 2.0  # build both legs: one buy per name
    for i in range(1, len(values)):
        traded[i] = sum(2.0 * len(now - before) / len(now)
                        for now, before in ((long_sets[i], long_sets[i - 1]), (short_sets[i], short_sets[i - 1])))
    net = values - cost * traded
    sd = float(net.std(ddof=1))
    return float(net.mean()), (float(net.mean()) / sd * math.sqrt(252.0) if sd > 0 else math.nan), direction


def effective_size(series: np.ndarray, max_lag: int = 20) -> float:
    """The effective number of independent observations of an autocorrelated ``series`` (its mean's variance is
    ``var / n_eff``): ``n / (1 + 2 * sum(rho_k))`` over the lags ``k = 1..max_lag`` up to the first autocorrelation
    that is not positive (Geyer's initial positive sequence, which never counts noise as dependence), clipped to
    ``[1, n]``."""
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 3:
        return float(n)
    d = x - x.mean()
    var = float(d @ d)
    if var <= 0:
        return float(n)
    total = 0.0
    for k in range(1, min(max_lag, n // 4) + 1):
        rho = float(d[k:] @ d[:-k]) / var
        if rho <= 0:
            break
        total += rho
    return float(min(n, max(1.0, n / (1.0 + 2.0 * total))))


def moments(series: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of ``series`` (population moments); NaN for fewer than 3 values."""
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 3 or not x.std() > 0:
        return math.nan, math.nan
    z = (x - x.mean()) / x.std()
    return float((z**3).mean()), float((z**4).mean())


def expected_max_sharpe(trials: int, variance: float) -> float:
    """The Sharpe ratio the best of ``trials`` skill-less candidates is expected to reach when their estimated
    Sharpe ratios have ``variance`` across candidates (Bailey and López de Prado's false-strategy theorem):
    ``sqrt(variance) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))``, g the Euler–Mascheroni constant;
    0 for one trial."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    if trials == 1 or not variance > 0:
        return 0.0
    gamma = 0.5772156649015329
    inv = NormalDist().inv_cdf
    return math.sqrt(variance) * ((1 - gamma) * inv(1 - 1 / trials) + gamma * inv(1 - 1 / (trials * math.e)))


def deflated_sharpe(sharpe: float, n: float, skew: float, kurtosis: float, trials: int,
                    variance: float) -> tuple[float, float]:  # fmt: skip
    """``(SR0, probability)``: the deflated Sharpe ratio test of a Sharpe ratio ``sharpe`` (per observation)
    estimated from ``n`` observations with the given skewness and kurtosis, the best of ``trials`` whose Sharpe
    ratios vary by ``variance``: the probability that its true Sharpe ratio exceeds :func:`expected_max_sharpe`,
    ``Phi((SR - SR0) * sqrt(n - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2))``. Missing moments are taken
    as a normal series'."""
    sr0 = expected_max_sharpe(trials, variance)
    skew = skew if math.isfinite(skew) else 0.0
    kurtosis = kurtosis if math.isfinite(kurtosis) else 3.0
    if not (math.isfinite(sharpe) and n > 1):
        return sr0, math.nan
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if denom <= 0:
        return sr0, math.nan
    return sr0, NormalDist().cdf((sharpe - sr0) * math.sqrt(n - 1.0) / math.sqrt(denom))


def decay(factor: np.ndarray, label: np.ndarray, horizons: int = 20) -> list[float]:
    """Mean daily Rank IC of the factor on day ``t`` against the label of day ``t + h - 1`` for ``h = 1..horizons``
    (``h = 1`` is the label itself): how fast the factor's power fades. NaN where too few days remain."""
    out: list[float] = []
    for h in range(1, horizons + 1):
        lag = h - 1
        if lag >= len(factor) - 1:
            out.append(math.nan)
            continue
        f = factor[: len(factor) - lag] if lag else factor
        f, y = joint(f, label[lag:])
        daily = row_corr(rank_rows(f), rank_rows(y))
        daily = daily[np.isfinite(daily)]
        out.append(float(daily.mean()) if len(daily) else math.nan)
    return out


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
