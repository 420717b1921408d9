"""Malformed stores raise DataError naming the file (and line or element): never IndexError."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from qdata_cn.binstore import QlibBinProvider, bin_extent, read_bin, read_calendar, read_instruments
from qdata_cn.naming import code_to_fname, fname_to_code, normalise_field

from qcore.errors import DataError


def _load_close(root: Path, symbol: str = "SH600000"):
    return QlibBinProvider(root).load(["close"], [symbol])


def test_truncated_bin(golden_copy: Path) -> None:
    path = golden_copy / "features" / "sh600000" / "close.day.bin"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated") as info:
        _load_close(golden_copy)
    assert info.value.path == str(path)
    assert "not a multiple of 4" in str(info.value)


def test_empty_bin(golden_copy: Path) -> None:
    path = golden_copy / "features" / "sh600000" / "close.day.bin"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty file") as info:
        _load_close(golden_copy)
    assert info.value.path == str(path)


@pytest.mark.parametrize("header", [1.5, -1.0, float("nan"), float("inf")])
def test_header_not_a_calendar_index(golden_copy: Path, header: float) -> None:
    path = golden_copy / "features" / "sh600000" / "close.day.bin"
    data = bytearray(path.read_bytes())
    data[:4] = struct.pack("<f", header)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"header \(element 0\)") as info:
        _load_close(golden_copy)
    assert info.value.path == str(path)


def test_header_past_calendar_end(golden_copy: Path) -> None:
    path = golden_copy / "features" / "sh600000" / "close.day.bin"
    data = bytearray(path.read_bytes())
    data[:4] = struct.pack("<f", 320.0)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="past the calendar's end") as info:
        _load_close(golden_copy)
    assert info.value.path == str(path)


def test_data_running_past_calendar_end(golden_copy: Path) -> None:
    path = golden_copy / "features" / "sh600000" / "close.day.bin"
    path.write_bytes(path.read_bytes() + struct.pack("<ff", 1.0, 2.0))
    with pytest.raises(DataError, match="run past the calendar's end") as info:
        _load_close(golden_copy)
    assert info.value.path == str(path)


def test_read_bin_and_extent_validate(golden_copy: Path) -> None:
    path = golden_copy / "features" / "sh600003" / "close.day.bin"
    start, values = read_bin(path, 320)
    assert start == 162 and len(values) == 158
    assert bin_extent(path, 320) == (162, 158)
    with pytest.raises(DataError, match="past the calendar's end"):
        bin_extent(path, 100)
    with pytest.raises(DataError, match="not found"):
        read_bin(golden_copy / "features" / "nope.day.bin")


def test_missing_calendar_lists_available(golden_copy: Path) -> None:
    provider = QlibBinProvider(golden_copy)
    with pytest.raises(DataError, match=r"calendar file for freq '1min' not found \(available freqs: day\)") as info:
        provider.calendar("1min")
    assert info.value.path.endswith("calendars/1min.txt")
    (golden_copy / "calendars" / "day.txt").unlink()
    with pytest.raises(DataError, match="not found"):
        _load_close(golden_copy)


def test_bad_calendar_line(golden_copy: Path) -> None:
    cal = golden_copy / "calendars" / "day.txt"
    lines = cal.read_text().splitlines()
    lines[4] = "2018-13-45"
    cal.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="not a date: '2018-13-45'") as info:
        QlibBinProvider(golden_copy).calendar()
    assert info.value.row == 5 and info.value.path == str(cal)


def test_calendar_must_increase(tmp_path: Path) -> None:
    cal = tmp_path / "day.txt"
    cal.write_text("2018-01-02\n2018-01-04\n2018-01-03\n")
    with pytest.raises(DataError, match="earlier than") as info:
        read_calendar(cal)
    assert info.value.row == 3
    cal.write_text("2018-01-02\n2018-01-02\n")
    with pytest.raises(DataError, match="repeats"):
        read_calendar(cal)


def test_bad_date_in_instruments_names_line(golden_copy: Path) -> None:
    path = golden_copy / "instruments" / "csi_like.txt"
    lines = path.read_text().splitlines()
    lines[6] = lines[6].split("\t")[0] + "\t2018-02-30\t2019-01-01"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="not a date: '2018-02-30'") as info:
        QlibBinProvider(golden_copy).universe("csi_like")
    assert info.value.row == 7
    assert info.value.path == str(path)
    assert f"{path}:7:" in str(info.value)


def test_instrument_row_with_too_few_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("SH600000\t2018-01-02\t2018-02-01\nSH600001 2018-01-02\n")
    with pytest.raises(DataError, match="expected SYMBOL") as info:
        read_instruments(path)
    assert info.value.row == 2


def test_instrument_span_backwards(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("SH600000\t2018-03-02\t2018-02-01\n")
    with pytest.raises(DataError, match="ends") as info:
        read_instruments(path)
    assert info.value.row == 1


def test_missing_all_txt(golden_copy: Path) -> None:
    (golden_copy / "instruments" / "all.txt").unlink()
    with pytest.raises(DataError, match=r"all\.txt is missing"):
        QlibBinProvider(golden_copy).markets()


def test_unknown_market_lists_available(golden: Path) -> None:
    with pytest.raises(DataError, match=r"unknown market 'csi300' \(available: all, csi_like\)"):
        QlibBinProvider(golden).universe("csi300")


def test_missing_store_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        QlibBinProvider(tmp_path / "nope")


def test_invalid_field_name(golden: Path) -> None:
    with pytest.raises(DataError, match="invalid field name"):
        QlibBinProvider(golden).load(["../close"], ["SH600000"])


def test_reserved_names_round_trip() -> None:
    assert code_to_fname("CON") == "_qlib_con"
    assert code_to_fname("lpt1") == "_qlib_lpt1"
    assert code_to_fname("SH600000") == "sh600000"
    # Qlib's lstrip("_qlib_") would turn these into "PT1" and "ON"; the prefix is removed exactly
    assert fname_to_code("_qlib_lpt1") == "LPT1"
    assert fname_to_code("_qlib_con") == "CON"
    assert fname_to_code("_qlib_qlib") == "QLIB"
    assert fname_to_code("sh600000") == "SH600000"
    assert normalise_field("$Close") == "close"


def test_reserved_name_instrument_reads(golden_copy: Path) -> None:
    src = golden_copy / "features" / "sh600000"
    dst = golden_copy / "features" / "_qlib_lpt1"
    src.rename(dst)
    panel = QlibBinProvider(golden_copy).load(["close"], ["LPT1"])
    raw = np.fromfile(dst / "close.day.bin", "<f4")
    assert np.array_equal(panel["close"][int(raw[0]) :, 0].view("<u4"), raw[1:].view("<u4"))
