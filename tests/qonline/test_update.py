"""qonline update: new bars appended through the registered ``qcore data import --mode update``, once per source;
a bad source leaves the store as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from qonline.routine import update
from qonline.store import OnlineFolder

from qcore.cli import cli
from qcore.config import config_from_mapping
from qcore.kernel import Kernel

NAMES = ("SH600000", "SH600001", "SZ000001")


def _bars(path: Path, days: pd.DatetimeIndex, first: int = 0) -> Path:
    rows = [{"symbol": name, "date": day.strftime("%Y-%m-%d"), "open": 10 + 0.1 * (first + i),
             "close": 10 + 0.1 * (first + i), "high": 10.5, "low": 9.5, "volume": 1000.0 + i, "factor": 1.0}
            for name in NAMES for i, day in enumerate(days)]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Kernel]:
    kernel = Kernel.load(use_env=False)
    monkeypatch.setattr("qcore.cli.get_kernel", lambda ctx, extra_selection=None: kernel)
    days = pd.bdate_range("2020-01-01", periods=30)
    source = _bars(tmp_path / "a.csv", days)
    out = CliRunner().invoke(cli, ["data", "import", str(source), "--to", str(tmp_path / "store")])
    assert out.exit_code == 0, out.output
    raw = {"experiment": "online", "data": {"provider": {"name": "qlib_bin", "kwargs": {
        "provider_uri": str(tmp_path / "store")}}, "universe": "all"}, "online": {"folder": str(tmp_path / "online")},
        "recorder": {"name": "local", "kwargs": {"uri": str(tmp_path / "runs")}}}  # fmt: skip
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(raw))
    return tmp_path, path, kernel


def _calendar(tmp: Path) -> list[str]:
    return (tmp / "store" / "calendars" / "day.txt").read_text().split()


def test_update_appends_once_per_source(setup: tuple[Path, Path, Kernel]) -> None:
    tmp, config_path, _ = setup
    new = _bars(tmp / "b.csv", pd.bdate_range("2020-02-12", periods=3), first=30)
    runner = CliRunner()
    out = runner.invoke(cli, ["online", "update", str(config_path), "--source", str(new)])
    assert out.exit_code == 0, out.output
    assert "last bar 2020-02-14, imported" in out.output
    assert _calendar(tmp)[-3:] == ["2020-02-12", "2020-02-13", "2020-02-14"] and len(_calendar(tmp)) == 33
    close = (tmp / "store" / "features" / "sh600000" / "close.day.bin").read_bytes()
    out = runner.invoke(cli, ["online", "update", str(config_path), "--source", str(new)])
    assert out.exit_code == 0 and "already imported" in out.output, out.output
    assert len(_calendar(tmp)) == 33
    assert (tmp / "store" / "features" / "sh600000" / "close.day.bin").read_bytes() == close
    log = [e for e in OnlineFolder(tmp / "online").read_log() if e["step"] == "update"]
    assert [e["computed"] for e in log] == [True, False] and log[0]["before"] != log[0]["after"]


def test_bad_sources_leave_the_store_alone(setup: tuple[Path, Path, Kernel]) -> None:
    tmp, config_path, kernel = setup
    before = _calendar(tmp)
    bad = tmp / "bad.csv"
    bad.write_text("symbol,date,close\nSH600000,2020-02-12,1.0\nSH600000,not-a-date,2.0\n")
    runner = CliRunner()
    out = runner.invoke(cli, ["online", "update", str(config_path), "--source", str(bad)])
    assert out.exit_code not in (0, 70), out.output
    assert _calendar(tmp) == before and not list((tmp / "store").rglob("*.tmp*"))
    out = runner.invoke(cli, ["online", "update", str(config_path), "--source", str(tmp / "none.csv")])
    assert out.exit_code not in (0, 70) and "--source" in out.output
    calls: list[Any] = []
    config = config_from_mapping(yaml.safe_load(config_path.read_text()), kernel=kernel)
    new = _bars(tmp / "c.csv", pd.bdate_range("2020-02-12", periods=1), first=30)
    step = update(config, kernel, OnlineFolder(tmp / "online"), new, calls.append)
    assert calls == [["data", "import", str(new), "--to", str(tmp / "store"), "--mode", "update", "--freq", "day"]]
    assert step.computed
