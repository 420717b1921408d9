"""``kernels.rolling_ranks``: ranks over several windows from one scan of the widest, each equal bit for bit to
``rolling_rank``, and the ``Rank`` operator's batch built on it (Alpha158's RANK5 to RANK60 in one call)."""

from __future__ import annotations

import attrs
import numpy as np
import pandas as pd
import pytest
from qops import _rolling, kernels, reference
from qops.rolling import OPERATORS

from qcore.expr.engine import ExpressionEngine
from qcore.expr.evaluation import sibling_groups
from qcore.kernel import Kernel
from qcore.operators import OpContext
from tests.expr.test_engine import RandomMarket


@pytest.fixture(scope="module")
def panel() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = np.cumsum(rng.normal(0, 1, (300, 37)), axis=0) + 50
    x[rng.random(x.shape) < 0.08] = np.nan
    x[10:40, 3] = np.nan  # a long suspension
    x[5, 4], x[6, 4], x[50, 9] = np.inf, -np.inf, np.inf  # infinities are missing values
    x[:, 5] = 2.5  # a constant column: ties everywhere
    x[:, 6] = np.round(x[:, 6] / 4)  # few distinct values: ties
    return x.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("windows", [[5, 10, 20, 30, 60], [60, 5, 30], [1, 2, 1000, 0, 7, 7], [256, 257]])
@pytest.mark.parametrize("threads", [1, 3])
def test_each_plane_equals_the_single_rank(panel, windows, threads) -> None:
    planes = kernels.rolling_ranks(panel, windows, num_threads=threads)
    assert len(planes) == len(windows)
    for window, plane in zip(windows, planes):
        np.testing.assert_array_equal(plane, kernels.rolling_rank(panel, window, num_threads=1))
        assert plane.shape == panel.shape and plane.dtype == np.float64


def test_the_planes_match_pandas(panel) -> None:
    # an independent check: pandas' rolling(window, min_periods=1).rank(pct=True), with infinities made missing as
    # the kernels treat them
    finite = np.where(np.isfinite(panel), panel, np.nan)[:120, :12]
    for window, plane in zip([60, 5, 20], kernels.rolling_ranks(finite, [60, 5, 20])):
        np.testing.assert_array_equal(plane, reference.rolling_rank(finite, window))


@pytest.mark.parametrize("columns", [1, 7, 8, 9, 17])  # the 8-column blocks and the scalar tail
def test_narrow_panels_and_a_series(panel, columns) -> None:
    part = np.ascontiguousarray(panel[:80, :columns])
    for window, plane in zip([3, 80, 12], kernels.rolling_ranks(part, [3, 80, 12])):
        np.testing.assert_array_equal(plane, kernels.rolling_rank(part, window))
    series = panel[:, 3]
    (a, b) = kernels.rolling_ranks(series, [4, 9])
    assert a.shape == series.shape
    np.testing.assert_array_equal(b, kernels.rolling_rank(series, 9))


def test_the_compiled_kernel_refuses_windows_it_cannot_count(panel) -> None:
    with pytest.raises(ValueError, match="windows of 1 to 256 rows"):
        _rolling.rolling_ranks(panel, [5, 0])
    with pytest.raises(ValueError, match="windows of 1 to 256 rows"):
        _rolling.rolling_ranks(panel, [257])
    assert kernels.rolling_ranks(panel, []) == []


def test_the_rank_operator_batch_equals_its_compute(panel) -> None:
    op = next(o for o in OPERATORS if o.name == "Rank")
    assert op.batch is not None
    ctx = OpContext(np.arange(panel.shape[0]), tuple(str(j) for j in range(panel.shape[1])), num_threads=1)
    constants = [(5,), (60,), (10**9,), (0,), (20,)]
    for (n,), out in zip(constants, op.batch(ctx, (panel,), constants)):
        np.testing.assert_array_equal(out, op.compute(ctx, panel, n))


def test_alpha158_ranks_are_one_sibling_group_and_equal_single_calls() -> None:
    registry = Kernel.load(use_env=False).registry("operator")
    operators = {name: registry.get(name) for name in registry.names(include_aliases=True)}
    market = RandomMarket(n_days=150, n_instruments=9, seed=5)
    ranks = [f"Rank($close, {d})" for d in (5, 10, 20, 30, 60)] + ["Rank($volume, 5)", "Rank($close, 0)"]
    engine = ExpressionEngine(market, operators, num_threads=2)
    groups = {tuple(str(n) for n in g) for g in sibling_groups(engine.plan(ranks).order, operators).values()}
    assert groups == {tuple(r.replace(", ", ",") for r in ranks[:5] + ranks[6:])}
    plain = {**operators, "Rank": attrs.evolve(operators["Rank"], batch=None)}
    expected = ExpressionEngine(market, plain, num_threads=1).evaluate(ranks)
    pd.testing.assert_frame_equal(engine.evaluate(ranks), expected, check_exact=True)
