"""Value types and protocols that trading strategies and executors exchange.

A backtest (or a live trader) runs one loop per bar: the strategy turns what it knows into a
:class:`TradeDecision` (or target weights, :class:`WeightStrategy`), the executor carries the decision out and
reports one :class:`Fill` per order. Nothing here knows about a market, an exchange simulator or a data store: the
objects a strategy reads (:class:`Exchange`, :class:`Account`, :class:`TradeCalendar`) come from the plugin that
runs the loop, through :class:`TradingInfra`, and satisfy the protocols below.

Amounts are in the store's *adjusted* shares (real shares = amount × ``$factor``), as in Qlib.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from qcore.protocols import DataProvider
    from qcore.registry import Registry


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
    :ivar info: details the strategy wants recorded (planned sells, targets...). One key has a meaning for nested
        executors: ``info["trade_range"]`` limits the inner bars that may trade the decision (by step index or by
        clock time, as the executing plugin documents).
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


# -------------------------------------------------------------------------------------------------------------
# What a strategy and an executor read: the exchange, the account, the calendar
# -------------------------------------------------------------------------------------------------------------


@runtime_checkable
class FeeSchedule(Protocol):
    """The cost rates an order generator needs to leave room for fees."""

    #: buy rate (subject to ``min_cost``).
    open_cost: float
    #: sell rate (subject to ``min_cost``).
    close_cost: float
    #: the least fee of one order.
    min_cost: float


@runtime_checkable
class Exchange(Protocol):
    """Quotes and trading rules of one run on a ``(bars, instruments)`` grid.

    Lookups take the bar number ``t`` (the :attr:`Step.index` of the run's bar) and the instrument's column ``j``
    (:meth:`col`). Quotes are of bars that have started: a strategy deciding bar ``t`` may read bar ``t - 1`` and
    earlier; the deal price of bar ``t`` is for the executor (and for order generators that size orders at it, as
    Qlib's ``OrderGenWInteract`` does).
    """

    #: the quoted instruments; the column of ``instruments[j]`` is ``j``.
    instruments: Sequence[str]
    #: the run's bars (start timestamps).
    dates: pd.DatetimeIndex
    fees: FeeSchedule
    #: bars before bought shares can be sold (1 for T+1).
    settlement_days: int

    def col(self, instrument: str) -> int | None:
        """The column of ``instrument``, or None when the exchange does not quote it."""
        ...

    def is_suspended(self, t: int, j: int | None) -> bool:
        """True when the instrument has no quote on bar ``t`` (or is not quoted at all)."""
        ...

    def is_tradable(self, t: int, j: int | None, direction: Direction | None = None) -> bool:
        """Not suspended and not at the price limit of ``direction`` (either limit when None) on bar ``t``."""
        ...

    def deal_price(self, t: int, j: int, direction: Direction) -> float:
        """The price an order of ``direction`` trades at on bar ``t``."""
        ...

    def close_price(self, t: int, j: int) -> float:
        """The close of bar ``t`` (NaN when suspended)."""
        ...

    def factor_at(self, t: int, j: int) -> float:
        """The adjustment factor on bar ``t`` (real shares = adjusted amount × factor; NaN when unknown)."""
        ...

    def round_amount(self, amount: float, factor: float) -> float:
        """Round an adjusted ``amount`` down to whole lots of real shares (unchanged without lots)."""
        ...

    def field(self, expression: str) -> np.ndarray:
        """Any field or expression (``$vwap``, ``Mean($close, 5)``) on the exchange's grid, float64."""
        ...


@runtime_checkable
class ShortSellingExchange(Protocol):
    """An optional extension of :class:`Exchange`: one that can lend shares for short positions.

    A weight strategy that produces negative weights checks for it by protocol and asks :meth:`can_short` per
    instrument; an exchange without it (or with :attr:`shorting` None) holds long positions only.
    """

    #: the short-selling rules in force (borrow rate, margin, eligibility), or None when shorting is off.
    shorting: object | None

    def can_short(self, t: int, j: int | None) -> bool:
        """True when shorting is on and the instrument of column ``j`` may be sold short on bar ``t``."""
        ...


@runtime_checkable
class Position(Protocol):
    """Cash and holdings; iterating yields the held instruments."""

    #: settled cash.
    cash: float

    def __contains__(self, instrument: object) -> bool: ...

    def __iter__(self) -> Iterator[str]: ...

    def __len__(self) -> int: ...

    def amount(self, instrument: str) -> float:
        """Adjusted shares held (0 when not held)."""
        ...

    def sellable(self, instrument: str) -> float:
        """The amount that may be sold on the current bar (settlement locks excluded)."""
        ...

    def price(self, instrument: str) -> float:
        """The valuation price of a holding (its last close)."""
        ...

    def value(self) -> float:
        """Holdings at their prices plus cash (settled and pending)."""
        ...

    def amounts(self) -> dict[str, float]:
        """``{instrument: amount}`` of every holding."""
        ...

    def weights(self, only_stock: bool = False) -> dict[str, float]:
        """Each holding's value over the total value (over the holdings' value with ``only_stock``)."""
        ...


@runtime_checkable
class Account(Protocol):
    """The money side of a run: the current position (records are the runner's business)."""

    #: cash at the start of the run.
    init_cash: float
    position: Position


@runtime_checkable
class TradeCalendar(Protocol):
    """The run's bars within the store's calendar of their frequency."""

    #: the bar frequency (``day``, ``30min``, ``1min``).
    freq: str
    #: every timestamp of ``freq`` the store holds, ascending.
    calendar: pd.DatetimeIndex
    #: the start timestamps of the run's bars, in order (a contiguous slice of ``calendar``).
    bars: pd.DatetimeIndex
    #: the position of ``bars[0]`` in ``calendar``.
    offset: int

    def information_date(self, step: Step) -> pd.Timestamp | None:
        """The last calendar entry before ``step``'s bar: the latest data a decision for it may read."""
        ...


@attrs.frozen
class BarCalendar:
    """The :class:`TradeCalendar` a runner builds: bars ``calendar[offset : offset + n]``.

    :ivar calendar: the store's calendar of ``freq``.
    :ivar offset: calendar position of the first bar.
    :ivar n_bars: how many bars the run has.
    :ivar freq: bar frequency.
    """

    calendar: pd.DatetimeIndex = attrs.field(converter=pd.DatetimeIndex)
    offset: int = attrs.field(converter=int)
    n_bars: int = attrs.field(converter=int)
    freq: str = "day"

    def __attrs_post_init__(self) -> None:
        if self.offset < 0 or self.n_bars < 0 or self.offset + self.n_bars > len(self.calendar):
            raise ValueError(f"bars {self.offset}..{self.offset + self.n_bars} are outside a calendar of "
                             f"{len(self.calendar)} entries")  # fmt: skip

    @classmethod
    def between(cls, calendar: pd.DatetimeIndex, first: object, last: object, freq: str = "day") -> BarCalendar:
        """Bars from calendar entry ``first`` to ``last`` (both timestamps present in ``calendar``)."""
        calendar = pd.DatetimeIndex(calendar)
        lo, hi = calendar.get_loc(pd.Timestamp(first)), calendar.get_loc(pd.Timestamp(last))
        return cls(calendar, int(lo), int(hi) - int(lo) + 1, freq)

    @property
    def bars(self) -> pd.DatetimeIndex:
        """The run's bar start timestamps."""
        return self.calendar[self.offset : self.offset + self.n_bars]

    def position(self, step: Step) -> int:
        """The calendar position of ``step``'s bar."""
        return self.offset + step.index

    def information_date(self, step: Step) -> pd.Timestamp | None:
        """The last calendar entry *before* ``step``'s bar: the latest data a decision for the bar may use
        (None for a bar at the calendar's start)."""
        k = self.offset + step.index - 1
        return self.calendar[k] if k >= 0 else None


@attrs.frozen
class TradingInfra:
    """What a strategy and an executor share for one run.

    :ivar exchange: the market simulator (quotes, tradability, deal prices, lot rounding, costs).
    :ivar account: cash, holdings and the records of the run.
    :ivar calendar: the run's bars in the store's calendar.
    :ivar provider: the store the run reads, for strategies that compute their own inputs (None where a runner
        trades without one).
    :ivar operators: the kernel's operator registry, so a strategy can evaluate expressions on ``provider``
        (``qcore.expr.engine.ExpressionEngine(infra.provider, infra.operators)``) without loading a kernel itself.
    """

    exchange: Exchange
    account: Account
    calendar: TradeCalendar
    provider: DataProvider | None = None
    operators: Registry[Any] | None = None

    @property
    def bars(self) -> pd.DatetimeIndex:
        """The start timestamps of every bar of the run, in order."""
        return self.calendar.bars

    @property
    def bar_offset(self) -> int:
        """The calendar position of the first bar."""
        return self.calendar.offset

    def for_bars(self, calendar: TradeCalendar, exchange: Exchange | None = None) -> TradingInfra:
        """The infrastructure of an inner (finer) level: same account and store, its own bars (and exchange)."""
        return attrs.evolve(self, calendar=calendar, exchange=exchange if exchange is not None else self.exchange)


# -------------------------------------------------------------------------------------------------------------
# Strategies and executors
# -------------------------------------------------------------------------------------------------------------


@runtime_checkable
class Strategy(Protocol):
    """Turns signals and the current holdings into a :class:`TradeDecision`, once per bar.

    A strategy may also offer ``instruments() -> Sequence[str]``: names it may trade that the runner should quote
    even when its universe lacks them.
    """

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


@runtime_checkable
class WeightStrategy(Protocol):
    """Decides target weights per bar; the runner (the backtest plugin) turns them into orders.

    Any plugin can ship one without importing the backtest: register it as a ``strategy``. The runner reads
    three optional attributes: ``risk_degree`` (the share of the account value the weights refer to, 0.95 when
    absent), ``order_generator`` (``without_interact``, Qlib's default, or ``with_interact``) and
    ``instruments()`` (names to quote beyond the universe).
    """

    def reset(self, infra: TradingInfra) -> None:
        """Bind the strategy to a run (called once, before the first bar)."""
        ...

    def target_weights(self, step: Step) -> Mapping[str, float] | None:
        """Target weight of each instrument for ``step``, as a share of ``risk_degree ×`` the account value.

        Instruments left out (held or not) target zero; weights are in ``[0, 1]`` and sum to at most 1. ``None``
        means no decision for the bar: nothing is traded. A strategy may read data up to
        ``infra.calendar.information_date(step)`` and no later.
        """
        ...


@runtime_checkable
class ParentAwareStrategy(Strategy, Protocol):
    """An inner strategy of a nested executor: told the outer decision before its inner bars run.

    It may also offer ``post_exe_step(fills)``: the executor then reports the fills of each inner bar, so the
    strategy can re-target what is left (Qlib's TWAP shortfall).
    """

    def set_parent(self, decision: TradeDecision, step: Step) -> None:
        """The outer level's ``decision`` for its ``step``, which this strategy's bars now carry out."""
        ...


@runtime_checkable
class NestingExecutor(Executor, Protocol):
    """An executor that carries each outer decision out over finer bars with an inner strategy and executor.

    For each outer step it builds the inner bars (``TradingInfra.for_bars``), hands the decision to the inner
    strategy (``set_parent`` when it has one) and lets the inner executor trade each inner bar on the same account;
    the fills it returns are the inner fills. Levels nest to any depth (day → 30min → 1min).
    """

    #: the inner level's bar frequency.
    inner_freq: str
    inner_strategy: Strategy
    inner_executor: Executor
