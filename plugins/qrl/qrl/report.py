"""``qcore rl backtest CHECKPOINT``: a portfolio checkpoint backtested as the ``rl_policy`` weight strategy, with the
backtest plugin's reports and HTML page.

qrl imports no backtest code: it writes a Qlib-style ``BT.yaml`` naming the registered ``rl_policy`` strategy and a
score file that only marks the window (the dates × the trained instruments, all 0: ``rl_policy`` decides from its
own observations, not from scores), then runs the registered ``qcore backtest`` command on them, whichever plugin
provides it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from qcore.errors import ConfigError, QcoreError


def window(meta: dict[str, Any], calendar: pd.DatetimeIndex, start: object = None, end: object = None
           ) -> pd.DatetimeIndex:
    """The backtest's dates: ``start``..``end``, by default the checkpoint's test split; a window that overlaps the
    train or valid split is refused (in-sample)."""
    test = (meta.get("splits") or {}).get("test")
    lo = pd.Timestamp(str(start)) if start is not None else (pd.Timestamp(test[0]) if test else None)
    hi = pd.Timestamp(str(end)) if end is not None else (pd.Timestamp(test[1]) if test else None)
    if lo is None or hi is None:
        raise ConfigError("the checkpoint records no test split: give --start and --end", path="--start")
    dates = calendar[(calendar >= lo) & (calendar <= hi)]
    if len(dates) < 2:
        raise ConfigError(f"the store has fewer than 2 trading days in {lo.date()} .. {hi.date()}", path="--start")
    for name in ("train", "valid"):
        span = (meta.get("splits") or {}).get(name)
        if span and not (pd.Timestamp(span[1]) < dates[0] or pd.Timestamp(span[0]) > dates[-1]):
            raise ConfigError(f"the window {dates[0].date()} .. {dates[-1].date()} overlaps the checkpoint's {name} "
                              f"split {span[0]} .. {span[1]}: backtest it on later dates", path="--start")
    return dates


def backtest_checkpoint(checkpoint: str | Path, provider_uri: str | Path, out: str | Path, *, kernel: Any,
                        start: object = None, end: object = None, account: float = 1_000_000.0,
                        benchmark: str | None = None, costs: tuple[float, float, float] = (0.0005, 0.0015, 5.0),
                        html: bool = True) -> str:
    """Backtest ``checkpoint`` on the store ``provider_uri`` over :func:`window` with ``qcore backtest`` into
    ``out`` (reports, ``risk.json``, ``report.html``); returns the command's summary lines."""
    from qrl import checkpoint as ckpt

    meta = ckpt.read_meta(checkpoint)
    if meta.get("env") != "portfolio" or not meta.get("features"):
        raise ConfigError(f"qcore rl backtest needs a portfolio checkpoint trained on a store or source files (with "
                          f"feature expressions); {checkpoint} is not one", path="CHECKPOINT")
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(provider_uri))
    dates = window(meta, provider.calendar("day"), start, end)
    names = list(meta["instruments"])
    index = pd.MultiIndex.from_product([dates, names], names=["datetime", "instrument"])
    bt = {"strategy": {"class": "rl_policy", "kwargs": {"checkpoint": str(Path(checkpoint).resolve())}},
          "backtest": {"account": float(account), "benchmark": benchmark,
                       "exchange_kwargs": {"deal_price": "close", "open_cost": costs[0], "close_cost": costs[1],
                                           "min_cost": costs[2]}}}
    with tempfile.TemporaryDirectory(prefix="qrl-backtest-") as tmp:
        pd.DataFrame({"score": 0.0}, index=index).to_parquet(Path(tmp) / "window.parquet")
        (Path(tmp) / "bt.yaml").write_text(yaml.safe_dump(bt, sort_keys=False), encoding="utf-8")
        cmd = [sys.executable, "-m", "qcore", "backtest", "--provider-uri", str(provider_uri), "--score",
               str(Path(tmp) / "window.parquet"), "--config", str(Path(tmp) / "bt.yaml"), "--out", str(out),
               "--html" if html else "--no-html"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise QcoreError(f"qcore backtest failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    return done.stdout.strip()
