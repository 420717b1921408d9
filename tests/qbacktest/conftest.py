"""Fixtures of the backtest tests: the golden store and scores, and small in-memory markets built per test."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qcore.kernel import Kernel
from qcore.types import Panel, Span

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN_MARKET = DATA / "golden_market"
GOLDEN_BACKTEST = DATA / "golden" / "backtest"


class MemoryProvider:
    """A data provider over in-memory ``(dates, instruments)`` arrays (the :class:`DataProvider` protocol).

    ``data[field]`` is a DataFrame (index dates, columns instruments); an instrument's data range is ``spans``
    (default: the whole calendar) and values outside it read as NaN.
    """

    def __init__(self, data: Mapping[str, pd.DataFrame], spans: Mapping[str, tuple[object, object]] | None = None,
                 markets: Mapping[str, Sequence[str]] | None = None) -> None:  # fmt: skip
        first = next(iter(data.values()))
        self.dates = pd.DatetimeIndex(first.index)
        self.symbols = list(first.columns)
        self.data = {k.lower(): v.reindex(index=self.dates, columns=self.symbols) for k, v in data.items()}
        self.spans = {s: (self.dates[0], self.dates[-1]) for s in self.symbols}
        for s, (a, b) in (spans or {}).items():
            self.spans[s] = (pd.Timestamp(a), pd.Timestamp(b))
        self._markets = {"all": self.symbols, **{k: list(v) for k, v in (markets or {}).items()}}

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        return self.dates

    def markets(self) -> list[str]:
        return list(self._markets)

    def universe(self, market: str = "all") -> dict[str, tuple[Span, ...]]:
        return {s: (Span(*self.spans[s]),) for s in self._markets[market]}

    def fields(self, freq: str = "day") -> list[str]:
        return list(self.data)

    def load(self, fields, instruments, start=None, end=None, freq="day") -> Panel:
        lo = 0 if start is None else int(self.dates.searchsorted(pd.Timestamp(start), "left"))
        hi = len(self.dates) if end is None else int(self.dates.searchsorted(pd.Timestamp(end), "right"))
        dates = self.dates[lo:hi]
        out = {}
        for field in fields:
            key = field.lstrip("$").lower()
            frame = self.data[key].reindex(columns=list(instruments)).iloc[lo:hi].copy()
            for s in instruments:
                a, b = self.spans.get(s, (None, None))
                if a is None:
                    frame[s] = np.nan
                else:
                    frame.loc[(dates < a) | (dates > b), s] = np.nan
            out[key] = frame.to_numpy(dtype=np.float32)
        return Panel(dates, tuple(instruments), out)

    @property
    def version(self) -> str:
        return "memory"


def make_market(
    n_days: int = 30,
    symbols: Sequence[str] = ("SH600000", "SH600001", "SH600002", "SH600003", "SH600004", "SH600005"),
    *,
    price: float = 10.0,
    factor: float = 1.0,
    volume: float = 1e7,
    seed: int = 0,
    bench: str | None = "SH000300",
) -> dict[str, pd.DataFrame]:
    """Fields of a quiet random-walk market (adjusted prices = raw × factor, change from the close)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_days)
    names = list(symbols) + ([bench] if bench else [])
    raw = price * np.exp(np.cumsum(rng.normal(0, 0.01, (n_days, len(names))), axis=0))
    raw = np.round(raw, 2)
    close = pd.DataFrame(raw * factor, index=dates, columns=names)
    fields = {
        "close": close,
        "open": close.copy(),
        "vwap": close.copy(),
        "high": close * 1.01,
        "low": close * 0.99,
        "volume": pd.DataFrame(volume / factor, index=dates, columns=names),
        "factor": pd.DataFrame(factor, index=dates, columns=names),
    }
    fields["change"] = close / close.shift(1) - 1
    return fields


def recompute_change(fields: dict[str, pd.DataFrame]) -> None:
    """``$change`` from the forward-filled close, NaN where the close is NaN (the store's rule)."""
    close = fields["close"]
    fields["change"] = (close / close.ffill().shift(1) - 1).where(close.notna())


def scores_frame(values: Mapping[str, Sequence[float]], dates: Sequence[object]) -> pd.DataFrame:
    """Scores for ``dates`` (rows) per instrument: ``{instrument: [score per date]}``; NaN rows are left out."""
    rows = []
    for inst, column in values.items():
        for when, v in zip(dates, column):
            if v is not None:
                rows.append((pd.Timestamp(when), inst, float(v)))
    frame = pd.DataFrame(rows, columns=["datetime", "instrument", "score"]).set_index(["datetime", "instrument"])
    return frame.sort_index()


QLIB_EXCHANGE = {"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005, "close_cost": 0.0015,
                 "min_cost": 5, "trade_unit": 100}  # fmt: skip


@pytest.fixture(scope="session")
def session_kernel() -> Kernel:
    """One kernel with every installed plugin, shared by the tests that only read registries."""
    return Kernel.load(use_env=False)


@pytest.fixture(scope="session")
def golden_provider(session_kernel: Kernel):
    """The golden Qlib store."""
    return session_kernel.create("data_provider", "qlib_bin", provider_uri=str(GOLDEN_MARKET))


@pytest.fixture(scope="session")
def golden_scores() -> pd.DataFrame:
    """The golden backtest's scores."""
    return pd.read_parquet(GOLDEN_BACKTEST / "score.parquet")


@pytest.fixture(scope="session")
def golden_config() -> dict:
    """The golden backtest's parameters."""
    return json.loads((GOLDEN_BACKTEST / "config.json").read_text())


def run_memory(kernel: Kernel, fields: Mapping[str, pd.DataFrame], strategy, *,
               spans: Mapping[str, tuple[object, object]] | None = None, **kwargs):
    """Backtest ``strategy`` on an in-memory market (Qlib-compatible exchange unless told otherwise)."""
    from qbacktest.backtest import run_backtest

    provider = MemoryProvider(fields, spans)
    kwargs.setdefault("account", 1e6)
    if "market_rules" not in kwargs:
        kwargs.setdefault("exchange_kwargs", dict(QLIB_EXCHANGE))
    return run_backtest(provider, strategy, kernel=kernel, **kwargs)
