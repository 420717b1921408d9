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


@pytest.fixture(scope="module")
def qlib_dumped_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture store's bars with the ``financial/`` folder written by Qlib's own ``dump_pit.py`` instead of ours."""
    store = tmp_path_factory.mktemp("qlib_dumped") / "store"
    shutil.copytree(DATA / "store", store, ignore=shutil.ignore_patterns("financial"))
    shutil.copytree(DATA / "qlib_dumped" / "financial", store / "financial")
    return store


def _open(store: Path) -> tuple[object, ExpressionEngine]:
    kernel = qcore.load_kernel(["qdata_cn", "qops"], autoload=False)
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    return provider, ExpressionEngine(provider, kernel.registry("operator"))


def test_we_read_the_records_qlibs_dump_pit_wrote(qlib_dumped_store: Path) -> None:
    """Same instruments, fields, publication dates, periods and order as reports.csv; values float32-rounded, as
    ``dump_pit.py`` stores them."""
    theirs, _ = _open(qlib_dumped_store)
    ours, _ = _open(DATA / "store")
    assert theirs.pit_fields() == ours.pit_fields() == ["bps_a", "eps_q", "roe_q"]
    symbols = sorted(ours.universe("all"))
    reports = pd.read_csv(DATA / "reports.csv")
    for field in ours.pit_fields():
        got, expected = theirs.load_pit(field, symbols), ours.load_pit(field, symbols)
        assert sorted(got) == sorted(expected) and len(got) == reports["instrument"].nunique()
        for symbol, records in expected.items():
            assert len(got[symbol]) == len(records) == ((reports["instrument"] == symbol)
                                                        & (reports["field"] == field)).sum()  # fmt: skip
            np.testing.assert_array_equal(got[symbol]["date"], records["date"])
            np.testing.assert_array_equal(got[symbol]["period"], records["period"])
            np.testing.assert_array_equal(got[symbol]["value"].astype(np.float32), records["value"].astype(np.float32))


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_values_on_qlibs_dump_pit_store_match_qlib(qlib_dumped_store: Path, golden: pd.DataFrame, name: str) -> None:
    """Every expression, on every instrument and day, on the store Qlib's ``dump_pit.py`` wrote equals the golden
    values (Qlib reading our store) up to the float32 rounding of the stored values."""
    _, engine = _open(qlib_dumped_store)
    ours = engine.evaluate({name: EXPRESSIONS[name]}, "all")[name].sort_index()
    theirs = golden[name]
    assert ours.index.equals(theirs.index)
    expected = theirs.to_numpy(dtype=np.float64)
    got = ours.to_numpy(dtype=np.float64)
    assert np.isfinite(expected).sum() > 300
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-7, equal_nan=True)
