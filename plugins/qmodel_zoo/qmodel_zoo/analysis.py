"""Signal analysis: information coefficients, long-short and quantile-group returns, autocorrelation, turnover.

Every function takes scores and labels as Series indexed ``(datetime, instrument)`` and works per date with
vectorised group sums (no per-date Python loop). Semantics follow Qlib's ``qlib.contrib.eva.alpha`` and
``qlib.contrib.report.analysis_model``: score and label are aligned on the union of their indexes, NaN pairs are
skipped inside a date, and a date without enough pairs gives NaN rather than disappearing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DATE = "datetime"
INSTRUMENT = "instrument"


def _present(values: np.ndarray) -> np.ndarray:
    """Mask of the non-NaN values (infinities count as present, as in pandas)."""
    return ~np.isnan(values)


def _frame(score: pd.Series, label: pd.Series | None = None) -> pd.DataFrame:
    """Score (and label) side by side on the union of their indexes, as ``pd.DataFrame({...})`` aligns them."""
    columns = {"score": score} if label is None else {"score": score, "label": label}
    frame = pd.DataFrame(columns)
    if DATE not in frame.index.names:
        raise ValueError(f"scores need a {DATE!r} index level, got {list(frame.index.names)}")
    return frame


def _codes(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """Per-row date codes and the sorted dates they index."""
    codes, dates = pd.factorize(frame.index.get_level_values(DATE), sort=True)
    return codes, pd.DatetimeIndex(dates, name=DATE)


def _grouped_pearson(x: np.ndarray, y: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` within each group over the rows where neither is NaN.

    NaN where a group has fewer than two such rows or either side is constant (as ``Series.corr``).
    """
    valid = _present(x) & _present(y)
    c = codes[valid]
    x, y = x[valid], y[valid]
    count = np.bincount(c, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.bincount(c, weights=x, minlength=n_groups) / count)[c]
        dy = y - (np.bincount(c, weights=y, minlength=n_groups) / count)[c]
        sxy = np.bincount(c, weights=dx * dy, minlength=n_groups)
        sxx = np.bincount(c, weights=dx * dx, minlength=n_groups)
        syy = np.bincount(c, weights=dy * dy, minlength=n_groups)
        corr = sxy / np.sqrt(sxx * syy)
    corr[(count < 2) | _constant(x, c, n_groups) | _constant(y, c, n_groups)] = np.nan
    return np.clip(corr, -1.0, 1.0)


def _constant(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Groups whose values are all equal (exactly: rounding in a mean must not turn them into a correlation)."""
    low = np.full(n_groups, np.inf)
    high = np.full(n_groups, -np.inf)
    np.minimum.at(low, codes, values)
    np.maximum.at(high, codes, values)
    return low == high


def _grouped_rank(values: np.ndarray, codes: np.ndarray, pct: bool = False) -> np.ndarray:
    """Average-tie ranks of ``values`` within each group (NaN stays NaN); with ``pct``, divided by the count."""
    series = pd.Series(values)
    return series.groupby(codes).rank(method="average", pct=pct).to_numpy(dtype=np.float64)


def calc_ic(score: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per-date ``IC`` (Pearson) and ``RankIC`` (Spearman) of ``score`` against ``label``.

    Qlib's ``calc_ic`` with ``dropna=False``: every date of either index appears; NaN where undefined.
    """
    frame = _frame(score, label)
    codes, dates = _codes(frame)
    x = frame["score"].to_numpy(dtype=np.float64)
    y = frame["label"].to_numpy(dtype=np.float64)
    both = _present(x) & _present(y)
    rx = _grouped_rank(np.where(both, x, np.nan), codes)
    ry = _grouped_rank(np.where(both, y, np.nan), codes)
    return pd.DataFrame(
        {"IC": _grouped_pearson(x, y, codes, len(dates)), "RankIC": _grouped_pearson(rx, ry, codes, len(dates))},
        index=dates,
    )


def ic_summary(ic: pd.DataFrame) -> dict[str, float]:
    """``IC``, ``ICIR`` (mean/std), ``Rank IC`` and ``Rank ICIR`` of :func:`calc_ic`'s frame (NaN dates skipped)."""
    out = {}
    for column, name in (("IC", "IC"), ("RankIC", "Rank IC")):
        series = ic[column]
        mean, std = float(series.mean()), float(series.std())
        out[name] = mean
        out[f"{name}IR"] = mean / std if std > 0 else float("nan")
    return out


def _sorted_positions(values: np.ndarray, codes: np.ndarray, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """All rows sorted by date, then value (largest or smallest first, ties in row order), NaN values last in row
    order, with each row's 0-based position within its date: the order of pandas' ``DataFrame.nlargest``."""
    rows = np.arange(len(values))
    missing = np.isnan(values)
    key = np.where(missing, 0.0, -values if largest else values)
    order = np.lexsort((rows, key, missing, codes))
    group = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1] if len(order) else np.zeros(0, dtype=np.int64)
    position = rows - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order, position


def _top_rows(values: np.ndarray, codes: np.ndarray, counts: np.ndarray, largest: bool) -> np.ndarray:
    """Mask of each date's ``counts[date]`` largest (or smallest) values, as ``DataFrame.nlargest(keep="first")``
    picks them: when a date has fewer non-NaN values than asked, rows with a NaN value fill in, in row order."""
    order, position = _sorted_positions(values, codes, largest)
    chosen = np.zeros(len(values), dtype=bool)
    chosen[order[position < counts[codes[order]]]] = True
    return chosen


def _group_mean(values: np.ndarray, rows: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Mean of the non-NaN ``values`` in ``rows`` per group; NaN for a group with none."""
    take = rows & _present(values)
    count = np.bincount(codes[take], minlength=n_groups)
    total = np.bincount(codes[take], weights=values[take], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def long_short_returns(score: pd.Series, label: pd.Series, quantile: float = 0.2,
                       dropna: bool = False) -> pd.DataFrame:
    """Per-date ``long_short`` and ``long_avg`` returns (Qlib's ``calc_long_short_return``).

    On each date ``N = int(rows * quantile)`` (rows with a NaN score count unless ``dropna``); ``long_short`` is
    half the difference between the mean label of the ``N`` highest and of the ``N`` lowest scores, ``long_avg``
    the mean label of all rows. As in Qlib (pandas' ``DataFrame.nlargest``), rows with a NaN score make up the
    ``N`` when a date has fewer scores, so a date without any score gives 0, not NaN. ``label`` must be raw
    returns.
    """
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    frame = _frame(score, label)
    if dropna:
        frame = frame.dropna()
    codes, dates = _codes(frame)
    x = frame["score"].to_numpy(dtype=np.float64)
    y = frame["label"].to_numpy(dtype=np.float64)
    counts = np.floor(np.bincount(codes, minlength=len(dates)) * quantile).astype(np.int64)
    every = np.ones(len(x), dtype=bool)
    long = _group_mean(y, _top_rows(x, codes, counts, largest=True), codes, len(dates))
    short = _group_mean(y, _top_rows(x, codes, counts, largest=False), codes, len(dates))
    return pd.DataFrame({"long_short": (long - short) / 2, "long_avg": _group_mean(y, every, codes, len(dates))},
                        index=dates)


def long_short_summary(returns: pd.DataFrame, ann_scaler: int = 252) -> dict[str, float]:
    """Annualised return (mean × ``ann_scaler``) and Sharpe of :func:`long_short_returns`, as Qlib's SigAnaRecord."""
    out = {}
    for column, name in (("long_short", "Long-Short"), ("long_avg", "Long-Avg")):
        series = returns[column]
        out[f"{name} Ann Return"] = float(series.mean()) * ann_scaler
        out[f"{name} Ann Sharpe"] = float(series.mean() / series.std()) * np.sqrt(ann_scaler)
    return out


def group_returns(score: pd.Series, label: pd.Series, n_groups: int = 5) -> pd.DataFrame:
    """Mean label of ``n_groups`` score-sorted groups per date, plus ``long-short`` and ``long-average``.

    Rows with a NaN score are left out of the groups; each date's ``k = rows // n_groups`` highest scores form
    ``Group1``, the next ``k`` ``Group2``... (the remainder is in no group). ``long-average`` is ``Group1`` minus
    the mean label of all the date's rows. Dates where every column is NaN are dropped (Qlib's ``_group_return``;
    ties sort stably here).
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    frame = _frame(score, label)
    codes, dates = _codes(frame)
    x = frame["score"].to_numpy(dtype=np.float64)
    y = frame["label"].to_numpy(dtype=np.float64)
    size = np.bincount(codes[_present(x)], minlength=len(dates)) // n_groups
    order, position = _sorted_positions(x, codes, largest=True)
    group = codes[order]
    out = {}
    for i in range(n_groups):
        rows = np.zeros(len(x), dtype=bool)
        chosen = (position >= size[group] * i) & (position < size[group] * (i + 1))
        rows[order[chosen]] = True
        out[f"Group{i + 1}"] = _group_mean(y, rows, codes, len(dates))
    result = pd.DataFrame(out, index=dates)
    result["long-short"] = result["Group1"] - result[f"Group{n_groups}"]
    result["long-average"] = result["Group1"] - _group_mean(y, np.ones(len(y), dtype=bool), codes, len(dates))
    return result.dropna(how="all")


def _lagged(score: pd.Series, lag: int) -> pd.DataFrame:
    """Scores sorted by date with each instrument's score ``lag`` rows earlier (``score_last``)."""
    if lag < 1:
        raise ValueError(f"lag must be >= 1, got {lag}")
    frame = _frame(score).sort_index(level=DATE, sort_remaining=True)
    frame["score_last"] = frame.groupby(level=INSTRUMENT)["score"].shift(lag)
    return frame


def signal_autocorrelation(score: pd.Series, lag: int = 1) -> pd.Series:
    """Per-date correlation of the score's percentile ranks with their values ``lag`` dates earlier.

    Qlib's ``_pred_autocorr``: each column is ranked within the date over its own non-NaN values, then the two
    rank columns are correlated over the instruments that have both.
    """
    frame = _lagged(score, lag)
    codes, dates = _codes(frame)
    now = _grouped_rank(frame["score"].to_numpy(dtype=np.float64), codes, pct=True)
    before = _grouped_rank(frame["score_last"].to_numpy(dtype=np.float64), codes, pct=True)
    return pd.Series(_grouped_pearson(now, before, codes, len(dates)), index=dates, name="autocorrelation")


def signal_turnover(score: pd.Series, n_groups: int = 5, lag: int = 1) -> pd.DataFrame:
    """Per-date turnover of the top and bottom ``1/n_groups`` of instruments by score (Qlib's ``_pred_turnover``).

    With ``k = rows // n_groups``, ``Top`` is the share of today's ``k`` highest scores that were not among the
    ``k`` highest ``lag`` dates earlier (``Bottom`` the same for the lowest); NaN where ``k`` is 0.
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    frame = _lagged(score, lag)
    codes, dates = _codes(frame)
    now = frame["score"].to_numpy(dtype=np.float64)
    before = frame["score_last"].to_numpy(dtype=np.float64)
    size = np.bincount(codes, minlength=len(dates)) // n_groups
    out = {}
    for name, largest in (("Top", True), ("Bottom", False)):
        both = _top_rows(now, codes, size, largest) & _top_rows(before, codes, size, largest)
        kept = np.bincount(codes[both], minlength=len(dates))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(size > 0, 1.0 - kept / size, np.nan)
    return pd.DataFrame(out, index=dates)
