"""Signal analysis over scores and labels indexed ``(datetime, instrument)``, as Qlib computes it.

Qlib's ``qlib.contrib.eva.alpha`` (``calc_ic``, ``calc_long_short_return``, ``pred_autocorr``) and the data behind
``qlib.contrib.report.analysis_model.model_performance_graph`` (quantile group returns, IC by date and month, score
auto-correlation of percentile ranks, top/bottom turnover), computed per date with grouped vectorised operations
instead of Qlib's per-date ``apply``. A date on which a figure is undefined gives NaN rather than disappearing, as in
Qlib (except the group returns, which drop the dates without any label, as Qlib does).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

DATE = "datetime"
INSTRUMENT = "instrument"


def pred_label(pred: pd.Series, label: pd.Series | None = None) -> pd.DataFrame:
    """``score`` (and ``label``) side by side on the union of their indexes, sorted by ``(datetime, instrument)``."""
    return _aligned({"score": pred} if label is None else {"score": pred, "label": label})


def _aligned(columns: dict[object, pd.Series]) -> pd.DataFrame:
    """``columns`` side by side on the union of their indexes, sorted by ``(datetime, instrument)``.

    Series on one index (scores and the labels evaluated for the same rows, the usual case) are put side by side
    without pandas' union of the indexes (70 ms for 21 columns of 78k rows: it compares the indexes row by row); a
    frame already in order is not sorted again."""
    series = list(columns.values())
    first = series[0].index if series else None
    if first is not None and all(s.index is first or s.index.equals(first) for s in series[1:]):
        frame = pd.DataFrame({name: s.to_numpy() for name, s in columns.items()}, index=first)
    else:
        frame = pd.DataFrame(columns)
    if list(frame.index.names) != [DATE, INSTRUMENT]:
        if set(frame.index.names) != {DATE, INSTRUMENT}:
            raise ValueError(f"scores need a ({DATE}, {INSTRUMENT}) index, got {list(frame.index.names)}")
        frame = frame.swaplevel()
    return frame if frame.index.is_monotonic_increasing else frame.sort_index()  # (sorting a sorted frame copies it)


def _codes(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DatetimeIndex]:
    codes, dates = pd.factorize(frame.index.get_level_values(DATE), sort=True)
    return codes, pd.DatetimeIndex(dates, name=DATE)


def _grouped_pearson(x: np.ndarray, y: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Pearson correlation per group over the rows where both are present; NaN below two rows or when constant."""
    ok = ~np.isnan(x) & ~np.isnan(y)
    c, x, y = codes[ok], x[ok], y[ok]
    count = np.bincount(c, minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.bincount(c, weights=x, minlength=n) / count)[c]
        dy = y - (np.bincount(c, weights=y, minlength=n) / count)[c]
        sxy = np.bincount(c, weights=dx * dy, minlength=n)
        sxx = np.bincount(c, weights=dx * dx, minlength=n)
        syy = np.bincount(c, weights=dy * dy, minlength=n)
        corr = sxy / np.sqrt(sxx * syy)
    corr[(count < 2) | (sxx <= 0) | (syy <= 0) | _all_equal(x, c, n) | _all_equal(y, c, n)] = np.nan
    return np.clip(corr, -1.0, 1.0)


def _all_equal(values: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Per group, whether its values are exactly one number. Such a group's correlation is NaN: the rounding of
    its mean leaves residues ~1e-19 that would otherwise correlate as noise (pandas' ``Series.corr``, so Qlib, gives
    NaN or a residue of ~1e-17 there, depending on the count; the ``sig_analysis`` record gives NaN)."""
    if len(codes) and bool(np.all(codes[1:] >= codes[:-1])):  # rows already grouped (a sorted frame): no sort
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        equal = np.ones(n, dtype=bool)
        equal[codes[starts]] = np.minimum.reduceat(values, starts) == np.maximum.reduceat(values, starts)
        return equal
    order = np.lexsort((values, codes))
    v, c = values[order], codes[order]
    first = np.r_[True, c[1:] != c[:-1]]
    last = np.r_[c[1:] != c[:-1], True]
    equal = np.ones(n, dtype=bool)
    equal[c[first]] = v[first] == v[last]
    return equal


def grouped_average_rank(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each column of ``values`` (rows × columns) ranked within the rows of its group ``codes``: 1-based, ties
    averaged, NaN left unranked — pandas' ``groupby(codes).rank(method="average")``, bit for bit (every rank is a
    whole or half number, exact in float64).

    Rows grouped together (``codes`` non-decreasing, as a frame sorted by date gives them) are laid out as one row
    of a ``groups × largest group`` table per column and sorted along it, all groups at once; other orders take one
    sort of the whole column by group and value."""
    values = np.asarray(values, dtype=np.float64)
    codes = np.asarray(codes)
    flat = values.ndim == 1
    table = values[:, None] if flat else values
    out = np.full(table.shape, np.nan)
    if len(codes) == 0:
        return out[:, 0] if flat else out
    if bool(np.all(codes[1:] >= codes[:-1])):
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        sizes = np.diff(np.r_[starts, len(codes)])
        width = int(sizes.max())
        slot = np.arange(width)
        present = slot[None, :] < sizes[:, None]  # groups × width: which cells hold a row
        rows = (starts[:, None] + slot[None, :])[present]
        for j in range(table.shape[1]):
            grid = np.full(present.shape, np.nan)
            grid[present] = table[rows, j]
            out[rows, j] = _ranks_along_rows(grid)[present]
        return out[:, 0] if flat else out
    for j in range(table.shape[1]):  # rows of a group scattered: one sort by group, then value
        order = np.lexsort((table[:, j], codes))
        column, c = table[order, j], codes[order]
        new_group = np.r_[True, c[1:] != c[:-1]]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(c)), 0))
        ranks = _run_average(column, new_group) - group_start
        out[order, j] = ranks
    return out[:, 0] if flat else out


def _ranks_along_rows(grid: np.ndarray) -> np.ndarray:
    """1-based average ranks of each row of ``grid`` among its own values (NaN unranked)."""
    order = np.argsort(grid, axis=1, kind="stable")  # NaN last
    ranked = np.take_along_axis(grid, order, axis=1)
    width = grid.shape[1]
    first = np.zeros_like(ranked, dtype=bool)
    first[:, 0] = True
    first[:, 1:] = ranked[:, 1:] != ranked[:, :-1]  # a run of equal values starts (each NaN its own run)
    slot = np.broadcast_to(np.arange(width), ranked.shape)
    run_start = np.maximum.accumulate(np.where(first, slot, 0), axis=1)
    last = np.zeros_like(first)
    last[:, -1] = True
    last[:, :-1] = first[:, 1:]
    run_end = np.flip(np.minimum.accumulate(np.flip(np.where(last, slot, width), axis=1), axis=1), axis=1)
    sorted_ranks = np.where(np.isnan(ranked), np.nan, (run_start + run_end) / 2.0 + 1.0)
    out = np.empty_like(sorted_ranks)
    np.put_along_axis(out, order, sorted_ranks, axis=1)
    return out


def _run_average(sorted_values: np.ndarray, new_group: np.ndarray) -> np.ndarray:
    """For values sorted within groups: each position's average 1-based position over its run of equal values
    (NaN: NaN), counted from the start of the whole array."""
    n = len(sorted_values)
    new_run = new_group | np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], n] - 1
    run = np.cumsum(new_run) - 1
    return np.where(np.isnan(sorted_values), np.nan, (starts[run] + ends[run]) / 2.0 + 1.0)


def calc_ic(pred: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per-date ``IC`` (Pearson) and ``RankIC`` (Spearman, average ties over the present pairs) — Qlib's
    ``calc_ic`` with ``dropna=False``: every date of either index, NaN where undefined."""
    frame = pred_label(pred, label)
    codes, dates = _codes(frame)
    x, y = frame["score"].to_numpy(float), frame["label"].to_numpy(float)
    ok = ~np.isnan(x) & ~np.isnan(y)
    ranks = grouped_average_rank(np.column_stack([np.where(ok, x, np.nan), np.where(ok, y, np.nan)]), codes)
    rx, ry = ranks[:, 0], ranks[:, 1]
    return pd.DataFrame({"IC": _grouped_pearson(x, y, codes, len(dates)),
                         "RankIC": _grouped_pearson(rx, ry, codes, len(dates))}, index=dates)  # fmt: skip


def _rank_in_date(frame: pd.DataFrame, column: str, ascending: bool) -> pd.Series:
    """Position (1-based, first-come among ties) of each row's ``column`` within its date; NaN rows come last, in
    order, as pandas' ``nlargest``/``nsmallest`` fill a short selection with them (which Qlib relies on)."""
    return frame.groupby(level=DATE)[column].rank(method="first", ascending=ascending, na_option="bottom")


def calc_long_short_return(pred: pd.Series, label: pd.Series, quantile: float = 0.2,
                           dropna: bool = False) -> pd.DataFrame:  # fmt: skip
    """Qlib's ``calc_long_short_return``: per date, ``long_short`` = (mean label of the top ``int(n * quantile)``
    scores − mean label of the bottom ones) / 2 and ``long_avg`` = the mean label (what Qlib returns under that
    name), ``n`` counting the date's rows (with NaN scores unless ``dropna``)."""
    frame = pred_label(pred, label)
    if dropna:
        frame = frame.dropna()
    by_date = frame.groupby(level=DATE)
    k = np.floor(by_date["score"].transform("size").to_numpy(float) * quantile)
    top = _rank_in_date(frame, "score", ascending=False).to_numpy() <= k
    bottom = _rank_in_date(frame, "score", ascending=True).to_numpy() <= k
    label_values = frame["label"]
    r_long = label_values.where(top).groupby(level=DATE).mean()
    r_short = label_values.where(bottom).groupby(level=DATE).mean()
    return pd.DataFrame({"long_short": (r_long - r_short) / 2, "long_avg": by_date["label"].mean()})


def group_returns(pred: pd.Series, label: pd.Series, n_groups: int = 5, reverse: bool = False) -> pd.DataFrame:
    """Daily mean label of the score's ``n_groups`` quantile groups (``Group1`` the highest scores), ``long-short``
    (Group1 − GroupN) and ``long-average`` (Group1 − the date's mean label), as Qlib's ``_group_return``.

    Rows with a NaN score are left out of the groups (not of the average); each group holds ``n // n_groups``
    names, the remainder is in none; ``reverse`` negates the score. Dates without any value are dropped.
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be at least 1, got {n_groups}")
    frame = pred_label(pred, label)
    if reverse:
        frame["score"] = -frame["score"]
    scored = frame.dropna(subset=["score"])
    position = _rank_in_date(scored, "score", ascending=False).to_numpy() - 1
    size = (scored.groupby(level=DATE)["score"].transform("size").to_numpy() // n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        group = np.where(size > 0, np.floor(position / size), np.nan)
    group[group >= n_groups] = np.nan
    keyed = pd.DataFrame({"label": scored["label"].to_numpy(), "group": group,
                          DATE: scored.index.get_level_values(DATE)})  # fmt: skip
    means = keyed.dropna(subset=["group"]).groupby([DATE, "group"])["label"].mean().unstack("group")
    dates = pd.DatetimeIndex(frame.index.get_level_values(DATE).unique(), name=DATE)
    table = pd.DataFrame({f"Group{i + 1}": means.get(float(i), pd.Series(dtype=float)).reindex(dates)
                          for i in range(n_groups)}, index=dates)  # fmt: skip
    table["long-short"] = table["Group1"] - table[f"Group{n_groups}"]
    table["long-average"] = table["Group1"] - frame.groupby(level=DATE)["label"].mean().reindex(dates)
    return table.dropna(how="all")


def _previous_score(frame: pd.DataFrame, lag: int) -> pd.Series:
    """Each row's score ``lag`` rows earlier in its instrument's own rows (Qlib's ``groupby(instrument).shift``)."""
    return frame.groupby(level=INSTRUMENT)["score"].shift(lag)


def rank_autocorr(pred: pd.Series, lag: int = 1) -> pd.Series:
    """Per-date Pearson correlation of the scores' percentile ranks with those of the same names ``lag`` scored
    rows earlier — the data of ``model_performance_graph``'s "Auto Correlation" (ranks over each column's present
    values, correlation over the pairs)."""
    frame = pred_label(pred)
    frame["last"] = _previous_score(frame, lag)
    ranks = frame.groupby(level=DATE)[["score", "last"]].rank(pct=True)
    codes, dates = _codes(frame)
    values = _grouped_pearson(ranks["score"].to_numpy(float), ranks["last"].to_numpy(float), codes, len(dates))
    return pd.Series(values, index=dates, name="value")


def pred_autocorr(pred: pd.Series, lag: int = 1) -> pd.Series:
    """Qlib's ``pred_autocorr``: per date, the Pearson correlation across names of the score with the score
    ``lag`` dates (of the prediction's own dates) earlier."""
    wide = pred_label(pred)["score"].unstack(INSTRUMENT)
    cur, prev = wide.to_numpy(float), wide.shift(lag).to_numpy(float)
    rows = np.repeat(np.arange(len(wide)), wide.shape[1])
    values = _grouped_pearson(cur.ravel(), prev.ravel(), rows, len(wide))
    return pd.Series(values, index=pd.DatetimeIndex(wide.index, name=DATE))


def top_bottom_turnover(pred: pd.Series, n_groups: int = 5, lag: int = 1) -> pd.DataFrame:
    """Share of the top (``Top``) and bottom (``Bottom``) ``n // n_groups`` names of a date that were not in the
    same group by the names' scores ``lag`` rows earlier — Qlib's ``_pred_turnover`` (NaN when a group is empty)."""
    frame = pred_label(pred)
    frame["last"] = _previous_score(frame, lag)
    k = (frame.groupby(level=DATE)["score"].transform("size").to_numpy() // n_groups).astype(float)
    out = {}
    for name, ascending in (("Top", False), ("Bottom", True)):
        now = _rank_in_date(frame, "score", ascending).to_numpy() <= k
        before = _rank_in_date(frame, "last", ascending).to_numpy() <= k
        kept = pd.Series(now & before, index=frame.index).groupby(level=DATE).sum()
        size = pd.Series(k, index=frame.index).groupby(level=DATE).first()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = 1 - kept / size.where(size > 0)
    return pd.DataFrame(out)


def monthly_ic(ic: pd.Series) -> pd.DataFrame:
    """Mean IC per month as a year × month table (``"01"``…``"12"``), every month of the covered years present."""
    index = pd.DatetimeIndex(ic.index)
    means = ic.groupby([index.strftime("%Y"), index.strftime("%m")]).mean()
    years = [f"{year:04d}" for year in range(index.min().year, index.max().year + 1)] if len(index) else []
    full = pd.MultiIndex.from_product([years, [f"{m:02d}" for m in range(1, 13)]], names=["year", "month"])
    return means.reindex(full).unstack("month")


def ic_histogram(ic: pd.Series, bins: int = 20) -> pd.DataFrame:
    """Counts of the IC values in ``bins`` equal-width bins (``left``, ``right``, ``count``)."""
    values = ic.dropna().to_numpy(float)
    if not len(values):
        return pd.DataFrame({"left": [], "right": [], "count": []})
    counts, edges = np.histogram(values, bins=bins)
    return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "count": counts})


def normal_qq(ic: pd.Series) -> pd.DataFrame:
    """Normal Q-Q data of the IC as Qlib draws it (``statsmodels.qqplot(fit=True, line="45")``): the sorted
    standardised values (``sample``, mean and ddof-0 standard deviation) against the standard normal quantiles
    (``theoretical``) at plotting positions ``i / (n + 1)``."""
    values = np.sort(ic.dropna().to_numpy(float))
    n = len(values)
    if n < 2 or values.std() == 0:
        return pd.DataFrame({"theoretical": [], "sample": []})
    normal = NormalDist()
    theoretical = np.array([normal.inv_cdf(i / (n + 1)) for i in range(1, n + 1)])
    return pd.DataFrame({"theoretical": theoretical, "sample": (values - values.mean()) / values.std()})


def horizon_label(horizon: int) -> str:
    """The label expression of a ``horizon``-day return bought at the next bar's close (``1``: Qlib's LABEL0)."""
    if horizon < 1:
        raise ValueError(f"a label horizon is at least 1 day, got {horizon}")
    return f"Ref($close, -{horizon + 1}) / Ref($close, -1) - 1"


def horizon_labels(engine: object, instruments: object, start: object, end: object,
                   horizons: range | list[int] = range(1, 21)) -> pd.DataFrame:  # fmt: skip
    """Labels of every horizon (columns ``1``…) from the store, by a :class:`qcore.expr.engine.ExpressionEngine`."""
    frame = engine.evaluate({str(h): horizon_label(h) for h in horizons}, instruments, start, end)
    return frame.astype("float64")


def calc_ic_columns(pred: pd.Series, labels: pd.DataFrame) -> dict[object, pd.DataFrame]:
    """:func:`calc_ic` of ``pred`` against each column of ``labels``, keyed by column: the scores and labels are
    aligned once (on the union of their indexes); each column's pairs are then ranked within dates on their own, so
    the memory at any time is one column's, not every column's at once."""
    k = labels.shape[1]
    frame = _aligned({"score": pred, **{j: labels.iloc[:, j] for j in range(k)}})
    codes, dates = _codes(frame)
    x = frame["score"].to_numpy(float)
    out = {}
    for j, column in enumerate(labels.columns):
        y = frame[j].to_numpy(float)
        ok = ~np.isnan(x) & ~np.isnan(y)
        ranks = grouped_average_rank(np.column_stack([np.where(ok, x, np.nan), np.where(ok, y, np.nan)]),
                                     codes)  # the pair's rows only; NaN rows stay unranked
        out[column] = pd.DataFrame({"IC": _grouped_pearson(x, y, codes, len(dates)),
                                    "RankIC": _grouped_pearson(ranks[:, 0], ranks[:, 1], codes, len(dates))},
                                   index=dates)  # fmt: skip
    return out


def ic_decay(pred: pd.Series, labels: pd.DataFrame) -> pd.DataFrame:
    """Mean ``IC`` and ``RankIC`` (and their IRs) of the scores against each horizon's label, one row a horizon."""
    rows = {}
    for column, ic in calc_ic_columns(pred, labels).items():
        summary = ic_summary(ic)
        rows[int(column)] = {"IC": summary["IC"], "RankIC": summary["Rank IC"], "ICIR": summary["ICIR"],
                             "RankICIR": summary["Rank ICIR"]}  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("horizon")


def coverage(pred: pd.Series, label: pd.Series | None = None) -> pd.DataFrame:
    """Names scored per date (``scored``), and with a label the names with both (``paired``)."""
    frame = pred_label(pred, label)
    out = {"scored": frame["score"].notna().groupby(level=DATE).sum()}
    if label is not None:
        out["paired"] = frame[["score", "label"]].notna().all(axis=1).groupby(level=DATE).sum()
    return pd.DataFrame(out)


def ic_summary(ic: pd.DataFrame) -> dict[str, float]:
    """Means and IRs of the IC series (``IC``, ``ICIR``, ``Rank IC``, ``Rank ICIR``)."""
    out = {}
    for column, name in (("IC", "IC"), ("RankIC", "Rank IC")):
        mean, std = ic[column].mean(), ic[column].std()
        out[name], out[f"{name}IR"] = float(mean), float(mean / std) if std else float("nan")
    return out
