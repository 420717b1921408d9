"""Slow, obviously-correct reference implementations of every kernel in :mod:`qops.kernels`.

They compute what Qlib computes: pandas per column (``rolling(window, min_periods=1)`` or
``expanding(min_periods=1)``) or, where Qlib uses its own Cython or an ``apply``, a direct per-window
computation. Tests compare the compiled kernels against these; nothing here is fast.

Like pandas' rolling machinery, the time-series references treat ``+-inf`` as missing (pandas replaces inf
by NaN before every rolling/expanding/ewm reducer; ``count`` still counts them).

The references pin the semantics of pandas 3 (the pandas Qlib's golden values were made with) whatever pandas
is installed; the project's full environment has pandas 2 (tianshou requires it). Under pandas 3 they call
pandas. Under pandas 2 the reducers whose results differ -- rolling var/std/skew/kurt and corr/cov -- are
computed directly per window with numpy, as pandas 3 defines them:

- skew/kurt of a constant window are NaN (pandas 3: 0/0); pandas 2 gives 0 and -3;
- skew/kurt of small-scale values (~1e-6) are computed; pandas 2 gives NaN (it cuts the variance at 1e-14)
  or noise (its raw power sums lose the deviations);
- corr is NaN when either side is constant over the window's paired rows, and clipped to [-1, 1]; pandas 2
  divides the covariance's rounding residue by a variance of 0 (+-inf) and does not clip;
- var/std/cov carry no round-off from an online update; pandas 2's Welford update and its
  ``mean(xy) - mean(x) mean(y)`` drift past 1e-9 after a large value leaves a short window, where pandas 3
  recomputes the window.

:func:`exact_rolling` and :func:`exact_rolling_pair` compute the running-sum statistics in exact rational
arithmetic (every double is a rational): they tell where a window's true value is exactly 0 (or 1 for
r-squared and the squared correlation) and the true sign everywhere, which tests hold the kernels to.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


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


def _windows(n: int, window: int) -> list[tuple[int, int]]:
    """The rows ``(first, last)`` of each row's window (window 0 or longer than the panel: expanding)."""
    w = n if window == 0 or window > n else window
    return [(max(0, t - w + 1), t) for t in range(n)]


def _per_column(x: npt.ArrayLike, fn: Callable[[pd.Series], pd.Series]) -> FloatArray:
    arr = _panel(x)
    out = np.empty(arr.shape, dtype=np.float64)
    with np.errstate(all="ignore"):
        for j in range(arr.shape[1]):
            out[:, j] = fn(pd.Series(arr[:, j])).to_numpy(dtype=np.float64)
    return _like(x, out)


def _per_window(x: npt.ArrayLike, window: int, stat: Callable[[np.ndarray], float]) -> FloatArray:
    """``stat`` of each window's non-missing values (``+-inf`` missing), computed directly per window."""
    arr = _finite(_panel(x))
    out = np.empty(arr.shape, dtype=np.float64)
    with np.errstate(all="ignore"):
        for j in range(arr.shape[1]):
            col = arr[:, j]
            for t, (lo, hi) in enumerate(_windows(len(col), window)):
                v = col[lo : hi + 1]
                out[t, j] = stat(v[~np.isnan(v)])
    return _like(x, out)


def _centred(v: np.ndarray) -> np.ndarray:
    """Deviations from the mean, taken after shifting by the first value (pandas 3 anchors its sums the same
    way), so an offset common to the window cancels exactly instead of costing the deviations precision."""
    d = v - v[0]
    return d - d.mean()


def _var(v: np.ndarray) -> float:
    n = len(v)
    return np.nan if n < 2 else float(np.sum(_centred(v) ** 2) / (n - 1))


def _std(v: np.ndarray) -> float:
    return float(np.sqrt(_var(v)))


def _skew(v: np.ndarray) -> float:
    """pandas 3's skew of one window: ``m3 / m2**1.5 * n sqrt(n - 1) / (n - 2)`` (central sums m2, m3)."""
    n = len(v)
    if n < 3 or np.all(v == v[0]):
        return np.nan  # constant: 0/0
    d = _centred(v)
    m2, m3 = np.sum(d**2), np.sum(d**3)
    return float(m3 / (m2 * np.sqrt(m2)) * (n * np.sqrt(n - 1.0)) / (n - 2.0))


def _kurt(v: np.ndarray) -> float:
    """pandas 3's kurt of one window: ``(n - 1) / ((n - 2)(n - 3)) * (n(n + 1) m4 / m2**2 - 3(n - 1))``."""
    n = len(v)
    if n < 4 or np.all(v == v[0]):
        return np.nan  # constant: 0/0
    d = _centred(v)
    m2, m4 = np.sum(d**2), np.sum(d**4)
    return float((n - 1.0) / ((n - 2.0) * (n - 3.0)) * (n * (n + 1.0) * m4 / (m2 * m2) - 3.0 * (n - 1.0)))


# what pandas 2 gets wrong, computed per window instead (see the module docstring)
_PANDAS_2_DIRECT: dict[str, Callable[[np.ndarray], float]] = {"var": _var, "std": _std, "skew": _skew, "kurt": _kurt}


def _pandas_method(name: str, *args: float) -> Callable[[npt.ArrayLike, int], FloatArray]:
    def ref(x: npt.ArrayLike, window: int) -> FloatArray:
        if not PANDAS_3 and name in _PANDAS_2_DIRECT:
            return _per_window(x, window, _PANDAS_2_DIRECT[name])
        return _per_column(x, lambda s: getattr(_roll(s, window), name)(*args))

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


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    """pandas 3's rolling corr of one window: NaN if a side is constant (0/0), clipped to [-1, 1]."""
    if len(x) == 0 or np.all(x == x[0]) or np.all(y == y[0]):
        return np.nan
    dx, dy = _centred(x), _centred(y)
    return float(np.clip(np.sum(dx * dy) / np.sqrt(np.sum(dx * dx) * np.sum(dy * dy)), -1.0, 1.0))


def _cov(x: np.ndarray, y: np.ndarray) -> float:
    n = len(x)
    return np.nan if n < 2 else float(np.sum(_centred(x) * _centred(y)) / (n - 1))


def _pair_per_window(a: npt.ArrayLike, b: npt.ArrayLike, window: int, stat: Callable[..., float]) -> FloatArray:
    """``stat`` of each window's rows where both sides have a value (``+-inf`` missing), directly per window."""
    aa, bb = _finite(_panel(a)), _finite(_panel(b))
    out = np.empty(aa.shape, dtype=np.float64)
    with np.errstate(all="ignore"):
        for j in range(aa.shape[1]):
            for t, (lo, hi) in enumerate(_windows(aa.shape[0], window)):
                x, y = aa[lo : hi + 1, j], bb[lo : hi + 1, j]
                ok = ~np.isnan(x) & ~np.isnan(y)
                out[t, j] = stat(x[ok], y[ok])
    return _like(a, out)


# what pandas 2 gets wrong, computed per window instead (see the module docstring)
_PANDAS_2_PAIR: dict[str, Callable[..., float]] = {"corr": _corr, "cov": _cov}


def _pair(a: npt.ArrayLike, b: npt.ArrayLike, window: int, name: str) -> FloatArray:
    if not PANDAS_3:
        return _pair_per_window(a, b, window, _PANDAS_2_PAIR[name])
    aa, bb = _panel(a), _panel(b)
    out = np.empty(aa.shape)
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
# exact values (rational arithmetic)

#: statistics of :func:`exact_rolling`
EXACT_SINGLE = ("sum", "mean", "var", "slope", "rsquare", "resi", "wma")
#: statistics of :func:`exact_rolling_pair`; ``corr2`` is the signed squared correlation ``sign(r) * r**2``
EXACT_PAIR = ("cov", "corr2")


def _exact_window(col: np.ndarray, lo: int, hi: int) -> tuple[list[Fraction], list[Fraction]]:
    """Positions (1..L inside the window) and values of the window's finite cells, as exact rationals."""
    pos, val = [], []
    for i in range(lo, hi + 1):
        if np.isfinite(col[i]):
            pos.append(Fraction(i - lo + 1))
            val.append(Fraction(float(col[i])))
    return pos, val


def _centred_sums(u: list[Fraction], v: list[Fraction]) -> Fraction:
    """``sum (u - mean u)(v - mean v)``, exactly."""
    n = len(u)
    mu, mv = sum(u, Fraction(0)) / n, sum(v, Fraction(0)) / n
    return sum(((a - mu) * (b - mv) for a, b in zip(u, v)), Fraction(0))


def _exact_stat(stat: str, pos: list[Fraction], val: list[Fraction], length: int, newest: bool) -> Fraction | None:
    n = len(val)
    if stat == "sum":
        return sum(val, Fraction(0)) if n else None
    if stat == "mean":
        return sum(val, Fraction(0)) / n if n else None
    if stat == "wma":
        return sum((p * v for p, v in zip(pos, val)), Fraction(0)) / sum(pos, Fraction(0)) if n else None
    if n < 2 or (stat == "resi" and not newest):
        return None
    if stat == "var":
        return _centred_sums(val, val) / (n - 1)
    suu, sue, see = _centred_sums(pos, pos), _centred_sums(pos, val), _centred_sums(val, val)
    if stat == "slope":
        return sue / suu
    if stat == "rsquare":
        return None if see == 0 else sue * sue / (suu * see)
    mu, me = sum(pos, Fraction(0)) / n, sum(val, Fraction(0)) / n  # resi of the newest row (position L)
    return val[-1] - (me + sue / suu * (Fraction(length) - mu))


def exact_rolling(x: npt.ArrayLike, window: int, stat: str) -> np.ndarray:
    """The exact value of ``stat`` (one of :data:`EXACT_SINGLE`) for every window, as Fractions in an object
    array shaped like ``x``; None where the kernel gives NaN (too few values, a constant window's r-squared, a
    missing newest value for ``resi``). ``+-inf`` is missing, as in the kernels."""
    if stat not in EXACT_SINGLE:
        raise ValueError(f"unknown exact statistic {stat!r}")
    arr = _panel(x)
    out = np.empty(arr.shape, dtype=object)
    for j in range(arr.shape[1]):
        col = arr[:, j]
        for t, (lo, hi) in enumerate(_windows(len(col), window)):
            pos, val = _exact_window(col, lo, hi)
            out[t, j] = _exact_stat(stat, pos, val, hi - lo + 1, bool(np.isfinite(col[hi])))
    return out.reshape(-1) if np.ndim(x) == 1 else out


def exact_rolling_pair(a: npt.ArrayLike, b: npt.ArrayLike, window: int, stat: str) -> np.ndarray:
    """The exact covariance (``cov``) or signed squared correlation (``corr2``) of every window over the rows
    where both sides are finite, as in :func:`exact_rolling`; None where the kernel gives NaN (fewer than 2
    rows, or a constant side for ``corr2``)."""
    if stat not in EXACT_PAIR:
        raise ValueError(f"unknown exact statistic {stat!r}")
    aa, bb = _panel(a), _panel(b)
    out = np.empty(aa.shape, dtype=object)
    for j in range(aa.shape[1]):
        for t, (lo, hi) in enumerate(_windows(aa.shape[0], window)):
            rows = [i for i in range(lo, hi + 1) if np.isfinite(aa[i, j]) and np.isfinite(bb[i, j])]
            u = [Fraction(float(aa[i, j])) for i in rows]
            v = [Fraction(float(bb[i, j])) for i in rows]
            if len(rows) < 2:
                out[t, j] = None
            elif stat == "cov":
                out[t, j] = _centred_sums(u, v) / (len(rows) - 1)
            else:
                cuu, cvv, cuv = _centred_sums(u, u), _centred_sums(v, v), _centred_sums(u, v)
                out[t, j] = None if cuu == 0 or cvv == 0 else (1 if cuv >= 0 else -1) * cuv * cuv / (cuu * cvv)
    return out.reshape(-1) if np.ndim(a) == 1 else out


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
