"""P/PRef on our store: leakage, revisions, refusals; the importer's atomicity and bad-input discipline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qdata_cn.pit import decode_pit, encode_pit
from qdata_cn.pit_import import import_pit

import qcore
from qcore.errors import DataError, ExpressionError
from qcore.expr.engine import ExpressionEngine
from qcore.protocols import PIT_RECORD, PointInTimeProvider

DATA = Path(__file__).resolve().parents[1] / "data" / "pit"
HEADER = "instrument,date,period,field,value\n"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The parity store's bars, without period data."""
    out = tmp_path / "store"
    shutil.copytree(DATA / "store", out, ignore=shutil.ignore_patterns("financial"))
    return out


def _engine(store: Path, threads: int = 1) -> ExpressionEngine:
    kernel = qcore.load_kernel(["qdata_cn", "qops"], autoload=False)
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    return ExpressionEngine(provider, kernel.registry("operator"), num_threads=threads)


def _csv(tmp_path: Path, text: str, name: str = "pit.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + text)
    return path


def _series(store: Path, expression: str, symbol: str = "SH600572") -> pd.Series:
    frame = _engine(store).evaluate({"v": expression}, [symbol])
    return frame["v"].xs(symbol, level="instrument")


def test_revisions_and_publication_days(store: Path, tmp_path: Path) -> None:
    import_pit(_csv(tmp_path, "SH600572,2019-03-04,201804,eps_q,1\nSH600572,2019-04-29,201901,eps_q,2\n"
                              "SH600572,2019-05-13,201901,eps_q,2.5\nSH600572,2019-07-30,201902,eps_q,3\n"), store)
    p = _series(store, "P($$eps_q)")
    assert np.isnan(p[:"2019-03-01"]).all()
    assert (p["2019-03-04":"2019-04-26"] == 1).all()  # known on its publication day
    assert (p["2019-04-29":"2019-05-10"] == 2).all()
    assert (p["2019-05-13":"2019-07-29"] == 2.5).all()  # the amendment replaces the first figure
    assert (p["2019-07-30":] == 3).all()
    ref = _series(store, "PRef($$eps_q, 201901)")
    assert np.isnan(ref[:"2019-04-26"]).all() and (ref["2019-05-13":] == 2.5).all()
    change = _series(store, "P($$eps_q - Ref($$eps_q, 1))")
    assert change["2019-05-13"] == pytest.approx(1.5) and change["2019-07-30"] == pytest.approx(0.5)


def test_amending_after_t_changes_nothing_at_or_before_t(store: Path, tmp_path: Path) -> None:
    reports = pd.read_csv(DATA / "reports.csv")
    import_pit(DATA / "reports.csv", store)
    expressions = {"a": "P($$eps_q)", "b": "P(Mean($$eps_q, 4))", "c": "PRef($$eps_q, 201903)",
                   "d": "P($$eps_q)/$close", "e": "P($$bps_a)"}  # fmt: skip
    before = _engine(store).evaluate(expressions, "all")
    t = pd.Timestamp("2019-09-16")
    amend = reports[reports["field"].isin(["eps_q", "bps_a"])].drop_duplicates(["instrument", "field", "period"])
    amend["date"] = "2019-09-17"  # every figure (future periods too) re-published, changed, the day after t
    amend["value"] = amend["value"] * 3 + 1
    amend.to_csv(tmp_path / "amend.csv", index=False)
    import_pit(tmp_path / "amend.csv", store)
    after = _engine(store).evaluate(expressions, "all")
    dates = before.index.get_level_values("datetime")
    pd.testing.assert_frame_equal(before[dates <= t], after[dates <= t])
    changed = ~np.isclose(before[dates > t].to_numpy(), after[dates > t].to_numpy(), equal_nan=True)
    assert changed.any(axis=0).all()  # every expression sees the amendments afterwards


def test_results_do_not_depend_on_threads_or_query_start(store: Path) -> None:
    import_pit(DATA / "reports.csv", store)
    expressions = {"a": "P(Mean($$eps_q, 4))", "b": "Ref(P($$roe_q), 3) + PRef($$eps_q, 201902)"}
    one = _engine(store, 1).evaluate(expressions, "all")
    two = _engine(store, 2).evaluate(expressions, "all")
    pd.testing.assert_frame_equal(one, two)
    late = _engine(store, 2).evaluate(expressions, "all", start="2019-10-08")
    pd.testing.assert_frame_equal(late, one.loc["2019-10-08":])


@pytest.mark.parametrize(("expression", "message"), [
    ("Ref($$eps_q, -1)", "is a point-in-time period field: read it on trading days through P($$eps_q)"),
    ("P(Ref($$eps_q, -1))", "cannot refer to future periods"),
    ("P($$eps_q + $close)", "the daily field '$close' cannot be read inside it"),
    ("P($$epz_q)", "unknown period field '$$epz_q'; did you mean $$eps_q"),
    ("P($$eps_q / $$bps_a)", "mixes quarterly and annual"),
    ("PRef($$eps_q, 2019)", "PRef period must be a quarter YYYYQQ"),
    ("PRef($$bps_a, 201903)", "PRef period must be a year YYYY"),
    ("P(CSRank($$eps_q))", "reads other instruments"),
    ("P(P($$eps_q))", "cannot be nested"),
    ("P(EMA($$eps_q, 3))", "windows over all periods"),
    ("P(5)", "must read a period field"),
    ("P($$eps_q, 2)", "P takes 1 argument"),
])
def test_refusals_name_the_problem(store: Path, expression: str, message: str) -> None:
    import_pit(DATA / "reports.csv", store)
    with pytest.raises(ExpressionError, match=None) as caught:
        _engine(store).plan([expression])
    assert message in caught.value.message


def test_store_without_period_data(store: Path) -> None:
    engine = _engine(store)
    assert isinstance(engine.provider, PointInTimeProvider) and engine.provider.pit_fields() == []
    with pytest.raises(ExpressionError, match="unknown period field"):
        engine.plan(["P($$eps_q)"])


def test_cache_version_changes_with_period_data(store: Path) -> None:
    engine = _engine(store)
    before = engine.provider.version
    import_pit(DATA / "reports.csv", store)
    assert engine.provider.version != before


def test_encode_decode_round_trip_and_links() -> None:
    records = np.array([(20190301, 201804, 1.0), (20190301, 201901, 9.0), (20190420, 201901, 2.0),
                        (20190425, 201804, 1.5), (20190801, 201902, 3.0)], dtype=PIT_RECORD)  # fmt: skip
    data, index = encode_pit(records, quarterly=True)
    assert len(data) == 5 * 20
    stored = np.frombuffer(data, dtype=[("date", "<u4"), ("period", "<u4"), ("value", "<f8"), ("_next", "<u4")])
    assert stored["_next"].tolist() == [60, 40, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF]
    first_year, *offsets = np.frombuffer(index, dtype="<u4").tolist()
    assert first_year == 2018 and offsets == [0xFFFFFFFF] * 3 + [0, 20, 80]  # 2018Q1..Q3 absent, Q4, 2019Q1, Q2
    back = decode_pit(data, "x.data", quarterly=True)
    assert back.tolist() == records.tolist()
    with pytest.raises(DataError, match="not in PIT order"):
        decode_pit(data[:40] + data[60:80] + data[40:60], "x.data", quarterly=True)
    with pytest.raises(DataError, match="whole number"):
        decode_pit(data[:-1], "x.data", quarterly=True)


@pytest.mark.parametrize(("rows", "message", "line"), [
    ("SH600572,2019-13-01,201901,eps_q,1\n", "is not a day", 2),
    ("SH600572,2019-05-01,201901,eps_q,1\nSH600572,2019-05-01,2019Q5,eps_q,1\n", "is not a quarter", 3),
    ("SH600572,2019-05-01,2019,eps_q,1\n", "quarterly (_q) field needs a quarter", 2),
    ("SH600572,2019-05-01,201901,eps_a,1\n", "annual (_a) field needs a year", 2),
    ("SH600572,2019-05-01,201901,eps,1\n", "must be a name ending in '_q'", 2),
    ("SH600572,2019-05-01,201901,eps_q,abc\n", "is not a finite number", 2),
    ("SH600572,2019-05-01,201901,eps_q,1\nSH600572,2019-05-01,2019Q1,eps_q,2\n", "is given twice", 3),
    ("../x,2019-05-01,201901,eps_q,1\n", "", 2),
])
def test_bad_input_is_named_by_file_and_line_and_writes_nothing(store: Path, tmp_path: Path, rows: str,
                                                                message: str, line: int) -> None:  # fmt: skip
    src = _csv(tmp_path, "SH600572,2019-04-01,201804,eps_q,1\n" + rows)
    with pytest.raises(DataError) as caught:
        import_pit(src, store)
    assert caught.value.path == str(src) and caught.value.row == line + 1
    assert message in caught.value.message
    assert not (store / "financial").exists()


def test_import_is_atomic_locked_idempotent_and_parquet(store: Path, tmp_path: Path) -> None:
    from qdata_cn.writer import StoreTransaction

    src = _csv(tmp_path, "SH600572,2019-04-01,201804,eps_q,1\nSZ002256,2019-04-02,2018,bps_a,7\n")
    with StoreTransaction(store):  # another writer holds the lock
        with pytest.raises(DataError, match="locked"):
            import_pit(src, store)
    assert not (store / "financial").exists()
    first = import_pit(src, store)
    again = import_pit(src, store)
    assert (first["records"], again["records"]) == (2, 0)
    frame = pd.DataFrame({"symbol": ["SH600572"], "date": pd.to_datetime(["2019-06-03"]), "period": [201901],
                          "field": ["eps_q"], "value": [2.0]})  # fmt: skip
    frame.to_parquet(tmp_path / "more.parquet")
    assert import_pit(tmp_path / "more.parquet", store)["records"] == 1
    p = _series(store, "P($$eps_q)")
    assert p["2019-05-31"] == 1 and p["2019-06-03"] == 2


def test_cli_import_pit(store: Path, tmp_path: Path) -> None:
    from qcore.cli import ExitCode, cli

    src = _csv(tmp_path, "SH600572,2019-04-01,201804,eps_q,1\n")
    runner = CliRunner(env={"QCORE_DISABLE_PLUGIN_AUTOLOAD": "1", "QCORE_PLUGINS": "qdata_cn,qops"})
    result = runner.invoke(cli, ["data", "import-pit", str(src), "--to", str(store)])
    assert result.exit_code == 0, result.output
    assert "imported 1 new record(s) of 1 field(s) for 1 instrument(s)" in result.output
    bad = _csv(tmp_path, "SH600572,2019-04-01,201804,eps_q,x\n", "bad.csv")
    result = runner.invoke(cli, ["data", "import-pit", str(bad), "--to", str(store)])
    assert result.exit_code == ExitCode.DATA and f"{bad}:2: value 'x' is not a finite number" in result.output
