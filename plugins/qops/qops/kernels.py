"""Public whole-panel kernels of qops: validation and dispatch to the compiled Cython kernels.

Every function takes a panel ``x`` of shape ``(T, N)`` (time x instruments; a 1-D array is taken as one
column and the result is 1-D again), converts it to C-contiguous float64 and returns a new float64 array
of the same shape. Time-series kernels work column by column along axis 0; cross-sectional kernels (``cs_*``)
work row by row along axis 1. Columns (rows for ``cs_*``) are computed in parallel with the GIL released;
``num_threads=0`` uses the OpenMP default.

Semantics are Qlib's, i.e. pandas' with ``min_periods=1``:

- ``window`` counts rows, missing rows included; ``window == 0`` is an expanding window from row 0 (a window
  longer than the panel gives the same result).
- NaN marks a missing (suspended) row and is skipped by every reducer; ``+-inf`` is treated as missing too,
  because pandas' rolling/expanding/ewm replace infinities with NaN before reducing. Only
  :func:`rolling_count` counts infinities, as pandas does.
- A window without any value gives NaN (0.0 for :func:`rolling_count`).

Every kernel is O(1) amortised per row (max/min/idxmax/idxmin included: van Herk / Gil-Werman blocks),
except median/quantile (sorted window buffer, O(window) moves per row), rank (O(window) branch-free
comparisons per row for windows up to 256 rows, the sorted buffer beyond), mad/skew/kurt (exact two-pass per
window, O(window); windows that start at row 0 -- expanding ones, and the first ``window - 1`` rows -- are
O(1) online for skew/kurt) and :func:`expanding_ema_qlib` (O(t) per row: its decay factor changes with every
row). The running sums (sum/mean/var/std, slope/rsquare/resi/wma, corr/cov) are kept over values shifted by an
anchor (the window's value nearest to its mean) and rebuilt from the window every 16 windows, whenever the
window mean drifts far from the anchor and whenever they lose significance (a large value left the window), so
a 1e6 offset or a spike costs no precision: they agree with an exact computation to ~1e-12 relative. A window
whose values are all equal gives exact results (variance 0, mean = the value, slope 0).

Rows before the window (query-start invariance). A window's result does not depend on the rows above it,
which change with the query start (the engine loads the lookback before it), where it matters:

- data on a common grid -- float32 fields and float32 arithmetic on them, integers, prices in ticks -- has
  exact shifted sums (the anchor is one of its values), so every running-sum result is the same bits whatever
  the history, and an exact value comes out exact: a covariance, sum or slope that is 0 in exact arithmetic is
  0.0, an r-squared of collinear points 1.0, a mean the exact sum divided once (pandas' value);
- on other data a result whose distance from 0 (or, for r-squared and correlation, from 1) is within its
  rounding bound is recomputed from the window alone, so ``Sign``, ``Gt(x, 0)``, ``Ge(1, Rsquare)`` and the
  like give the same answer whatever the query start, and exact zeros are the same bits;
- elsewhere such results can differ in the last bits (~1e-15 relative) from one query start to another, which
  in rare cells moves the float32 the engine emits by one float32 ulp.

Expanding windows, ``EMA`` and ``ewm_mean`` depend on all history by definition: the engine always computes
them from the first row of the store. R-squared never exceeds 1 and correlations stay within [-1, 1].
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from qops import _cross, _rolling

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

__all__ = [
    "cs_demean",
    "cs_mean",
    "cs_quantile",
    "cs_rank",
    "cs_zscore",
    "ewm_mean",
    "expanding_count",
    "expanding_ema_qlib",
    "expanding_idxmax",
    "expanding_idxmin",
    "expanding_kurt",
    "expanding_mad",
    "expanding_max",
    "expanding_mean",
    "expanding_median",
    "expanding_min",
    "expanding_quantile",
    "expanding_rank",
    "expanding_resi",
    "expanding_rsquare",
    "expanding_skew",
    "expanding_slope",
    "expanding_std",
    "expanding_sum",
    "expanding_var",
    "expanding_wma",
    "rolling_corr",
    "rolling_count",
    "rolling_cov",
    "rolling_idxmax",
    "rolling_idxmin",
    "rolling_kurt",
    "rolling_mad",
    "rolling_max",
    "rolling_mean",
    "rolling_median",
    "rolling_min",
    "rolling_quantile",
    "rolling_quantiles",
    "rolling_rank",
    "rolling_ranks",
    "rolling_resi",
    "rolling_rsquare",
    "rolling_skew",
    "rolling_slope",
    "rolling_std",
    "rolling_sum",
    "rolling_var",
    "rolling_wma",
]


# ----------------------------------------------------------------------------------------------------------
# validation


def _panel(x: ArrayLike, name: str = "x") -> tuple[np.ndarray, bool]:
    """Return ``x`` as a C-contiguous float64 2-D array and whether it was 1-D."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers or booleans, got dtype {arr.dtype}")
    if arr.ndim == 1:
        return np.ascontiguousarray(arr, dtype=np.float64).reshape(-1, 1), True
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a (T, N) panel (or a 1-D series), got {arr.ndim} dimensions")
    return np.ascontiguousarray(arr, dtype=np.float64), False


def _shape_back(out: np.ndarray, was_1d: bool) -> FloatArray:
    return out.reshape(-1) if was_1d else out


def _window(window: Any) -> int:
    """A window is an integer >= 0 (0: expanding)."""
    if isinstance(window, (bool, np.bool_)) or not isinstance(window, numbers.Integral):
        if isinstance(window, numbers.Real) and float(window).is_integer():
            window = int(window)
        else:
            raise TypeError(f"window must be an integer >= 0 (0: expanding), got {window!r}")
    window = int(window)
    if window < 0:
        raise ValueError(f"window must be >= 0 (0: expanding), got {window}")
    return window


def _threads(num_threads: int | None) -> int:
    if num_threads is None:
        return 0
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral) or num_threads < 0:
        raise ValueError(f"num_threads must be an integer >= 0 (0: OpenMP default), got {num_threads!r}")
    return int(num_threads)


def _quantile_q(q: Any) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q}")
    return q


def _mask(mask: ArrayLike | None, shape: tuple[int, int], was_1d: bool) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype.kind not in "biu":
        raise TypeError(f"mask must be boolean, got dtype {m.dtype}")
    if was_1d and m.ndim == 1:
        m = m.reshape(-1, 1)
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} does not match x shape {shape}")
    return np.ascontiguousarray(m != 0).view(np.uint8)


def _run1(fn: Any, x: ArrayLike, window: Any, num_threads: int | None, *extra: float) -> FloatArray:
    arr, was_1d = _panel(x)
    out = fn(arr, _window(window), *extra, _threads(num_threads))
    return _shape_back(out, was_1d)


def _starts(starts: ArrayLike | None, columns: int) -> np.ndarray | None:
    """Per-column first rows as int64 (None: every column starts at row 0)."""
    if starts is None:
        return None
    rows = np.asarray(starts)
    if rows.dtype.kind not in "iu" or rows.ndim != 1 or len(rows) != columns:
        raise ValueError(f"starts must be {columns} integer row numbers, one per column, got {rows.shape} {rows.dtype}")
    return rows.astype(np.int64, copy=False)


def _run_from(fn: Any, x: ArrayLike, window: Any, num_threads: int | None, starts: ArrayLike | None) -> FloatArray:
    arr, was_1d = _panel(x)
    out = fn(arr, _window(window), _threads(num_threads), _starts(starts, arr.shape[1]))
    return _shape_back(out, was_1d)


# ----------------------------------------------------------------------------------------------------------
# rolling reducers


def rolling_sum(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling sum of the non-missing values (pandas ``rolling(window, min_periods=1).sum()``).

    An all-missing window gives NaN. A window whose values are all equal gives ``value * count`` exactly.
    """
    return _run1(_rolling.rolling_sum, x, window, num_threads)


def rolling_mean(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling mean of the non-missing values (pandas ``rolling(window, min_periods=1).mean()``).

    An all-missing window gives NaN; a constant window gives the value exactly; the sum of grid data (see the
    module docstring) is exact and divided once, as pandas does.
    """
    return _run1(_rolling.rolling_mean, x, window, num_threads)


def rolling_var(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling sample variance (ddof=1) of the non-missing values; NaN with fewer than 2 values.

    Computed from shifted running sums (see the module docstring), so a large common offset does not cost
    precision; a constant window gives exactly 0.
    """
    return _run1(_rolling.rolling_var, x, window, num_threads)


def rolling_std(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling sample standard deviation (ddof=1); NaN with fewer than 2 values, 0 for a constant window."""
    return _run1(_rolling.rolling_std, x, window, num_threads)


def rolling_skew(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling skewness as pandas ``rolling(window, min_periods=1).skew()`` (adjusted Fisher-Pearson).

    NaN with fewer than 3 values and for a window whose values are all equal (pandas 3.x: 0/0). Each window
    is computed exactly with two passes (O(window) per row); windows that start at row 0 (``window=0``, and the
    first ``window - 1`` rows) use pandas' online central-moment update, whatever the panel's length.
    """
    return _run1(_rolling.rolling_skew, x, window, num_threads)


def rolling_kurt(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling excess kurtosis as pandas ``rolling(window, min_periods=1).kurt()`` (bias-corrected).

    NaN with fewer than 4 values and for a window whose values are all equal.
    """
    return _run1(_rolling.rolling_kurt, x, window, num_threads)


def rolling_max(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling maximum of the non-missing values (monotonic deque, O(1) amortised)."""
    return _run1(_rolling.rolling_max, x, window, num_threads)


def rolling_min(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling minimum of the non-missing values (monotonic deque, O(1) amortised)."""
    return _run1(_rolling.rolling_min, x, window, num_threads)


def rolling_median(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling median of the non-missing values (mean of the two middle values for an even count)."""
    return _run1(_rolling.rolling_median, x, window, num_threads)


def rolling_quantile(x: ArrayLike, window: int, q: float, *, num_threads: int = 0) -> FloatArray:
    """Rolling ``q``-quantile of the non-missing values with linear interpolation (pandas' arithmetic).

    ``q`` must lie in [0, 1]; ``q=0`` is the minimum and ``q=1`` the maximum.
    """
    return _run1(_rolling.rolling_quantile, x, window, num_threads, _quantile_q(q))


def rolling_quantiles(x: ArrayLike, window: int, qs: Any, *, num_threads: int = 0) -> list[FloatArray]:
    """Several rolling quantiles of one window at once, from one sorted buffer per column: one array per ``q`` in
    ``qs``, each equal bit for bit to :func:`rolling_quantile` at that ``q`` (about half the time of two calls).
    """
    levels = [_quantile_q(q) for q in qs]
    arr, was_1d = _panel(x)
    out = _rolling.rolling_quantiles(arr, _window(window), levels, _threads(num_threads))
    return [_shape_back(plane, was_1d) for plane in out]


def rolling_count(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Number of non-NaN values in the window (0.0 for an all-NaN window; infinities count, as in pandas)."""
    return _run1(_rolling.rolling_count, x, window, num_threads)


def rolling_rank(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Percentile rank of the newest value among the window's values, ties averaged.

    pandas ``rolling(window, min_periods=1).rank(pct=True)``: ``average rank / count``, in (0, 1]; NaN when
    the newest value is missing.
    """
    return _run1(_rolling.rolling_rank, x, window, num_threads)


def rolling_ranks(x: ArrayLike, windows: Sequence[int], *, num_threads: int = 0) -> list[FloatArray]:
    """:func:`rolling_rank` over several windows of one series at once: one array per window, each equal bit for bit
    to :func:`rolling_rank` with it. Windows of up to 256 rows share one scan of the widest (Alpha158's RANK5 to
    RANK60: 125 comparisons per cell became 60); longer windows are ranked one by one."""
    arr, was_1d = _panel(x)
    sizes = [_window(w) for w in windows]
    counted = [0 < w <= _rolling.COUNTING_RANK_MAX for w in sizes]
    shared = iter(_rolling.rolling_ranks(arr, [w for w, c in zip(sizes, counted) if c], _threads(num_threads)))
    return [_shape_back(next(shared), was_1d) if c else rolling_rank(x, w, num_threads=num_threads)
            for w, c in zip(sizes, counted)]  # fmt: skip


def rolling_mad(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling MEAN absolute deviation around the window mean, over the non-missing values (Qlib's ``Mad``)."""
    return _run1(_rolling.rolling_mad, x, window, num_threads)


def rolling_idxmax(
    x: ArrayLike, window: int, *, num_threads: int = 0, starts: ArrayLike | None = None
) -> FloatArray:
    """1-based position of the window maximum inside the possibly partial window (oldest = 1).

    Qlib's ``rolling(window, min_periods=1).apply(lambda a: a.argmax() + 1, raw=True)``: the first occurrence
    of the maximum; when the window holds a missing value, numpy's argmax returns the first missing position;
    an all-missing window gives NaN (pandas does not call the function).

    ``starts`` (one row number per column) makes column j begin at row ``starts[j]``, as if the rows above
    did not exist (an instrument's listing): they come out NaN and positions count from there.
    """
    return _run_from(_rolling.rolling_idxmax, x, window, num_threads, starts)


def rolling_idxmin(
    x: ArrayLike, window: int, *, num_threads: int = 0, starts: ArrayLike | None = None
) -> FloatArray:
    """1-based position of the window minimum (oldest = 1); same rules as :func:`rolling_idxmax`."""
    return _run_from(_rolling.rolling_idxmin, x, window, num_threads, starts)


def rolling_slope(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Least-squares slope of the values on their row position inside the window (Qlib's ``Slope``).

    Missing rows are skipped but keep their position; fewer than 2 values give NaN; a constant window gives 0.
    """
    return _run1(_rolling.rolling_slope, x, window, num_threads)


def rolling_rsquare(
    x: ArrayLike, window: int, *, num_threads: int = 0, std_atol: float | None = None
) -> FloatArray:
    """R-squared of the least-squares line of the values on their row position (Qlib's ``Rsquare``).

    Fewer than 2 values or a constant window give NaN; the result never exceeds 1 (collinear points of grid
    data give exactly 1). ``std_atol`` adds Qlib's float-noise guard: NaN where the window's sample std is
    within ``std_atol`` of 0 (computed from the kernel's own sums).
    """
    return _run1(_rolling.rolling_rsquare, x, window, num_threads, _atol(std_atol))


def rolling_resi(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Residual of the newest value from the window's least-squares line on the row position (Qlib's ``Resi``).

    NaN when the newest value is missing or the window has fewer than 2 values.
    """
    return _run1(_rolling.rolling_resi, x, window, num_threads)


def rolling_wma(x: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Linear weighted moving average: weights 1..L over the L rows of the (possibly partial) window, newest
    heaviest, normalised over the positions holding a value.

    This is the CORRECT weighted mean and intentionally differs from Qlib's ``WMA``, which divides the
    weighted sum by the count of values a second time (``np.nanmean(w * x)``; microsoft/qlib#1993).
    """
    return _run1(_rolling.rolling_wma, x, window, num_threads)


def rolling_cov(a: ArrayLike, b: ArrayLike, window: int, *, num_threads: int = 0) -> FloatArray:
    """Rolling sample covariance (ddof=1) of ``a`` and ``b`` over the rows where both have a value.

    pandas ``a.rolling(window, min_periods=1).cov(b)``: NaN with fewer than 2 such rows. ``window=0`` is the
    expanding covariance (Qlib raises on ``Cov(a, b, 0)``; this computes it).
    """
    return _run2(_rolling.rolling_cov, a, b, window, num_threads)


def rolling_corr(
    a: ArrayLike, b: ArrayLike, window: int, *, num_threads: int = 0, std_atol: float | None = None
) -> FloatArray:
    """Rolling Pearson correlation of ``a`` and ``b`` over the rows where both have a value.

    pandas ``a.rolling(window, min_periods=1).corr(b)``: NaN when either side is constant (or has one row),
    clipped to [-1, 1]. ``std_atol`` adds Qlib's float-noise guard: NaN where either side's own rolling std
    (over its own values) is within ``std_atol`` of 0. ``window=0`` is the expanding correlation (Qlib raises
    on ``Corr(a, b, 0)``; this computes it).
    """
    return _run2(_rolling.rolling_corr, a, b, window, num_threads, _atol(std_atol))


def _run2(fn: Any, a: ArrayLike, b: ArrayLike, window: Any, num_threads: int | None, *extra: float) -> FloatArray:
    left, was_1d = _panel(a, "a")
    right, _ = _panel(b, "b")
    if left.shape != right.shape:
        raise ValueError(f"a and b must have the same shape, got {np.shape(a)} and {np.shape(b)}")
    return _shape_back(fn(left, right, _window(window), *extra, _threads(num_threads)), was_1d)


def _atol(std_atol: float | None) -> float:
    """A std guard tolerance for the kernels (-1: no guard)."""
    if std_atol is None:
        return -1.0
    value = float(std_atol)
    if not value >= 0:
        raise ValueError(f"std_atol must be >= 0, got {std_atol!r}")
    return value


# ----------------------------------------------------------------------------------------------------------
# exponential means


def ewm_mean(
    x: ArrayLike, span: float | None = None, alpha: float | None = None, *, num_threads: int = 0
) -> FloatArray:
    """pandas ``ewm(span=span | alpha=alpha, adjust=True, min_periods=1, ignore_na=False).mean()``.

    Exactly one of ``span`` (>= 1) and ``alpha`` (in (0, 1]) is given. Missing rows keep decaying the weight
    of the past (``ignore_na=False``) and output the previous average; rows before the first value are NaN.
    """
    if (span is None) == (alpha is None):
        raise ValueError("give exactly one of span and alpha")
    if span is not None:
        span = float(span)
        if not span >= 1:
            raise ValueError(f"span must be >= 1, got {span}")
        com = (span - 1) / 2
    else:
        alpha = float(alpha)  # type: ignore[arg-type]
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        com = (1 - alpha) / alpha
    arr, was_1d = _panel(x)
    return _shape_back(_rolling.ewm_mean(arr, float(com), _threads(num_threads)), was_1d)


def expanding_ema_qlib(x: ArrayLike, *, num_threads: int = 0, starts: ArrayLike | None = None) -> FloatArray:
    """Qlib's ``EMA(x, 0)``: at row t (n = t + 1 rows so far) the decay is ``a = 1 - 2/(1+n)``, the weights
    ``a**(n-1), ..., a**0`` (oldest to newest) are normalised to sum 1 over ALL n rows, and the result is
    ``nansum(w * x)``: missing values count as 0 without renormalising. NaN until the first value.

    O(t) per row (the decay changes with every row, so no recursion exists): O(T^2) per column. ``starts``
    as in :func:`rolling_idxmax`.
    """
    arr, was_1d = _panel(x)
    return _shape_back(
        _rolling.expanding_ema_qlib(arr, _threads(num_threads), _starts(starts, arr.shape[1])), was_1d
    )


# ----------------------------------------------------------------------------------------------------------
# expanding aliases (window = 0)


def _expanding(fn: Any, name: str) -> Any:
    def expanding(x: ArrayLike, *, num_threads: int = 0) -> FloatArray:
        return fn(x, 0, num_threads=num_threads)

    expanding.__name__ = expanding.__qualname__ = name
    expanding.__doc__ = f"Expanding version of :func:`{fn.__name__}` (``window=0``, from row 0)."
    return expanding


expanding_sum = _expanding(rolling_sum, "expanding_sum")
expanding_mean = _expanding(rolling_mean, "expanding_mean")
expanding_var = _expanding(rolling_var, "expanding_var")
expanding_std = _expanding(rolling_std, "expanding_std")
expanding_skew = _expanding(rolling_skew, "expanding_skew")
expanding_kurt = _expanding(rolling_kurt, "expanding_kurt")
expanding_max = _expanding(rolling_max, "expanding_max")
expanding_min = _expanding(rolling_min, "expanding_min")
expanding_median = _expanding(rolling_median, "expanding_median")
expanding_count = _expanding(rolling_count, "expanding_count")
expanding_rank = _expanding(rolling_rank, "expanding_rank")
expanding_mad = _expanding(rolling_mad, "expanding_mad")
expanding_idxmax = _expanding(rolling_idxmax, "expanding_idxmax")
expanding_idxmin = _expanding(rolling_idxmin, "expanding_idxmin")
expanding_slope = _expanding(rolling_slope, "expanding_slope")
expanding_rsquare = _expanding(rolling_rsquare, "expanding_rsquare")
expanding_resi = _expanding(rolling_resi, "expanding_resi")
expanding_wma = _expanding(rolling_wma, "expanding_wma")


def expanding_quantile(x: ArrayLike, q: float, *, num_threads: int = 0) -> FloatArray:
    """Expanding version of :func:`rolling_quantile` (``window=0``)."""
    return rolling_quantile(x, 0, q, num_threads=num_threads)


# ----------------------------------------------------------------------------------------------------------
# cross-sectional


def _run_cs(fn: Any, x: ArrayLike, mask: ArrayLike | None, num_threads: int | None, *extra: float) -> FloatArray:
    arr, was_1d = _panel(x)
    m = _mask(mask, arr.shape, was_1d)
    return _shape_back(fn(arr, *extra, m, _threads(num_threads)), was_1d)


def cs_rank(x: ArrayLike, mask: ArrayLike | None = None, *, num_threads: int = 0) -> FloatArray:
    """Cross-sectional percentile rank on each row: pandas ``row.rank(pct=True)`` (average ties, in (0, 1]).

    Only cells that hold a value (NaN is missing; infinities are ranked) and, if ``mask`` is given, are True
    in it take part; every other cell is NaN.
    """
    return _run_cs(_cross.cs_rank, x, mask, num_threads)


def cs_zscore(x: ArrayLike, mask: ArrayLike | None = None, *, num_threads: int = 0) -> FloatArray:
    """Cross-sectional z-score ``(x - row mean) / row std`` with ddof=1, as pandas ``(s - s.mean()) / s.std()``.

    NaN for the whole row when it has fewer than 2 valid cells, zero spread (all values equal) or an
    infinity; cells outside ``mask`` or NaN are NaN.
    """
    return _run_cs(_cross.cs_zscore, x, mask, num_threads)


def cs_mean(x: ArrayLike, mask: ArrayLike | None = None, *, num_threads: int = 0) -> FloatArray:
    """Cross-sectional mean of each row's valid cells, written to every valid cell (others NaN)."""
    return _run_cs(_cross.cs_mean, x, mask, num_threads)


def cs_demean(x: ArrayLike, mask: ArrayLike | None = None, *, num_threads: int = 0) -> FloatArray:
    """Each valid cell minus its row's cross-sectional mean (others NaN)."""
    return _run_cs(_cross.cs_demean, x, mask, num_threads)


def cs_quantile(x: ArrayLike, q: float, mask: ArrayLike | None = None, *, num_threads: int = 0) -> FloatArray:
    """Cross-sectional ``q``-quantile of each row's valid cells (numpy/pandas linear interpolation), written
    to every valid cell (others NaN). ``q`` must lie in [0, 1].
    """
    return _run_cs(_cross.cs_quantile, x, mask, num_threads, _quantile_q(q))
