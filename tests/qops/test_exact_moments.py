"""Exact zeros and query-start invariance of the running-sum kernels (issues #12 and #13).

The engine starts a panel at the query start minus the expression's lookback, so the rows before a window
differ from one query to the next. A window's result must not let that show where it matters:

- at an exact value (a moment that is exactly 0, an r-squared or squared correlation that is exactly 1) the
  result is the same bits whatever the start, and on data of a common grid (float32 fields, integers) it is the
  exact value itself (pandas' exact 0);
- comparisons with those values (``Sign(x)``, ``Gt(x, 0)``, ``Ge(1, Rsquare)``) agree everywhere;
- the values stay within the reference tolerance of :mod:`qops.reference`.

"Exact" is decided in rational arithmetic (:func:`qops.reference.exact_rolling`). Panels are drawn by
hypothesis from the shapes that produce exact values: constant runs, constant steps, repeated patterns, huge
magnitudes, spikes followed by constant stretches, NaN and inf.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qops import kernels as K
from qops import reference as R

RTOL, ATOL = 1e-9, 1e-12  # the tolerance of test_kernels.py; ATOL is scaled to each column's magnitude below
WINDOWS = (2, 3, 4, 5, 8, 20)

#: kinds of column, and whether their values lie on a common grid (their shifted sums are then exact)
GRID_KINDS = ("ticks", "integers", "integer_step", "pattern", "runs")
OTHER_KINDS = ("noise", "decimal_step", "decimal_pattern", "huge_offset", "spikes_then_constant")


def _column(kind: str, T: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(T, dtype=np.float64)
    if kind == "ticks":  # float32 prices moving by whole cents, often not at all
        steps = rng.choice([-2, -1, 0, 0, 0, 1, 2], size=T) * 0.01
        return np.float32(10.0 + np.cumsum(steps)).astype(np.float64)
    if kind == "integers":
        return rng.integers(-3, 4, size=T).astype(np.float64)
    if kind == "integer_step":
        return float(rng.integers(-1000, 1000)) + float(rng.integers(-5, 6)) * t
    if kind == "pattern":  # a repeating pattern of small integers, scaled by a power of two
        pattern = rng.integers(-3, 4, size=int(rng.integers(2, 6))).astype(np.float64)
        return np.resize(pattern, T) * 2.0 ** int(rng.integers(-20, 30))
    if kind == "runs":  # constant stretches of float32 values
        values = np.float32(rng.normal(size=T // 3 + 1) * 100).astype(np.float64)
        lengths = 3 if rng.random() < 0.5 else rng.integers(1, 12, size=len(values))
        return np.repeat(values, lengths)[:T] if np.sum(lengths) >= T else np.resize(np.repeat(values, lengths), T)
    if kind == "noise":
        return rng.normal(size=T) * 10.0 ** int(rng.integers(-6, 7))
    if kind == "decimal_step":
        return 100.0 + 0.01 * t * rng.choice([-1.0, 1.0])
    if kind == "decimal_pattern":
        return np.resize(rng.integers(-3, 4, size=int(rng.integers(2, 6))) * 0.1, T)
    if kind == "huge_offset":
        return 1e12 + 1e3 * rng.normal(size=T)
    # spikes_then_constant: large values, then a constant stretch of at least 20 rows
    col = rng.normal(size=T) * 1e9
    cut = int(rng.integers(1, max(2, T - 20)))
    col[cut:] = float(np.float32(rng.normal()))
    return col


@st.composite
def panels(draw: st.DrawFn, columns: int = 4) -> tuple[np.ndarray, tuple[str, ...]]:
    """A (T, columns) panel and the kind of each column."""
    T = draw(st.integers(24, 72))
    kinds = tuple(draw(st.lists(st.sampled_from(GRID_KINDS + OTHER_KINDS), min_size=columns, max_size=columns)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = np.column_stack([_column(kind, T, rng) for kind in kinds])
    missing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.3]))
    x[rng.random(x.shape) < missing] = np.nan
    if draw(st.booleans()):
        x[rng.random(x.shape) < 0.03] = np.inf
    return x, kinds


def _overlap(full: np.ndarray, sub: np.ndarray, start: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows whose window lies inside both panels (a query from row ``start`` keeps exactly these)."""
    return full[start + window - 1 :], sub[window - 1 :]


def _exact_mask(exact: np.ndarray, value: int) -> np.ndarray:
    return np.vectorize(lambda v: v is not None and v == value, otypes=[bool])(exact)


def _exact_sign(exact: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: np.nan if v is None else float((v > 0) - (v < 0)), otypes=[float])(exact)


def _assert_same_decisions(a: np.ndarray, b: np.ndarray, label: str) -> None:
    """Sign(x), Gt(x, 0) and the NaN positions agree cell by cell."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{label}: NaN positions")
    ok = ~np.isnan(a)
    np.testing.assert_array_equal(np.sign(a[ok]), np.sign(b[ok]), err_msg=f"{label}: Sign")


SINGLE: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "sum": (K.rolling_sum, "sum"),
    "mean": (K.rolling_mean, "mean"),
    "var": (K.rolling_var, "var"),
    "std": (K.rolling_std, "var"),
    "slope": (K.rolling_slope, "slope"),
    "rsquare": (K.rolling_rsquare, "rsquare"),
    "resi": (K.rolling_resi, "resi"),
    "wma": (K.rolling_wma, "wma"),
}


def _grid_columns(kinds: tuple[str, ...]) -> np.ndarray:
    return np.array([kind in GRID_KINDS for kind in kinds])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=panels(), window=st.sampled_from(WINDOWS), start=st.integers(1, 23), name=st.sampled_from(sorted(SINGLE)))
def test_single_series_kernels_do_not_depend_on_the_start(data, window: int, start: int, name: str) -> None:
    x, kinds = data
    fn, stat = SINGLE[name]
    full, sub = _overlap(fn(x, window), fn(x[start:], window), start, window)
    label = f"{name}({window}) from row {start}, columns {kinds}"
    _assert_same_decisions(full, sub, label)
    exact = R.exact_rolling(x, window, stat)[start + window - 1 :]
    # exact zeros (and r-squared exactly 1) are the same bits whatever the start ...
    at_exact = _exact_mask(exact, 0) | (_exact_mask(exact, 1) if stat == "rsquare" else False)
    np.testing.assert_array_equal(full[at_exact], sub[at_exact], err_msg=label)
    # ... and on grid data they are the exact value itself, as everywhere a window is constant (variance 0)
    grid = np.broadcast_to(_grid_columns(kinds), full.shape)
    zero = _exact_mask(exact, 0) & (grid | (stat == "var"))
    assert np.all(full[zero] == 0.0), f"{label}: exact zeros came out {full[zero & (full != 0.0)]}"
    if stat == "rsquare":
        assert np.all(full[_exact_mask(exact, 1) & grid] == 1.0), label
        assert np.all((full <= 1.0) | np.isnan(full)), f"{label}: r-squared above 1"
        np.testing.assert_array_equal(full >= 1.0, sub >= 1.0, err_msg=f"{label}: Ge(x, 1)")
    # the sign of grid data is the exact sign
    sign = _exact_sign(exact)
    np.testing.assert_array_equal(np.sign(full)[grid], sign[grid], err_msg=f"{label}: exact sign")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    left=panels(),
    right=panels(),
    window=st.sampled_from(WINDOWS),
    start=st.integers(1, 23),
    name=st.sampled_from(["cov", "corr"]),
    affine=st.booleans(),
)
def test_pair_kernels_do_not_depend_on_the_start(left, right, window: int, start: int, name: str, affine: bool) -> None:
    a, kinds_a = left
    b, kinds_b = right
    T = min(len(a), len(b))
    a, b = a[:T], b[:T]
    if affine:  # exact correlations of +-1: b an exact affine image of a in two columns
        b[:, :2] = a[:, :2] * np.array([2.0, -0.5]) + 3.0
    fn = getattr(K, f"rolling_{name}")
    full, sub = _overlap(fn(a, b, window), fn(a[start:], b[start:], window), start, window)
    label = f"{name}({window}) from row {start}, columns {kinds_a} / {kinds_b}"
    _assert_same_decisions(full, sub, label)
    exact = R.exact_rolling_pair(a, b, window, "cov" if name == "cov" else "corr2")[start + window - 1 :]
    at_exact = _exact_mask(exact, 0)
    if name == "corr":
        at_exact |= _exact_mask(exact, 1) | _exact_mask(exact, -1)
        np.testing.assert_array_equal(np.abs(full) >= 1.0, np.abs(sub) >= 1.0, err_msg=f"{label}: |corr| >= 1")
    np.testing.assert_array_equal(full[at_exact], sub[at_exact], err_msg=label)
    grid = np.broadcast_to(_grid_columns(kinds_a) & _grid_columns(kinds_b), full.shape)
    assert np.all(full[_exact_mask(exact, 0) & grid] == 0.0), label
    np.testing.assert_array_equal(np.sign(full)[grid], _exact_sign(exact)[grid], err_msg=f"{label}: exact sign")


def _assert_close(actual: np.ndarray, expected: np.ndarray, atol: np.ndarray, label: str) -> None:
    """``|actual - expected| <= atol + RTOL * |expected|`` cell by cell (atol per column), NaN where NaN."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{label}: NaN positions")
    ok = ~np.isnan(expected)
    bound = np.broadcast_to(atol, actual.shape) + RTOL * np.abs(expected)
    bad = ok & ~(np.abs(actual - expected) <= bound)
    worst = np.broadcast_to(atol, bad.shape)[bad][:5]
    assert not bad.any(), f"{label}: {actual[bad][:5]} != {expected[bad][:5]} (atol {worst})"


def _scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the largest finite magnitude and the largest deviation from the median (>= tiny)."""
    finite = np.where(np.isfinite(x), x, np.nan)
    with np.errstate(all="ignore"):
        size = np.nan_to_num(np.nanmax(np.abs(finite), axis=0), nan=0.0)
        spread = np.nan_to_num(np.nanmax(np.abs(finite - np.nanmedian(finite, axis=0)), axis=0), nan=0.0)
    return np.maximum(size, 1e-300), np.maximum(spread, 1e-300)


def _floats(exact: np.ndarray, name: str) -> np.ndarray:
    values = np.vectorize(lambda v: np.nan if v is None else float(v), otypes=[float])(exact)
    return np.sqrt(values) if name == "std" else values


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=panels(), window=st.sampled_from((0, *WINDOWS)), name=st.sampled_from(sorted(SINGLE)))
def test_random_panels_match_the_reference(data, window: int, name: str) -> None:
    """The reference tolerance (rtol 1e-9, atol 1e-12) with atol in units of each column's magnitude.

    Against pandas/numpy (:mod:`qops.reference`) the unit is what the reference itself rounds at: the values for
    sums, means and the regression (it centres on a rounded mean), the spread for the moments (it centres
    exactly), and size / spread for r-squared. Against the exact rational value the unit is the kernel's own
    claim: the values for sums and means, the spread (deviations) for the moments and the regression.
    """
    x, kinds = data
    fn, stat = SINGLE[name]
    size, spread = _scale(x)
    ours = fn(x, window)
    label = f"{name}({window}) {kinds}"
    reference = {
        "sum": size,
        "mean": size,
        "wma": size,
        "var": spread**2,
        "std": spread,
        "slope": size,
        "resi": size,
        "rsquare": size / spread,
    }[name]
    _assert_close(ours, getattr(R, f"rolling_{name}")(x, window), ATOL * reference * max(window, 1), label)
    own = {
        "sum": size,
        "mean": size,
        "wma": size,
        "var": spread**2,
        "std": spread,
        "slope": spread,
        "resi": spread,
        "rsquare": np.ones_like(size),
    }[name]
    _assert_close(
        ours, _floats(R.exact_rolling(x, window, stat), name), ATOL * own * max(window, 1), f"{label} (exact)"
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(left=panels(), right=panels(), window=st.sampled_from((0, *WINDOWS)), name=st.sampled_from(["cov", "corr"]))
def test_random_pairs_match_the_reference(left, right, window: int, name: str) -> None:
    a, b = left[0], right[0]
    T = min(len(a), len(b))
    a, b = a[:T], b[:T]
    unit = _scale(a)[1] * _scale(b)[1] if name == "cov" else 1.0
    _assert_close(
        getattr(K, f"rolling_{name}")(a, b, window),
        getattr(R, f"rolling_{name}")(a, b, window),
        ATOL * unit * max(window, 1),
        f"{name}({window}) {left[1]} / {right[1]}",
    )


# ----------------------------------------------------------------------------------------------------------
# the cases of the issues, one by one


def _starts(T: int, window: int) -> range:
    return range(1, T - window, 3)


def test_rsquare_of_a_float32_high_is_exactly_one_on_straight_stretches() -> None:
    """#12: Ge(1, Rsquare($high, 3)) depended on the query start (r-squared a few ulps above 1)."""
    rng = np.random.default_rng(12)
    high = np.float32(10 + np.cumsum(rng.choice([0.01, 0.02, -0.01], size=400)))
    high[100:160] = np.float32(12.0) + np.float32(0.01) * np.arange(60, dtype=np.float32)  # straight (in float32 steps)
    x = high.astype(np.float64)
    full = K.rolling_rsquare(x, 3)
    exact_one = _exact_mask(R.exact_rolling(x, 3, "rsquare"), 1)
    assert exact_one.sum() > 50
    assert np.all(full[exact_one] == 1.0) and np.all(full[~np.isnan(full)] <= 1.0)
    for start in _starts(len(x), 3):
        np.testing.assert_array_equal(K.rolling_rsquare(x[start:], 3)[2:], full[start + 2 :])


def test_covariance_of_a_constant_step_and_a_repeating_series_is_exactly_zero() -> None:
    """#13: Sign(Cov(...)) flipped between -1, 0 and +1 where pandas gets the exact 0."""
    t = np.arange(300, dtype=np.float64)
    step = np.float32(25.37 + 0.01 * t).astype(np.float64)  # a constant step in float32 prices
    ramp = 3.0 * t - 7.0  # an exact constant step
    pattern = np.resize([1.0, 2.0, 2.0, 1.0], 300) * 1000.0  # symmetric in every window of 4 rows
    cov = K.rolling_cov(ramp, pattern, 4)
    # exact sums: the covariance is the exact one, correctly rounded; zero in the symmetric phases
    np.testing.assert_array_equal(cov[1:], np.vectorize(float)(R.exact_rolling_pair(ramp, pattern, 4, "cov")[1:]))
    assert np.all(cov[3::4] == 0.0) and np.all(cov[5::4] == 0.0) and np.all(cov[4::2] != 0.0)
    assert np.all(K.rolling_corr(ramp, pattern, 4)[3::2] == 0.0)
    for a, b in [(ramp, pattern), (step, pattern), (pattern, step)]:
        full = K.rolling_cov(a, b, 8)
        exact = R.exact_rolling_pair(a, b, 8, "cov")
        np.testing.assert_array_equal(np.sign(full), _exact_sign(exact))
        for start in _starts(len(a), 8):
            np.testing.assert_array_equal(K.rolling_cov(a[start:], b[start:], 8)[7:], full[start + 7 :])


def test_std_of_a_constant_window_after_large_values_is_exactly_zero() -> None:
    """#13: Std($volume, N) / $volume over suspended zero-volume days gives residue in Qlib; ours is 0 (so NaN)."""
    rng = np.random.default_rng(5)
    volume = np.float32(rng.lognormal(16, 2, size=500)).astype(np.float64)
    volume[200:260] = 0.0  # suspended
    volume[300:340] = 123456.0
    volume[400:420] = 1e-300
    for window in (5, 10, 20):
        full = K.rolling_std(volume, window)
        constant = np.zeros(len(volume), dtype=bool)
        for lo, hi in [(200, 260), (300, 340), (400, 420)]:
            constant[lo + window - 1 : hi] = True
        assert np.all(full[constant] == 0.0)
        assert np.all(K.rolling_var(volume, window)[constant] == 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            assert np.all(np.isnan((full / volume)[200 + window - 1 : 260]))
        for start in (1, 57, 150, 199, 250):  # volumes up to 1e10: their squares round, except where constant
            sub = K.rolling_std(volume[start:], window)[window - 1 :]
            np.testing.assert_array_equal(sub[constant[start + window - 1 :]], 0.0)
            np.testing.assert_array_equal(sub > 0, full[start + window - 1 :] > 0)


def test_sums_of_float32_price_changes_are_exact() -> None:
    """Sign(Sum($close - Ref($close, 1), N)): the changes are exact in float64, so are their sums (pandas'
    Kahan sum agrees), and a stock back at its old price gives 0 whatever the start."""
    rng = np.random.default_rng(8)
    close = np.float32(10 + np.cumsum(rng.choice([-0.02, -0.01, 0.0, 0.01, 0.02], size=(600, 16)), axis=0))
    change = (close[1:] - close[:-1]).astype(np.float64)  # float32 arithmetic, as the engine does
    for window in (2, 5, 20, 60):
        full = K.rolling_sum(change, window)
        exact = R.exact_rolling(change[:200], window, "sum")
        np.testing.assert_array_equal(full[:200], np.vectorize(float)(exact))
        assert (full == 0.0).sum() > 0
        for start in (1, 33, 250):
            sub = K.rolling_sum(change[start:], window)[window - 1 :]
            np.testing.assert_array_equal(sub, full[start + window - 1 :])
            np.testing.assert_array_equal(
                K.rolling_mean(change[start:], window)[window - 1 :],
                K.rolling_mean(change, window)[start + window - 1 :],
            )


def test_means_of_grid_data_are_pandas_means() -> None:
    """The mean is the exact sum divided once, as pandas' rolling mean (Kahan sum / count)."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 1000, size=(400, 8)).astype(np.float64)
    x[rng.random(x.shape) < 0.1] = np.nan
    for window in (3, 7, 30):
        np.testing.assert_array_equal(K.rolling_mean(x, window), R.rolling_mean(x, window))
        np.testing.assert_array_equal(K.rolling_sum(x, window), R.rolling_sum(x, window))


def test_exact_affine_pairs_correlate_exactly() -> None:
    rng = np.random.default_rng(4)
    a = np.float32(rng.normal(size=300) * 10).astype(np.float64)
    for scale, sign in [(2.0, 1.0), (-0.25, -1.0), (1024.0, 1.0)]:
        b = a * scale + 5.0
        full = K.rolling_corr(a, b, 10)
        assert np.all(full[9:] == sign)
        for start in (1, 50, 123):
            np.testing.assert_array_equal(K.rolling_corr(a[start:], b[start:], 10)[9:], full[start + 9 :])


def test_slope_and_residual_of_exact_lines() -> None:
    t = np.arange(200, dtype=np.float64)
    x = np.where(t < 100, 3.0 * t + 1.0, np.float32(7.25) - 2.0 * t)
    x[[20, 21, 150]] = np.nan
    for window in (3, 5, 20):
        slope, resi = K.rolling_slope(x, window), K.rolling_resi(x, window)
        straight = np.zeros(len(x), dtype=bool)
        straight[window - 1 : 100] = True
        straight[100 + window - 1 :] = True
        assert np.all(slope[straight & (t < 100) & ~np.isnan(slope)] == 3.0)
        assert np.all(slope[straight & (t >= 100) & ~np.isnan(slope)] == -2.0)
        assert np.all(resi[straight & ~np.isnan(resi)] == 0.0)
        rsq = K.rolling_rsquare(x, window)
        assert np.all(rsq[straight & ~np.isnan(rsq)] == 1.0)


def test_non_grid_exact_zeros_are_decided_from_the_window_alone() -> None:
    """0.1-scaled patterns are not on a grid: the running sums round, but a window within its rounding bound
    of 0 is recomputed from its own values, so comparisons and the bits there do not depend on the start."""
    t = np.arange(400, dtype=np.float64)
    a = 100.0 + 0.01 * t
    b = np.resize([0.1, 0.2, 0.2, 0.1], 400) + 1e6
    full = K.rolling_cov(a, b, 4)
    exact = R.exact_rolling_pair(a, b, 4, "cov")
    for start in range(1, 60):
        sub = K.rolling_cov(a[start:], b[start:], 4)[3:]
        np.testing.assert_array_equal(np.sign(sub), np.sign(full[start + 3 :]))
        zero = _exact_mask(exact[start + 3 :], 0)
        np.testing.assert_array_equal(sub[zero], full[start + 3 :][zero])


@pytest.mark.parametrize("name", ["skew", "kurt"])
def test_higher_moments_do_not_depend_on_the_panel_length(name: str) -> None:
    """A window that starts at the panel's first row is computed online, the others two-pass: which one a
    cell gets no longer depends on how many rows the panel has (the query's end)."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(120, 5)) * 1e3 + 1e6
    fn = getattr(K, f"rolling_{name}")
    for window in (4, 20, 50):
        full = fn(x, window)
        for T in (5, 19, 20, 21, 49, 60):
            np.testing.assert_array_equal(fn(x[:T], window), full[:T])
        np.testing.assert_allclose(full, getattr(R, f"rolling_{name}")(x, window), rtol=1e-7, atol=1e-9)


def test_exact_references_agree_with_fractions_of_known_windows() -> None:
    x = np.array([1.0, 2.0, 4.0, np.nan, 4.0])
    np.testing.assert_array_equal(R.exact_rolling(x, 3, "sum"), [1, 3, 7, 6, 8])
    assert R.exact_rolling(x, 3, "var")[2] == Fraction(7, 3)
    assert R.exact_rolling(x, 3, "rsquare")[4] is None  # a constant window
    assert R.exact_rolling(x, 3, "resi")[3] is None  # the newest value is missing
    assert R.exact_rolling_pair(x, -x, 3, "corr2")[2] == -1
    with pytest.raises(ValueError, match="unknown exact statistic"):
        R.exact_rolling(x, 3, "kurt")


@pytest.mark.parametrize("name", ["slope", "rsquare", "resi", "sum", "std"])
def test_an_infinity_is_dropped_and_later_windows_recover(name: str) -> None:
    """#13, a documented difference: Qlib's running sums turn every later row NaN after a +-inf (differently
    for each query start); ours treat it as missing, like pandas' reducers, so once it has left the window the
    results are those of the same series without it, from any start."""
    rng = np.random.default_rng(13)
    clean = np.float32(10 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], size=300))).astype(np.float64)
    dirty = clean.copy()
    dirty[[50, 51, 180]] = [np.inf, -np.inf, np.inf]
    fn = getattr(K, f"rolling_{name}")
    for window in (3, 10):
        ours = fn(dirty, window)
        without = fn(np.where(np.isinf(dirty), np.nan, clean), window)
        np.testing.assert_array_equal(ours, without)
        after = np.arange(len(dirty)) >= 180 + window
        assert np.isfinite(ours[after]).all() or name == "rsquare"  # a flat window's r-squared is NaN
        np.testing.assert_array_equal(ours[after], fn(clean, window)[after])
        for start in (1, 49, 52, 100):
            np.testing.assert_array_equal(fn(dirty[start:], window)[window - 1 :], ours[start + window - 1 :])
