"""A store, an instrument file or a source file can never make qcore touch anything outside the store (issue 12).

Crafted write journals (``..``, absolute paths, symbolic links leading out, NUL bytes, wrong types and shapes) are
refused before the first rename, naming the journal and the entry; symbols that could name another place are refused
where they are read; a planted lock-file link is not followed; folders and temporaries of a writer killed while
staging are removed by ``recover``; ``check`` reports damage that reads as NaN; reading a folder, FIFO or unreadable
file where a bin should be is a DataError naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qdata_cn import writer
from qdata_cn.binstore import QlibBinProvider, bin_extent, read_bin, read_instruments
from qdata_cn.check import check_store
from qdata_cn.exporter import export_store
from qdata_cn.importer import import_data
from qdata_cn.writer import JOURNAL_NAME, LOCK_NAME, TMP_SUFFIX, StoreTransaction, find_temporaries
from qdata_testutil import tree_bytes, tree_dirs

from qcore.cli import ExitCode, cli
from qcore.errors import DataError

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def crafted(golden_copy: Path, tmp_path: Path) -> dict[str, Path]:
    """A store beside an ``outside`` folder holding a sentinel file and a bin-like file a journal could target."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("do not touch\n")
    (outside / "close.day.bin").write_bytes(b"\0" * 8)
    (outside / f".close.day.bin.1-abc{TMP_SUFFIX}").write_bytes(b"\1" * 8)
    return {"store": golden_copy, "outside": outside, "sentinel": outside / "sentinel.txt"}


def _snapshot(paths: dict[str, Path]) -> tuple[dict, dict, list]:
    store = paths["store"]
    return tree_bytes(paths["outside"]), tree_bytes(store), tree_dirs(store)


def _journal_members(paths: dict[str, Path]) -> list[tuple[object, str]]:
    """(journal document, text the refusal must contain) for one member of each kind of bad entry."""
    sentinel = str(paths["sentinel"])
    tmp = f"features/sh600000/.close.day.bin.1-abc{TMP_SUFFIX}"
    return [
        ({"renames": [[tmp, "../outside/sentinel.txt"]], "deletes": []}, "renames[0] target"),
        ({"renames": [[tmp, "features/../../outside/sentinel.txt"]], "deletes": []}, "renames[0] target"),
        ({"renames": [[tmp, sentinel]], "deletes": []}, "is an absolute path"),
        ({"renames": [["../outside/.close.day.bin.1-abc" + TMP_SUFFIX, "features/sh600000/close.day.bin"]]},
         "renames[0] temporary"),
        ({"renames": [], "deletes": ["../outside/sentinel.txt"]}, "deletes[0]"),
        ({"renames": [], "deletes": [sentinel]}, "is an absolute path"),
        ({"renames": [], "deletes": ["features/evil/close.day.bin"]}, "leads outside the store"),
        ({"renames": [], "deletes": ["features/sh600000/close.day.bin\0/../../../outside/sentinel.txt"]}, "NUL"),
        ({"renames": [], "deletes": ["..\\outside\\sentinel.txt"]}, "backslash"),
        ({"renames": [], "deletes": ["C:/outside/sentinel.txt"]}, "deletes[0]"),
        ({"renames": [], "deletes": [7]}, "deletes[0] is int"),
        ({"renames": [], "deletes": [None]}, "deletes[0] is NoneType"),
        ({"renames": [[1, 2]], "deletes": []}, "renames[0] temporary is int"),
        ({"renames": [["features/sh600000/close.day.bin"]], "deletes": []}, "not a [temporary, target] pair"),
        ({"renames": "features/sh600000/close.day.bin", "deletes": []}, "'renames' is a JSON str"),
        ([["a", "b"]], "the document is a JSON list"),
        ({"renames": [], "deletes": [], "run": "rm -rf ~"}, "unknown keys"),
        # inside the store, but not a qcore temporary: replaying it would overwrite open.day.bin with close's bytes
        ({"renames": [["features/sh600000/close.day.bin", "features/sh600000/open.day.bin"]]}, "not a qcore temporary"),
        ({"renames": [], "deletes": ["features/sh600000"]}, "is not a file of features/"),
        ({"renames": [], "deletes": [LOCK_NAME]}, "lock or journal"),
    ]


def _write_journal(store: Path, document: object) -> None:
    (store / JOURNAL_NAME).write_text(json.dumps(document))


def _plant(paths: dict[str, Path]) -> None:
    store = paths["store"]
    (store / "features" / "evil").symlink_to(paths["outside"], target_is_directory=True)
    (store / "features" / "sh600000" / f".close.day.bin.1-abc{TMP_SUFFIX}").write_bytes(b"\0" * 8)


def test_crafted_journals_are_refused_and_touch_nothing(crafted: dict[str, Path]) -> None:
    store = crafted["store"]
    _plant(crafted)
    for k, (document, expected) in enumerate(_journal_members(crafted)):
        _write_journal(store, document)
        before = _snapshot(crafted)
        with pytest.raises(DataError) as info:
            writer.recover(store)
        message = str(info.value)
        assert info.value.path == str(store / JOURNAL_NAME), k
        assert expected in message, (k, message)
        assert "nothing was changed" in message
        assert _snapshot(crafted) == before, k
        assert crafted["sentinel"].read_text() == "do not touch\n"


@pytest.mark.parametrize("member", [0, 4, 6, 13, 17])
def test_recover_and_import_refuse_through_the_cli(crafted: dict[str, Path], tmp_path: Path, member: int) -> None:
    store = crafted["store"]
    _plant(crafted)
    document, expected = _journal_members(crafted)[member]
    _write_journal(store, document)
    src = tmp_path / "src"
    src.mkdir()
    (src / "SH600000.csv").write_text("date,close\n2019-04-24,1.5\n")
    before = _snapshot(crafted)
    runner = CliRunner()
    for args in (["data", "recover", str(store)], ["data", "import", str(src), "--to", str(store), "--mode", "update"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == ExitCode.DATA, result.output
        assert JOURNAL_NAME in result.output and expected in result.output
        assert _snapshot(crafted) == before


def test_whole_plan_is_checked_before_the_first_rename(crafted: dict[str, Path]) -> None:
    """A valid first rename is not done when a later entry is bad: the journal is validated as a whole first."""
    store = crafted["store"]
    staged = store / "calendars" / f".day.txt.1-abc{TMP_SUFFIX}"
    staged.write_text("2030-01-02\n")
    _write_journal(store, {"renames": [[staged.relative_to(store).as_posix(), "calendars/day.txt"]],
                           "deletes": ["features/sh600001/close.day.bin", "../outside/sentinel.txt"]})  # fmt: skip
    before = _snapshot(crafted)
    with pytest.raises(DataError, match=r"deletes\[1\] '\.\./outside/sentinel\.txt' climbs out"):
        StoreTransaction(store).open()
    assert _snapshot(crafted) == before
    assert staged.exists() and (store / "calendars" / "day.txt").read_text().startswith("2018-")


def test_journal_file_kinds_are_refused(crafted: dict[str, Path]) -> None:
    store = crafted["store"]
    journal = store / JOURNAL_NAME
    for content in (b"\xff\xfe not utf-8", b"{not json", b"[" * 100_000, b'{"renames": [], "renames": []}'):
        journal.write_bytes(content)
        before = _snapshot(crafted)
        with pytest.raises(DataError, match="the journal is unreadable") as info:
            writer.recover(store)
        assert info.value.path == str(journal)
        assert _snapshot(crafted) == before
    journal.unlink()
    outside_journal = crafted["outside"] / "journal.json"
    outside_journal.write_text(json.dumps({"renames": [], "deletes": []}))
    journal.symlink_to(outside_journal)
    with pytest.raises(DataError, match="not a regular file"):
        writer.recover(store)
    assert journal.is_symlink() and outside_journal.exists()


def test_check_reports_a_crafted_journal_without_advising_recover(crafted: dict[str, Path]) -> None:
    store = crafted["store"]
    _plant(crafted)
    for document, expected in _journal_members(crafted)[:8]:
        _write_journal(store, document)
        errors = [f for f in check_store(store) if f.severity == "error" and f.check == "journal"]
        assert len(errors) == 1
        detail = errors[0].detail
        assert "not one qcore wrote" in detail and expected.split(" ")[0] in detail
        assert "run `qcore data recover`" not in detail and "refuses" in detail
    result = CliRunner().invoke(cli, ["data", "check", str(store)])
    assert result.exit_code == 1 and "not one qcore wrote" in result.output
    _write_journal(store, {"renames": [], "deletes": ["features/sh600000/close.day.bin"]})
    pending = [f for f in check_store(store) if f.check == "journal"]
    assert "run `qcore data recover`" in pending[0].detail


def test_valid_journal_is_still_replayed(golden_copy: Path) -> None:
    staged = golden_copy / "features" / "sh600000" / f".close.day.bin.1-abc{TMP_SUFFIX}"
    old_open = (golden_copy / "features" / "sh600000" / "open.day.bin").read_bytes()
    staged.write_bytes(old_open)
    _write_journal(golden_copy, {"renames": [[staged.relative_to(golden_copy).as_posix(),
                                              "features/sh600000/close.day.bin"]],
                                 "deletes": ["features/sh600001/vwap.day.bin"]})  # fmt: skip
    result = writer.recover(golden_copy)
    assert result["renamed"] == 1 and result["deleted"] == 1
    assert (golden_copy / "features" / "sh600000" / "close.day.bin").read_bytes() == old_open
    assert not (golden_copy / "features" / "sh600001" / "vwap.day.bin").exists()
    assert not (golden_copy / JOURNAL_NAME).exists()


# -- the lock file and symbolic links inside the store ------------------------------------------------------------


def test_lock_file_link_is_not_followed(crafted: dict[str, Path], tmp_path: Path) -> None:
    """A planted ``.qcore.lock`` link must not make qcore open (or truncate) the file it points to."""
    store = crafted["store"]
    (store / LOCK_NAME).unlink(missing_ok=True)
    (store / LOCK_NAME).symlink_to(crafted["sentinel"])
    before = _snapshot(crafted)
    with pytest.raises(DataError, match="lock file is a symbolic link") as info:
        writer.StoreTransaction(store).open()
    assert info.value.path == str(store / LOCK_NAME)
    result = CliRunner().invoke(cli, ["data", "recover", str(store)])
    assert result.exit_code == ExitCode.DATA and "symbolic link" in result.output
    assert _snapshot(crafted) == before


def test_writes_through_a_symlinked_folder_are_refused(crafted: dict[str, Path], tmp_path: Path) -> None:
    store = crafted["store"]
    shutil.rmtree(store / "features" / "sh600000")
    (store / "features" / "sh600000").symlink_to(crafted["outside"], target_is_directory=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "SH600000.csv").write_text("date,close\n2019-04-24,1.5\n")
    before = _snapshot(crafted)
    with pytest.raises(DataError, match="symbolic link leading outside the store") as info:
        import_data(src, store, mode="update")
    assert "features/sh600000" in info.value.path
    # --overwrite would remove the other bins: through the link that meant files outside the store
    with pytest.raises(DataError, match="symbolic link leading outside the store"):
        import_data(src, store, overwrite=True)
    assert _snapshot(crafted) == before
    calendars = store / "calendars"
    shutil.rmtree(calendars)
    calendars.symlink_to(crafted["outside"], target_is_directory=True)
    with pytest.raises(DataError, match="symbolic link leading outside the store"):
        with StoreTransaction(store) as txn:
            txn.write_text("calendars/day.txt", "2020-01-02\n")
    assert tree_bytes(crafted["outside"]) == before[0]


def test_sweep_does_not_follow_links_out(crafted: dict[str, Path]) -> None:
    """Temporaries are swept only in the store's own folders: a linked folder's look-alike files stay."""
    store = crafted["store"]
    _plant(crafted)
    shutil.rmtree(store / "instruments")
    (store / "instruments").symlink_to(crafted["outside"], target_is_directory=True)
    outside = tree_bytes(crafted["outside"])
    result = writer.recover(store)
    assert result["swept"] == 1  # only the one planted inside the store
    assert tree_bytes(crafted["outside"]) == outside


def test_writer_paths_are_checked() -> None:
    bad = ["../x", "/etc/passwd", "features/../../x", "features/a/b/c.bin", "calendars", "a\0b", 3, "", ".qcore.lock",
           "features/./x", "a\\b"]  # fmt: skip
    for rel in bad:
        assert writer.store_path_problem(rel) is not None, rel
    for rel in ("calendars/day.txt", "features/sh600000/close.day.bin", "instruments/all.txt", "synth_info.json"):
        assert writer.store_path_problem(rel) is None, rel


# -- symbols that would name another place ------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["../../outside", "..", "A/B", "a\\b", "SH60\x000000", "SH\x1b600000"])
def test_instrument_files_with_path_symbols_are_refused(crafted: dict[str, Path], symbol: str) -> None:
    store = crafted["store"]
    all_txt = store / "instruments" / "all.txt"
    lines = all_txt.read_text().splitlines()
    lines.insert(3, f"{symbol}\t2018-01-02\t2019-04-23")
    all_txt.write_text("\n".join(lines) + "\n")
    expected_row = 4
    with pytest.raises(DataError) as info:
        read_instruments(all_txt)
    assert info.value.path == str(all_txt) and info.value.row == expected_row
    assert "symbol" in str(info.value)
    with pytest.raises(DataError):
        QlibBinProvider(store).universe("all")
    before = tree_bytes(crafted["outside"])
    with pytest.raises(DataError):
        export_store(store, crafted["outside"].parent / "export")
    assert tree_bytes(crafted["outside"]) == before
    errors = [f for f in check_store(store) if f.severity == "error" and f.check == "instruments"]
    assert errors and "line 4" in errors[0].detail


@pytest.mark.parametrize("symbol", ["../SH600000", "../../outside/x", "..", "a/b"])
def test_loading_or_exporting_path_symbols_is_refused(golden_copy: Path, tmp_path: Path, symbol: str) -> None:
    provider = QlibBinProvider(golden_copy)
    with pytest.raises(DataError, match="symbol"):
        provider.load(["close"], ["SH600000", symbol])
    with pytest.raises(DataError, match="symbol"):
        export_store(golden_copy, tmp_path / "out", instruments=[symbol])
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="market"):
        provider.universe(f"../{symbol}")


@pytest.mark.parametrize("symbol", ["../evil", "../../outside/x", "a/b", "..", "x\x01y"])
def test_import_refuses_path_symbols(tmp_path: Path, symbol: str) -> None:
    src = tmp_path / "long.csv"
    pd.DataFrame({"date": ["2020-01-02", "2020-01-03"], "symbol": ["SH600000", symbol], "close": [1.0, 2.0]}).to_csv(
        src, index=False
    )
    store = tmp_path / "store"
    with pytest.raises(DataError, match="symbol") as info:
        import_data(src, store)
    assert info.value.path == str(src) and info.value.row == 3
    assert not store.exists() and not (tmp_path / "evil").exists()
    summary = import_data(src, store, skip_bad_rows=True, report=tmp_path / "report.csv")
    assert summary["skipped_rows"] == 1
    assert sorted(p.name for p in (store / "features").iterdir()) == ["sh600000"]


def test_import_refuses_dot_file_stems_and_colliding_symbols(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "...csv").write_text("date,close\n2020-01-02,1\n")
    with pytest.raises(DataError, match="no usable symbol") as info:
        import_data(src / "...csv", tmp_path / "store")
    assert info.value.path == str(src / "...csv")
    both = tmp_path / "both.csv"
    both.write_text("date,symbol,close\n2020-01-02,CON,1\n2020-01-02,_qlib_con,2\n")
    with pytest.raises(DataError, match=r"CON and _QLIB_CON would both be stored in features/_qlib_con/"):
        import_data(both, tmp_path / "store")
    assert not (tmp_path / "store").exists()


# -- a writer killed while staging --------------------------------------------------------------------------------

_KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from qdata_cn import writer
    from qdata_cn.importer import import_data

    real, calls = writer._write_file, [0]

    def dying(path, data, durable):
        real(path, data, durable)
        calls[0] += 1
        if calls[0] == int(sys.argv[4]):
            os._exit(9)  # a kill: no rollback, no finally

    writer._write_file = dying
    import_data(sys.argv[1], sys.argv[2], mode=sys.argv[3])
    """
)


def _kill_during_staging(src: Path, store: Path, mode: str, after: int) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(src), str(store), mode, str(after)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 9, proc.stderr


def _new_symbols(tmp_path: Path) -> Path:
    src = tmp_path / "new"
    src.mkdir()
    for sym in ("SH688001", "SH688002", "SZ300999"):
        (src / f"{sym}.csv").write_text("date,close,open\n2019-04-24,1.5,1.4\n2019-04-25,1.6,1.5\n")
    return src


@pytest.mark.parametrize("after", [1, 3, 12])
def test_recover_removes_what_a_killed_import_left_in_an_existing_store(
    golden_copy: Path, tmp_path: Path, after: int
) -> None:
    src = _new_symbols(tmp_path)
    (golden_copy / "features" / "empty_by_user").mkdir()  # not qcore's: recover leaves it
    before, dirs = tree_bytes(golden_copy), tree_dirs(golden_copy)
    _kill_during_staging(src, golden_copy, "update", after)
    assert find_temporaries(golden_copy)
    assert (tree_dirs(golden_copy) != dirs) == (after > 1)  # the first write is the calendar's
    warnings = [f for f in check_store(golden_copy) if f.check == "temporary"]
    assert warnings and "qcore data recover" in warnings[0].detail
    result = CliRunner().invoke(cli, ["data", "recover", str(golden_copy)])
    assert result.exit_code == 0, result.output
    assert "temporary files and folders" in result.output
    assert tree_bytes(golden_copy) == before and tree_dirs(golden_copy) == dirs
    assert find_temporaries(golden_copy) == []
    assert import_data(src, golden_copy, mode="update")["added"] == 3


@pytest.mark.parametrize("after", [1, 2, 4])
def test_recover_removes_what_a_killed_import_left_in_a_new_store(tmp_path: Path, after: int) -> None:
    src = _new_symbols(tmp_path)
    store = tmp_path / "store"
    _kill_during_staging(src, store, "all", after)
    assert find_temporaries(store)
    writer.recover(store)
    assert sorted(p.name for p in store.iterdir()) == [LOCK_NAME]
    assert import_data(src, store)["added"] == 3


def test_sweep_keeps_temp_looking_folders_with_foreign_files(golden_copy: Path) -> None:
    folder = golden_copy / "features" / f".sh688001.1-abc{TMP_SUFFIX}"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    writer.recover(golden_copy)
    assert (folder / "notes.txt").read_text() == "mine"


# -- check: damage that reads as NaN --------------------------------------------------------------------------------


def _errors(store: Path) -> dict[str, str]:
    return {f.target: f.detail for f in check_store(store) if f.severity == "error"}


@pytest.mark.parametrize("name", ["SH600000", "Sh600000", "sh600000 ", "_qlib_sh600000x"])
def test_check_reports_misnamed_feature_folders(golden_copy: Path, name: str) -> None:
    feats = golden_copy / "features"
    (feats / "sh600000").rename(feats / name)
    assert np.isnan(QlibBinProvider(golden_copy).load(["close"], ["SH600000"])["close"]).all()  # reads as NaN
    errors = _errors(golden_copy)
    assert f"features/{name}" in errors, errors
    assert "features/sh600000" in errors[f"features/{name}"] or "symbol" in errors[f"features/{name}"]
    assert CliRunner().invoke(cli, ["data", "check", str(golden_copy)]).exit_code == 1


def test_check_reports_a_reserved_name_folder_without_its_prefix(golden_copy: Path) -> None:
    feats = golden_copy / "features"
    shutil.copytree(feats / "sh600000", feats / "con")
    errors = _errors(golden_copy)
    assert "features/_qlib_con/" in errors["features/con"]


@pytest.mark.parametrize(("symbol", "field"), [("sh600005", "close"), ("sh600009", "vwap"), ("sz000001", "factor")])
def test_check_reports_a_deleted_field_file(golden_copy: Path, symbol: str, field: str) -> None:
    path = golden_copy / "features" / symbol / f"{field}.day.bin"
    path.unlink()
    errors = _errors(golden_copy)
    target = f"features/{symbol}/{field}.day.bin"
    assert target in errors and f"${field}" in errors[target] and "NaN" in errors[target]


def test_check_warns_about_fields_only_some_instruments_have(golden_copy: Path) -> None:
    for k, folder in enumerate(sorted((golden_copy / "features").iterdir())):
        if k % 2:
            (folder / "change.day.bin").unlink()
    findings = check_store(golden_copy)
    assert not [f for f in findings if f.severity == "error"]
    warned = [f for f in findings if f.check == "missing-field"]
    assert warned and "30 of 61" in warned[0].detail and "change.day.bin" in warned[0].detail


def test_check_and_reads_of_things_that_are_not_bins(golden_copy: Path) -> None:
    feats = golden_copy / "features"
    folder_bin = feats / "sh600001" / "close.day.bin"
    folder_bin.unlink()
    folder_bin.mkdir()
    fifo = feats / "sh600002" / "open.day.bin"
    fifo.unlink()
    os.mkfifo(fifo)
    upper = feats / "sh600003" / "high.day.bin"
    upper.rename(upper.with_name("High.day.bin"))
    errors = _errors(golden_copy)
    assert "a folder" in errors["features/sh600001/close.day.bin"]
    assert "not a regular file" in errors["features/sh600002/open.day.bin"]
    assert "not lower case" in errors["features/sh600003/High.day.bin"]
    provider = QlibBinProvider(golden_copy)
    for path, field, symbol in ((folder_bin, "close", "SH600001"), (fifo, "open", "SH600002")):
        with pytest.raises(DataError) as info:
            provider.load([field], [symbol])
        assert info.value.path == str(path)
        for reader in (read_bin, bin_extent):
            with pytest.raises(DataError) as info:
                reader(path)
            assert info.value.path == str(path)
    with pytest.raises(DataError, match="a folder"):
        provider.extent("SH600001")


def test_a_file_where_the_instrument_folder_should_be(golden_copy: Path) -> None:
    folder = golden_copy / "features" / "sh600004"
    shutil.rmtree(folder)
    folder.write_text("not a folder")
    with pytest.raises(DataError, match="a file stands where the instrument's folder should be") as info:
        QlibBinProvider(golden_copy).load(["close"], ["SH600004"])
    assert info.value.path.startswith(str(folder))
    assert "SH600004" in _errors(golden_copy)


@pytest.mark.skipif(ROOT_USER, reason="root reads files whatever their mode")
def test_unreadable_bin_is_a_data_error(golden_copy: Path) -> None:
    path = golden_copy / "features" / "sh600006" / "close.day.bin"
    path.chmod(0)
    try:
        with pytest.raises(DataError, match="cannot read") as info:
            QlibBinProvider(golden_copy).load(["close"], ["SH600006"])
        assert info.value.path == str(path)
        assert "features/sh600006/close.day.bin" in _errors(golden_copy)
    finally:
        path.chmod(0o644)


def test_truncated_bin_names_the_file_everywhere(golden_copy: Path) -> None:
    path = golden_copy / "features" / "sh600007" / "volume.day.bin"
    path.write_bytes(path.read_bytes()[:-2])
    for call in (lambda: read_bin(path), lambda: bin_extent(path),
                 lambda: QlibBinProvider(golden_copy).load(["volume"], ["SH600007"])):  # fmt: skip
        with pytest.raises(DataError, match="truncated") as info:
            call()
        assert info.value.path == str(path)
    assert np.isfinite(QlibBinProvider(golden_copy).load(["close"], ["SH600007"])["close"]).any()


def test_calendar_and_instrument_files_that_are_not_files(golden_copy: Path) -> None:
    calendar = golden_copy / "calendars" / "day.txt"
    calendar.unlink()
    os.mkfifo(calendar)  # reading a FIFO would wait for a writer forever
    with pytest.raises(DataError, match="cannot read calendar") as info:
        QlibBinProvider(golden_copy).calendar()
    assert info.value.path == str(calendar)
    all_txt = golden_copy / "instruments" / "all.txt"
    all_txt.unlink()
    all_txt.mkdir()
    with pytest.raises(DataError, match="cannot read instrument file") as info:
        QlibBinProvider(golden_copy).universe("all")
    assert info.value.path == str(all_txt)
    errors = _errors(golden_copy)
    assert "calendars/day.txt" in errors and "instruments/all.txt" in errors
