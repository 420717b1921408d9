"""Sibling batching (one ``Operator.batch`` call for calls that differ only in constants) and the output block."""

from __future__ import annotations

import mmap

import attrs
import numpy as np
import pandas as pd
import pytest

from qcore.errors import QcoreError
from qcore.expr.engine import ExpressionEngine
from qcore.expr.evaluation import output_block, sibling_groups
from qcore.expr.schedule import grouped_order
from qcore.kernel import Kernel
from qcore.operators import Operator, Param
from tests.expr.test_engine import RandomMarket

QUANTILES = ["Quantile($close, 6, 0.8)/$close", "Quantile($close, 6, 0.2)/$close", "Quantile($close, 9, 0.8)",
             "Quantile($close, 9, 0.5)", "Quantile($volume, 6, 0.8)", "Quantile($close, 0, 0.3)",
             "Quantile($close, 500, 0.7)", "Quantile($close + 1, 6, 0.2)"]  # fmt: skip


@pytest.fixture(scope="module")
def operators() -> dict[str, Operator]:
    registry = Kernel.load(use_env=False).registry("operator")
    return {name: registry.get(name) for name in registry.names(include_aliases=True)}


@pytest.fixture(scope="module")
def market() -> RandomMarket:
    return RandomMarket(n_days=120, n_instruments=7, seed=3)


def _add_constant(log: list[tuple[str, int]]) -> Operator:
    """A third party's operator ``AddK(x, k)`` that opts in to batching and logs every call."""

    def compute(ctx, x, k):
        log.append(("compute", 1))
        return np.asarray(x, dtype=np.float64) + k

    def batch(ctx, series, constants):
        log.append(("batch", len(constants)))
        (x,) = series
        return [np.asarray(x, dtype=np.float64) + k for (k,) in constants]

    return Operator("AddK", (Param("x", "expr"), Param("k", "number")), compute, batch=batch)


def test_a_third_party_operator_gets_its_siblings_in_one_batch_call(market, operators) -> None:
    log: list[tuple[str, int]] = []
    engine = ExpressionEngine(market, {**operators, "AddK": _add_constant(log)}, num_threads=1)
    frame = engine.evaluate(["AddK($close, 1)", "AddK($close, 2.5)", "AddK($volume, 1)", "AddK($close, -1)"])
    assert sorted(log) == [("batch", 3), ("compute", 1)]
    close = engine.evaluate(["$close", "$volume"])
    for column, base, k in (("AddK($close, 1)", "$close", 1), ("AddK($close, 2.5)", "$close", 2.5),
                            ("AddK($volume, 1)", "$volume", 1), ("AddK($close, -1)", "$close", -1)):  # fmt: skip
        expected = (close[base].astype(np.float64) + k).astype(np.float32)
        np.testing.assert_array_equal(frame[column].to_numpy(), expected.to_numpy())


def test_siblings_are_grouped_by_operator_and_series_only(market, operators) -> None:
    engine = ExpressionEngine(market, operators)
    plan = engine.plan([*QUANTILES, "Mean($close, 5)", "Mean($close, 10)"])
    groups = {tuple(str(n).replace(",", ", ") for n in g) for g in sibling_groups(plan.order, operators).values()}
    assert groups == {("Quantile($close, 6, 0.8)", "Quantile($close, 6, 0.2)"),
                      ("Quantile($close, 9, 0.8)", "Quantile($close, 9, 0.5)")}
    # Mean declares no batch; Quantile batches per window (batch_shared=("N",)); Quantile($volume...) and
    # Quantile($close + 1...) have no sibling
    unshared = {**operators, "Quantile": attrs.evolve(operators["Quantile"], batch_shared=())}
    groups = {len(g) for g in sibling_groups(plan.order, unshared).values()}
    assert groups == {6}


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("shared", [("N",), ()])
def test_batched_quantiles_equal_one_call_each_bit_for_bit(market, operators, threads, shared) -> None:
    plain = {**operators, "Quantile": attrs.evolve(operators["Quantile"], batch=None)}
    expected = ExpressionEngine(market, plain, num_threads=1).evaluate(QUANTILES)
    batched = {**operators, "Quantile": attrs.evolve(operators["Quantile"], batch_shared=shared)}
    got = ExpressionEngine(market, batched, num_threads=threads).evaluate(QUANTILES)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_a_batch_returning_the_wrong_count_is_an_error(market, operators) -> None:
    broken = attrs.evolve(_add_constant([]), batch=lambda ctx, series, constants: [series[0]])
    engine = ExpressionEngine(market, {**operators, "AddK": broken}, num_threads=1)
    with pytest.raises(QcoreError, match="batch returned 1 arrays for 2 calls"):
        engine.evaluate(["AddK($close, 1)", "AddK($close, 2)"])


def test_a_batch_output_is_blanked_outside_the_data_range_like_compute(market, operators) -> None:
    # Count-like output (fills missing): a value would appear before S1 lists; the engine blanks it per sibling
    def fill(ctx, x, k):
        return np.full(np.shape(x), float(k))

    def fill_batch(ctx, series, constants):
        return [fill(ctx, series[0], k) for (k,) in constants]

    op = Operator("Fill", (Param("x", "expr"), Param("k", "number")), fill, fills_missing=True, batch=fill_batch)
    frame = ExpressionEngine(market, {**operators, "Fill": op}).evaluate(["Fill($close, 1)", "Fill($close, 2)"])
    single = ExpressionEngine(market, {**operators, "Fill": attrs.evolve(op, batch=None)}).evaluate(
        ["Fill($close, 1)", "Fill($close, 2)"])
    pd.testing.assert_frame_equal(frame, single, check_exact=True)


def test_the_output_block_is_plain_zeroed_column_major_float32() -> None:
    block = output_block(1000, 3)
    assert block.shape == (1000, 3) and block.dtype == np.float32
    assert block.flags.f_contiguous and block.flags.writeable and not block.any()
    assert output_block(0, 2).shape == (0, 2)


def test_evaluate_returns_a_frame_over_the_gathered_block_without_a_copy(market, operators) -> None:
    frame = ExpressionEngine(market, operators).evaluate(["$close", "Mean($close, 3)"])
    values = frame.to_numpy(copy=False)
    base = values
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    assert isinstance(base, mmap.mmap)  # the block the expressions were gathered into, not a copy of it


def test_expressions_reading_one_batch_run_one_after_another(market, operators) -> None:
    exprs = ["Quantile($close, 6, 0.8)/$close", "Mean($close, 3)", "Std($volume, 4)", "Quantile($close, 6, 0.2)/$close",
             "Quantile($close, 9, 0.8)", "Sum($close, 2)", "Quantile($close, 9, 0.2)"]  # fmt: skip
    engine = ExpressionEngine(market, operators)
    plan = engine.plan(exprs)
    groups = sibling_groups(plan.order, operators)
    order = grouped_order(plan.order, plan.roots, groups)
    assert sorted(map(str, order)) == sorted(map(str, plan.order))
    position = {node: k for k, node in enumerate(order)}
    for node in order:  # still topological
        assert all(position[a] < position[node] for a in node.args if a in position)
    texts = [str(n).replace(",", ", ") for n in order]
    first = texts.index("Quantile($close, 6, 0.8)")
    assert texts[first:first + 4] == ["Quantile($close, 6, 0.8)", "Div(Quantile($close, 6, 0.8), $close)",
                                      "Quantile($close, 6, 0.2)", "Div(Quantile($close, 6, 0.2), $close)"]
    assert grouped_order(plan.order, plan.roots, {}) == plan.order
