"""Parity with Qlib: every golden expression evaluated by qcore agrees with the values Qlib returned.

The golden store, expressions and values come from ``shared/golden`` (copied into ``tests/data``). For each
expression: NaN positions are identical, infinities match, and at least 99.9% of finite cells agree within a
relative 1e-4 (plus a 1e-6 absolute floor for values that are zero up to float32 noise). Documented exceptions
are listed in ``KNOWN_DIFFERENCES`` with the reason.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from tests.parity import compare, read_golden

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "golden"
STORE = DATA / "golden_market"

#: Expressions whose Qlib values we knowingly do not reproduce, with the reason (also in the README).
KNOWN_DIFFERENCES: dict[str, str] = {}


def expressions() -> dict[str, str]:
    with open(GOLDEN / "expressions.csv", newline="") as handle:
        return {row["name"]: row["expression"] for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def ours() -> pd.DataFrame:
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(STORE))
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    frame = engine.evaluate(expressions(), "all")
    return frame.swaplevel().sort_index()


@pytest.fixture(scope="module")
def golden() -> pd.DataFrame:
    return read_golden("expr_values.parquet", ("instrument", "datetime"))


def test_rows_match(ours: pd.DataFrame, golden: pd.DataFrame) -> None:
    assert ours.index.equals(golden.index)


@pytest.mark.parametrize("name", list(expressions()))
def test_expression_matches_qlib(name: str, ours: pd.DataFrame, golden: pd.DataFrame) -> None:
    if name in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[name])
    mine = ours[name].reindex(golden.index).to_numpy()
    theirs = golden[name].to_numpy()
    mismatches, finite, share = compare(mine, theirs)
    assert mismatches == 0, f"{name}: {mismatches} NaN/inf positions differ"
    assert share >= 0.999, f"{name}: only {share:.4%} of {finite} finite cells agree"


def test_universe_membership_matches_qlib() -> None:
    """csi_like: rows only inside membership spans, while windows still use history outside them."""
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(STORE))
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    exprs = {"close": "$close", "mean_close_5": "Mean($close, 5)", "label0": "Ref($close, -2)/Ref($close, -1)-1"}
    mine = engine.evaluate(exprs, "csi_like").swaplevel().sort_index()
    theirs = read_golden("csi_like_values.parquet", ("instrument", "datetime"))
    assert mine.index.equals(theirs.index)
    for column in exprs:
        mismatches, _, share = compare(mine[column].to_numpy(), theirs[column].to_numpy())
        assert mismatches == 0 and share >= 0.999, column
