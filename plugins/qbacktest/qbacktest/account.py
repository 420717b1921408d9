"""The account: a position plus what a run records at every bar end.

At the end of each bar (Qlib's ``Account.update_bar_end``): holdings that traded get the bar's close as their
price (suspended ones keep their last price), every holding's bar count grows by one, the daily metrics are
recorded (``return`` is gross of cost: ``(value - last value + cost) / last value``), the holdings are copied into
the history with their weights, and the trade indicators of the bar's fills are computed.

A nested run has one account per level (:meth:`Account.level`, Qlib's shallow copy of its account): every level
shares the position (cash and holdings) and the accumulated turnover and cost, and keeps its own report, holdings
history, bar counts and indicators at its own frequency, so the 30-minute ``total_cost`` at a day's last bar is
the daily one.

A run with short selling on (:class:`qbacktest.short.ShortSelling`) charges the borrow fee of its short holdings
at every bar end of the outermost level, after the closes are applied: ``short value × borrow_rate /
days_per_year`` leaves the cash and is added to the bar's ``cost`` (and to :attr:`Account.total_borrow`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from qbacktest.indicators import OrderTable
from qbacktest.position import Position
from qcore.trading import Direction, Fill

REPORT_COLUMNS = ("account", "return", "total_turnover", "turnover", "total_cost", "cost", "value", "cash", "bench")
INDICATOR_COLUMNS = ("ffr", "pa", "pos", "deal_amount", "value", "count")


@attrs.define
class History:
    """Holdings at every bar end, as flat columns (``per_bar[k]`` rows belong to bar ``k``)."""

    names: list[str] = attrs.field(factory=list)
    amount: list[float] = attrs.field(factory=list)
    price: list[float] = attrs.field(factory=list)
    weight: list[float] = attrs.field(factory=list)
    count: list[int] = attrs.field(factory=list)
    per_bar: list[int] = attrs.field(factory=list)
    cash: list[float] = attrs.field(factory=list)
    total: list[float] = attrs.field(factory=list)


class Totals:
    """Turnover and cost accumulated over a run, shared by the accounts of all its levels."""

    __slots__ = ("borrow", "cost", "turnover")

    def __init__(self) -> None:
        self.turnover = 0.0
        self.cost = 0.0
        #: borrow fees of short holdings (also counted in ``cost``)
        self.borrow = 0.0


class Account:
    """Cash, holdings and the per-bar records of one run (of one level of a nested run).

    :param init_cash: starting cash.
    :param holdings: starting holdings (``{instrument: amount or {"amount", "price"}}``).
    :param bench: per-bar benchmark returns (None: no benchmark; the column is then 0).
    :param settlement_days: T+N lock of bought shares.
    :param freq: the frequency of the bars this account records.
    """

    def __init__(
        self,
        init_cash: float,
        holdings: Mapping[str, Any] | None = None,
        *,
        bench: np.ndarray | None = None,
        settlement_days: int = 0,
        freq: str = "day",
    ) -> None:
        self.init_cash = float(init_cash)
        self.position = Position(init_cash, holdings, settlement_days=settlement_days)
        self.bench = bench
        self.totals = Totals()
        self.freq = freq
        #: which bar count this level keeps: None for the holdings' own (the outermost level), else the frequency
        self.count_key: str | None = None
        self.records: list[tuple[float, ...]] = []
        self.history = History()
        self.indicators: list[tuple[float, float, float, float, float, int]] = []
        self.fills: list[tuple[int, Fill]] = []
        #: the start of every bar recorded, in order
        self.times: list[Any] = []
        #: base prices of the price advantage (bars × instruments); None: pa is 0 (Qlib's innermost level)
        self.pa_base: np.ndarray | None = None
        self.pa: list[float] = []
        #: Qlib's order indicators per bar (nested runs; None: the daily indicators of :meth:`_record_indicators`)
        self.tables: list[OrderTable] | None = None
        #: Qlib's ``indicator_config`` of the level's executor
        self.indicator_config: Mapping[str, Any] = {}
        #: short-selling rules (:meth:`enable_shorting`; None: long only)
        self.shorting: Any = None

    def enable_shorting(self, rules: Any) -> None:
        """Allow short holdings and charge their borrow fee (rules that are not ``enabled`` change nothing)."""
        if rules is None or not rules.enabled:
            return
        self.shorting = rules
        self.position.allow_short = True

    @property
    def total_borrow(self) -> float:
        """Borrow fees charged so far (part of :attr:`total_cost`)."""
        return self.totals.borrow

    @property
    def total_turnover(self) -> float:
        """Turnover accumulated so far (all levels)."""
        return self.totals.turnover

    @property
    def total_cost(self) -> float:
        """Cost accumulated so far (all levels)."""
        return self.totals.cost

    def level(self, freq: str, bench: np.ndarray | None = None) -> Account:
        """The account of an inner level: the same position and accumulated totals, its own records, bar count
        and order indicators at ``freq`` (Qlib's shallow copy of the account)."""
        other = Account.__new__(Account)
        other.init_cash = self.init_cash
        other.position = self.position
        other.totals = self.totals
        other.bench = bench
        other.freq = freq
        other.count_key = freq
        other.records = []
        other.history = History()
        other.indicators = []
        other.fills = []
        other.times = []
        other.pa_base = None
        other.pa = []
        other.tables = []
        other.indicator_config = {}
        other.shorting = None  # the outermost level charges the borrow fee, once per bar
        return other

    # -- trading ----------------------------------------------------------------------------------------------

    def apply(self, fill: Fill, bar: int) -> None:
        """Book a filled order: position, turnover and cost. ``bar`` is the settlement clock of the bar
        (:meth:`qbacktest.exchange.Exchange.ledger`)."""
        order = fill.order
        totals = self.totals
        if order.direction == Direction.SELL:
            totals.turnover += fill.value
            totals.cost += fill.cost
            self.position.sell(order.instrument, fill.value, fill.cost, fill.price)
        else:
            self.position.buy(order.instrument, fill.value, fill.cost, fill.price, bar)
            totals.turnover += fill.value
            totals.cost += fill.cost

    # -- bar end ----------------------------------------------------------------------------------------------

    def update_bar_end(self, bar: int, exchange: Any, fills: Sequence[Fill], table: OrderTable | None = None) -> None:
        """Close bar ``bar``: prices, counts, metrics, history and indicators.

        :param table: the bar's order indicators (an outer level's, aggregated from its inner steps); by default
            they come from ``fills``.
        """
        position = self.position
        if position.holdings:
            close = exchange.close[bar].tolist()
            cols = exchange._cols
            key = self.count_key
            for name, holding in position.holdings.items():
                j = cols.get(name)
                if j is not None:
                    price = close[j]
                    if price == price:  # not suspended (NaN close)
                        holding.price = price
                if key is None:
                    holding.count += 1
                else:
                    counts = holding.counts
                    if counts is None:
                        counts = holding.counts = {}
                    counts[key] = counts.get(key, 0) + 1
            if position.settlement_days > 0:
                release = getattr(exchange, "release_ledger", None)
                position.release(release(bar) if release is not None else bar + 1)
            if self.shorting is not None:
                self._charge_borrow()
        stock_value = position.stock_value()
        stamps = getattr(exchange, "stamps", None)
        self.times.append(stamps[bar] if stamps is not None else bar)
        base = getattr(exchange, "base", 0)
        self._record_metrics(base + bar, stock_value)
        self._record_history(stock_value + (position.cash + position.cash_delay))
        if self.tables is not None:
            table = table if table is not None else OrderTable.from_fills(fills)
            self.tables.append(table)
            self.indicators.append(table.trade_indicators(self.indicator_config))
        else:
            self._record_indicators(fills, bar, exchange)
        self.fills.extend((base + bar, f) for f in fills)

    def _charge_borrow(self) -> None:
        fee = self.position.short_value() * self.shorting.daily_rate
        if fee > 0:
            self.position.cash -= fee
            self.totals.cost += fee
            self.totals.borrow += fee

    def _record_metrics(self, bar: int, stock_value: float) -> None:
        if self.records:
            last = self.records[-1]
            last_value, last_cost, last_turnover = last[0], last[4], last[2]
        else:
            last_value, last_cost, last_turnover = self.init_cash, 0.0, 0.0
        position = self.position
        value = stock_value + (position.cash + position.cash_delay)
        totals = self.totals
        now_cost = totals.cost - last_cost
        now_turnover = totals.turnover - last_turnover
        bench = 0.0 if self.bench is None else float(self.bench[bar])
        self.records.append((
            value,
            (value - last_value + now_cost) / last_value,
            totals.turnover,
            now_turnover / last_value,
            totals.cost,
            now_cost / last_value,
            stock_value,
            position.cash,
            bench,
        ))  # fmt: skip

    def _record_history(self, total: float) -> None:
        holdings = list(self.position.holdings.values())
        for h in holdings:
            h.weight = h.amount * h.price / total
        history = self.history
        history.names.extend(self.position.holdings)
        history.amount.extend([h.amount for h in holdings])
        history.price.extend([h.price for h in holdings])
        history.weight.extend([h.weight for h in holdings])
        key = self.count_key
        if key is None:
            history.count.extend([h.count for h in holdings])
        else:
            history.count.extend([h.counts.get(key, 0) if h.counts else 0 for h in holdings])
        history.per_bar.append(len(holdings))
        history.cash.append(self.position.cash)
        history.total.append(total)

    def _price_advantage(self, fill: Fill, bar: int, exchange: Any) -> float:
        if self.pa_base is None:
            return 0.0
        j = exchange.col(fill.order.instrument)
        base = float(self.pa_base[bar, j]) if j is not None else math.nan
        if not fill.deal_amount > 0 or not base > 1e-8:
            return math.nan
        sign = 1.0 if fill.order.direction == Direction.SELL else -1.0
        return sign * (fill.price / base - 1.0)

    def _record_indicators(self, fills: Sequence[Fill], bar: int, exchange: Any) -> None:
        # one entry per instrument (a later order of the same instrument replaces an earlier one), as Qlib does
        per: dict[str, tuple[float, float, float, float]] = {}
        for fill in fills:
            order = fill.order
            sign = 1.0 if order.direction == Direction.BUY else -1.0
            pa = self._price_advantage(fill, bar, exchange)
            self.pa.append(pa)
            per[order.instrument] = (order.amount * sign, fill.deal_amount * sign, fill.value * sign, pa)
        if not per:
            self.indicators.append((math.nan, math.nan, math.nan, 0.0, 0.0, 0))
            return
        ratios = []
        pas = []
        deal_sum = value_sum = 0.0
        for amount, deal, value, pa in per.values():
            if amount != 0:
                ratios.append(deal / amount)
            if pa == pa:
                pas.append(pa)
            deal_sum += abs(deal)
            value_sum += abs(value)
        ffr = math.fsum(ratios) / len(ratios) if ratios else math.nan
        pa_mean = math.fsum(pas) / len(pas) if pas else math.nan
        positive = sum(1 for x in pas if x > 0) / len(pas) if pas else math.nan
        self.indicators.append((ffr, pa_mean, positive, deal_sum, value_sum, len(per)))
