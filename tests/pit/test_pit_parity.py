"""Parity with Qlib 0.9.7 on a PIT store written by our importer (fixtures: tests/data/pit/make_golden.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qcore
from qcore.expr.engine import ExpressionEngine
from tests.parity import load_script

DATA = Path(__file__).resolve().parents[1] / "data" / "pit"
EXPRESSIONS = load_script(DATA / "make_golden.py", "pit_make_golden").EXPRESSIONS


@pytest.fixture(scope="module")
def engine() -> ExpressionEngine:
    kernel = qcore.load_kernel(["qdata_cn", "qops"], autoload=False)
    provider = qcore.open_provider("qlib_bin", provider_uri=str(DATA / "store"), kernel=kernel)
    return ExpressionEngine(provider, kernel.registry("operator"))


@pytest.fixture(scope="module")
def golden() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "golden.csv", parse_dates=["datetime"]).set_index(["datetime", "instrument"])
    return frame.sort_index()


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_values_match_qlib_on_every_instrument_and_day(engine: ExpressionEngine, golden: pd.DataFrame,
                                                       name: str) -> None:  # fmt: skip
    ours = engine.evaluate({name: EXPRESSIONS[name]}, "all")[name].sort_index()
    theirs = golden[name]
    assert ours.index.equals(theirs.index)
    expected = theirs.to_numpy(dtype=np.float64)
    got = ours.to_numpy(dtype=np.float64)
    assert np.isfinite(expected).sum() > 300  # the fixture exercises real values, not NaN alone
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=2e-6, equal_nan=True)


def test_importer_rewrites_the_committed_pit_files_byte_for_byte(tmp_path: Path) -> None:
    """The store Qlib read for the golden values is exactly what our importer writes from reports.csv."""
    from qdata_cn.pit_import import import_pit

    store = tmp_path / "store"
    shutil.copytree(DATA / "store", store, ignore=shutil.ignore_patterns("financial"))
    import_pit(DATA / "reports.csv", store)
    committed = sorted(p.relative_to(DATA / "store") for p in (DATA / "store" / "financial").rglob("*") if p.is_file())
    written = sorted(p.relative_to(store) for p in (store / "financial").rglob("*") if p.is_file())
    assert committed == written and len(written) >= 10
    for rel in written:
        assert (store / rel).read_bytes() == (DATA / "store" / rel).read_bytes(), rel
