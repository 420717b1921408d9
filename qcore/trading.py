"""Value types and protocols that trading strategies and executors exchange.

A backtest (or a live trader) runs one loop per bar: the strategy turns what it knows into a
:class:`TradeDecision`, the executor carries the decision out and reports one :class:`Fill` per order. Nothing here
knows about a market, an exchange simulator or a data store: the objects a strategy reads (exchange, account) come
from the plugin that runs the loop, through :class:`TradingInfra`.

Amounts are in the store's *adjusted* shares (real shares = amount × ``$factor``), as in Qlib.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import pandas as pd


class Direction(enum.IntEnum):
    """Side of an order; the values are Qlib's (``SELL = 0``, ``BUY = 1``)."""

    SELL = 0
    BUY = 1

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Direction.BUY else -1

    @classmethod
    def parse(cls, value: object) -> Direction:
        """``"buy"``/``"sell"`` (any case), 1/0, a positive/non-positive number, or a :class:`Direction`."""
        if isinstance(value, Direction):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("buy", "b", "1"):
                return cls.BUY
            if text in ("sell", "s", "0"):
                return cls.SELL
            raise ValueError(f"unknown order direction {value!r} (expected buy or sell)")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
            return cls.BUY if value > 0 else cls.SELL
        raise ValueError(f"unknown order direction {value!r} (expected buy or sell)")


@attrs.frozen
class Order:
    """An instruction to trade ``amount`` adjusted shares of ``instrument`` during the current bar.

    :ivar instrument: the symbol.
    :ivar amount: adjusted shares, non-negative.
    :ivar direction: buy or sell.
    """

    instrument: str
    amount: float = attrs.field(converter=float)
    direction: Direction = attrs.field(converter=Direction.parse)

    def __attrs_post_init__(self) -> None:
        if not self.amount >= 0.0:
            raise ValueError(f"order amount must be >= 0, got {self.amount} for {self.instrument}")

    @property
    def signed_amount(self) -> float:
        """``amount`` with the sign of the direction (negative for sells)."""
        return self.amount * self.direction.sign


@attrs.frozen
class Fill:
    """What became of one order.

    :ivar order: the order as the strategy placed it.
    :ivar deal_amount: adjusted shares actually traded (0 when the order failed).
    :ivar price: the deal price (NaN when nothing could be traded, e.g. suspended or at the limit).
    :ivar value: traded value, ``deal_amount × price`` (0 when nothing traded).
    :ivar cost: fees charged for the order.
    """

    order: Order
    deal_amount: float
    price: float
    value: float
    cost: float

    @property
    def filled(self) -> bool:
        """True when some amount traded."""
        return self.value > 0.0


@attrs.frozen
class TradeDecision:
    """A strategy's decision for one bar: orders to execute in this sequence.

    :ivar orders: the orders; an executor may reorder them only as its own settings say (e.g. buys first).
    :ivar info: free-form details the strategy wants recorded (planned sells, targets...).
    """

    orders: tuple[Order, ...] = attrs.field(factory=tuple, converter=tuple)
    info: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def empty(self) -> bool:
        """True when there is nothing to execute."""
        return not self.orders


@attrs.frozen
class Step:
    """One bar of the loop: its number (0 for the first bar) and its time range ``[start, end)``.

    ``end`` is the next calendar entry, so a bar needs the following calendar entry to exist.
    """

    index: int
    start: pd.Timestamp = attrs.field(converter=pd.Timestamp)
    end: pd.Timestamp = attrs.field(converter=pd.Timestamp)


@attrs.frozen
class TradingInfra:
    """What a strategy and an executor share for one run.

    :ivar exchange: the market simulator (quotes, tradability, deal prices, lot rounding, costs).
    :ivar account: cash, holdings and the records of the run.
    :ivar bars: the start timestamps of every bar of the run, in order.
    :ivar extras: anything else a runner provides (a benchmark, a market-rules object...).
    """

    exchange: Any
    account: Any
    bars: pd.DatetimeIndex = attrs.field(converter=pd.DatetimeIndex)
    extras: Mapping[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class Strategy(Protocol):
    """Turns signals and the current holdings into a :class:`TradeDecision`, once per bar."""

    def reset(self, infra: TradingInfra) -> None:
        """Bind the strategy to a run (called once, before the first bar)."""
        ...

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The orders for ``step``; the holdings are those left by the previous bar."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Carries a decision out for one bar and closes the bar (prices, holding counts, records).

    An executor that nests another (day → intraday) splits the decision over the inner bars and calls the inner
    executor; strategies do not change.
    """

    def reset(self, infra: TradingInfra) -> None:
        """Bind the executor to a run (called once, before the first bar)."""
        ...

    def execute(self, decision: TradeDecision, step: Step) -> Sequence[Fill]:
        """Execute ``decision`` during ``step`` and return one fill per executed order, in execution order."""
        ...
