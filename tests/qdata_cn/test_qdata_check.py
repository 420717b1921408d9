"""`qcore data check`: clean stores pass; each kind of damage is found and named."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from qdata_cn.check import check_store, format_table

from qcore.cli import cli


def _by(findings, severity: str) -> list:
    return [f for f in findings if f.severity == severity]


def test_golden_store_is_clean(golden: Path) -> None:
    findings = check_store(golden)
    assert _by(findings, "error") == [] and _by(findings, "warning") == []
    assert "61 instruments, 549 day files" in findings[-1].detail


def _write_bin(path: Path, start: int, values) -> None:
    np.concatenate([[start], values]).astype("<f4").tofile(path)


def test_damage_is_reported(golden_copy: Path) -> None:
    feats = golden_copy / "features"
    (feats / "sh600000" / "close.day.bin").write_bytes((feats / "sh600000" / "close.day.bin").read_bytes()[:-2])
    data = bytearray((feats / "sh600001" / "open.day.bin").read_bytes())
    data[:4] = struct.pack("<f", 2.5)
    (feats / "sh600001" / "open.day.bin").write_bytes(bytes(data))
    high = feats / "sh600002" / "high.day.bin"
    high.write_bytes(high.read_bytes() + b"\0" * 4 * 5)
    for path in (feats / "sh600004").iterdir():
        path.unlink()
    (feats / "sh600004").rmdir()
    (feats / "sh699999").mkdir()
    _write_bin(feats / "sh699999" / "close.day.bin", 0, np.ones(320))
    (feats / "sh600007" / "factor.day.bin").unlink()
    start, = struct.unpack("<f", (feats / "sh600010" / "close.day.bin").read_bytes()[:4])
    close = np.fromfile(feats / "sh600010" / "close.day.bin", "<f4")[1:]
    close[100] = close[99] * 3.0
    close[150:160] = np.nan
    close[200] = -1.0
    _write_bin(feats / "sh600010" / "close.day.bin", int(start), close)
    vwap = np.fromfile(feats / "sh600011" / "vwap.day.bin", "<f4")
    _write_bin(feats / "sh600011" / "vwap.day.bin", int(vwap[0]) + 1, vwap[2:])

    findings = check_store(golden_copy, max_nan_run=5)
    text = format_table(findings)
    errors = {(f.check, f.target.split("/")[-2] if "/" in f.target else f.target) for f in _by(findings, "error")}
    assert ("bin", "sh600000") in errors  # truncated
    assert ("bin", "sh600001") in errors  # bad header
    assert ("bin", "sh600002") in errors  # past the calendar
    assert ("features", "SH600004") in errors  # listed without features
    assert ("negative", "SH600010") in errors
    warnings = {(f.check, f.target) for f in _by(findings, "warning")}
    assert ("instruments", "SH699999") in warnings  # orphan folder
    assert ("factor", "SH600007") in warnings
    assert ("jump", "SH600010") in warnings
    assert ("partial-nan", "SH600010") in warnings
    assert ("lengths", "SH600011") in warnings
    assert "truncated file" in text and "not a calendar index" in text


def test_nan_runs_and_alignment(golden_copy: Path) -> None:
    feats = golden_copy / "features" / "sh600012"
    for path in feats.iterdir():
        raw = np.fromfile(path, "<f4")
        raw[50:90] = np.nan
        raw.tofile(path)
    all_txt = golden_copy / "instruments" / "all.txt"
    all_txt.write_text(all_txt.read_text().replace("SH600013\t2018-08-24", "SH600013\t2018-08-23"))
    findings = check_store(golden_copy, max_nan_run=30)
    warnings = {(f.check, f.target) for f in _by(findings, "warning")}
    assert ("nan-run", "SH600012") in warnings
    assert ("alignment", "SH600013") in warnings
    assert _by(findings, "error") == []


def test_missing_calendar_and_instruments(golden_copy: Path) -> None:
    (golden_copy / "calendars" / "day.txt").unlink()
    (golden_copy / "instruments" / "all.txt").unlink()
    errors = {f.check for f in _by(check_store(golden_copy), "error")}
    assert {"calendar", "instruments"} <= errors
    assert _by(check_store(golden_copy.parent / "missing"), "error")[0].check == "store"


def test_pending_journal_is_an_error(golden_copy: Path) -> None:
    (golden_copy / ".qcore.journal").write_text(json.dumps({"renames": [], "deletes": []}))
    assert [f.check for f in _by(check_store(golden_copy), "error")] == ["journal"]


def test_cli_check_exit_codes(golden: Path, golden_copy: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["data", "check", str(golden)])
    assert ok.exit_code == 0, ok.output
    assert "SEVERITY" in ok.output and "0 errors" in ok.output
    path = golden_copy / "features" / "sh600000" / "close.day.bin"
    path.write_bytes(path.read_bytes()[:-1])
    bad = runner.invoke(cli, ["data", "check", str(golden_copy)])
    assert bad.exit_code == 1
    assert "error" in bad.output and "features/sh600000/close.day.bin" in bad.output
    as_json = runner.invoke(cli, ["data", "check", str(golden_copy), "--json"])
    assert as_json.exit_code == 1
    rows = json.loads(as_json.output)
    assert rows[0]["severity"] == "error" and rows[0]["check"] == "bin"


@pytest.mark.parametrize("freq", ["1min"])
def test_check_of_missing_freq(golden: Path, freq: str) -> None:
    errors = _by(check_store(golden, freq), "error")
    assert errors and errors[0].check == "calendar"
