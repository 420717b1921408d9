"""Concurrent ``qcore data import`` processes into one store (issue 12).

Whether the store exists, its calendar, instruments and bins are read only once the lock is held, so two or three
imports started together give the store a sequential run gives, ``qcore data check`` passes after every round, and
a waiting import (``--lock-timeout``) never fails with a misleading message on a healthy store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from qdata_cn.check import check_store
from qdata_cn.importer import import_data
from qdata_testutil import tree_bytes

from qcore.cli import ExitCode

DAYS = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"]
NEW_DAYS = ["2020-01-08", "2020-01-09"]
#: Rounds per test: (processes, rounds); three processes race more, so they run more rounds (the whole file ~20 s).
RACES = [(2, 1), (3, 2)]


def _store_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree_bytes(root).items() if k.startswith(("calendars/", "features/", "instruments/"))}


def _source(folder: Path, symbols: list[str], days: list[str], seed: int) -> Path:
    folder.mkdir(parents=True)
    for k, sym in enumerate(symbols):
        base = 10.0 + seed + k
        pd.DataFrame({
            "date": days,
            "open": [base + 0.1 * i for i in range(len(days))],
            "close": [base + 0.2 * i for i in range(len(days))],
            "volume": [1000.0 * (i + 1) for i in range(len(days))],
        }).to_csv(folder / f"{sym}.csv", index=False)  # fmt: skip
    return folder


def _start(src: Path, store: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "qcore", "data", "import", str(src), "--to", str(store), "--lock-timeout", "60",
               *args]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _run_together(jobs: list[tuple[Path, Path, tuple[str, ...]]]) -> list[tuple[int, str]]:
    procs = [_start(src, store, *args) for src, store, args in jobs]
    out = []
    for proc in procs:
        text, _ = proc.communicate(timeout=120)
        out.append((proc.returncode, text))
    return out


def _assert_checks(store: Path) -> None:
    errors = [f for f in check_store(store) if f.severity == "error"]
    assert errors == [], errors


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    return {
        "base": _source(base / "base", ["SH600000", "SH600001"], DAYS, 0),
        "a": _source(base / "a", ["SH600010", "SZ000010"], DAYS, 1),
        "b": _source(base / "b", ["SH600020"], DAYS[1:], 2),
        "c": _source(base / "c", ["SZ000030", "SZ000031"], DAYS[:3], 3),
        "up1": _source(base / "up1", ["SH600101"], NEW_DAYS, 4),
        "up2": _source(base / "up2", ["SH600102", "SH600000"], NEW_DAYS, 5),
        "up3": _source(base / "up3", ["SZ000103"], NEW_DAYS, 6),
    }


def _sequential(tmp_path: Path, name: str, steps: list[tuple[Path, dict]]) -> dict[str, bytes]:
    store = tmp_path / f"expected-{name}"
    for src, kwargs in steps:
        import_data(src, store, **kwargs)
    return _store_files(store)


@pytest.mark.parametrize(("n", "rounds"), RACES)
def test_new_store_mode_all(sources: dict[str, Path], tmp_path: Path, n: int, rounds: int) -> None:
    """Same source, new store: one import builds it; the others say a store now exists (not a misleading error)."""
    expected = _sequential(tmp_path, "all", [(sources["a"], {})])
    for round_ in range(rounds):
        store = tmp_path / f"store{round_}"
        results = _run_together([(sources["a"], store, ())] * n)
        codes = sorted(code for code, _ in results)
        assert codes == [0] + [ExitCode.DATA] * (n - 1), results
        for code, text in results:
            if code:
                assert "a store with a day calendar exists" in text and "--mode update" in text, text
                assert "Traceback" not in text
        _assert_checks(store)
        assert _store_files(store) == expected


def test_new_store_mode_all_overwrite_of_different_sources(sources: dict[str, Path], tmp_path: Path) -> None:
    """Three different sources with --overwrite: every import succeeds, the store is exactly one of them."""
    names = ["a", "b", "c"]
    expected = [_sequential(tmp_path, name, [(sources[name], {})]) for name in names]
    store = tmp_path / "store"
    results = _run_together([(sources[name], store, ("--overwrite",)) for name in names])
    assert [code for code, _ in results] == [0, 0, 0], results
    _assert_checks(store)
    assert _store_files(store) in expected


@pytest.mark.parametrize(("n", "rounds"), RACES)
def test_existing_store_mode_update(sources: dict[str, Path], tmp_path: Path, n: int, rounds: int) -> None:
    """Updates that add the same new days and different instruments: the result of any sequential order."""
    updates = ["up1", "up2", "up3"][:n]
    expected = _sequential(tmp_path, "update", [(sources["base"], {})] + [(sources[u], {"mode": "update"})
                                                                           for u in updates])  # fmt: skip
    for round_ in range(rounds):
        store = tmp_path / f"store{round_}"
        import_data(sources["base"], store)
        results = _run_together([(sources[u], store, ("--mode", "update")) for u in updates])
        assert [code for code, _ in results] == [0] * n, results
        _assert_checks(store)
        assert _store_files(store) == expected


def test_existing_store_mode_all_and_update_together(sources: dict[str, Path], tmp_path: Path) -> None:
    """--mode all --overwrite next to an update: both succeed, the store is what one of the two orders gives."""
    orders = [
        _sequential(tmp_path, "au", [(sources["base"], {}), (sources["a"], {"overwrite": True}),
                                     (sources["up1"], {"mode": "update"})]),
        _sequential(tmp_path, "ua", [(sources["base"], {}), (sources["up1"], {"mode": "update"}),
                                     (sources["a"], {"overwrite": True})]),
    ]  # fmt: skip
    assert orders[0] != orders[1]
    store = tmp_path / "store"
    import_data(sources["base"], store)
    results = _run_together([(sources["a"], store, ("--overwrite",)), (sources["up1"], store, ("--mode", "update"))])
    assert [code for code, _ in results] == [0, 0], results
    _assert_checks(store)
    assert _store_files(store) in orders
