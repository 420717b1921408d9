"""The broker interface of ``qcore rl trade`` and its paper-trading implementation by replay of stored bars.

A trader talks to a :class:`Broker` only: it reads the bars revealed so far (:meth:`Broker.history`), the account
(:meth:`Broker.cash`, :meth:`Broker.holdings`), submits share orders (:meth:`Broker.submit`) and waits for the next
bar (:meth:`Broker.advance`), at which the orders fill. :class:`ReplayBroker` replays a stored span one bar at a time
(paper trading); a live adapter (Alpaca, a CTP gateway...) implements the same five methods against its API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs
import numpy as np
import pandas as pd

from qrl.data import DailyData


@attrs.frozen
class Fill:
    """An executed order: ``shares`` > 0 bought, < 0 sold, at ``price``, paying ``cost`` (commission, tax)."""

    date: pd.Timestamp
    instrument: str
    shares: float
    price: float
    cost: float


@attrs.frozen
class Rejection:
    """An order the broker did not execute, and why."""

    date: pd.Timestamp
    instrument: str
    shares: float
    reason: str


@runtime_checkable
class Broker(Protocol):
    """What a trader needs from a broker (paper or live)."""

    def now(self) -> pd.Timestamp:
        """The date of the latest revealed bar."""
        ...

    def history(self) -> DailyData:
        """Every revealed bar, up to and including :meth:`now`; nothing later."""
        ...

    def cash(self) -> float:
        """Cash in the account."""
        ...

    def holdings(self) -> dict[str, float]:
        """Shares held per instrument (instruments with none may be absent)."""
        ...

    def submit(self, orders: Mapping[str, float]) -> None:
        """Queue share orders (+ buy, − sell) to execute at the next bar."""
        ...

    def advance(self) -> tuple[list[Fill], list[Rejection]] | None:
        """Reveal the next bar and execute the queued orders on it (sells first); None when no bar is left."""
        ...


class ReplayBroker:
    """Paper trading by replaying ``data`` from row ``start`` to row ``end`` (inclusive) one bar at a time.

    The bars before ``start`` are history the trader may read from the first decision on. Orders queued after bar
    ``t`` fill at bar ``t + 1``'s close (``timing="next_close"``, the environments' default) or open
    (``next_open``), in whole ``lot_size`` lots (a sale of a whole holding may be odd), only when the instrument is
    tradable that bar; buys are scaled down to the cash left after the sells; costs are ``buy_cost`` / ``sell_cost``
    of the traded value with ``min_cost`` per order.
    """

    def __init__(self, data: DailyData, start: int, end: int | None = None, *, initial_cash: float = 1_000_000.0,
                 lot_size: int = 100, buy_cost: float = 0.0003, sell_cost: float = 0.0013, min_cost: float = 5.0,
                 timing: str = "next_close") -> None:
        last = len(data.dates) - 1 if end is None else int(end)
        if not 0 <= start <= last < len(data.dates):
            raise ValueError(f"replay rows {start}..{last} are outside the data's {len(data.dates)} rows")
        if timing not in ("next_close", "next_open"):
            raise ValueError(f"a replay broker fills at the next bar: timing next_close or next_open, not {timing!r}")
        self.data, self.row, self.end, self.timing = data, int(start), last, timing
        self.lot_size, self.buy_cost, self.sell_cost, self.min_cost = int(lot_size), buy_cost, sell_cost, min_cost
        self._cash = float(initial_cash)
        self._shares = np.zeros(len(data.instruments))
        self._queue: dict[str, float] = {}
        self.fills: list[Fill] = []
        self.rejections: list[Rejection] = []

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self.data.dates[self.row])

    def history(self) -> DailyData:
        return self.data.take(slice(0, self.row + 1))

    def cash(self) -> float:
        return self._cash

    def holdings(self) -> dict[str, float]:
        return {s: float(n) for s, n in zip(self.data.instruments, self._shares, strict=True) if n != 0}

    def value(self) -> float:
        """Cash plus holdings at the latest revealed close (carried over suspensions)."""
        mark = np.nan_to_num(self.data.close[self.row], nan=0.0)
        return float(self._cash + self._shares @ mark)

    def submit(self, orders: Mapping[str, float]) -> None:
        for name, shares in orders.items():
            if name not in self.data.instruments:
                raise KeyError(f"unknown instrument {name!r}")
            self._queue[name] = self._queue.get(name, 0.0) + float(shares)

    def advance(self) -> tuple[list[Fill], list[Rejection]] | None:
        if self.row >= self.end:
            return None
        self.row += 1
        date = self.now()
        prices = self.data.close[self.row] if self.timing == "next_close" else self.data.open[self.row]
        assert self.data.tradable is not None
        fills: list[Fill] = []
        rejected: list[Rejection] = []
        queue, self._queue = self._queue, {}
        for name, shares in sorted(queue.items(), key=lambda kv: kv[1]):  # sells first
            j = self.data.instruments.index(name)
            price = float(prices[j]) if np.isfinite(prices[j]) else float("nan")
            if shares == 0:
                continue
            if not self.data.tradable[self.row, j] or not price > 0:
                rejected.append(Rejection(date, name, shares, "not tradable"))
                continue
            if shares < 0:
                held = self._shares[j]
                n = held if -shares >= held else np.floor(-shares / self.lot_size) * self.lot_size
                if n <= 0:
                    rejected.append(Rejection(date, name, shares, "nothing to sell" if held <= 0 else "under a lot"))
                    continue
                cost = max(n * price * self.sell_cost, self.min_cost)
                self._cash += n * price - cost
                self._shares[j] -= n
                fills.append(Fill(date, name, -float(n), price, float(cost)))
                continue
            afford = np.floor(self._cash / (price * (1 + self.buy_cost)) / self.lot_size) * self.lot_size
            n = min(np.floor(shares / self.lot_size) * self.lot_size, afford)
            cost = max(n * price * self.buy_cost, self.min_cost) if n > 0 else 0.0
            if n <= 0 or n * price + cost > self._cash:
                rejected.append(Rejection(date, name, shares, "not enough cash" if afford < self.lot_size
                                          else "under a lot"))
                continue
            self._cash -= n * price + cost
            self._shares[j] += n
            fills.append(Fill(date, name, float(n), price, float(cost)))
        self.fills += fills
        self.rejections += rejected
        return fills, rejected
