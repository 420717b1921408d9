"""The compiled qops kernels against the slow pandas/numpy references in :mod:`qops.reference`.

Tolerances: ``rtol=1e-9, atol=1e-12`` everywhere, except skew/kurt (``rtol=1e-7``: pandas' online moments and
our exact two-pass windows round differently, and both ratios amplify it) and the expanding EMA of Qlib
(Horner evaluation against normalised weights; ``atol=1e-10`` for results near 0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from qops import kernels as K
from qops import reference as R

RTOL, ATOL = 1e-9, 1e-12


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL, atol: float = ATOL) -> None:
    assert actual.dtype == np.float64
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def make_panel(T: int, seed: int) -> np.ndarray:
    """A (T, 10) panel covering the cases the data carries.

    Columns: 0 normal with random NaNs; 1 all NaN; 2 leading NaN run; 3 suspended run in the middle;
    4 small integers (ties, constant windows); 5 piecewise constant with NaNs; 6 +-inf and NaN sprinkled;
    7 prices around 1e3; 8 tiny values; 9 no NaN at all.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, 10))
    x[rng.random(T) < 0.2, 0] = np.nan
    x[:, 1] = np.nan
    x[: max(1, T // 3), 2] = np.nan
    x[T // 3 : T // 3 + 8, 3] = np.nan
    x[:, 4] = rng.integers(0, 3, size=T).astype(float)
    x[rng.random(T) < 0.1, 4] = np.nan
    x[:, 5] = np.where(np.arange(T) < T // 2, 5.0, 2.5)
    x[rng.random(T) < 0.15, 5] = np.nan
    x[rng.random(T) < 0.1, 6] = np.inf
    x[rng.random(T) < 0.1, 6] = -np.inf
    x[rng.random(T) < 0.1, 6] = np.nan
    x[:, 7] = 1e3 * np.exp(np.cumsum(0.02 * rng.normal(size=T)))
    x[:, 8] *= 1e-6
    return x


PANELS = {f"T{T}": make_panel(T, seed) for T, seed in [(1, 1), (2, 2), (7, 3), (61, 4)]}
WINDOWS = [0, 1, 2, 3, 5, 20, 100]

SINGLE: dict[str, tuple[Callable, Callable, dict]] = {
    name: (getattr(K, f"rolling_{name}"), getattr(R, f"rolling_{name}"), tol)
    for name, tol in [
        ("sum", {}),
        ("mean", {}),
        ("var", {}),
        ("std", {}),
        ("skew", {"rtol": 1e-7}),
        ("kurt", {"rtol": 1e-7}),
        ("max", {}),
        ("min", {}),
        ("median", {}),
        ("count", {}),
        ("rank", {}),
        ("mad", {}),
        ("idxmax", {}),
        ("idxmin", {}),
        ("slope", {}),
        ("rsquare", {}),
        ("resi", {}),
        ("wma", {}),
    ]
}


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("panel", sorted(PANELS))
@pytest.mark.parametrize("name", sorted(SINGLE))
def test_rolling_matches_reference(name: str, panel: str, window: int) -> None:
    fast, slow, tol = SINGLE[name]
    x = PANELS[panel]
    assert_close(fast(x, window), slow(x, window), **tol)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("panel", sorted(PANELS))
def test_rolling_quantile(panel: str, window: int, q: float) -> None:
    x = PANELS[panel]
    assert_close(K.rolling_quantile(x, window, q), R.rolling_quantile(x, window, q))


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("panel", sorted(PANELS))
@pytest.mark.parametrize("name", ["corr", "cov"])
def test_pair_matches_reference(name: str, panel: str, window: int) -> None:
    a = PANELS[panel]
    rng = np.random.default_rng(a.shape[0])
    b = 0.5 * np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0) + rng.normal(size=a.shape)
    b[rng.random(a.shape) < 0.15] = np.nan
    b[: a.shape[0] // 2, 9] = 3.0  # constant stretch on the other side
    fast = getattr(K, f"rolling_{name}")(a, b, window)
    slow = getattr(R, f"rolling_{name}")(a, b, window)
    assert_close(fast, slow)


@pytest.mark.parametrize("panel", sorted(PANELS))
@pytest.mark.parametrize(
    "kw", [{"span": 1}, {"span": 2}, {"span": 5}, {"span": 20}, {"alpha": 0.1}, {"alpha": 0.5}, {"alpha": 1.0}]
)
def test_ewm_mean(panel: str, kw: dict) -> None:
    x = PANELS[panel]
    assert_close(K.ewm_mean(x, **kw), R.ewm_mean(x, **kw))


@pytest.mark.parametrize("panel", sorted(PANELS))
def test_expanding_ema_qlib(panel: str) -> None:
    x = PANELS[panel]
    assert_close(K.expanding_ema_qlib(x), R.expanding_ema_qlib(x), atol=1e-10)


def test_expanding_aliases() -> None:
    x = PANELS["T61"]
    for name in SINGLE:
        np.testing.assert_array_equal(getattr(K, f"expanding_{name}")(x), getattr(K, f"rolling_{name}")(x, 0))
    np.testing.assert_array_equal(K.expanding_quantile(x, 0.3), K.rolling_quantile(x, 0, 0.3))


def test_window_longer_than_panel_is_expanding() -> None:
    x = PANELS["T61"]
    for name in SINGLE:
        fn = getattr(K, f"rolling_{name}")
        np.testing.assert_array_equal(fn(x, 1000), fn(x, 0))


# ----------------------------------------------------------------------------------------------------------
# exact values


def test_qlib_worked_example() -> None:
    """Qlib's own check of its Cython kernels: [1, 2, 4, nan, 5, 7] with window 3."""
    x = np.array([1, 2, 4, np.nan, 5, 7.0])
    assert_close(K.rolling_slope(x, 3), np.array([np.nan, 1, 1.5, 2, 0.5, 2]))
    np.testing.assert_allclose(K.rolling_rsquare(x, 3), [np.nan, 1, 0.964, 1, 1, 1], atol=5e-4)
    np.testing.assert_allclose(K.rolling_resi(x, 3), [np.nan, 0, 0.167, np.nan, 0, 0], atol=5e-4)


def test_exact_edge_values() -> None:
    x = np.array([np.nan, 1, 1, 1, np.nan, 2, 2, 2, 2, np.nan, np.nan, np.nan, 5])
    assert_close(K.rolling_count(x, 3), np.array([0, 1, 2, 3, 2, 2, 2, 3, 3, 2, 1, 0, 1.0]))
    assert_close(K.rolling_sum(x, 3), np.array([np.nan, 1, 2, 3, 2, 3, 4, 6, 6, 4, 2, np.nan, 5]))
    assert_close(K.rolling_var(x, 3), np.array([np.nan, np.nan, 0, 0, 0, 0.5, 0, 0, 0, 0, np.nan, np.nan, np.nan]))
    # numpy argmax: a NaN in the window is the maximum; all-NaN window: NaN
    assert_close(K.rolling_idxmax(x, 3), np.array([np.nan, 1, 1, 1, 3, 2, 1, 1, 1, 3, 2, np.nan, 1]))
    assert_close(
        K.rolling_rank(x, 3), np.array([np.nan, 1, 0.75, 2 / 3, np.nan, 1, 0.75, 2 / 3, 2 / 3] + [np.nan] * 3 + [1.0])
    )
    # constant windows: skew/kurt NaN, var 0
    assert np.isnan(K.rolling_skew(x, 4)[7]) and np.isnan(K.rolling_kurt(x, 5)[8])
    # the corrected WMA: a constant series gives the constant (Qlib's WMA would give 1/3 here)
    assert_close(K.rolling_wma(np.ones(5), 3), np.ones(5))
    assert_close(K.rolling_wma(np.array([1.0, np.nan, 4.0]), 3), np.array([1.0, 1.0, (1 + 12) / 4]))
    # EWM keeps the previous average on missing rows and keeps decaying the old weights
    y = np.array([np.nan, 1.0, np.nan, 3.0])
    assert_close(K.ewm_mean(y, span=3), R.ewm_mean(y, span=3))
    assert np.isnan(K.ewm_mean(y, span=3)[0]) and K.ewm_mean(y, span=3)[2] == 1.0


def test_infinities_are_missing_except_for_count() -> None:
    x = np.array([1.0, np.inf, 3.0, -np.inf, 5.0])
    assert_close(K.rolling_mean(x, 2), np.array([1, 1, 3, 3, 5.0]))
    assert_close(K.rolling_count(x, 2), np.array([1, 2, 2, 2, 2.0]))
    assert_close(K.rolling_max(x, 0), np.array([1, 1, 3, 3, 5.0]))


# ----------------------------------------------------------------------------------------------------------
# numerical stability


def _direct(x: np.ndarray, window: int) -> dict[str, np.ndarray]:
    v = np.lib.stride_tricks.sliding_window_view(x, window)
    pos = np.arange(1, window + 1, dtype=np.float64)
    pc = pos - pos.mean()
    yc = v - v.mean(axis=1, keepdims=True)
    return {
        "mean": v.mean(axis=1),
        "var": v.var(axis=1, ddof=1),
        "std": v.std(axis=1, ddof=1),
        "slope": (yc @ pc) / (pc @ pc),
        "rsquare": (yc @ pc) ** 2 / ((pc @ pc) * (yc * yc).sum(axis=1)),
        "resi": yc[:, -1] - (yc @ pc) / (pc @ pc) * pc[-1],
    }


@pytest.mark.parametrize("kind", ["noise", "random_walk", "level_jump"])
def test_long_series_with_large_offset(kind: str) -> None:
    """50,000 bars around 1e6: the O(1) running sums must match a direct per-window computation to 1e-9."""
    rng = np.random.default_rng(7)
    n, w = 50_000, 20
    noise = rng.normal(size=n)
    if kind == "noise":
        x = 1e6 + noise
    elif kind == "random_walk":
        x = 1e6 + np.cumsum(noise)
    else:  # 1e6 + noise, then noise around 0: stale anchors must not leak precision loss
        x = noise.copy()
        x[: n // 2] += 1e6
    ref = _direct(x, w)
    sl = slice(w - 1, None)
    for name in ["mean", "var", "std"]:
        assert_close(getattr(K, f"rolling_{name}")(x, w)[sl], ref[name])
    # the slope of pure noise can be ~0, so its tolerance is relative to its typical size
    scale = np.std(ref["slope"])
    np.testing.assert_allclose(K.rolling_slope(x, w)[sl], ref["slope"], rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(K.rolling_rsquare(x, w)[sl], ref["rsquare"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(K.rolling_resi(x, w)[sl], ref["resi"], rtol=1e-9, atol=1e-9 * np.std(ref["resi"]))
    # the pair kernels on the same footing
    y = x + 0.5 * rng.normal(size=n)
    vx = np.lib.stride_tricks.sliding_window_view(x, w)
    vy = np.lib.stride_tricks.sliding_window_view(y, w)
    cx, cy = vx - vx.mean(axis=1, keepdims=True), vy - vy.mean(axis=1, keepdims=True)
    cov = (cx * cy).sum(axis=1) / (w - 1)
    corr = (cx * cy).sum(axis=1) / np.sqrt((cx * cx).sum(axis=1) * (cy * cy).sum(axis=1))
    np.testing.assert_allclose(K.rolling_cov(x, y, w)[sl], cov, rtol=1e-9, atol=1e-9 * np.std(cov))
    np.testing.assert_allclose(K.rolling_corr(x, y, w)[sl], corr, rtol=1e-9, atol=1e-12)


def test_spike_leaving_the_window() -> None:
    """A 1e9 spike in unit noise: once it has left the window the sums must not carry its rounding residue."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=20_000)
    x[5_000] = 1e9
    x[12_345] = -3e8
    w = 30
    ref = _direct(x, w)
    sl = slice(w - 1, None)
    for name in ["mean", "var", "std"]:
        assert_close(getattr(K, f"rolling_{name}")(x, w)[sl], ref[name], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(K.rolling_slope(x, w)[sl], ref["slope"], rtol=1e-9, atol=1e-9)
    y = x + rng.normal(size=x.size)
    assert_close(K.rolling_cov(x, y, w)[sl], R.rolling_cov(x, y, w)[sl], rtol=1e-8, atol=1e-8)


def _exact_zero_panel(T: int) -> np.ndarray:
    """Columns whose sums are exactly 0 in many windows, on a grid (integers) and off it (0.1 steps)."""
    t = np.arange(T)
    return np.column_stack(
        [
            np.resize([1.0, -1.0, 2.0, -2.0], T),
            np.resize([0.1, -0.1, 0.3, -0.3], T) + 0.0 * t,
            np.resize([0.1, 0.2, -0.3], T),
            np.where(t % 40 < 20, 1e9 * np.sin(t), 0.0),
        ]
    )


def test_narrow_and_wide_panels_agree() -> None:
    """Narrow panels run column by column, wide ones row by row: the same column gets the same bits, including
    where a sum within its rounding bound of 0 is recomputed from the window."""
    x = np.concatenate([make_panel(200, 8), _exact_zero_panel(200)], axis=1)
    wide = np.concatenate([x, x, x], axis=1)
    for name in ["sum", "mean", "var", "std"]:
        fn = getattr(K, f"rolling_{name}")
        for window in [0, 1, 2, 3, 7, 30]:
            narrow = np.column_stack([fn(x[:, j], window) for j in range(x.shape[1])])
            np.testing.assert_array_equal(fn(wide, window)[:, : x.shape[1]], narrow)


def test_exact_zero_sums_come_out_zero_whatever_the_start() -> None:
    """A window whose values cancel exactly sums to 0.0 (grid data) and gives the same bits and the same sign
    from any first row (off-grid data: recomputed from the window)."""
    x = _exact_zero_panel(400)
    for window in (2, 4, 8, 12):  # the integer column's pattern cancels in these
        full = K.rolling_sum(x, window)
        exact = R.exact_rolling(x[:, 0], window, "sum")
        zero = np.array([v == 0 for v in exact])
        assert zero[window:].any() and np.all(full[zero, 0] == 0.0)
        for start in (1, 5, 17, 101):
            sub = K.rolling_sum(x[start:], window)[window - 1 :]
            np.testing.assert_array_equal(np.sign(sub), np.sign(full[start + window - 1 :]))
            np.testing.assert_array_equal(sub[:, 0], full[start + window - 1 :, 0])


def test_expanding_with_large_offset() -> None:
    rng = np.random.default_rng(11)
    x = 1e6 + rng.normal(size=5_000)
    x[:1000] = np.nan
    ok = x[1000:]
    n = np.arange(1, ok.size + 1)
    mean = np.cumsum(ok - 1e6) / n + 1e6
    assert_close(K.rolling_mean(x, 0)[1000:], mean)
    var = np.array([np.var(ok[: k + 1], ddof=1) if k else np.nan for k in range(ok.size)])
    assert_close(K.rolling_var(x, 0)[1000:], var)


# ----------------------------------------------------------------------------------------------------------
# cross-sectional


def make_cs_panel(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 25))
    x[:, :5] = rng.integers(0, 4, size=(30, 5))  # ties
    x[rng.random(x.shape) < 0.2] = np.nan
    x[3] = np.nan  # all-NaN row
    x[4] = 2.0  # constant row
    x[5, 1:] = np.nan  # a single value
    x[6, :3] = [np.inf, -np.inf, 1e300]
    mask = rng.random(x.shape) < 0.8
    mask[7] = False
    return x, mask


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("name", ["cs_rank", "cs_zscore", "cs_mean", "cs_demean"])
def test_cross_sectional(name: str, use_mask: bool) -> None:
    x, mask = make_cs_panel()
    m = mask if use_mask else None
    assert_close(getattr(K, name)(x, mask=m), getattr(R, name)(x, mask=m))


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_cs_quantile(q: float, use_mask: bool) -> None:
    x, mask = make_cs_panel()
    m = mask if use_mask else None
    assert_close(K.cs_quantile(x, q, mask=m), R.cs_quantile(x, q, mask=m))


def test_cs_rank_values() -> None:
    x = np.array([[3.0, 1.0, np.nan, 1.0, 2.0]])
    assert_close(K.cs_rank(x), np.array([[1.0, 0.375, np.nan, 0.375, 0.75]]))
    mask = np.array([[True, True, True, False, True]])
    assert_close(K.cs_rank(x, mask=mask), np.array([[1.0, 1 / 3, np.nan, np.nan, 2 / 3]]))


# ----------------------------------------------------------------------------------------------------------
# dispatch layer


def test_threads_do_not_change_results() -> None:
    x = make_panel(300, 9)
    for name in SINGLE:
        fn = getattr(K, f"rolling_{name}")
        np.testing.assert_array_equal(fn(x, 10, num_threads=1), fn(x, 10, num_threads=2))
    y = x[::-1].copy()
    np.testing.assert_array_equal(K.rolling_corr(x, y, 10, num_threads=1), K.rolling_corr(x, y, 10, num_threads=3))
    # columns where results sit at exact values (recomputed from the window) split across threads as well
    z = np.concatenate([_exact_zero_panel(300)] * 5, axis=1)
    for name in ["sum", "mean", "slope", "resi", "wma", "rsquare"]:
        fn = getattr(K, f"rolling_{name}")
        np.testing.assert_array_equal(fn(z, 4, num_threads=1), fn(z, 4, num_threads=3))
    np.testing.assert_array_equal(
        K.rolling_cov(z, z[::-1].copy(), 4, num_threads=1), K.rolling_cov(z, z[::-1].copy(), 4, num_threads=3)
    )
    np.testing.assert_array_equal(K.cs_rank(x, num_threads=1), K.cs_rank(x, num_threads=2))


def test_input_conversion() -> None:
    x = make_panel(40, 3)
    wide = np.repeat(x, 2, axis=1)
    # a non-contiguous view, float32, ints and bools are converted
    assert_close(K.rolling_mean(wide[:, ::2], 5), K.rolling_mean(x, 5))
    assert_close(K.rolling_mean(x.astype(np.float32), 5), R.rolling_mean(x.astype(np.float32), 5))
    ints = np.arange(12).reshape(4, 3)
    assert_close(K.rolling_sum(ints, 2), R.rolling_sum(ints.astype(float), 2))
    assert_close(K.rolling_mean(ints > 4, 3), R.rolling_mean((ints > 4).astype(float), 3))
    # 1-D in, 1-D out
    assert K.rolling_std(x[:, 0], 3).shape == (40,)
    assert K.cs_rank(x[0]).shape == (10,)
    # empty panels
    assert K.rolling_mean(np.empty((0, 3)), 3).shape == (0, 3)
    assert K.rolling_corr(np.empty((5, 0)), np.empty((5, 0)), 3).shape == (5, 0)
    assert K.cs_zscore(np.empty((0, 4))).shape == (0, 4)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: K.rolling_mean(np.zeros((3, 2)), -1), ValueError),
        (lambda: K.rolling_mean(np.zeros((3, 2)), 2.5), TypeError),
        (lambda: K.rolling_mean(np.zeros((3, 2, 2)), 2), ValueError),
        (lambda: K.rolling_mean(np.array([["a"]]), 2), TypeError),
        (lambda: K.rolling_mean(np.zeros((3, 2)), 2, num_threads=-1), ValueError),
        (lambda: K.rolling_quantile(np.zeros((3, 2)), 2, 1.5), ValueError),
        (lambda: K.rolling_corr(np.zeros((3, 2)), np.zeros((3, 3)), 2), ValueError),
        (lambda: K.ewm_mean(np.zeros((3, 2))), ValueError),
        (lambda: K.ewm_mean(np.zeros((3, 2)), span=2, alpha=0.5), ValueError),
        (lambda: K.ewm_mean(np.zeros((3, 2)), alpha=0.0), ValueError),
        (lambda: K.cs_rank(np.zeros((3, 2)), mask=np.ones((2, 2), dtype=bool)), ValueError),
        (lambda: K.cs_quantile(np.zeros((3, 2)), -0.1), ValueError),
    ],
)
def test_invalid_input(call: Callable, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


def test_rank_by_counting_and_by_sorted_buffer_agree() -> None:
    # windows up to 256 rows rank by counting, longer ones with a sorted buffer: both match pandas to the bit
    x = np.repeat(make_panel(400, 12), 3, axis=1)  # 30 columns: whole vector groups and a remainder
    for window in (255, 256, 257, 300):
        np.testing.assert_array_equal(K.rolling_rank(x, window), R.rolling_rank(x, window))


@pytest.mark.parametrize("name", ["idxmax", "idxmin"])
def test_idx_kernels_start_at_each_columns_first_row(name: str) -> None:
    x = make_panel(80, 13)
    starts = np.array([0, 5, 79, 80, 200, 3, 0, 10, 1, 40])
    fn = getattr(K, f"rolling_{name}")
    got = fn(x, 7, starts=starts)
    for j, first in enumerate(starts):
        first = min(first, len(x))
        assert np.isnan(got[:first, j]).all()
        if first < len(x):
            assert_close(got[first:, j], getattr(R, f"rolling_{name}")(x[first:, j : j + 1], 7)[:, 0])
    with pytest.raises(ValueError, match="one per column"):
        fn(x, 7, starts=starts[:3])


def test_expanding_ema_qlib_with_starts() -> None:
    x = make_panel(50, 14)
    starts = np.arange(10) * 4
    got = K.expanding_ema_qlib(x, starts=starts)
    for j, first in enumerate(starts):
        assert np.isnan(got[:first, j]).all()
        assert_close(got[first:, j], K.expanding_ema_qlib(x[first:, j]), atol=1e-10)


@pytest.mark.parametrize("threads", [1, 2])
def test_std_guards_inside_corr_and_rsquare(threads: int) -> None:
    # Qlib's guard: NaN where a rolling std (ddof=1, each side over its own values) is within atol of 0
    rng = np.random.default_rng(15)
    x = np.cumsum(rng.normal(size=(200, 12)), axis=0) + 50
    y = np.cumsum(rng.normal(size=(200, 12)), axis=0) + 50
    x[40:52, 1] = 7.0 + rng.normal(size=12) * 1e-6  # near-constant run: std ~1e-6
    y[90:99, 2] = 3.0
    x[rng.random(x.shape) < 0.1] = np.nan
    y[rng.random(y.shape) < 0.1] = np.nan  # NaN rows of the two sides differ: own-values stds
    x[:, 3] = np.where(np.isnan(y[:, 3]), np.nan, x[:, 3])  # ... and coincide in column 3
    atol = 2e-5
    for window in (0, 5, 12):
        near = (np.abs(K.rolling_std(x, window)) <= atol) | (np.abs(K.rolling_std(y, window)) <= atol)
        expected = np.where(near, np.nan, K.rolling_corr(x, y, window))
        got = K.rolling_corr(x, y, window, std_atol=atol, num_threads=threads)
        assert_close(got, expected)
        assert np.isnan(got[near]).all() and near.any() == (window > 0)
        expected = np.where(np.abs(K.rolling_std(x, window)) <= atol, np.nan, K.rolling_rsquare(x, window))
        assert_close(K.rolling_rsquare(x, window, std_atol=atol, num_threads=threads), expected)
    with pytest.raises(ValueError, match="std_atol"):
        K.rolling_corr(x, y, 5, std_atol=-1)


def test_malloc_tuning_respects_the_users_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from qops import _malloc

    for name in [n for n in __import__("os").environ if n.startswith("MALLOC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QOPS_TUNE_MALLOC", "0")
    assert _malloc.tune() is False
    monkeypatch.setenv("QOPS_TUNE_MALLOC", "1")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user configured malloc: hands off
    assert _malloc.tune() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert _malloc.tune() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
