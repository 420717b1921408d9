"""A small synthetic market with one-minute bars for the nested-execution tests, and ways to plant events in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qdata_cn.naming import code_to_fname
from qdata_cn.synth import SynthParams, generate, write_market

#: Qlib's nested example exchange (``examples/nested_decision_execution``) on a minute store.
QLIB_EXCHANGE = {"freq": "1min", "limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
                 "close_cost": 0.0015, "min_cost": 5}  # fmt: skip


def build_store(path: Path, *, instruments: int = 10, days: int = 8, seed: int = 3, start: str = "2020-04-01") -> Path:
    """Write the synthetic market with minute bars under ``path``."""
    market = generate(SynthParams(instruments=instruments, days=days, seed=seed, start=start))
    write_market(market, path, intraday=True)
    return path


def stocks(provider: Any) -> list[str]:
    """The store's stocks (not the index), sorted."""
    return sorted(n for n in provider.universe("all") if not n.startswith("SH000"))


def healthy(provider: Any, day: pd.Timestamp, count: int = 1, skip: int = 0) -> list[str]:
    """Stocks trading every minute of ``day`` without touching a limit."""
    names = stocks(provider)
    minutes = provider.calendar("1min")
    rows = minutes[minutes.normalize() == pd.Timestamp(day)]
    panel = provider.load(["close", "change"], names, rows[0], rows[-1], "1min")
    ok = ~np.isnan(panel["close"]).any(axis=0) & (np.abs(panel["change"]) < 0.09).all(axis=0)
    chosen = [n for n, good in zip(names, ok) if good]
    return chosen[skip : skip + count]


def patch_minutes(store: Path, symbol: str, fields: dict[str, float], first: pd.Timestamp, last: pd.Timestamp) -> None:
    """Overwrite ``fields`` of ``symbol``'s minute bars from ``first`` to ``last`` (inclusive) with values."""
    calendar = pd.DatetimeIndex(pd.read_csv(store / "calendars" / "1min.txt", header=None)[0])
    for field, value in fields.items():
        path = store / "features" / code_to_fname(symbol) / f"{field}.1min.bin"
        data = np.fromfile(path, dtype="<f4")
        start = int(data[0])
        lo = int(calendar.searchsorted(first, "left")) - start
        hi = int(calendar.searchsorted(last, "right")) - start
        data[1 + lo : 1 + hi] = value
        data.tofile(path)


def scores(provider: Any, seed: int = 0) -> pd.Series:
    """Deterministic random scores of every stock on every day."""
    days = provider.calendar("day")
    names = stocks(provider)
    index = pd.MultiIndex.from_product([days, names], names=["datetime", "instrument"])
    return pd.Series(np.random.default_rng(seed).normal(size=len(index)), index=index, name="score")


def orders_file(path: Path, rows: list[tuple[str, str, float, str]]) -> Path:
    """An order file (datetime, instrument, amount, direction)."""
    pd.DataFrame(rows, columns=["datetime", "instrument", "amount", "direction"]).to_csv(path, index=False)
    return path
