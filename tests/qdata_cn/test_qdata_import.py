"""Import/export round trips, update mode (Qlib issue #1818), overlaps and bad input rows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qdata_cn.binstore import QlibBinProvider
from qdata_cn.exporter import export_store, format_float32
from qdata_cn.importer import import_data
from qdata_testutil import tree_bytes

from qcore.errors import DataError


def _store_files(root: Path) -> dict[str, bytes]:
    """Calendar, all.txt and bins (what an import produces)."""
    files = tree_bytes(root)
    return {k: v for k, v in files.items() if k.startswith(("calendars/", "features/")) or k == "instruments/all.txt"}


@pytest.mark.parametrize(("fmt", "layout"), [("csv", "per-symbol"), ("parquet", "long"), ("csv", "long")])
def test_golden_round_trip_is_byte_identical(golden: Path, tmp_path: Path, fmt: str, layout: str) -> None:
    out = tmp_path / "export"
    summary = export_store(golden, out, fmt=fmt, layout=layout)
    assert summary["rows"] == sum(
        len(np.fromfile(p, "<f4")) - 1 for p in golden.glob("features/*/close.day.bin")
    )
    store = tmp_path / "store"
    result = import_data(out, store)
    assert result["added"] == 61
    assert _store_files(store) == _store_files(golden)


def test_synth_round_trip_is_byte_identical(synth_small: Path, tmp_path: Path) -> None:
    export_store(synth_small, tmp_path / "csv")
    import_data(tmp_path / "csv", tmp_path / "store")
    assert _store_files(tmp_path / "store") == _store_files(synth_small)


def test_csv_floats_read_back_exactly() -> None:
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(20000) * 10.0 ** rng.integers(-6, 9, 20000)).astype(np.float32)
    values[:3] = [np.nan, np.inf, -0.0]
    text = format_float32(values)
    assert text[0] == "" and text[1] == "inf"
    back = np.array([float(t) if t else np.nan for t in text], dtype=np.float64).astype(np.float32)
    assert np.array_equal(back[1:].view("<u4"), values[1:].view("<u4"))
    assert format_float32(np.array([1.1], np.float32))[0] == "1.1"


def test_update_in_two_parts_equals_one_import(golden: Path, tmp_path: Path) -> None:
    """Import the golden store's first 200 days, then the rest with --mode update: the bins are identical."""
    export_store(golden, tmp_path / "csv", layout="long")
    frame = pd.read_csv(tmp_path / "csv" / "all.csv", dtype={"date": str})
    cut = "2018-10-31"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    frame[frame["date"] <= cut].to_csv(tmp_path / "a" / "part.csv", index=False)
    frame[frame["date"] > cut].to_csv(tmp_path / "b" / "part.csv", index=False)
    store = tmp_path / "store"
    import_data(tmp_path / "a", store)
    summary = import_data(tmp_path / "b", store, mode="update")
    assert summary["new_dates"] > 0
    assert _store_files(store) == _store_files(golden)


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_update_pads_gaps_with_nan_not_shifted_values(tmp_path: Path) -> None:
    """Qlib issue #1818: a stock missing some of the new days must get NaN there, not shifted values."""
    days = ["2020-01-02", "2020-01-03", "2020-01-06"]
    base = tmp_path / "base"
    for sym in ("SH600000", "SH600001"):
        _write_csv(base / f"{sym}.csv", [{"date": d, "close": 10.0 + k} for k, d in enumerate(days)])
    store = tmp_path / "store"
    import_data(base, store)
    new = tmp_path / "new"
    _write_csv(new / "SH600000.csv", [{"date": d, "close": v} for d, v in
                                      [("2020-01-07", 20.0), ("2020-01-08", 21.0), ("2020-01-09", 22.0)]])  # fmt: skip
    _write_csv(new / "SH600001.csv", [{"date": d, "close": v} for d, v in
                                      [("2020-01-07", 30.0), ("2020-01-09", 32.0)]])  # fmt: skip
    import_data(new, store, mode="update")
    provider = QlibBinProvider(store)
    assert list(provider.calendar().strftime("%Y-%m-%d")) == [*days, "2020-01-07", "2020-01-08", "2020-01-09"]
    panel = provider.load(["close"], ["SH600000", "SH600001"])
    np.testing.assert_array_equal(panel["close"][:, 0], [10, 11, 12, 20, 21, 22])
    got = panel["close"][:, 1]
    np.testing.assert_array_equal(got[[0, 1, 2, 3, 5]], [10, 11, 12, 30, 32])
    assert np.isnan(got[4])
    raw = np.fromfile(store / "features" / "sh600001" / "close.day.bin", "<f4")
    assert raw[0] == 0 and len(raw) == 7
    assert (store / "instruments" / "all.txt").read_text() == (
        "SH600000\t2020-01-02\t2020-01-09\nSH600001\t2020-01-02\t2020-01-09\n"
    )


def test_update_adds_instruments_and_leaves_others(tmp_path: Path) -> None:
    _write_csv(tmp_path / "base" / "SH600000.csv", [{"date": "2020-01-02", "close": 1.0}])
    _write_csv(tmp_path / "base" / "SH600001.csv", [{"date": "2020-01-02", "close": 2.0}])
    store = tmp_path / "store"
    import_data(tmp_path / "base", store)
    old = (store / "features" / "sh600001" / "close.day.bin").read_bytes()
    _write_csv(tmp_path / "new" / "SZ000001.csv", [{"date": "2020-01-03", "close": 5.0, "volume": 7.0}])
    _write_csv(tmp_path / "new" / "SH600000.csv", [{"date": "2020-01-03", "close": 1.5}])
    summary = import_data(tmp_path / "new", store, mode="update")
    assert summary["added"] == 1 and summary["updated"] == 1
    assert (store / "features" / "sh600001" / "close.day.bin").read_bytes() == old
    assert np.fromfile(store / "features" / "sz000001" / "close.day.bin", "<f4").tolist() == [1.0, 5.0]
    lines = (store / "instruments" / "all.txt").read_text().splitlines()
    assert lines == ["SH600000\t2020-01-02\t2020-01-03", "SH600001\t2020-01-02\t2020-01-02",
                     "SZ000001\t2020-01-03\t2020-01-03"]  # fmt: skip


def test_update_overlap_rules(tmp_path: Path) -> None:
    rows = [{"date": "2020-01-02", "close": 1.0}, {"date": "2020-01-03", "close": 2.0}]
    _write_csv(tmp_path / "base" / "SH600000.csv", rows)
    store = tmp_path / "store"
    import_data(tmp_path / "base", store)
    before = tree_bytes(store)
    # identical overlap: a re-run is a no-op
    summary = import_data(tmp_path / "base", store, mode="update")
    assert summary["unchanged"] == 1 and summary["files"] == 0
    assert tree_bytes(store) == before
    # a different stored value is an error naming file and line
    changed = tmp_path / "changed" / "SH600000.csv"
    _write_csv(changed, [{"date": "2020-01-03", "close": 2.5}, {"date": "2020-01-06", "close": 3.0}])
    with pytest.raises(DataError, match="overwrite-overlap") as info:
        import_data(changed.parent, store, mode="update")
    assert info.value.path == str(changed) and info.value.row == 2
    assert tree_bytes(store) == before
    import_data(changed.parent, store, mode="update", overwrite_overlap=True)
    assert np.fromfile(store / "features" / "sh600000" / "close.day.bin", "<f4").tolist() == [0, 1.0, 2.5, 3.0]


def test_update_rejects_dates_inside_calendar(tmp_path: Path) -> None:
    _write_csv(tmp_path / "base" / "SH600000.csv", [{"date": "2020-01-02", "close": 1.0},
                                                     {"date": "2020-01-06", "close": 2.0}])  # fmt: skip
    store = tmp_path / "store"
    import_data(tmp_path / "base", store)
    bad = tmp_path / "bad" / "SH600001.csv"
    _write_csv(bad, [{"date": "2020-01-03", "close": 1.0}])
    with pytest.raises(DataError, match="inside the store's calendar") as info:
        import_data(bad.parent, store, mode="update")
    assert info.value.path == str(bad) and info.value.row == 2


def test_mode_all_refuses_existing_store_and_overwrite_replaces(tmp_path: Path) -> None:
    _write_csv(tmp_path / "a" / "SH600000.csv", [{"date": "2020-01-02", "close": 1.0}])
    _write_csv(tmp_path / "b" / "SZ000001.csv", [{"date": "2020-01-03", "close": 2.0}])
    store = tmp_path / "store"
    import_data(tmp_path / "a", store)
    with pytest.raises(DataError, match="--overwrite"):
        import_data(tmp_path / "b", store)
    import_data(tmp_path / "b", store, overwrite=True)
    assert not (store / "features" / "sh600000").exists()
    assert (store / "instruments" / "all.txt").read_text() == "SZ000001\t2020-01-03\t2020-01-03\n"
    with pytest.raises(DataError, match="no day store to update"):
        import_data(tmp_path / "a", tmp_path / "none", mode="update")


def test_long_table_with_symbol_column_and_defaults(tmp_path: Path) -> None:
    src = tmp_path / "long.csv"
    pd.DataFrame({
        "Date": ["2020-01-02", "2020-01-02", "2020-01-03"],
        "Symbol": ["sh600000", "SZ000001", "sh600000"],
        "name": ["Pudong Bank", "Ping An", "Pudong Bank"],
        "Close": [10.0, 20.0, 11.0],
        "Volume": [1000, 2000, 1500],
    }).to_csv(src, index=False)  # fmt: skip
    summary = import_data(src, tmp_path / "store")
    assert summary["skipped_columns"] == ["name"]
    assert sorted(p.name for p in (tmp_path / "store" / "features" / "sh600000").iterdir()) == [
        "close.day.bin", "volume.day.bin"]  # fmt: skip  # no date/symbol/name bins (Qlib issue #535)
    panel = QlibBinProvider(tmp_path / "store").load(["close", "volume"], ["SH600000", "SZ000001"])
    np.testing.assert_array_equal(panel["close"][:, 0], [10.0, 11.0])
    assert np.isnan(panel["close"][1, 1])


def test_include_exclude_fields(tmp_path: Path) -> None:
    _write_csv(tmp_path / "src" / "SH600000.csv", [{"date": "2020-01-02", "open": 1, "close": 2, "volume": 3}])
    import_data(tmp_path / "src", tmp_path / "s1", include_fields=["$close", "volume"])
    assert sorted(p.name for p in (tmp_path / "s1" / "features" / "sh600000").iterdir()) == [
        "close.day.bin", "volume.day.bin"]  # fmt: skip
    import_data(tmp_path / "src", tmp_path / "s2", exclude_fields=["volume"])
    assert sorted(p.name for p in (tmp_path / "s2" / "features" / "sh600000").iterdir()) == [
        "close.day.bin", "open.day.bin"]  # fmt: skip


def test_symbol_from_reserved_file_stem_and_compact_dates(tmp_path: Path) -> None:
    path = tmp_path / "src" / "_qlib_con.csv"
    path.parent.mkdir()
    path.write_text("date,close\n20200102,1.5\n20200103,1.6\n")
    import_data(path.parent, tmp_path / "store")
    assert (tmp_path / "store" / "instruments" / "all.txt").read_text() == "CON\t2020-01-02\t2020-01-03\n"
    assert (tmp_path / "store" / "features" / "_qlib_con" / "close.day.bin").exists()


def test_several_files_per_symbol_are_merged(tmp_path: Path) -> None:
    _write_csv(tmp_path / "src" / "y2020.csv", [{"date": "2020-01-02", "symbol": "SH600000", "close": 1.0}])
    _write_csv(tmp_path / "src" / "y2021.csv", [{"date": "2021-01-04", "symbol": "SH600000", "close": 2.0}])
    import_data(tmp_path / "src", tmp_path / "store")
    raw = np.fromfile(tmp_path / "store" / "features" / "sh600000" / "close.day.bin", "<f4")
    assert raw.tolist() == [0.0, 1.0, 2.0]


def _bad(tmp_path: Path, text: str, **kwargs) -> DataError:
    path = tmp_path / "src" / "data.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    with pytest.raises(DataError) as info:
        import_data(path, tmp_path / "store", **kwargs)
    assert info.value.path == str(path)
    assert not (tmp_path / "store").exists()
    return info.value


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("date,symbol,close\n2020-01-02,A,1\n2020-01-03,A,1\n2020-01-03,A,2\n", 4, "duplicate date 2020-01-03"),
        ("date,symbol,close\n2020-01-03,A,1\n2020-01-02,A,1\n", 3, "not in date order"),
        ("date,symbol,close\n2020-01-02,A,1\n2020-01-03,A,abc\n", 3, "non-numeric close value 'abc'"),
        ("date,symbol,close\n2020-01-02,A,-1\n", 2, "negative close"),
        ("date,symbol,volume\n2020-01-02,A,5\n2020-01-03,A,-5\n", 3, "negative volume"),
        ("date,symbol,close\n2020-01-02,A,1\nnot-a-date,A,1\n", 3, "bad date 'not-a-date'"),
        ("date,symbol,close\n2020-01-02,A,1\n,A,1\n", 3, "missing date"),
        ("date,symbol,close\n2020-01-02,A,inf\n", 2, "infinite close"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, text: str, line: int, match: str) -> None:
    error = _bad(tmp_path, text)
    assert error.row == line
    assert match in str(error)
    assert f":{line}: " in str(error)


def test_missing_date_column(tmp_path: Path) -> None:
    error = _bad(tmp_path, "day,close\n2020-01-02,1\n")
    assert "no date column 'date'" in str(error)


def test_unsorted_rows_can_be_sorted(tmp_path: Path) -> None:
    path = tmp_path / "SH600000.csv"
    path.write_text("date,close\n2020-01-03,2\n2020-01-02,1\n")
    import_data(path, tmp_path / "store", sort=True)
    assert np.fromfile(tmp_path / "store" / "features" / "sh600000" / "close.day.bin", "<f4").tolist() == [0, 1, 2]


def test_skip_bad_rows_writes_report(tmp_path: Path) -> None:
    path = tmp_path / "src" / "data.csv"
    path.parent.mkdir()
    path.write_text(
        "date,symbol,close,volume\n"
        "2020-01-02,SH600000,1,10\n"
        "2020-01-03,SH600000,x,10\n"
        "2020-01-06,SH600000,3,-1\n"
        "2020-01-06,SH600000,3,10\n"
        "2020-01-06,SH600000,4,10\n"
        "2020-01-07,,4,10\n"
        "2020-01-08,SH600000,5,10\n"
    )
    report = tmp_path / "report.csv"
    summary = import_data(path.parent, tmp_path / "store", skip_bad_rows=True, report=report)
    assert summary["skipped_rows"] == 4
    rows = list(csv.DictReader(report.open()))
    assert [(r["row"], r["reason"].split(" ")[0]) for r in rows] == [
        ("3", "non-numeric"), ("4", "negative"), ("6", "duplicate"), ("7", "missing")]  # fmt: skip
    assert all(r["file"] == str(path) for r in rows)
    panel = QlibBinProvider(tmp_path / "store").load(["close"], ["SH600000"])
    assert list(panel.dates.strftime("%Y-%m-%d")) == ["2020-01-02", "2020-01-06", "2020-01-08"]
    np.testing.assert_array_equal(panel["close"][:, 0], [1, 3, 5])


def test_parquet_rows_are_one_based(tmp_path: Path) -> None:
    path = tmp_path / "SH600000.parquet"
    pd.DataFrame({"date": pd.to_datetime(["2020-01-02", "2020-01-02"]), "close": [1.0, 2.0]}).to_parquet(path)
    with pytest.raises(DataError, match="duplicate date") as info:
        import_data(path, tmp_path / "store")
    assert info.value.row == 2


def test_minute_bars_import(tmp_path: Path) -> None:
    path = tmp_path / "SH600000.csv"
    path.write_text("date,close\n2020-01-02 09:31:00,1\n2020-01-02 09:32:00,2\n2020-01-02 09:34:00,4\n")
    path2 = tmp_path / "SH600001.csv"
    path2.write_text("date,close\n2020-01-02 09:33:00,3\n")
    import_data(tmp_path, tmp_path / "store", freq="1min")
    provider = QlibBinProvider(tmp_path / "store")
    lines = (tmp_path / "store" / "calendars" / "1min.txt").read_text().splitlines()
    assert lines[0] == "2020-01-02 09:30:00" and lines[-1] == "2020-01-02 14:59:00" and len(lines) == 240  # full day
    panel = provider.load(["close"], ["SH600000", "SH600001"], freq="1min", end="2020-01-02")
    assert panel.shape == (240, 2)
    assert list(panel["close"][1:5, 0][[0, 1, 3]]) == [1, 2, 4] and np.isnan(panel["close"][3, 0])
    assert panel["close"][3, 1] == 3 and np.isnan(panel["close"][[0, 1, 2, 4], 1]).all()


# -- one date format per file, and values float32 cannot hold (issue 12) ------------------------------------------


def _import_dates(tmp_path: Path, dates: list[str], **kwargs) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "SH600000.csv"
    path.write_text("date,close\n" + "".join(f"{d},{k + 1}\n" for k, d in enumerate(dates)))
    store = tmp_path / "store"
    import_data(path, store, sort=True, **kwargs)
    return list(QlibBinProvider(store).calendar().strftime("%Y-%m-%d"))


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (["02/01/2020", "13/01/2020"], ["2020-01-02", "2020-01-13"]),  # 13 can only be a day: day-first file
        (["13.01.2020", "02.01.2020"], ["2020-01-02", "2020-01-13"]),
        (["01/13/2020", "02/01/2020"], ["2020-01-13", "2020-02-01"]),  # 13 can only be a day: month-first file
        (["12-31-2019", "01-02-2020"], ["2019-12-31", "2020-01-02"]),
        (["2020/01/02", "2020/01/13"], ["2020-01-02", "2020-01-13"]),
        (["01/01/2020", "05/05/2020"], ["2020-01-01", "2020-05-05"]),  # both readings agree
        (["2 Jan 2020", "Feb 1 2020", "03-Feb-2020"], ["2020-01-02", "2020-02-01", "2020-02-03"]),
    ],
)
def test_one_date_format_per_file(tmp_path: Path, dates: list[str], expected: list[str]) -> None:
    assert _import_dates(tmp_path, dates) == expected


@pytest.mark.parametrize(
    "dates",
    [
        ["02/01/2020", "03/01/2020"],
        ["02.01.2020", "03.01.2020"],
        ["02-01-2020 09:30", "03-01-2020 09:30"],
        ["13/01/2020", "01/13/2020"],  # each reading fails a row: the file mixes both orders
        ["2020-01-02", "05/01/2020"],
    ],
)
def test_ambiguous_dates_are_refused_naming_file_and_column(tmp_path: Path, dates: list[str]) -> None:
    path = tmp_path / "data.csv"
    path.write_text("Day,symbol,close\n" + "".join(f"{d},SH600000,{k + 1}\n" for k, d in enumerate(dates)))
    store = tmp_path / "store"
    with pytest.raises(DataError) as info:
        import_data(path, store, date_col="day", freq="day")
    message = str(info.value)
    assert info.value.path == str(path) and info.value.row in (2, 3)
    assert "ambiguous dates in column 'Day'" in message and "--date-format" in message
    assert not store.exists()
    with pytest.raises(DataError, match="ambiguous"):
        import_data(path, store, date_col="day", skip_bad_rows=True, report=tmp_path / "r.csv")


def test_date_format_decides(tmp_path: Path) -> None:
    dates = ["02/01/2020", "03/01/2020"]
    assert _import_dates(tmp_path / "d", dates, date_format="%d/%m/%Y") == ["2020-01-02", "2020-01-03"]
    assert _import_dates(tmp_path / "m", dates, date_format="%m/%d/%Y") == ["2020-02-01", "2020-03-01"]
    with pytest.raises(DataError, match=r"bad date '2020-01-06' \(the file's dates are %d/%m/%Y\)") as info:
        _import_dates(tmp_path / "x", [*dates, "2020-01-06"], date_format="%d/%m/%Y")
    assert info.value.row == 4
    with pytest.raises(DataError, match="invalid --date-format"):
        _import_dates(tmp_path / "y", dates, date_format="%Q")
    with pytest.raises(DataError, match="invalid --date-format"):
        _import_dates(tmp_path / "z", dates, date_format="daily")


def test_date_format_on_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qcore.cli import ExitCode, cli

    path = tmp_path / "SH600000.csv"
    path.write_text("date,close\n02/01/2020,1\n03/01/2020,2\n")
    runner = CliRunner()
    refused = runner.invoke(cli, ["data", "import", str(path), "--to", str(tmp_path / "s")])
    assert refused.exit_code == ExitCode.DATA and "--date-format" in refused.output and str(path) in refused.output
    done = runner.invoke(cli, ["data", "import", str(path), "--to", str(tmp_path / "s"), "--date-format", "%d/%m/%Y"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "s" / "calendars" / "day.txt").read_text() == "2020-01-02\n2020-01-03\n"


def test_rows_off_the_file_format_are_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "SH600000.csv"
    path.write_text("date,close\n02/01/2020,1\n13/01/2020,2\n2020-01-14,3\n")
    with pytest.raises(DataError, match=r"bad date '2020-01-14' \(the file's dates are %d/%m/%Y\)") as info:
        import_data(path, tmp_path / "store")
    assert info.value.row == 4


@pytest.mark.parametrize(
    ("value", "column"),
    [("1e39", "close"), ("-4e38", "open"), ("3.5e38", "volume"), ("1.7976931348623157e308", "amount")],
)
def test_values_beyond_float32_are_refused(tmp_path: Path, value: str, column: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(f"date,symbol,{column}\n2020-01-02,SH600000,1\n2020-01-03,SH600000,{value}\n")
    store = tmp_path / "store"
    with pytest.raises(DataError) as info:
        import_data(path, store)
    message = str(info.value)
    assert info.value.path == str(path) and info.value.row == 3
    assert f"column '{column}'" in message and "beyond float32's range" in message
    assert not store.exists()


def test_float32_edge_values_and_nan_are_kept(tmp_path: Path) -> None:
    big = float(np.finfo(np.float32).max)
    path = tmp_path / "SH600000.csv"
    path.write_text(f"date,change,volume\n2020-01-02,{big!r},1\n2020-01-03,nan,\n2020-01-06,-{big!r},2\n")
    import_data(path, tmp_path / "store")
    raw = np.fromfile(tmp_path / "store" / "features" / "sh600000" / "change.day.bin", "<f4")
    assert raw[1] == np.float32(big) and np.isnan(raw[2]) and raw[3] == -np.float32(big)


def test_parquet_values_beyond_float32_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "SH600000.parquet"
    pd.DataFrame({"date": pd.to_datetime(["2020-01-02", "2020-01-03"]), "close": [1.0, 1e300]}).to_parquet(path)
    with pytest.raises(DataError, match=r"close value 1e\+300 .* beyond float32's range") as info:
        import_data(path, tmp_path / "store")
    assert info.value.row == 2
    summary = import_data(path, tmp_path / "store", skip_bad_rows=True, report=tmp_path / "report.csv")
    assert summary["skipped_rows"] == 1


def test_every_imported_instrument_gets_every_field(tmp_path: Path) -> None:
    """Per-symbol files with different columns: missing fields are NaN bins, so `check` finds no missing file."""
    from qdata_cn.check import check_store

    src = tmp_path / "src"
    for k, sym in enumerate(("SH600000", "SH600001", "SH600002")):
        _write_csv(src / f"{sym}.csv", [{"date": "2020-01-02", "close": 1.0 + k, **({"vwap": 1.0} if k else {})}])
    store = tmp_path / "store"
    import_data(src, store)
    vwap = np.fromfile(store / "features" / "sh600000" / "vwap.day.bin", "<f4")
    assert vwap[0] == 0 and np.isnan(vwap[1:]).all()
    assert [f for f in check_store(store) if f.check == "missing-field"] == []
