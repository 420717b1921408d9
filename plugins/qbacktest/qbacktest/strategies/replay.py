"""OrderReplay: place the orders listed in a file, bar by bar (Qlib's ``FileOrderStrategy``).

The file (CSV or Parquet) has the columns ``datetime, instrument, amount, direction``; ``amount`` is in adjusted
shares and ``direction`` is ``buy``/``sell`` (or 1/0). Orders dated on a bar are placed on that bar, in file order;
orders dated on non-trading days or outside the run are reported once as skipped. ``trade_range`` (two inner step
indices or two clock times, :mod:`qcore.trade_range`) limits the decisions to part of the inner bars of a
nested run, as Qlib's ``trade_range`` does.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from qbacktest.strategies.topk_dropout import _ignore_qlib_infra
from qcore.errors import DataError
from qcore.trade_range import TRADE_RANGE, parse_trade_range
from qcore.trading import Direction, Order, Step, TradeDecision, TradingInfra

logger = logging.getLogger(__name__)

COLUMNS = ("datetime", "instrument", "amount", "direction")


def read_orders(source: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Orders as a frame with :data:`COLUMNS` (validated: known directions, non-negative amounts)."""
    path = None
    if isinstance(source, pd.DataFrame):
        frame = source.reset_index() if "datetime" not in source.columns else source.copy()
    else:
        path = str(source)
        try:
            frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path, dtype={"datetime": str})
        except FileNotFoundError:
            raise DataError("order file not found", path=path) from None
        if "datetime" not in frame.columns:
            frame = frame.reset_index()
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"order file lacks column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})", path=path)
    frame = frame[list(COLUMNS)].copy()
    try:
        frame["datetime"] = pd.to_datetime(frame["datetime"].astype(str), format="mixed")
    except (ValueError, TypeError) as error:
        raise DataError(f"bad order date: {error}", path=path) from None
    frame["amount"] = pd.to_numeric(frame["amount"], errors="coerce")
    for row, (amount, direction) in enumerate(zip(frame["amount"], frame["direction"])):
        if not amount >= 0:
            raise DataError(f"order amount must be a number >= 0, got {amount}", path=path, row=row + 2)
        try:
            Direction.parse(direction)
        except ValueError as error:
            raise DataError(str(error), path=path, row=row + 2) from None
    frame["instrument"] = frame["instrument"].astype(str)
    return frame


class OrderReplay:
    """Replays orders from a file or frame.

    :param file: the orders (path or DataFrame with ``datetime, instrument, amount, direction``).
    :param trade_range: the inner steps (``[start, end]``) or clock times (``["10:00", "14:29"]``) of a nested run
        the orders may use.
    """

    def __init__(self, *, file: Any = None, orders: Any = None, trade_range: Any = None, **qlib_kwargs: Any) -> None:
        _ignore_qlib_infra(qlib_kwargs)
        self.trade_range = parse_trade_range(trade_range, "strategy.kwargs.trade_range")
        source = file if file is not None else orders
        if source is None:
            raise DataError("OrderReplay needs a file of orders")
        self.orders = read_orders(source)
        self._by_bar: dict[pd.Timestamp, list[Order]] = {}

    def instruments(self) -> list[str]:
        """Every instrument named in the orders."""
        return sorted(set(self.orders["instrument"]))

    def reset(self, infra: TradingInfra) -> None:
        """Group the orders by bar."""
        bars = set(infra.bars)
        self._by_bar = {}
        skipped = 0
        for when, inst, amount, direction in self.orders.itertuples(index=False):
            when = pd.Timestamp(when)
            if when not in bars:
                skipped += 1
                continue
            self._by_bar.setdefault(when, []).append(Order(inst, amount, Direction.parse(direction)))
        if skipped:
            logger.warning("%d order(s) are not dated on a bar of the run and are skipped", skipped)

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The orders dated on ``step``'s bar (with the trade range, if any)."""
        orders = tuple(self._by_bar.get(step.start, ()))
        if self.trade_range is None:
            return TradeDecision(orders)
        return TradeDecision(orders, {TRADE_RANGE: self.trade_range})
