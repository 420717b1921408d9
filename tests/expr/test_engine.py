"""The panel evaluator: shared subexpressions, warm-up, universes, errors, cache, and agreement with a slow
per-instrument pandas reference on random expressions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcore.errors import ExpressionError, QcoreError, UnknownComponentError
from qcore.expr.cache import ExpressionCache
from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from qcore.operators import Operator
from qcore.types import Panel, Span

FIELDS = ("close", "volume")


class RandomMarket:
    """Random bars with a late listing, an early delisting and suspension (NaN) runs."""

    def __init__(self, n_days: int = 80, n_instruments: int = 5, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.dates = pd.bdate_range("2020-01-01", periods=n_days)
        self.names = tuple(f"S{i}" for i in range(n_instruments))
        close = np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, n_instruments)), axis=0)).astype(np.float32)
        volume = rng.integers(1, 1000, (n_days, n_instruments)).astype(np.float32)
        self.ranges = {name: (0, n_days - 1) for name in self.names}
        self.ranges["S1"] = (12, n_days - 1)
        self.ranges["S2"] = (0, n_days - 15)
        for j, name in enumerate(self.names):
            lo, hi = self.ranges[name]
            for arr in (close, volume):
                arr[:lo, j] = np.nan
                arr[hi + 1 :, j] = np.nan
        close[30:36, 3] = np.nan
        volume[30:36, 3] = np.nan
        close[50, 0] = np.nan
        volume[50, 0] = np.nan
        self.data = {"close": close, "volume": volume}
        self.loads = 0

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        return self.dates

    def markets(self) -> list[str]:
        return ["all", "odd"]

    def universe(self, market: str = "all"):
        names = self.names if market == "all" else self.names[1::2]
        return {n: (Span(self.dates[self.ranges[n][0]], self.dates[self.ranges[n][1]]),) for n in names}

    def fields(self, freq: str = "day") -> list[str]:
        return list(FIELDS)

    def load(self, fields: Sequence[str], instruments: Sequence[str], start=None, end=None, freq="day") -> Panel:
        self.loads += 1
        lo = self.dates.searchsorted(pd.Timestamp(start))
        hi = self.dates.searchsorted(pd.Timestamp(end), "right")
        cols = [self.names.index(i) for i in instruments]
        return Panel(self.dates[lo:hi], tuple(instruments), {f: self.data[f][lo:hi][:, cols] for f in fields})

    @property
    def version(self) -> str:
        return "random-1"


@pytest.fixture(scope="module")
def operators():
    return Kernel.load(use_env=False).registry("operator")


@pytest.fixture
def market() -> RandomMarket:
    return RandomMarket()


def test_common_subexpressions_are_computed_once(market: RandomMarket, operators) -> None:
    calls: list[str] = []
    counted = {}
    for name in operators.names():
        op = operators.get(name)

        def compute(ctx, *args, _op=op):
            calls.append(_op.name)
            return _op.compute(ctx, *args)

        counted[name] = Operator(op.name, op.params, compute, op.lookback, op.description, op.instrument_param)
    engine = ExpressionEngine(market, counted)
    engine.evaluate(["$close/Ref($close, 1)-1", "Mean($close/Ref($close, 1), 5)", "Ref($close,1)"])
    assert calls.count("Ref") == 1
    assert calls.count("Div") == 1
    assert market.loads == 1


def test_concurrent_evaluation_equals_serial(market: RandomMarket, operators) -> None:
    exprs = ["Mean($close, 10)/$close", "Corr($close, Log($volume+1), 5)", "IdxMax($close, 7)", "Rank($close, 9)",
             "Quantile($close, 6, 0.8)", "CSRank(Std($close, 4))", "Ref($close, -2)/Ref($close, -1) - 1",
             "EMA($close, 0)", "Sum($close > Ref($close, 1), 5)", "Slope($volume, 6)"]
    serial = ExpressionEngine(market, operators, num_threads=1).evaluate(exprs)
    for threads in (2, 3, 8):
        concurrent = ExpressionEngine(market, operators, num_threads=threads).evaluate(exprs)
        pd.testing.assert_frame_equal(concurrent, serial)


def test_an_operator_error_on_a_worker_thread_reaches_the_caller(market: RandomMarket, operators) -> None:
    def broken(ctx, x):
        raise RuntimeError("kernel exploded")

    ops = {name: operators.get(name) for name in operators.names()}
    ops["Broken"] = Operator("Broken", ops["Abs"].params, broken, description="always fails")
    engine = ExpressionEngine(market, ops, num_threads=2)
    with pytest.raises(RuntimeError, match="kernel exploded"):
        engine.evaluate(["Mean($close, 5)", "Broken(Mean($close, 3))", "Std($close, 4)"])


def test_operators_get_inputs_in_their_dtype_converted_once(market: RandomMarket, operators) -> None:
    seen: dict[str, list[np.ndarray]] = {"A": [], "B": [], "Raw": []}

    def probe(name: str) -> Operator:
        def compute(ctx, x):
            seen[name].append(x)
            return np.asarray(x, dtype=np.float64) * 1.0

        return Operator(name, operators.get("Abs").params, compute, input_dtype=None if name == "Raw" else "float64")

    ops = {name: operators.get(name) for name in operators.names()} | {n: probe(n) for n in seen}
    engine = ExpressionEngine(market, ops, num_threads=1)
    frame = engine.evaluate(["A($close)", "B($close)", "Raw($close)", "A($close/2)", "B($close/2)"])
    assert [x.dtype for x in seen["A"] + seen["B"]] == [np.float64] * 4
    assert seen["Raw"][0].dtype == np.float32  # the field as stored
    assert seen["A"][0] is seen["B"][0] and seen["A"][1] is seen["B"][1]  # one conversion per subexpression
    np.testing.assert_array_equal(frame["A($close)"].to_numpy(), frame["Raw($close)"].to_numpy())


def test_only_an_intermediate_nothing_else_reads_is_handed_over_writable(market: RandomMarket, operators) -> None:
    writable: list[bool] = []

    def probe(ctx, x):
        writable.append(x.flags.writeable)
        return x * 1.0

    ops = {name: operators.get(name) for name in operators.names()}
    ops["P"] = Operator("P", ops["Abs"].params, probe, overwrites_input=True)
    engine = ExpressionEngine(market, ops, num_threads=1)
    exprs = ["P(Abs($close))", "P($close)", "P(Abs($volume))", "Mean(Abs($volume), 3)", "Log($close)/2 + 1"]
    frame = engine.evaluate(exprs)
    # last reader of an intermediate; a raw field; an intermediate that Mean still reads
    assert writable == [True, False, False]
    # an output is never handed over, even to its last reader: evaluate_panel keeps the very array it emitted
    panel, _ = engine.evaluate_panel(engine.plan(["Abs($close)", "P(Abs($close))"]))
    assert writable[3:] == [False]
    alone, _ = engine.evaluate_panel(engine.plan(["Abs($close)"]))
    np.testing.assert_array_equal(panel["e0"], alone["e0"])
    plain = ExpressionEngine(market, operators, num_threads=1)
    reference = plain.evaluate(["Mean(Abs($volume), 3)", "Log($close)/2 + 1"])
    pd.testing.assert_frame_equal(frame[reference.columns], reference)


def test_results_do_not_depend_on_query_start(market: RandomMarket, operators) -> None:
    engine = ExpressionEngine(market, operators)
    exprs = ["Mean($close, 10)", "EMA($close, 5)", "Sum($volume, 0)", "Ref($close, 0)", "Std(Mean($close, 3), 4)",
             "Delta($close, 0)", "EMA($close, 0)", "IdxMax($close, 0)"]
    full = engine.evaluate(exprs)
    part = engine.evaluate(exprs, start=market.dates[40])
    pd.testing.assert_frame_equal(part, full.loc[part.index])


def test_future_reads_load_extra_rows(market: RandomMarket, operators) -> None:
    engine = ExpressionEngine(market, operators)
    end = market.dates[60]
    label = engine.evaluate(["Ref($close, -2)/Ref($close, -1) - 1"], end=end)
    full = engine.evaluate(["Ref($close, -2)/Ref($close, -1) - 1"])
    pd.testing.assert_frame_equal(label, full.loc[label.index])
    assert label.loc[end].notna().any().all()


def test_rows_follow_universe_membership(market: RandomMarket, operators) -> None:
    frame = ExpressionEngine(market, operators).evaluate(["$close"], "odd")
    assert set(frame.index.get_level_values("instrument")) == {"S1", "S3"}
    s1 = frame.xs("S1", level="instrument")
    assert s1.index[0] == market.dates[12]


def test_cross_sectional_ops_rank_members_only(market: RandomMarket, operators) -> None:
    engine = ExpressionEngine(market, operators)
    frame = engine.evaluate({"r": "CSRank($close)", "z": "CSZScore($close)"})
    day = frame.xs(market.dates[5], level="datetime")
    expected = day["r"].index.map(dict(zip(day.index, market.data["close"][5][[0, 2, 3, 4]])))
    ranks = pd.Series(np.asarray(expected), index=day.index).rank(pct=True)
    np.testing.assert_allclose(day["r"], ranks, rtol=1e-6)
    assert abs(day["z"].mean()) < 1e-6


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("Maen($close, 5)", "unknown operator 'Maen'; did you mean 'Mean' or 'CSMean'?", 0),
        ("Mean($clsoe, 5)", "unknown field '$clsoe'; did you mean '$close'?", 5),
        ("Mean($close)", "Mean is missing argument 'N' (Mean(x: expr, N: number))", 0),
        ("Mean($close, $volume)", "Mean argument 'N' must be a constant number, not an expression", 13),
        ("Skew($close, 2)", "Skew: window N must be >= 3 (or 0 for expanding), got 2", 0),
        ("Ref($close, 1.5)", "Ref argument 'N' must be a int, got 1.5", 12),
        ("Mean($close, -3)", "Mean: window N must be 0 (expanding) or a positive integer, got -3", 0),
        ("Abs('x')", "Abs argument 'x' must be an expression", 4),
    ],
)
def test_malformed_calls_point_at_the_problem(market, operators, expression, message, position) -> None:
    with pytest.raises(ExpressionError) as info:
        ExpressionEngine(market, operators).plan([expression])
    assert info.value.message == message
    assert info.value.position == position


def test_unknown_market_and_instruments(market, operators) -> None:
    engine = ExpressionEngine(market, operators)
    with pytest.raises(UnknownComponentError, match="unknown market 'od'; did you mean 'odd'"):
        engine.evaluate(["$close"], "od")
    with pytest.raises(QcoreError, match="unknown instruments: X1"):
        engine.evaluate(["$close"], ["S0", "X1"])


def test_cache_hits_and_invalidates(market, operators, tmp_path) -> None:
    cache = ExpressionCache(tmp_path / "cache")
    engine = ExpressionEngine(market, operators, cache=cache)
    first = engine.evaluate(["Mean($close, 5)", "Std($volume, 10)"])
    loads = market.loads
    second = engine.evaluate(["Std($volume, 10)", "Mean($close, 5)"])
    assert market.loads == loads and cache.hits == 2
    pd.testing.assert_frame_equal(second[first.columns], first)
    partial = engine.evaluate(["Mean($close, 5)", "Max($close, 3)"])
    assert market.loads == loads + 1
    pd.testing.assert_series_equal(partial["Mean($close, 5)"], first["Mean($close, 5)"])
    market.data["close"] = market.data["close"] * np.float32(2)
    type(market).version = property(lambda self: "random-2")
    try:
        changed = engine.evaluate(["Mean($close, 5)"])
        np.testing.assert_allclose(changed.iloc[:, 0], first["Mean($close, 5)"] * 2, rtol=1e-6)
        assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 1
    finally:
        type(market).version = property(lambda self: "random-1")


# ---------------------------------------------------------------------------------------------------------------
# Random expressions against a slow reference: pandas per instrument over its own data range, as Qlib computes.
# ---------------------------------------------------------------------------------------------------------------

ROLLING = {
    "Mean": lambda s, n: s.rolling(n, min_periods=1).mean(),
    "Sum": lambda s, n: s.rolling(n, min_periods=1).sum(),
    "Std": lambda s, n: s.rolling(n, min_periods=1).std(),
    "Max": lambda s, n: s.rolling(n, min_periods=1).max(),
    "Min": lambda s, n: s.rolling(n, min_periods=1).min(),
    "Count": lambda s, n: s.rolling(n, min_periods=1).count(),
    "Med": lambda s, n: s.rolling(n, min_periods=1).median(),
    "Rank": lambda s, n: s.rolling(n, min_periods=1).rank(pct=True),
    "IdxMax": lambda s, n: s.rolling(n, min_periods=1).apply(lambda a: a.argmax() + 1, raw=True),
    "Delta": lambda s, n: s - s.shift(n),
    "Ref": lambda s, n: s.shift(n),
    "EMA": lambda s, n: s.ewm(span=n, min_periods=1).mean(),
}
BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Greater": np.maximum, "Less": np.minimum}


def reference(node, frame: pd.DataFrame) -> pd.Series:
    kind = node[0]
    if kind == "field":
        # fields stay float32 through element-wise arithmetic, as in the engine (and Qlib); rolling windows
        # compute in float64. Rounding then makes the same ties on both sides.
        return frame[node[1]]
    if kind == "abs":
        return reference(node[1], frame).abs()
    if kind in BINARY:
        return pd.Series(BINARY[kind](reference(node[1], frame), reference(node[2], frame)), index=frame.index)
    if kind == "Gt":
        return (reference(node[1], frame) > reference(node[2], frame)).astype(np.float64)
    return ROLLING[kind](reference(node[1], frame), node[2])


def text(node) -> str:
    kind = node[0]
    if kind == "field":
        return f"${node[1]}"
    if kind == "abs":
        return f"Abs({text(node[1])})"
    if kind in BINARY or kind == "Gt":
        return f"{kind}({text(node[1])}, {text(node[2])})"
    return f"{kind}({text(node[1])}, {node[2]})"


#: Operators whose output has plateaus or exact ties (or ranks/orders its input): applied only at the top, over
#: "smooth" subtrees, because ranking values that are equal up to rounding compares the rounding of two different
#: algorithms, not the operators.
TIE_MAKERS = ("Rank", "IdxMax", "Med", "Max", "Min", "Count")
SMOOTH = sorted(set(ROLLING) - set(TIE_MAKERS))

leaves = st.sampled_from([("field", "close"), ("field", "volume")])
smooth = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.just("abs"), inner),
        st.tuples(st.sampled_from(sorted(BINARY)), inner, inner),
        st.tuples(st.sampled_from(SMOOTH), inner, st.integers(1, 12)),
    ),
    max_leaves=4,
)
trees = st.one_of(
    smooth,
    st.tuples(st.sampled_from(TIE_MAKERS), smooth, st.integers(1, 12)),
    st.tuples(st.just("Gt"), smooth, smooth),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_random_expressions_match_reference(tree, operators) -> None:
    market = RandomMarket()
    engine = ExpressionEngine(market, operators)
    ours = engine.evaluate([text(tree)])
    for name in market.names:
        lo, hi = market.ranges[name]
        j = market.names.index(name)
        frame = pd.DataFrame({f: market.data[f][lo : hi + 1, j] for f in FIELDS}, index=market.dates[lo : hi + 1])
        expected = reference(tree, frame).to_numpy(dtype=np.float32)
        got = ours.xs(name, level="instrument").iloc[:, 0].to_numpy()
        if tree[0] == "Gt":  # a comparison of two near-equal values compares rounding, not semantics
            left, right = reference(tree[1], frame).to_numpy(), reference(tree[2], frame).to_numpy()
            decided = ~(np.abs(left - right) <= 1e-4 * np.maximum(np.abs(left), np.abs(right)))
            got, expected = got[decided], expected[decided]
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-5, equal_nan=True, err_msg=text(tree))
