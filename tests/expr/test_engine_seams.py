"""The engine's three seams on their own: planning (:mod:`qcore.expr.planning`), scheduling
(:mod:`qcore.expr.schedule`) and evaluation (:mod:`qcore.expr.evaluation`), each usable without the others."""

from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd
import pytest

from qcore.errors import ExpressionError, QcoreError
from qcore.expr.ast import Call, Field
from qcore.expr.evaluation import FrameGather, GraphEvaluator
from qcore.expr.parser import parse
from qcore.expr.planning import OPT_IN_HINT, Plan, Planner, sub_plan, subset
from qcore.expr.schedule import Grid, load_window, query_grid, run_concurrently, run_symbols
from qcore.kernel import Kernel
from tests.expr.test_engine import RandomMarket


@pytest.fixture(scope="module")
def operators() -> dict:
    registry = Kernel.load(use_env=False).registry("operator")
    return {name: registry.get(name) for name in registry.names(include_aliases=True)}


@pytest.fixture
def market() -> RandomMarket:
    return RandomMarket()


# -- planning ------------------------------------------------------------------------------------------------------


def test_a_plan_shares_subexpressions_and_measures_its_window(market: RandomMarket, operators: dict) -> None:
    planner = Planner(market, operators, market.fields())
    plan, absent = planner.plan({"a": "Mean($close, 5) / Ref($close, 1)", "b": "Ref($close, 1) + Ref($close, -2)"})
    assert absent == {} and plan.names == ("a", "b") and plan.fields == ("close",)
    assert sum(1 for node in plan.order if str(node) == "Ref($close,1)") == 1
    assert plan.extents == ((4.0, 0.0), (1.0, 2.0)) and (plan.left, plan.right) == (4.0, 2.0)
    # the look-ahead call and what it reads are blanked outside each instrument's data range
    assert {str(n) for n in plan.blank_outside} == {"Ref($close,-2)", "$close", "-2"}
    assert market.loads == 0  # planning reads no data


def test_planning_names_missing_fields_or_refuses_them(market: RandomMarket, operators: dict) -> None:
    lenient = Planner(market, operators, market.fields(), "nan")
    plan, absent = lenient.plan({"x": "$vwap / $close", "y": "Mean($vwap, 3)", "z": "$volume"})
    assert absent == {"vwap": ["x", "y"]} and plan.missing == ("vwap",)
    with pytest.raises(ExpressionError) as info:
        Planner(market, operators, market.fields()).plan(["$vwap"])
    assert info.value.message.endswith(OPT_IN_HINT)
    with pytest.raises(QcoreError, match="missing_fields must be one of error, nan"):
        Planner(market, operators, market.fields(), "zero")


def test_a_subset_and_a_sub_plan_keep_only_what_their_roots_need(market: RandomMarket, operators: dict) -> None:
    plan, _ = Planner(market, operators, market.fields()).plan(["Mean($close, 20)", "Ref($volume, 1)"])
    part = subset(plan, [1])
    assert part.names == ("Ref($volume, 1)",) and part.fields == ("volume",) and part.left == 1.0
    assert [str(n) for n in part.order] == ["Ref($volume,1)"]
    roots = (parse("Mean($close, 3)"), Field("volume"))
    inner = sub_plan(roots)
    assert isinstance(inner, Plan) and inner.extents == ((0.0, 0.0), (0.0, 0.0)) and inner.fields == ("close", "volume")
    assert all(isinstance(n, Call) for n in inner.order) and set(inner.order) <= inner.blank_outside


# -- scheduling ----------------------------------------------------------------------------------------------------


def _grid(lo: int, hi: int) -> Grid:
    dates = pd.bdate_range("2020-01-01", periods=hi - lo + 1)
    return Grid(lo, hi, dates, ("A",), {})


def _plan(left: float, right: float) -> Plan:
    return Plan(("x",), (Field("close"),), (), ("close",), ((left, right),))


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (5.0, 2.0, (5, 22, slice(5, 16))),
        (50.0, 0.0, (0, 20, slice(10, 21))),  # clamped at the calendar's first row
        (0.0, 50.0, (10, 29, slice(0, 11))),  # and at its last
        (math.inf, 0.0, (0, 20, slice(10, 21))),  # expanding windows read all history
        (0.0, math.inf, (10, 29, slice(0, 11))),
    ],
)
def test_the_load_window_covers_warm_up_and_look_ahead(left: float, right: float, expected: tuple) -> None:
    window = load_window(_plan(left, right), _grid(10, 20), 30)
    assert (window.load_lo, window.load_hi, window.keep) == expected
    assert window.keep.stop - window.keep.start == 11  # the query's rows, whatever was loaded around them


def test_cross_sectional_history_runs_over_every_member_of_the_market(market: RandomMarket, operators: dict) -> None:
    planner = Planner(market, operators, market.fields())
    grid = query_grid(market, "day", "all", market.dates[70], market.dates[-1])
    assert "S2" not in grid.symbols  # delisted before the query start
    start, end = market.dates[0], market.dates[-1]
    ranked, _ = planner.plan(["CSRank(Mean($close, 60))"])
    assert "S2" in run_symbols(ranked, operators, market, "all", grid.symbols, start, end)
    plain, _ = planner.plan(["Mean($close, 60)"])
    assert run_symbols(plain, operators, market, "all", grid.symbols, start, end) == grid.symbols
    assert run_symbols(ranked, operators, market, list(grid.symbols), grid.symbols, start, end) == grid.symbols


def test_nodes_run_after_their_inputs_and_the_first_error_is_raised(market: RandomMarket, operators: dict) -> None:
    plan, _ = Planner(market, operators, market.fields()).plan(["Mean(Ref($close, 1), 3) + Ref($volume, 2)"])
    finished: list[Call] = []
    lock = threading.Lock()

    def compute(node: Call) -> np.ndarray:
        with lock:
            assert all(arg in finished for arg in node.args if isinstance(arg, Call)), node
        return np.zeros(1)

    done = list(run_concurrently(plan.order, compute, lambda node, _: finished.append(node), workers=2))
    assert sorted(map(str, done)) == sorted(map(str, plan.order)) and len(done) == len(plan.order)

    def failing(node: Call) -> np.ndarray:
        if node.op == "Mean":
            raise ValueError("boom")
        return np.zeros(1)

    with pytest.raises(ValueError, match="boom"):
        list(run_concurrently(plan.order, failing, lambda node, _: None, workers=2))


# -- evaluation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_the_graph_evaluator_runs_a_plan_on_loaded_rows(market: RandomMarket, operators: dict, threads: int) -> None:
    plan, _ = Planner(market, operators, market.fields()).plan(["Ref($close, 1)", "$volume", "2"])
    evaluator = GraphEvaluator(market, operators, "day", set(market.fields()), num_threads=threads)
    out: dict[int, np.ndarray] = {}
    evaluator.run(plan, market.names, market.dates, "all", out.__setitem__)
    close, volume = market.data["close"], market.data["volume"]
    np.testing.assert_array_equal(out[0][1:], close[:-1])
    assert np.isnan(out[0][0]).all()
    np.testing.assert_array_equal(out[1], volume)
    assert out[2].shape == close.shape and (out[2] == 2).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_an_output_only_call_may_round_into_the_stored_dtype(market: RandomMarket, operators: dict,
                                                             threads: int) -> None:
    """A root no other node reads is computed with ``OpContext.out_dtype`` set to the dtype its output is stored in
    (float32 for a frame): element-wise arithmetic then rounds once into float32, the same bits as computing in
    float64 and rounding afterwards; a node another reads, and a run that keeps computed dtypes, see None."""
    import attrs

    from qcore.expr.engine import ExpressionEngine

    seen: dict[str, object] = {}
    div = operators["Div"]

    def spy(ctx, x, y):
        seen[f"{np.asarray(x).dtype}/{np.asarray(y).dtype}@{ctx.out_dtype}"] = ctx.out_dtype
        return div.compute(ctx, x, y)

    spied = {**operators, "Div": attrs.evolve(div, compute=spy)}
    exprs = {"root": "Mean($close, 5) / $close", "inner": "Mean($close, 5) / $close + 1",
             "narrow": "Std($close, 10) / Mean($volume, 3)"}
    frame = ExpressionEngine(market, spied, num_threads=threads).evaluate(exprs)
    assert seen == {"float64/float64@float32": np.dtype(np.float32), "float64/float64@None": None}
    engine = ExpressionEngine(market, operators, num_threads=threads)
    seen.clear()
    panel, mask = ExpressionEngine(market, spied, num_threads=threads).evaluate_panel(engine.plan(exprs), dtype=None)
    assert set(seen.values()) == {None} and panel["e0"].dtype == np.float64
    for i, name in enumerate(exprs):  # the frame's cells are the wide results rounded, bit for bit
        wide = panel[f"e{i}"].astype(np.float32)[mask]
        np.testing.assert_array_equal(frame[name].to_numpy().view(np.int32), wide.view(np.int32))


def test_frame_gather_writes_either_order(market: RandomMarket) -> None:
    grid = query_grid(market, "day", "odd", market.dates[5], market.dates[9])
    panel = np.arange(len(grid.dates) * len(grid.symbols), dtype=np.float64).reshape(len(grid.dates), -1)
    frames = {}
    for index in ("datetime", "instrument"):
        gather = FrameGather(grid, ["v"], index)
        gather.emit(0, panel)
        frames[index] = gather.frame()
    by_date, by_symbol = frames["datetime"], frames["instrument"]
    assert by_date.index.names == ["datetime", "instrument"] and by_symbol.index.names == ["instrument", "datetime"]
    assert by_symbol.index.is_monotonic_increasing and by_date.index.is_monotonic_increasing
    assert by_date["v"].dtype == np.float32
    pd.testing.assert_series_equal(by_date["v"].sort_index(), by_symbol["v"].swaplevel().sort_index())
    with pytest.raises(ValueError, match="index must be 'datetime' or 'instrument'"):
        FrameGather(grid, ["v"], "date")
