"""Trade ranges: which inner steps of a nested run may carry out a decision (Qlib's ``TradeRange``).

Part of the trading contract (:mod:`qcore.trading`): the executor that nests levels and the inner strategies that
carry a decision out (whichever plugins ship them) read a decision's range the same way, through :func:`range_of`.

A strategy limits its decision to part of the inner bars by putting a range under the decision's
``info["trade_range"]`` (:data:`TRADE_RANGE`):

- ``(start, end)`` integers, or :class:`IdxTradeRange`: inner step indices, both ends included;
- ``("10:00", "14:29")`` clock times, or :class:`TradeRangeByTime`: on the inner bars' date, the inner bars from
  the one holding the first time to the one holding the second (Qlib's ``get_range_idx``).

The nested executor that receives the decision runs only the inner steps in the range (``align_range_limit``,
Qlib's default) and tells the inner strategy the range (:func:`range_of`), clipped to the inner bars (with a
warning when it reaches outside them). A clock-time range is handed down to the inner decisions that have none,
so it holds at every level; an index range means steps of the level right below the decision and is not handed
down (Qlib copies it into the inner decisions too, where it names other steps, and its innermost executor then
raises).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import attrs
import pandas as pd

from qcore.errors import ConfigError
from qcore.trading import TradeCalendar, TradeDecision

logger = logging.getLogger(__name__)

#: the key of a decision's ``info`` that holds its trade range
TRADE_RANGE = "trade_range"


def _clock(value: object, path: str) -> datetime.time:
    if isinstance(value, datetime.time):
        return value
    try:
        return pd.Timestamp(str(value)).time()
    except (ValueError, TypeError):
        raise ConfigError(f"expected a clock time like '10:30', got {value!r}", path=path) from None


@attrs.frozen
class IdxTradeRange:
    """Inner steps ``start .. end`` (both included)."""

    start: int = attrs.field(converter=int)
    end: int = attrs.field(converter=int)

    def __attrs_post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(f"a trade range ends ({self.end}) before it starts ({self.start})", path="trade_range")

    def steps(self, calendar: TradeCalendar) -> tuple[int, int]:
        """The range on ``calendar``'s bars, unclipped."""
        return self.start, self.end

    def inherited(self) -> bool:
        """Whether inner decisions without a range take this one (index ranges: no)."""
        return False


@attrs.frozen
class TradeRangeByTime:
    """The inner bars from the one holding clock time ``start`` to the one holding ``end`` (both included)."""

    start: datetime.time = attrs.field(converter=lambda v: _clock(v, "trade_range.0"))
    end: datetime.time = attrs.field(converter=lambda v: _clock(v, "trade_range.1"))

    def __attrs_post_init__(self) -> None:
        if not self.start < self.end:
            raise ConfigError(f"a trade range ends ({self.end}) before it starts ({self.start})", path="trade_range")

    def bounds(self, day: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The range's two clock times on ``day``."""
        date = pd.Timestamp(day).normalize()
        return (date + pd.Timedelta(hours=self.start.hour, minutes=self.start.minute, seconds=self.start.second),
                date + pd.Timedelta(hours=self.end.hour, minutes=self.end.minute, seconds=self.end.second))  # fmt: skip

    def steps(self, calendar: TradeCalendar) -> tuple[int, int]:
        """Qlib's ``get_range_idx``: the last bar starting at or before each end, on the bars' first date."""
        bars = calendar.bars
        if not len(bars):
            return 0, -1
        full = calendar.calendar
        first, last = self.bounds(bars[0])
        left = int(full.searchsorted(first, "right")) - 1 - calendar.offset
        right = int(full.searchsorted(last, "right")) - 1 - calendar.offset
        n = len(bars)
        return min(max(0, left), n - 1), min(max(0, right), n - 1)

    def clip(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """``[start, end]`` cut to the range on ``start``'s date (Qlib's ``clip_time_range``)."""
        first, last = self.bounds(start)
        return max(first, start), min(last, end)

    def inherited(self) -> bool:
        """Whether inner decisions without a range take this one (clock ranges: yes)."""
        return True


TradeRange = IdxTradeRange | TradeRangeByTime


def parse_trade_range(value: Any, path: str = "trade_range") -> TradeRange | None:
    """A trade range from ``None``, a range object, two integers or two clock times."""
    if value is None or isinstance(value, (IdxTradeRange, TradeRangeByTime)):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = value
        if all(isinstance(x, int) and not isinstance(x, bool) for x in (a, b)):
            return IdxTradeRange(a, b)
        if all(isinstance(x, (str, datetime.time)) for x in (a, b)):
            return TradeRangeByTime(a, b)
    raise ConfigError(f"a trade range is two step indices or two clock times ('9:30', '14:59'), got {value!r}",
                      path=path)  # fmt: skip


def decision_range(decision: TradeDecision) -> TradeRange | None:
    """The trade range of ``decision`` (None when it has none)."""
    return parse_trade_range(decision.info.get(TRADE_RANGE)) if decision.info else None


def range_of(decision: TradeDecision, calendar: TradeCalendar) -> tuple[int, int]:
    """The inner steps ``(start, end)`` (both included) ``decision`` may use on ``calendar``'s bars: its range
    clipped to them (with a warning when it reaches outside), or all of them."""
    n = len(calendar.bars)
    found = decision_range(decision)
    if found is None:
        return 0, n - 1
    start, end = found.steps(calendar)
    if start < 0 or end >= n:
        logger.warning("trade range [%d, %d] reaches outside the %d inner steps; clipped", start, end, n)
        start, end = max(0, start), min(n - 1, end)
    return start, end


def inherit(outer: TradeDecision, inner: TradeDecision) -> TradeDecision:
    """``inner`` with the outer decision's clock-time range when it has no range of its own (Qlib's
    ``mod_inner_decision``, for clock ranges only)."""
    found = decision_range(outer)
    if found is None or not found.inherited() or (inner.info and inner.info.get(TRADE_RANGE) is not None):
        return inner
    return attrs.evolve(inner, info={**dict(inner.info or {}), TRADE_RANGE: found})
