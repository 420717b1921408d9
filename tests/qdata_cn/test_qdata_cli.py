"""`qcore data ...` through the kernel's command line (the plugin is found by its entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from qdata_testutil import tree_bytes

from qcore.cli import ExitCode, cli


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_data_group_is_listed() -> None:
    result = _run("data", "--help")
    assert result.exit_code == 0
    for name in ("synth", "import", "export", "check", "info", "recover"):
        assert name in result.output


def test_synth_check_info(tmp_path: Path) -> None:
    out = tmp_path / "store"
    result = _run("data", "synth", "--out", str(out), "--instruments", "20", "--days", "120", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "wrote 21 instruments x 120 days" in result.output
    assert _run("data", "check", str(out)).exit_code == 0
    info = _run("data", "info", str(out), "--json")
    assert info.exit_code == 0
    data = json.loads(info.output)
    assert data["freqs"]["day"]["rows"] == 120 and data["markets"]["all"] == 21
    again = _run("data", "synth", "--out", str(out), "--instruments", "20", "--days", "120")
    assert again.exit_code == ExitCode.DATA and "--overwrite" in again.output
    assert _run("data", "synth", "--out", str(out), "--days", "30", "--instruments", "5", "--overwrite").exit_code == 0


def test_synth_minute_bars(tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = _run("data", "synth", "--out", str(out), "--instruments", "5", "--days", "5", "--freq", "1min")
    assert result.exit_code == 0, result.output
    assert len((out / "calendars" / "1min.txt").read_text().splitlines()) == 5 * 240
    assert _run("data", "check", str(out), "--freq", "1min").exit_code == 0


def test_export_import_round_trip(golden: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    result = _run("data", "export", str(golden), "--to", str(exp), "--format", "parquet", "--layout", "long")
    assert result.exit_code == 0, result.output
    store = tmp_path / "store"
    result = _run("data", "import", str(exp / "all.parquet"), "--to", str(store), "--symbol-col", "symbol",
                  "--date-col", "date", "--exclude-fields", "nothing")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "61 instruments added" in result.output
    ours = {k: v for k, v in tree_bytes(store).items() if k.startswith("features/")}
    theirs = {k: v for k, v in tree_bytes(golden).items() if k.startswith("features/")}
    assert ours == theirs


def test_import_update_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "SH600000.csv").write_text("date,close,volume\n2020-01-02,1,10\n2020-01-03,2,20\n")
    store = tmp_path / "store"
    assert _run("data", "import", str(src), "--to", str(store)).exit_code == 0
    new = tmp_path / "new"
    new.mkdir()
    (new / "SH600000.csv").write_text("date,close,volume\n2020-01-06,3,30\n")
    result = _run("data", "import", str(new), "--to", str(store), "--mode", "update")
    assert result.exit_code == 0, result.output
    assert "1 updated" in result.output and "1 new" in result.output
    raw = np.fromfile(store / "features" / "sh600000" / "close.day.bin", "<f4")
    assert raw.tolist() == [0, 1, 2, 3]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "SH600001.csv").write_text("date,close\n2020-01-07,1\n2020-01-07,2\n")
    result = _run("data", "import", str(bad), "--to", str(store), "--mode", "update")
    assert result.exit_code == ExitCode.DATA
    assert f"{bad / 'SH600001.csv'}:3:" in result.output and "duplicate date" in result.output
    report = tmp_path / "report.csv"
    result = _run("data", "import", str(bad), "--to", str(store), "--mode", "update", "--skip-bad-rows",
                  "--report", str(report))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert report.read_text().splitlines()[1].startswith(str(bad / "SH600001.csv") + ",3,duplicate date")


def test_recover_and_bad_store(tmp_path: Path, golden_copy: Path) -> None:
    assert _run("data", "recover", str(golden_copy)).exit_code == 0
    missing = _run("data", "info", str(tmp_path / "nope"))
    assert missing.exit_code == ExitCode.USAGE


def test_provider_through_kernel(golden: Path) -> None:
    from qcore.api import load_kernel, open_provider
    from qcore.protocols import DataProvider

    kernel = load_kernel()
    provider = open_provider("qlib_bin", provider_uri=str(golden), region="cn", kernel=kernel)
    assert isinstance(provider, DataProvider)
    assert provider.load(["close"], ["SH600000"]).shape == (320, 1)
    assert "qlib_bin" in kernel.registry("data_provider")


def test_synth_provider_generates_on_first_use(tmp_path: Path) -> None:
    from qcore.api import open_provider

    provider = open_provider("synth_cn", provider_uri=str(tmp_path / "auto"), instruments=5, days=30)
    assert len(provider.calendar()) == 30
    assert (tmp_path / "auto" / "instruments" / "csi300.txt").exists()


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, qdata_cn.plugin, qdata_cn.cli; "
        "heavy = [m for m in ('numpy', 'pandas', 'pyarrow', 'filelock') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
