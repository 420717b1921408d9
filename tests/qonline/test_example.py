"""``examples/online/``: the day-by-day routine (update → retrain → predict → orders → monitor) on a small store over
a few days, with paper positions carried from one day to the next, new bars appended mid-way, and a day run twice
changing nothing."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.kernel.test_workflow import STORE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "online"
FIELDS = ("open", "close", "high", "low", "volume", "factor", "vwap", "change", "amount")


def _daily() -> Any:
    spec = importlib.util.spec_from_file_location("online_daily", EXAMPLE / "daily.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _new_bars(store: Path, path: Path, days: list[str]) -> Path:
    """Bars after the store's end: each name's last bar repeated with a small drift (every stored field)."""
    from qdata_cn.binstore import QlibBinProvider

    provider = QlibBinProvider(store)
    names = sorted(provider.universe("csi_like"))
    last = provider.load(list(FIELDS), names, "2019-04-23", "2019-04-23")
    rows = []
    for i, day in enumerate(days):
        for j, name in enumerate(names):
            row = {"symbol": name, "date": day}
            for field in FIELDS:
                value = float(last[field][0, j])
                row[field] = value * (1.0 + 0.002 * (i + 1)) if field in ("open", "close", "high", "low", "vwap") \
                    else value  # fmt: skip
            row["change"] = 0.002
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_daily_routine_over_a_few_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    shutil.copytree(STORE, store)
    members = store / "instruments" / "csi_like.txt"  # the index's membership runs on (a desk updates it too)
    members.write_text(members.read_text().replace("\t2019-04-23", "\t2099-12-31"))
    raw = yaml.safe_load((EXAMPLE / "workflow.yaml").read_text())
    raw["data"]["provider"]["kwargs"]["provider_uri"] = str(store)
    raw["data"]["universe"] = "csi_like"
    raw["dataset"]["segments"] = {"train": ["2018-01-02", "2018-09-28"], "valid": ["2018-10-08", "2018-12-28"],
                                  "test": ["2019-01-02", "2099-12-31"]}  # fmt: skip
    raw["rolling"]["checkpoint"] = str(tmp_path / "online" / "checkpoint")
    raw["backtest"] = {"strategy": {"name": "TopkDropout", "kwargs": {"topk": 5, "n_drop": 1}}, "benchmark": None}
    raw["online"] = {"folder": str(tmp_path / "online"), "drift": {"ic_window": 3, "psi_window": 5}}
    raw["recorder"]["kwargs"]["uri"] = str(tmp_path / "runs")
    config = tmp_path / "workflow.yaml"
    config.write_text(yaml.safe_dump(raw))
    positions = tmp_path / "positions.csv"
    positions.write_text("instrument,amount\nCASH,1000000\n")
    daily = _daily()

    positions = daily.routine(str(config), "2019-04-19", str(positions), paper=True)
    assert positions.name == "positions-2019-04-22.csv"
    held = pd.read_csv(positions)
    targets = pd.read_parquet(tmp_path / "online" / "orders" / "2019-04-19.targets.parquet")
    assert held.iloc[0]["instrument"] == "CASH" and list(held["instrument"][1:]) == list(targets["instrument"])
    first = pd.read_parquet(tmp_path / "online" / "orders" / "2019-04-19.parquet")
    blocked = json.loads((tmp_path / "online" / "orders" / "2019-04-19.json").read_text())["blocked"]
    assert set(first["direction"]) == {"buy"} and len(first) + len(blocked) == 5  # topk 5 from cash only
    out = capsys.readouterr().out
    assert "trained window-000, window-001, window-002, window-003" in out

    # new bars arrive: the routine appends them, serves the new day and decides its orders
    bars = _new_bars(store, tmp_path / "bars.csv", ["2019-04-24", "2019-04-25"])
    nxt = daily.routine(str(config), "2019-04-25", str(positions), source=str(bars), paper=True)
    assert nxt.name == "positions-2019-04-26.csv"  # the next weekday: the store has no later bar
    meta = json.loads((tmp_path / "online" / "orders" / "2019-04-25.json").read_text())
    assert meta["trade_date"] == "2019-04-26" and meta["date"] == "2019-04-25"
    monitor = json.loads((tmp_path / "online" / "monitor" / "2019-04-25.json").read_text())
    assert monitor["ic"]["days"] >= 1 and set(monitor["psi"]) and isinstance(monitor["retrain"], bool)
    pred = pd.read_parquet(tmp_path / "online" / "predictions" / "2019-04-25.parquet")["score"]
    assert len(pred) > 30 and np.isfinite(pred).all()
    # the 19th's monitor flagged drift (5 recent days against a 9-month train span): a drift model serves now
    out = capsys.readouterr().out
    assert "trained drift-2019-04-19: drift: window-003 moved to train up to" in out
    assert json.loads((tmp_path / "online" / "predictions" / "2019-04-25.json").read_text())["model"] == \
        "drift:2019-04-19"  # fmt: skip

    # the same day again: every step is up to date
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "online").rglob("*.parquet")}
    daily.routine(str(config), "2019-04-25", str(positions), source=str(bars))
    out = capsys.readouterr().out
    assert "already imported" in out and "nothing to train" in out and out.count("up to date") == 3
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "online").rglob("*.parquet")} == before
    steps = [e["step"] for e in json.loads("[" + ",".join((tmp_path / "online" / "log.jsonl").read_text()
                                                          .splitlines()) + "]")]  # fmt: skip
    assert steps.count("orders") == 3 and steps.count("update") == 2
