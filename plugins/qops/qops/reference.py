"""Slow, obviously-correct reference implementations of every kernel in :mod:`qops.kernels`.

They compute what Qlib computes: pandas per column (``rolling(window, min_periods=1)`` or
``expanding(min_periods=1)``) or, where Qlib uses its own Cython or an ``apply``, a direct per-window
computation. Tests compare the compiled kernels against these; nothing here is fast.

Like pandas' rolling machinery, the time-series references treat ``+-inf`` as missing (pandas replaces inf
by NaN before every rolling/expanding/ewm reducer; ``count`` still counts them).

The references pin pandas 3's semantics (the pandas Qlib's golden values were made with) whatever pandas is
installed: pandas 2 keeps infinities in ``corr``/``cov`` and returns 0 instead of NaN for the skew and kurtosis
of a constant window, and the project's full environment has pandas 2 (tianshou requires it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


def _panel(x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


def _like(x: npt.ArrayLike, out: FloatArray) -> FloatArray:
    """Give ``out`` the dimensionality of the input (a 1-D series in, a 1-D result out)."""
    return out.reshape(-1) if np.ndim(x) == 1 else out


def _finite(x: FloatArray) -> FloatArray:
    return np.where(np.isinf(x), np.nan, x)


def _roll(s: pd.Series, window: int):
    return s.expanding(min_periods=1) if window == 0 else s.rolling(window, min_periods=1)


def _per_column(x: npt.ArrayLike, fn: Callable[[pd.Series], pd.Series]) -> FloatArray:
    arr = _panel(x)
    out = np.empty(arr.shape, dtype=np.float64)
    with np.errstate(all="ignore"):
        for j in range(arr.shape[1]):
            out[:, j] = fn(pd.Series(arr[:, j])).to_numpy(dtype=np.float64)
    return _like(x, out)


PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


def _constant_windows(s: pd.Series, window: int) -> np.ndarray:
    """Where the window's non-missing values are all equal (pandas 3 gives NaN skew/kurt there)."""
    clean = s.replace([np.inf, -np.inf], np.nan)
    roll = _roll(clean, window)
    return (roll.max() == roll.min()).to_numpy()


def _pandas_method(name: str, *args: float) -> Callable[[npt.ArrayLike, int], FloatArray]:
    def column(s: pd.Series, window: int) -> pd.Series:
        if not PANDAS_3 and name != "count":
            s = s.replace([np.inf, -np.inf], np.nan)
        out = getattr(_roll(s, window), name)(*args)
        if not PANDAS_3 and name in ("skew", "kurt"):
            out[_constant_windows(s, window)] = np.nan
        return out

    def ref(x: npt.ArrayLike, window: int) -> FloatArray:
        return _per_column(x, lambda s: column(s, window))

    ref.__name__ = f"rolling_{name}"
    ref.__doc__ = f"pandas ``rolling(window, min_periods=1).{name}()`` per column (window 0: expanding)."
    return ref


rolling_sum = _pandas_method("sum")
rolling_mean = _pandas_method("mean")
rolling_var = _pandas_method("var")
rolling_std = _pandas_method("std")
rolling_skew = _pandas_method("skew")
rolling_kurt = _pandas_method("kurt")
rolling_max = _pandas_method("max")
rolling_min = _pandas_method("min")
rolling_median = _pandas_method("median")
rolling_count = _pandas_method("count")


def rolling_quantile(x: npt.ArrayLike, window: int, q: float) -> FloatArray:
    """pandas ``rolling(window, min_periods=1).quantile(q)`` (linear interpolation)."""
    return _per_column(x, lambda s: _roll(s, window).quantile(q))


def rolling_rank(x: npt.ArrayLike, window: int) -> FloatArray:
    """pandas ``rolling(window, min_periods=1).rank(pct=True)`` (average ties)."""
    return _per_column(x, lambda s: _roll(s, window).rank(pct=True))


def _apply(x: npt.ArrayLike, window: int, fn: Callable[[np.ndarray], float]) -> FloatArray:
    return _per_column(x, lambda s: _roll(s, window).apply(fn, raw=True))


def _mad(a: np.ndarray) -> float:
    a1 = a[~np.isnan(a)]
    return float(np.mean(np.abs(a1 - a1.mean())))


def rolling_mad(x: npt.ArrayLike, window: int) -> FloatArray:
    """Qlib's ``Mad``: ``apply(mean(|x - mean(x)|))`` over the non-NaN values of the window."""
    return _apply(x, window, _mad)


def rolling_idxmax(x: npt.ArrayLike, window: int) -> FloatArray:
    """Qlib's ``IdxMax``: ``apply(lambda a: a.argmax() + 1, raw=True)``."""
    return _apply(x, window, lambda a: a.argmax() + 1)


def rolling_idxmin(x: npt.ArrayLike, window: int) -> FloatArray:
    """Qlib's ``IdxMin``: ``apply(lambda a: a.argmin() + 1, raw=True)``."""
    return _apply(x, window, lambda a: a.argmin() + 1)


def _wma(a: np.ndarray) -> float:
    w = np.arange(1, len(a) + 1, dtype=np.float64)
    ok = ~np.isnan(a)
    return float(np.sum(w[ok] * a[ok]) / np.sum(w[ok]))


def rolling_wma(x: npt.ArrayLike, window: int) -> FloatArray:
    """Correct linear WMA: weights 1..L (newest heaviest) normalised over the non-NaN positions."""
    return _apply(x, window, _wma)


def _windows(n: int, window: int) -> list[tuple[int, int]]:
    w = n if window == 0 or window > n else window
    return [(max(0, t - w + 1), t) for t in range(n)]


def _regression(x: npt.ArrayLike, window: int, what: str) -> FloatArray:
    """Direct least squares of each window's values on their row position (1..L), NaNs skipped."""
    arr = _finite(_panel(x))
    out = np.full(arr.shape, np.nan)
    for j in range(arr.shape[1]):
        col = arr[:, j]
        for t, (lo, hi) in enumerate(_windows(len(col), window)):
            ys = col[lo : hi + 1]
            xs = np.arange(1, len(ys) + 1, dtype=np.float64)
            ok = ~np.isnan(ys)
            if ok.sum() < 2:
                continue
            xv, yv = xs[ok], ys[ok]
            if what == "resi" and np.isnan(ys[-1]):
                continue
            constant = bool(np.all(yv == yv[0]))
            xm, ym = xv.mean(), yv.mean()
            sxx = np.sum((xv - xm) ** 2)
            sxy = np.sum((xv - xm) * (yv - ym))
            syy = np.sum((yv - ym) ** 2)
            slope = 0.0 if constant else sxy / sxx
            if what == "slope":
                out[t, j] = slope
            elif what == "rsquare":
                out[t, j] = np.nan if constant else sxy * sxy / (sxx * syy)
            else:
                out[t, j] = 0.0 if constant else ys[-1] - (ym + slope * (xs[-1] - xm))
    return _like(x, out)


def rolling_slope(x: npt.ArrayLike, window: int) -> FloatArray:
    """Qlib's ``Slope``: least-squares slope on the position inside the window; < 2 values: NaN."""
    return _regression(x, window, "slope")


def rolling_rsquare(x: npt.ArrayLike, window: int) -> FloatArray:
    """Qlib's ``Rsquare`` kernel (without the caller's std guard): r**2; < 2 values or constant: NaN."""
    return _regression(x, window, "rsquare")


def rolling_resi(x: npt.ArrayLike, window: int) -> FloatArray:
    """Qlib's ``Resi``: residual of the newest value; NaN if it is NaN or the window has < 2 values."""
    return _regression(x, window, "resi")


def _pair(a: npt.ArrayLike, b: npt.ArrayLike, window: int, name: str) -> FloatArray:
    aa, bb = _panel(a), _panel(b)
    out = np.empty(aa.shape)
    if not PANDAS_3:
        aa, bb = _finite(aa), _finite(bb)
    for j in range(aa.shape[1]):
        sa, sb = pd.Series(aa[:, j]), pd.Series(bb[:, j])
        out[:, j] = getattr(_roll(sa, window), name)(sb).to_numpy(dtype=np.float64)
    return _like(a, out)


def rolling_corr(a: npt.ArrayLike, b: npt.ArrayLike, window: int) -> FloatArray:
    """pandas ``a.rolling(window, min_periods=1).corr(b)`` (window 0: expanding)."""
    return _pair(a, b, window, "corr")


def rolling_cov(a: npt.ArrayLike, b: npt.ArrayLike, window: int) -> FloatArray:
    """pandas ``a.rolling(window, min_periods=1).cov(b)`` (window 0: expanding)."""
    return _pair(a, b, window, "cov")


def ewm_mean(x: npt.ArrayLike, span: float | None = None, alpha: float | None = None) -> FloatArray:
    """pandas ``ewm(span | alpha, adjust=True, min_periods=1, ignore_na=False).mean()``."""
    return _per_column(x, lambda s: s.ewm(span=span, alpha=alpha, adjust=True, min_periods=1, ignore_na=False).mean())


def _qlib_ema0(a: np.ndarray) -> float:
    alpha = 1 - 2 / (1 + len(a))
    w = alpha ** np.arange(len(a))[::-1]
    w /= w.sum()
    return float(np.nansum(w * a))


def expanding_ema_qlib(x: npt.ArrayLike) -> FloatArray:
    """Qlib's ``EMA(x, 0)``: ``expanding(min_periods=1).apply(exp_weighted_mean, raw=True)``."""
    return _per_column(x, lambda s: s.expanding(min_periods=1).apply(_qlib_ema0, raw=True))


# ----------------------------------------------------------------------------------------------------------
# cross-sectional


def _per_row(x: npt.ArrayLike, mask: npt.ArrayLike | None, fn: Callable[[pd.Series], pd.Series | float]) -> FloatArray:
    arr = _panel(x)
    valid = ~np.isnan(arr)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool).reshape(arr.shape)
    out = np.full(arr.shape, np.nan)
    with np.errstate(all="ignore"):
        for i in range(arr.shape[0]):
            s = pd.Series(arr[i, valid[i]])
            if s.empty:
                continue
            res = fn(s)
            out[i, valid[i]] = res.to_numpy(dtype=np.float64) if isinstance(res, pd.Series) else res
    return _like(x, out)


def cs_rank(x: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> FloatArray:
    """pandas ``row.rank(pct=True)`` over the valid cells."""
    return _per_row(x, mask, lambda s: s.rank(pct=True))


def _zscore(s: pd.Series) -> pd.Series | float:
    if len(s) < 2 or bool((s == s.iloc[0]).all()) or not np.isfinite(s.to_numpy()).all():
        return np.nan
    return (s - s.mean()) / s.std()


def cs_zscore(x: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> FloatArray:
    """pandas ``(s - s.mean()) / s.std()`` (ddof=1); constant rows, rows with < 2 values or inf: NaN."""
    return _per_row(x, mask, _zscore)


def cs_mean(x: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> FloatArray:
    """Row mean of the valid cells, broadcast to them."""
    return _per_row(x, mask, lambda s: float(s.mean()))


def cs_demean(x: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> FloatArray:
    """Valid cells minus their row mean."""
    return _per_row(x, mask, lambda s: s - s.mean())


def cs_quantile(x: npt.ArrayLike, q: float, mask: npt.ArrayLike | None = None) -> FloatArray:
    """pandas ``row.quantile(q)`` (linear) over the valid cells, broadcast to them."""
    return _per_row(x, mask, lambda s: float(s.quantile(q)))
