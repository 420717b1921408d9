"""Atomic store writes: a failed or interrupted import leaves the old store intact; a lock stops two writers."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qdata_cn import writer
from qdata_cn.binstore import QlibBinProvider
from qdata_cn.exporter import export_store
from qdata_cn.importer import import_data
from qdata_cn.writer import JOURNAL_NAME, TMP_SUFFIX, StoreTransaction
from qdata_testutil import tree_bytes, tree_dirs

from qcore.errors import DataError


def _new_rows(golden: Path, tmp_path: Path) -> Path:
    """Two new days for a few golden symbols plus a new symbol, as per-symbol CSV files."""
    src = tmp_path / "new"
    src.mkdir(parents=True)
    for sym in ("sh600000", "sh600001", "sz000001", "sh600777"):
        pd.DataFrame(
            {"date": ["2019-04-24", "2019-04-25"], "close": [1.5, 1.6], "open": [1.4, 1.5], "volume": [100.0, 200.0]}
        ).to_csv(src / f"{sym}.csv", index=False)
    return src


def test_transaction_commits_and_rolls_back(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with StoreTransaction(root) as txn:
        txn.write_text("calendars/day.txt", "2020-01-02\n")
        txn.write_bin("features/sh600000/close.day.bin", 0, np.array([1.0], dtype=np.float32))
        assert not (root / "calendars" / "day.txt").exists()  # nothing visible before commit
    assert (root / "calendars" / "day.txt").read_text() == "2020-01-02\n"
    assert np.fromfile(root / "features" / "sh600000" / "close.day.bin", "<f4").tolist() == [0.0, 1.0]
    before = tree_bytes(root)
    with pytest.raises(RuntimeError, match="boom"):
        with StoreTransaction(root) as txn:
            txn.write_text("calendars/day.txt", "2020-01-02\n2020-01-03\n")
            txn.write_bin("features/sz000001/close.day.bin", 0, np.array([1.0, 2.0], dtype=np.float32))
            raise RuntimeError("boom")
    assert tree_bytes(root) == before
    assert not (root / "features" / "sz000001").exists()


def test_failed_new_store_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        with StoreTransaction(root) as txn:
            txn.write_text("calendars/day.txt", "2020-01-02\n")
            raise RuntimeError("stop")
    assert not root.exists()


def test_interrupted_update_leaves_old_store_intact(golden_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """An update that fails after a few files leaves every byte of the old store, and no temporary files."""
    src = _new_rows(golden_copy, tmp_path)
    before = tree_bytes(golden_copy)
    dirs = tree_dirs(golden_copy)
    real = writer._write_file
    calls = {"n": 0}

    def flaky(path, data, durable):
        calls["n"] += 1
        if calls["n"] == 6:
            raise OSError("disk full (simulated)")
        real(path, data, durable)

    monkeypatch.setattr(writer, "_write_file", flaky)
    with pytest.raises(OSError, match="simulated"):
        import_data(src, golden_copy, mode="update")
    assert calls["n"] == 6
    assert tree_bytes(golden_copy) == before
    assert tree_dirs(golden_copy) == dirs
    assert not list(golden_copy.rglob(f"*{TMP_SUFFIX}"))
    assert not (golden_copy / JOURNAL_NAME).exists()
    # the same import then succeeds
    monkeypatch.setattr(writer, "_write_file", real)
    summary = import_data(src, golden_copy, mode="update")
    assert summary["new_dates"] == 2 and summary["added"] == 1


def test_keyboard_interrupt_is_rolled_back(golden_copy: Path, tmp_path: Path, monkeypatch) -> None:
    src = _new_rows(golden_copy, tmp_path)
    before = tree_bytes(golden_copy)
    real = writer._write_file
    calls = {"n": 0}

    def interrupted(path, data, durable):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(path, data, durable)

    monkeypatch.setattr(writer, "_write_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_data(src, golden_copy, mode="update")
    assert tree_bytes(golden_copy) == before
    assert not list(golden_copy.rglob(f"*{TMP_SUFFIX}"))


def test_crash_while_publishing_is_completed_by_the_next_writer(golden_copy: Path, tmp_path: Path, monkeypatch) -> None:
    src = _new_rows(golden_copy, tmp_path)
    expected_root = tmp_path / "expected"
    import shutil

    shutil.copytree(golden_copy, expected_root)
    import_data(src, expected_root, mode="update")
    expected = tree_bytes(expected_root)

    real = writer._replace
    calls = {"n": 0}

    def crash(a, b):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("power cut (simulated)")
        real(a, b)

    monkeypatch.setattr(writer, "_replace", crash)
    with pytest.raises(OSError, match="power cut"):
        import_data(src, golden_copy, mode="update")
    assert (golden_copy / JOURNAL_NAME).exists()
    monkeypatch.setattr(writer, "_replace", real)
    result = writer.recover(golden_copy)
    assert result["renamed"] > 0
    assert not (golden_copy / JOURNAL_NAME).exists()
    assert tree_bytes(golden_copy) == expected


def test_stale_temporaries_are_swept(golden_copy: Path) -> None:
    stale = golden_copy / "features" / "sh600000" / f".close.day.bin.123-abc{TMP_SUFFIX}"
    stale.write_bytes(b"junk")
    with StoreTransaction(golden_copy):
        pass
    assert not stale.exists()


def _hold_lock(root: str, ready, release) -> None:
    txn = StoreTransaction(root)
    txn.open()
    ready.set()
    release.wait(20)
    txn.rollback()


def test_second_writer_gets_a_clear_error(golden_copy: Path, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(golden_copy), ready, release))
    proc.start()
    try:
        assert ready.wait(30)
        src = _new_rows(golden_copy, tmp_path)
        before = tree_bytes(golden_copy)
        with pytest.raises(DataError, match="locked by another writer") as info:
            import_data(src, golden_copy, mode="update")
        assert info.value.path.endswith(".qcore.lock")
        assert tree_bytes(golden_copy) == before
        began = time.perf_counter()
        with pytest.raises(DataError, match="locked"):
            import_data(src, golden_copy, mode="update", lock_timeout=0.3)
        assert time.perf_counter() - began >= 0.25
    finally:
        release.set()
        proc.join(30)
    summary = import_data(_new_rows(golden_copy, tmp_path / "again"), golden_copy, mode="update")
    assert summary["added"] == 1


def test_lock_in_same_process(golden_copy: Path) -> None:
    first = StoreTransaction(golden_copy)
    first.open()
    try:
        with pytest.raises(DataError, match="locked"):
            StoreTransaction(golden_copy).open()
    finally:
        first.rollback()
    with StoreTransaction(golden_copy):
        pass


def test_journal_is_json_plan(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "s"
    seen = {}
    real = writer._replace

    def spy(a, b):
        seen.setdefault("plan", json.loads((root / JOURNAL_NAME).read_text()))
        real(a, b)

    monkeypatch.setattr(writer, "_replace", spy)
    with StoreTransaction(root) as txn:
        txn.write_text("instruments/all.txt", "X\t2020-01-01\t2020-01-01\n")
        txn.write_text("calendars/day.txt", "2020-01-01\n")
        txn.write_bin("features/x/close.day.bin", 0, np.zeros(1, np.float32))
    targets = [t for _, t in seen["plan"]["renames"]]
    assert targets == ["calendars/day.txt", "features/x/close.day.bin", "instruments/all.txt"]


def test_export_does_not_touch_store(golden: Path, tmp_path: Path) -> None:
    before = QlibBinProvider(golden).version
    export_store(golden, tmp_path / "out", instruments=["SH600000"])
    assert QlibBinProvider(golden).version == before
