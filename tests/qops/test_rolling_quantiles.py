"""``kernels.rolling_quantiles``: several quantiles of one window from one sorted buffer, each equal bit for bit to
``rolling_quantile``, and the ``Quantile`` operator's batch built on it."""

from __future__ import annotations

import numpy as np
import pytest
from qops import kernels
from qops.rolling import OPERATORS

from qcore.operators import OpContext


@pytest.fixture(scope="module")
def panel() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = np.cumsum(rng.normal(0, 1, (300, 37)), axis=0) + 50
    x[rng.random(x.shape) < 0.08] = np.nan
    x[10:40, 3] = np.nan  # a long suspension
    x[5, 4], x[6, 4] = np.inf, -np.inf  # infinities are missing values
    x[:, 5] = 2.5  # a constant column: ties everywhere
    return x.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("window", [1, 2, 5, 20, 0, 1000])
@pytest.mark.parametrize("threads", [1, 3])
def test_each_plane_equals_the_single_quantile(panel, window, threads) -> None:
    levels = [0.8, 0.2, 0.0, 1.0, 0.5, 0.33]
    planes = kernels.rolling_quantiles(panel, window, levels, num_threads=threads)
    assert len(planes) == len(levels)
    for q, plane in zip(levels, planes):
        single = kernels.rolling_quantile(panel, window, q, num_threads=1)
        np.testing.assert_array_equal(plane, single)
        assert plane.flags.c_contiguous and plane.dtype == np.float64


def test_a_series_and_bad_levels(panel) -> None:
    series = panel[:, 0]
    (a, b) = kernels.rolling_quantiles(series, 7, [0.25, 0.75])
    assert a.shape == series.shape
    np.testing.assert_array_equal(b, kernels.rolling_quantile(series, 7, 0.75))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        kernels.rolling_quantiles(panel, 5, [0.5, 1.5])
    assert kernels.rolling_quantiles(panel, 5, []) == []


def test_the_quantile_operator_batch_equals_its_compute(panel) -> None:
    op = next(o for o in OPERATORS if o.name == "Quantile")
    assert op.batch is not None
    ctx = OpContext(np.arange(panel.shape[0]), tuple(str(j) for j in range(panel.shape[1])), num_threads=1)
    constants = [(5, 0.8), (20, 0.2), (5, 0.2), (20, 0.8), (10**9, 0.5), (0, 0.9)]
    outputs = op.batch(ctx, (panel,), constants)
    for (n, q), out in zip(constants, outputs):
        np.testing.assert_array_equal(out, op.compute(ctx, panel, n, q))
