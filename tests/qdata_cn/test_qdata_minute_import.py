"""Importing one-minute bars (issue 15): Qlib's collector format, bar-start stamps checked against the sessions,
the same atomicity, locking and bad-row reporting as daily imports, and one store for both frequencies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qdata_cn.binstore import QlibBinProvider
from qdata_cn.exporter import export_store
from qdata_cn.importer import import_data
from qdata_cn.sessions import minute_calendar
from qdata_cn.synth import synthesize
from qdata_cn.writer import StoreTransaction
from qdata_testutil import tree_bytes

from qcore.cli import ExitCode, cli
from qcore.errors import DataError

DAY = "2020-01-02"


@pytest.fixture(scope="module")
def synth_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 stocks (and the index) x 6 days with one-minute bars (read-only)."""
    out = tmp_path_factory.mktemp("synth_minutes") / "store"
    synthesize(out, instruments=4, days=6, seed=3, start="2021-03-01", freq="1min")
    return out


def _collector_csv(path: Path, symbol: str, stamps: list[str], start: float = 10.0) -> Path:
    """A file in Qlib's collector layout (symbol, date, OHLCV, factor, change, paused)."""
    close = start + 0.01 * np.arange(len(stamps))
    frame = pd.DataFrame({
        "symbol": symbol, "date": stamps, "open": close, "high": close + 0.01, "low": close - 0.01, "close": close,
        "volume": 100.0 * (1 + np.arange(len(stamps))), "factor": 1.0, "change": 0.0, "paused": 0.0,
    })  # fmt: skip
    frame.to_csv(path, index=False)
    return path


def _stamps(day: str = DAY, freq: str = "1min") -> list[str]:
    return list(minute_calendar(pd.DatetimeIndex([day]), freq).strftime("%Y-%m-%d %H:%M:%S"))


def _minute_files(root: Path) -> dict[str, bytes]:
    files = tree_bytes(root)
    return {k: v for k, v in files.items() if k == "calendars/1min.txt" or k.endswith(".1min.bin")}


@pytest.mark.parametrize(("fmt", "layout"), [("csv", "per-symbol"), ("parquet", "long")])
def test_minute_round_trip_into_one_store_with_the_days(synth_minutes: Path, tmp_path: Path, fmt: str,
                                                        layout: str) -> None:  # fmt: skip
    """Daily and minute exports of the synthetic store import into one store: the same calendars, bins and spans."""
    export_store(synth_minutes, tmp_path / "day", fmt=fmt, layout=layout)
    export_store(synth_minutes, tmp_path / "min", fmt=fmt, layout=layout, freq="1min")
    store = tmp_path / "store"
    import_data(tmp_path / "day", store)
    summary = import_data(tmp_path / "min", store, freq="1min")
    assert summary["added"] == 5 and summary["calendar"][2] == 6 * 240
    assert _minute_files(store) == _minute_files(synth_minutes)
    original = tree_bytes(synth_minutes)
    for name in ("calendars/day.txt", "instruments/all.txt"):
        assert tree_bytes(store)[name] == original[name], name
    provider = QlibBinProvider(store)
    assert provider.freqs() == ["1min", "day"]
    assert provider.calendar("1min")[0] == pd.Timestamp("2021-03-01 09:30")
    day = provider.load(["close"], ["SH000300"])
    minute = provider.load(["close"], ["SH000300"], freq="1min")
    assert np.array_equal(minute["close"].reshape(6, 240)[:, -1], day["close"][:, 0])


def test_collector_format_and_update(tmp_path: Path) -> None:
    """A long table with a symbol column; an update appends whole days and keeps the spans minute-safe."""
    src = tmp_path / "src"
    src.mkdir()
    _collector_csv(src / "a.csv", "SH600000", _stamps())
    _collector_csv(src / "b.csv", "SZ000001", _stamps()[30:200], start=20.0)
    store = tmp_path / "store"
    import_data(src, store, freq="1min")
    provider = QlibBinProvider(store)
    assert len(provider.calendar("1min")) == 240
    assert provider.fields("1min") == ["open", "high", "low", "close", "volume", "factor", "change", "paused"]
    panel = provider.load(["close", "volume"], ["SH600000", "SZ000001"], freq="1min")
    assert panel["close"][0, 0] == np.float32(10.0) and np.isnan(panel["close"][:30, 1]).all()
    assert panel["close"][30, 1] == np.float32(20.0) and panel["volume"][239, 0] == 24000
    assert (store / "instruments" / "all.txt").read_text() == (
        "SH600000\t2020-01-02 00:00:00\t2020-01-02 14:59:00\nSZ000001\t2020-01-02 00:00:00\t2020-01-02 14:59:00\n")
    nxt = tmp_path / "next"
    nxt.mkdir()
    _collector_csv(nxt / "a.csv", "SH600000", _stamps("2020-01-03")[:10], start=12.0)
    summary = import_data(nxt, store, freq="1min", mode="update")
    assert summary["new_dates"] == 240 and summary["updated"] == 1
    cal = provider.calendar("1min")
    assert len(cal) == 480 and cal[-1] == pd.Timestamp("2020-01-03 14:59")
    assert "SH600000\t2020-01-02 00:00:00\t2020-01-03 14:59:00" in (store / "instruments" / "all.txt").read_text()
    again = import_data(nxt, store, freq="1min", mode="update")  # re-running an update is a no-op
    assert again["files"] == 0 and again["unchanged"] == 1


@pytest.mark.parametrize(("stamp", "line"), [("2020-01-02 11:30:00", 122), ("2020-01-02 09:25:00", 2),
                                             ("2020-01-02 12:00:00", 122), ("2020-01-02 10:00:30", 33)])
def test_stamps_outside_the_sessions_are_bad_rows(tmp_path: Path, stamp: str, line: int) -> None:
    stamps = sorted([*_stamps(), stamp])
    path = _collector_csv(tmp_path / "SH600000.csv", "SH600000", stamps)
    with pytest.raises(DataError, match=f"timestamp {stamp} is not one of the cn sessions' 1min bar starts "
                                        r"\(09:30 … 14:59\)") as info:  # fmt: skip
        import_data(path, tmp_path / "store", freq="1min")
    assert info.value.path == str(path) and info.value.row == line
    assert not (tmp_path / "store").exists()
    import_data(path, tmp_path / "store", freq="1min", skip_bad_rows=True, report=tmp_path / "bad.csv")
    assert len(QlibBinProvider(tmp_path / "store").calendar("1min")) == 240


def test_bar_end_files_are_named_and_can_be_moved(tmp_path: Path) -> None:
    ends = list((pd.DatetimeIndex(_stamps()) + pd.Timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"))
    path = _collector_csv(tmp_path / "SH600000.csv", "SH600000", ends)
    with pytest.raises(DataError, match=r"2020-01-02 11:30:00 .* stamps bars by their end \(pass --bar-stamps end"):
        import_data(path, tmp_path / "store", freq="1min")
    runner = CliRunner()
    done = runner.invoke(cli, ["data", "import", str(path), "--to", str(tmp_path / "store"), "--freq", "1min",
                               "--bar-stamps", "end"])  # fmt: skip
    assert done.exit_code == 0, done.output
    provider = QlibBinProvider(tmp_path / "store")
    assert provider.calendar("1min")[[0, -1]].equals(pd.DatetimeIndex(["2020-01-02 09:30", "2020-01-02 14:59"]))
    assert provider.load(["close"], ["SH600000"], freq="1min")["close"][0, 0] == np.float32(10.0)
    refused = runner.invoke(cli, ["data", "import", str(path), "--to", str(tmp_path / "d"), "--bar-stamps", "end"])
    assert refused.exit_code == ExitCode.DATA and "has no minute bars" in refused.output


def test_duplicate_and_unsorted_stamps(tmp_path: Path) -> None:
    stamps = _stamps()[:5]
    (tmp_path / "dup").mkdir()
    dup = _collector_csv(tmp_path / "dup" / "SH600000.csv", "SH600000", [*stamps[:3], stamps[2], *stamps[3:]])
    with pytest.raises(DataError, match="duplicate timestamp 2020-01-02 09:32:00 of SH600000 \\(first at line/row 4")\
            as info:  # fmt: skip
        import_data(dup, tmp_path / "s1", freq="1min")
    assert info.value.row == 5 and info.value.path == str(dup)
    (tmp_path / "uns").mkdir()
    unsorted = _collector_csv(tmp_path / "uns" / "SH600000.csv", "SH600000", [stamps[1], stamps[0], *stamps[2:]])
    with pytest.raises(DataError, match="not in date order: 2020-01-02 09:30:00 comes after 2020-01-02 09:31:00") \
            as info:  # fmt: skip
        import_data(unsorted, tmp_path / "s2", freq="1min")
    assert info.value.row == 3
    import_data(unsorted, tmp_path / "s2", freq="1min", sort=True)
    assert QlibBinProvider(tmp_path / "s2").load(["close"], ["SH600000"], freq="1min")["close"][0, 0] == \
        np.float32(10.01)  # fmt: skip


def test_parquet_rows_and_the_store_lock(tmp_path: Path) -> None:
    stamps = pd.to_datetime([*_stamps()[:3], "2020-01-02 15:00:00"])
    path = tmp_path / "SH600000.parquet"
    pd.DataFrame({"date": stamps, "close": [1.0, 2.0, 3.0, 4.0]}).to_parquet(path)
    with pytest.raises(DataError, match="2020-01-02 15:00:00 is not one of") as info:
        import_data(path, tmp_path / "store", freq="1min")
    assert info.value.row == 4  # 1-based Parquet row
    good = tmp_path / "good" / "SH600000.parquet"
    good.parent.mkdir()
    pd.DataFrame({"date": stamps[:3], "close": [1.0, 2.0, 3.0]}).to_parquet(good)
    import_data(good, tmp_path / "store", freq="1min")
    before = tree_bytes(tmp_path / "store")
    with StoreTransaction(tmp_path / "store"):
        with pytest.raises(DataError, match="the store is locked by another writer"):
            import_data(good, tmp_path / "store", freq="1min", mode="update", overwrite_overlap=True)
    assert tree_bytes(tmp_path / "store") == before


def test_other_regions_and_frequencies(tmp_path: Path) -> None:
    us = [f"2020-01-02 {h:02d}:{m:02d}:00" for h, m in ((9, 30), (15, 59))]
    path = _collector_csv(tmp_path / "AAPL.csv", "AAPL", us)
    with pytest.raises(DataError, match="15:59:00 is not one of the cn sessions'"):
        import_data(path, tmp_path / "cn", freq="1min")
    import_data(path, tmp_path / "us", freq="1min", region="us")
    assert len(QlibBinProvider(tmp_path / "us", region="us").calendar("1min")) == 390
    five = _collector_csv(tmp_path / "SH600000.csv", "SH600000", _stamps(freq="5min"))
    import_data(five, tmp_path / "five", freq="5min")
    assert len(QlibBinProvider(tmp_path / "five").calendar("5min")) == 48
    with pytest.raises(DataError, match="unknown region 'jp'"):
        import_data(five, tmp_path / "jp", freq="5min", region="jp")
