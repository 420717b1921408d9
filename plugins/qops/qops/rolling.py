"""Time-series operators (``Ref``, rolling windows, EMA, pair rolling) and cross-sectional operators.

Each operator wraps a whole-panel kernel of :mod:`qops.kernels` and adds Qlib's rules around it:

- ``N == 0`` is an expanding window, ``N >= 1`` a rolling window with ``min_periods=1``;
- ``0 < N < 1`` on Mean/Sum/Std/Var/Max/Min/Med/Count/Skew/Kurt is an exponentially weighted mean with
  ``alpha=N`` (Qlib's behaviour, kept for compatibility);
- rows before an instrument lists do not exist for it: operators whose result depends on positions inside the
  window (``IdxMax``, ``IdxMin``, ``EMA(x, 0)``, ``Ref(x, 0)``, ``Delta(x, 0)``) start at its first row.

Differences from Qlib (on purpose): ``WMA`` is the true linear weighted mean (Qlib divides by the count again),
``Corr``/``Cov`` with ``N=0`` are expanding (Qlib raises), and expanding windows, EMA and ``Ref(x, 0)`` see all
history whatever the query start (Qlib's depend on it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qcore.operators import UNBOUNDED, OpContext, Operator, Param
from qops import kernels

#: A series argument: a number in its place is refused when the expression is checked (``Ref(2, 5)``, ``Mean(3, 5)``),
#: as Qlib refuses it; a window over one number is not a window over a constant series.
X = Param("x", "expr", accepts_constant=False)
Y = Param("y", "expr", accepts_constant=False)
#: The compiled kernels compute in float64: the engine converts each input once and shares it.
F64 = "float64"
N = Param("N", "number")

#: Qlib's float-noise guard on Corr and Rsquare: a rolling std this close to 0 makes the result NaN.
STD_ATOL = 2e-5


def _window(n: Any) -> int | float:
    """Validate a window: 0 (expanding), a positive integer, or (where allowed) a float in (0, 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        raise ValueError(f"window N must be a number, got {n!r}")
    if n == 0:
        return 0
    if 0 < n < 1:
        return float(n)
    if n >= 1 and float(n).is_integer():
        return int(n)
    raise ValueError(f"window N must be 0 (expanding) or a positive integer, got {n!r}")


def _fit(window: int, rows: int) -> int:
    """A rolling window no longer than the panel: the same result (windows have ``min_periods=1``), and a window of
    any size (``Mean($close, 10**20)``) reaches the compiled kernels as a machine integer."""
    return min(window, max(rows, 1))


def _rolling_lookback(n: int | float) -> tuple[float, float]:
    if n == 0 or isinstance(n, float):
        return (UNBOUNDED, 0.0)
    return (float(n - 1), 0.0)


def _as_float(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def _rolling(
    name: str,
    kernel_name: str,
    description: str,
    *,
    ewm_quirk: bool = True,
    min_window: int = 1,
    from_first_row: bool = False,
    fills_missing: bool = False,
    batch: Callable[..., list[np.ndarray]] | None = None,
) -> Operator:
    def compute(ctx: OpContext, x: Any, n: Any) -> np.ndarray:
        window = _window(n)
        data = _as_float(x)
        if isinstance(window, float):
            return kernels.ewm_mean(data, alpha=window, num_threads=ctx.num_threads)
        kernel = getattr(kernels, kernel_name)
        window = _fit(window, data.shape[0])
        if from_first_row:
            return kernel(data, window, num_threads=ctx.num_threads, starts=ctx.first_rows)
        return kernel(data, window, num_threads=ctx.num_threads)

    def lookback(_x: Any, n: Any) -> tuple[float, float]:
        window = _window(n)
        if isinstance(window, float) and not ewm_quirk:
            raise ValueError(f"window N must be 0 or a positive integer, got {n!r}")
        if window != 0 and not isinstance(window, float) and window < min_window:
            raise ValueError(f"window N must be >= {min_window} (or 0 for expanding), got {n!r}")
        return _rolling_lookback(window)

    return Operator(name, (X, N), compute, lookback, description, fills_missing=fills_missing, input_dtype=F64,
                    batch=batch)


def _ref(ctx: OpContext, x: Any, n: Any) -> np.ndarray:
    data = np.asarray(x)
    out = np.full(data.shape, np.nan, dtype=data.dtype if data.dtype.kind == "f" else np.float64)
    if n > 0:
        out[n:] = data[:-n]
    elif n < 0:
        out[:n] = data[-n:]
    else:
        firsts = ctx.first_rows if ctx.first_rows is not None else np.zeros(data.shape[1], dtype=np.int64)
        for j, first in enumerate(firsts):
            if first < data.shape[0]:
                out[first:, j] = data[first, j]
    return out


def _ref_lookback(_x: Any, n: Any) -> tuple[float, float]:
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"Ref offset N must be an integer, got {n!r}")
    if n == 0:
        return (UNBOUNDED, 0.0)
    return (float(n), 0.0) if n > 0 else (0.0, float(-n))


def _delta(ctx: OpContext, x: Any, n: Any) -> np.ndarray:
    data = np.asarray(x)
    with np.errstate(invalid="ignore"):
        return data - _ref(ctx, data, n)


def _delta_lookback(_x: Any, n: Any) -> tuple[float, float]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"Delta window N must be an integer >= 0, got {n!r}")
    return (UNBOUNDED, 0.0) if n == 0 else (float(n), 0.0)


def _quantile(ctx: OpContext, x: Any, n: Any, q: Any) -> np.ndarray:
    data = _as_float(x)
    window = _fit(int(_window(n)), data.shape[0])
    return kernels.rolling_quantile(data, window, float(q), num_threads=ctx.num_threads)


def _quantiles(ctx: OpContext, series: tuple[Any, ...], constants: Sequence[tuple[Any, ...]]) -> list[np.ndarray]:
    """Sibling ``Quantile`` calls on one series (Alpha158's QTLU/QTLD): the calls of each window share one sorted
    buffer per column; each result equals :func:`_quantile`'s."""
    data = _as_float(series[0])
    windows: dict[int, list[int]] = {}  # window -> the siblings (by position) that use it
    for k, (n, _q) in enumerate(constants):
        windows.setdefault(_fit(int(_window(n)), data.shape[0]), []).append(k)
    out: list[np.ndarray] = [np.empty(0)] * len(constants)
    for window, members in windows.items():
        levels = [float(constants[k][1]) for k in members]
        for k, plane in zip(members, kernels.rolling_quantiles(data, window, levels, num_threads=ctx.num_threads)):
            out[k] = plane
    return out


def _ranks(ctx: OpContext, series: tuple[Any, ...], constants: Sequence[tuple[Any, ...]]) -> list[np.ndarray]:
    """Sibling ``Rank`` calls on one series (Alpha158's RANK5 to RANK60): one scan of the widest window ranks the
    newest value in every window; each result equals a single call's bit for bit."""
    data = _as_float(series[0])
    windows = [_fit(int(_window(n)), data.shape[0]) for (n,) in constants]
    return kernels.rolling_ranks(data, windows, num_threads=ctx.num_threads)


def _quantile_lookback(_x: Any, n: Any, q: Any) -> tuple[float, float]:
    if not 0.0 <= float(q) <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q!r}")
    window = _window(n)
    if isinstance(window, float):
        raise ValueError(f"window N must be 0 or a positive integer, got {n!r}")
    return _rolling_lookback(window)


def _rsquare(ctx: OpContext, x: Any, n: Any) -> np.ndarray:
    # Qlib's np.isclose(std, 0, atol=STD_ATOL) guard (rolling windows only), applied inside the kernel
    data = _as_float(x)
    window = _fit(int(_window(n)), data.shape[0])
    atol = STD_ATOL if window > 0 else None
    return kernels.rolling_rsquare(data, window, num_threads=ctx.num_threads, std_atol=atol)


def _pair(kernel_name: str, guard: bool) -> Callable[..., np.ndarray]:
    def compute(ctx: OpContext, a: Any, b: Any, n: Any) -> np.ndarray:
        shape = (len(ctx.dates), len(ctx.instruments))
        window = _fit(int(_window(n)), shape[0])
        left = _as_float(np.broadcast_to(a, shape))
        right = _as_float(np.broadcast_to(b, shape))
        kernel = getattr(kernels, kernel_name)
        if guard:  # Qlib's np.isclose(std, 0, atol=STD_ATOL) on either side, applied inside the kernel
            return kernel(left, right, window, num_threads=ctx.num_threads, std_atol=STD_ATOL)
        return kernel(left, right, window, num_threads=ctx.num_threads)

    return compute


def _integer_lookback(*args: Any) -> tuple[float, float]:
    """Lookback of an operator whose last argument is an integer window (Rsquare, Corr, Cov)."""
    n = args[-1]
    window = _window(n)
    if isinstance(window, float):
        raise ValueError(f"window N must be 0 or a positive integer, got {n!r}")
    return _rolling_lookback(window)


def _ema(ctx: OpContext, x: Any, n: Any) -> np.ndarray:
    window = _window(n)
    data = _as_float(x)
    if window == 0:
        return kernels.expanding_ema_qlib(data, num_threads=ctx.num_threads, starts=ctx.first_rows)
    if isinstance(window, float):
        return kernels.ewm_mean(data, alpha=window, num_threads=ctx.num_threads)
    return kernels.ewm_mean(data, span=window, num_threads=ctx.num_threads)


def _ema_lookback(_x: Any, n: Any) -> tuple[float, float]:
    _window(n)
    return (UNBOUNDED, 0.0)


def _changed_instrument(ctx: OpContext, *args: Any) -> np.ndarray:
    value = next(a for a in args if isinstance(a, np.ndarray))
    return np.array(value, dtype=value.dtype if value.dtype.kind == "f" else np.float64)


def _cross(kernel_name: str) -> Callable[..., np.ndarray]:
    def compute(ctx: OpContext, x: Any, *extra: Any) -> np.ndarray:
        shape = (len(ctx.dates), len(ctx.instruments))
        data = _as_float(np.broadcast_to(x, shape))
        return getattr(kernels, kernel_name)(
            data, *[float(e) for e in extra], mask=ctx.mask, num_threads=ctx.num_threads
        )

    return compute


def _cs_quantile_lookback(x: Any, q: Any) -> tuple[float, float]:
    if not 0.0 <= float(q) <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q!r}")
    return (0.0, 0.0)


OPERATORS: tuple[Operator, ...] = (
    Operator(
        "Ref",
        (X, Param("N", "int")),
        _ref,
        _ref_lookback,
        "Value N rows ago (N<0 reads the future; N=0 the first value).",
    ),
    Operator("Delta", (X, Param("N", "int")), _delta, _delta_lookback, "x minus its value N rows ago."),
    _rolling("Mean", "rolling_mean", "Rolling mean over non-NaN values."),
    _rolling("Sum", "rolling_sum", "Rolling sum over non-NaN values."),
    _rolling("Std", "rolling_std", "Rolling standard deviation (ddof=1)."),
    _rolling("Var", "rolling_var", "Rolling variance (ddof=1)."),
    _rolling("Skew", "rolling_skew", "Rolling skewness (bias-adjusted, >= 3 values).", min_window=3),
    _rolling("Kurt", "rolling_kurt", "Rolling excess kurtosis (bias-corrected, >= 4 values).", min_window=4),
    _rolling("Max", "rolling_max", "Rolling maximum."),
    _rolling("Min", "rolling_min", "Rolling minimum."),
    _rolling("Med", "rolling_median", "Rolling median."),
    _rolling("Count", "rolling_count", "Number of non-NaN values in the window.", fills_missing=True),
    _rolling("Mad", "rolling_mad", "Rolling mean absolute deviation around the mean.", ewm_quirk=False),
    _rolling("Rank", "rolling_rank", "Percentile rank of the last value in its window.", ewm_quirk=False,
             batch=_ranks),
    _rolling(
        "IdxMax",
        "rolling_idxmax",
        "1-based position of the window maximum (oldest = 1).",
        ewm_quirk=False,
        from_first_row=True,
    ),
    _rolling(
        "IdxMin",
        "rolling_idxmin",
        "1-based position of the window minimum (oldest = 1).",
        ewm_quirk=False,
        from_first_row=True,
    ),
    _rolling("Slope", "rolling_slope", "Slope of a regression on the row position.", ewm_quirk=False),
    _rolling(
        "Resi", "rolling_resi", "Residual of the newest value from the window's regression line.", ewm_quirk=False
    ),
    _rolling("WMA", "rolling_wma", "Linearly weighted mean, newest heaviest (Qlib's bug fixed).", ewm_quirk=False),
    Operator(
        "Rsquare",
        (X, N),
        _rsquare,
        _integer_lookback,
        "R-squared of a regression on the row position.",
        input_dtype=F64,
    ),
    Operator(
        "Quantile",
        (X, N, Param("q", "number")),
        _quantile,
        _quantile_lookback,
        "Rolling quantile (linear interpolation).",
        input_dtype=F64,
        batch=_quantiles,
        batch_shared=("N",),  # one sorted buffer per window: different windows share nothing
    ),
    Operator(
        "EMA", (X, N), _ema, _ema_lookback, "Exponential moving average (span N; alpha N if N < 1).", input_dtype=F64
    ),
    Operator(
        "Corr",
        (X, Y, N),
        _pair("rolling_corr", guard=True),
        _integer_lookback,
        "Rolling Pearson correlation of x and y.",
        input_dtype=F64,
    ),
    Operator(
        "Cov",
        (X, Y, N),
        _pair("rolling_cov", guard=False),
        _integer_lookback,
        "Rolling sample covariance of x and y.",
        input_dtype=F64,
    ),
    Operator(
        "ChangeInstrument",
        (Param("instrument", "str"), X),
        _changed_instrument,
        description="x evaluated on another instrument (an index, say).",
        instrument_param=0,
    ),
    Operator(
        "Mask",
        (X, Param("instrument", "str")),
        _changed_instrument,
        description="x evaluated on another instrument (Qlib's argument order).",
        instrument_param=1,
    ),
    Operator(
        "CSRank", (X,), _cross("cs_rank"), description="Percentile rank across the universe on a date.",
        input_dtype=F64, cross_sectional=True,
    ),
    Operator(
        "CSZScore", (X,), _cross("cs_zscore"), description="Z-score across the universe on each date.",
        input_dtype=F64, cross_sectional=True,
    ),
    Operator("CSMean", (X,), _cross("cs_mean"), description="Mean across the universe on each date.", input_dtype=F64,
             cross_sectional=True),
    Operator("CSDemean", (X,), _cross("cs_demean"), description="x minus its cross-sectional mean.", input_dtype=F64,
             cross_sectional=True),
    Operator(
        "CSQuantile",
        (X, Param("q", "number")),
        _cross("cs_quantile"),
        _cs_quantile_lookback,
        "Cross-sectional quantile on each date.",
        input_dtype=F64,
        cross_sectional=True,
    ),
)
