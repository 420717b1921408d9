"""The simulated exchange: deal prices, tradability (suspension, price limits), volume limits, lots and costs.

Two ways to build one:

- :meth:`Exchange.qlib` (Qlib-compatible): Qlib's ``exchange_kwargs`` (``deal_price``, ``limit_threshold``,
  ``volume_threshold``, ``open_cost``, ``close_cost``, ``min_cost``, ``impact_cost``, ``trade_unit``) with Qlib's
  exact rules, so the numbers match Qlib's backtest;
- :meth:`Exchange.from_rules` (qcore's native mode): a :class:`~qcore.protocols.MarketRules` object gives the lot
  size, the T+N settlement of shares, the cost schedule (commission with a minimum, transfer fee, dated stamp duty)
  and the daily price-limit ratio of every instrument (board, ST status, IPO days).

A nested run's levels get theirs from :class:`qbacktest.intraday.MinuteMarket` (every bar aggregated from its minute
bars); :meth:`Exchange.window` hands an inner run the bars of one outer bar, and :meth:`Exchange.ledger` is the
settlement clock (bars for daily bars, trading days for intraday ones).

The rules (see Qlib's ``qlib/backtest/exchange.py`` for the reference behaviour):

- a stock is *suspended* on a bar where ``$close`` is NaN (also before listing and after delisting);
- buying is blocked at the upper limit, selling at the lower limit; a suspended stock is blocked both ways;
- a deal price that is NaN or ``<= 1e-8`` falls back to ``$close``;
- amounts are adjusted shares; lots are counted in real shares ``amount × $factor``:
  ``(amount*factor + 0.1) // unit * unit / factor``; a missing ``$factor`` where ``$close`` exists disables lot
  rounding for the whole run (Qlib's ``trade_w_adj_price``);
- the cost of an order is ``max(value × (rate + impact), min_cost)`` (+ proportional fees not subject to the
  minimum in native mode), ``impact = impact_cost × (value / bar value)²``; a sell is rounded to lots unless it
  sells the whole holding; a buy the cash cannot pay for is cut to what the cash (less fees) buys.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qbacktest.config import check_exchange
from qbacktest.quote import field_name, load_arrays, normalise_price
from qcore.errors import ConfigError
from qcore.trading import Direction

logger = logging.getLogger(__name__)

#: ``$change`` derived from the adjusted close when a store lacks it (the limit check needs it).
DERIVED_CHANGE = "$close / Ref($close, 1) - 1"


def derived_change_warning(stored: set[str]) -> str | None:
    """The warning for a store without ``$change`` whose price limits are checked, else None."""
    if "change" in stored:
        return None
    return f"the store has no field '$change': price limits are checked on it derived as {DERIVED_CHANGE}"


def missing_factor_warning(stored: set[str]) -> str | None:
    """The warning for a store without ``$factor`` whose trades use lots, else None."""
    if "factor" in stored:
        return None
    return ("the store has no field '$factor': trade units are disabled (amounts are traded in adjusted shares, "
            "without lots), as Qlib does")

SELL = Direction.SELL
BUY = Direction.BUY

#: Qlib's defaults for the exchange keyword arguments it accepts.
QLIB_EXCHANGE_DEFAULTS: Mapping[str, Any] = {
    "deal_price": "close",
    "limit_threshold": None,
    "volume_threshold": None,
    "open_cost": 0.0015,
    "close_cost": 0.0025,
    "min_cost": 5.0,
    "impact_cost": 0.0,
    "trade_unit": 100,
}


def _isclose(a: float, b: float) -> bool:
    """``numpy.isclose`` with its default tolerances, for two floats."""
    return abs(a - b) <= 1e-08 + 1e-05 * abs(b)


@attrs.frozen
class Fees:
    """Trading costs.

    :ivar open_cost: buy rate subject to ``min_cost`` (Qlib ``open_cost``; native: commission).
    :ivar close_cost: sell rate subject to ``min_cost`` (Qlib ``close_cost``; native: commission).
    :ivar min_cost: the least fee of one order.
    :ivar impact_cost: market impact rate, scaled by the squared share of the bar's traded value.
    :ivar buy_extra: proportional buy fees not subject to the minimum (native: transfer fee).
    :ivar sell_extra: proportional sell fees not subject to the minimum, one per bar (native: transfer fee plus
        the stamp duty of the day); empty for none.
    """

    open_cost: float = 0.0015
    close_cost: float = 0.0025
    min_cost: float = 5.0
    impact_cost: float = 0.0
    buy_extra: float = 0.0
    sell_extra: tuple[float, ...] = ()

    def __attrs_post_init__(self) -> None:
        for name in ("open_cost", "close_cost", "min_cost", "impact_cost", "buy_extra"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}", path=f"exchange.{name}")
        if not all(math.isfinite(x) and x >= 0 for x in self.sell_extra):
            raise ConfigError("sell fees must be finite numbers >= 0", path="exchange.sell_extra")


def _volume_limits(spec: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Qlib's ``volume_threshold``: ``(kind, expr)`` or ``{"all"|"buy"|"sell": (kind, expr)}`` → buy and sell lists."""
    if spec is None:
        return [], []
    if isinstance(spec, (list, tuple)):
        spec = {"all": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError("volume_threshold must be (kind, expression) or a mapping of all/buy/sell to one",
                          path="exchange_kwargs.volume_threshold")  # fmt: skip
    buy: list[tuple[str, str]] = []
    sell: list[tuple[str, str]] = []
    for key, limit in spec.items():
        if key not in ("all", "buy", "sell"):
            raise ConfigError(f"unknown volume_threshold key {key!r} (all, buy, sell)",
                              path="exchange_kwargs.volume_threshold")  # fmt: skip
        if not isinstance(limit, (list, tuple)) or len(limit) != 2 or limit[0] not in ("cum", "current"):
            raise ConfigError(f"volume_threshold {key!r} must be ('cum' or 'current', expression), got {limit!r}",
                              path="exchange_kwargs.volume_threshold")  # fmt: skip
        pair = (str(limit[0]), str(limit[1]))
        if key in ("all", "buy"):
            buy.append(pair)
        if key in ("all", "sell"):
            sell.append(pair)
    return buy, sell


class Exchange:
    """Quotes and trading rules of one run on a ``(bars, instruments)`` grid.

    Build it with :meth:`qlib` or :meth:`from_rules`. Methods take the bar number ``t`` and the instrument's column
    ``j`` (:meth:`col`); every array is float64 (Qlib casts its float32 quotes to float64 too).
    """

    def __init__(
        self,
        dates: pd.DatetimeIndex,
        instruments: Sequence[str],
        *,
        close: np.ndarray,
        factor: np.ndarray,
        volume: np.ndarray,
        buy_price: np.ndarray,
        sell_price: np.ndarray,
        limit_buy: np.ndarray,
        limit_sell: np.ndarray,
        fees: Fees,
        trade_unit: int | None,
        settlement_days: int = 0,
        buy_volume_limits: Sequence[tuple[str, np.ndarray]] = (),
        sell_volume_limits: Sequence[tuple[str, np.ndarray]] = (),
        description: str = "",
        ledger_day: np.ndarray | None = None,
        trade_w_adj_price: bool | None = None,
    ) -> None:
        self.dates = pd.DatetimeIndex(dates)
        #: the bar starts as numpy datetime64 (fast to index one at a time)
        self.stamps = self.dates.values
        self.instruments = tuple(instruments)
        self._cols = {name: j for j, name in enumerate(self.instruments)}
        self.close = close
        self.factor = factor
        self.volume = volume
        self.suspended = np.isnan(close)
        # a deal price that is NaN or <= 1e-8 falls back to the close
        self.buy_price = np.where(np.isnan(buy_price) | (buy_price <= 1e-08), close, buy_price)
        self.sell_price = np.where(np.isnan(sell_price) | (sell_price <= 1e-08), close, sell_price)
        self.limit_buy = limit_buy | self.suspended
        self.limit_sell = limit_sell | self.suspended
        self.fees = fees
        self.settlement_days = int(settlement_days)
        self.description = description
        self._source: tuple[Any, Any, set[str] | None] | None = None
        self._extra: dict[str, np.ndarray] = {}
        # Qlib: a missing factor where a close exists switches the run to adjusted-price trading without lots
        if trade_w_adj_price is None:
            trade_w_adj_price = bool((np.isnan(factor) & ~self.suspended).any())
        self.trade_w_adj_price = trade_w_adj_price
        self.trade_unit = None if self.trade_w_adj_price else trade_unit
        self.buy_volume_limits = list(buy_volume_limits)
        self.sell_volume_limits = list(sell_volume_limits)
        n_bars = len(self.dates)
        extra = fees.sell_extra if fees.sell_extra else (0.0,) * n_bars
        if len(extra) != n_bars:
            raise ValueError(f"sell_extra has {len(extra)} values for {n_bars} bars")
        self._sell_extra = tuple(float(x) for x in extra)
        self._tradable_any = ~(self.limit_buy | self.limit_sell)
        self._tradable_buy = ~self.limit_buy
        self._tradable_sell = ~self.limit_sell
        #: the row of bar 0 in the exchange this one is a :meth:`window` of (0 for a whole exchange)
        self.base = 0
        self._parent: Exchange | None = None
        self._window = (0, n_bars)
        #: where :meth:`field` gets values when not from the daily store (set by intraday levels)
        self.field_loader: Any = None
        #: short-selling rules (None: long only, Qlib's account) and the position whose margin bounds a short sale
        self.shorting: Any = None
        self._short_position: Any = None
        self._short_ok: np.ndarray | None = None
        #: the minute bars an intraday level is aggregated from (:class:`qbacktest.intraday.MinuteMarket`)
        self.minutes: Any = None
        #: each bar's rows ``[lo, hi)`` in :attr:`minutes` (intraday levels only)
        self.minute_windows: np.ndarray | None = None
        # the settlement clock: intraday bars count trading days (T+1 frees shares the next day, not the next bar)
        self.ledger_day: np.ndarray | None = None
        self.next_ledger_day: np.ndarray | None = None
        if ledger_day is not None:
            days = np.asarray(ledger_day, dtype=np.int64)
            if len(days) != n_bars:
                raise ValueError(f"ledger_day has {len(days)} values for {n_bars} bars")
            self.ledger_day = days
            # after a day's last bar the next day's shares are free; within a day nothing is released
            last_of_day = np.append(days[1:] != days[:-1], True)
            self.next_ledger_day = days + last_of_day.astype(np.int64)

    # -- construction -----------------------------------------------------------------------------------------

    @classmethod
    def qlib(
        cls,
        provider: Any,
        operators: Any,
        instruments: Sequence[str],
        dates: pd.DatetimeIndex,
        *,
        quoted: set[str] | None = None,
        **exchange_kwargs: Any,
    ) -> Exchange:
        """An exchange with Qlib's ``exchange_kwargs`` semantics.

        ``freq``, ``codes``, ``start_time`` and ``end_time`` are accepted and ignored (the runner chooses the
        grid). Instruments outside ``quoted`` (default: all) get no quotes.

        A store without ``$change`` gets it derived as :data:`DERIVED_CHANGE` for a numeric ``limit_threshold``
        (Qlib skips the check silently); one without ``$factor`` trades without lots (as Qlib); each with a warning.
        """
        plan = QlibQuotePlan.parse(exchange_kwargs, {f.lower() for f in provider.fields("day")})
        arrays = load_arrays(provider, operators, list(plan.exprs), instruments, dates, quoted)
        shape = (len(dates), len(instruments))
        nan = np.full(shape, np.nan, dtype=np.float32)
        close = arrays["$close"]
        suspended = np.isnan(close)
        limit_buy, limit_sell = plan.limits(arrays, shape)
        fees = plan.fees()
        opts, buy_expr, sell_expr, buy_vol, sell_vol = plan.opts, plan.buy_expr, plan.sell_expr, plan.buy_vol, \
            plan.sell_vol
        unit = opts["trade_unit"]
        return cls(
            dates,
            instruments,
            close=close.astype(np.float64),
            factor=arrays.get("$factor", nan).astype(np.float64),
            volume=arrays.get("$volume", nan).astype(np.float64),
            buy_price=arrays[buy_expr].astype(np.float64),
            sell_price=arrays[sell_expr].astype(np.float64),
            limit_buy=limit_buy | suspended,
            limit_sell=limit_sell | suspended,
            fees=fees,
            trade_unit=None if unit is None else int(unit),
            buy_volume_limits=[(kind, arrays[e].astype(np.float64)) for kind, e in buy_vol],
            sell_volume_limits=[(kind, arrays[e].astype(np.float64)) for kind, e in sell_vol],
            description="qlib-compatible",
        )._with_source(provider, operators, quoted)

    @classmethod
    def from_rules(
        cls,
        provider: Any,
        operators: Any,
        rules: Any,
        instruments: Sequence[str],
        dates: pd.DatetimeIndex,
        *,
        deal_price: str | Sequence[str] = "close",
        impact_cost: float = 0.0,
        volume_threshold: Any = None,
        tick: float = 0.01,
        quoted: set[str] | None = None,
    ) -> Exchange:
        """An exchange from market rules (qcore's native mode).

        The limit of a bar is hit when the close is within half a tick (in real prices) of
        ``previous close × (1 ± ratio)``, with ``ratio`` from ``rules.price_limits``; NaN ratio means no limit.
        ``$change`` gives the previous close (so suspensions and ex-dates are handled as in the store); a store
        without it gets the change from the previous bar's close, with a warning.
        """
        buy_expr, sell_expr = _deal_price_exprs(deal_price)
        buy_vol, sell_vol = _volume_limits(volume_threshold)
        stored = {f.lower() for f in provider.fields("day")}
        needed = ["$close", "$factor", "$volume", "$change"]
        exprs = list(dict.fromkeys([buy_expr, sell_expr, *[e for e in needed if e[1:] in stored],
                                    *(e for _, e in buy_vol + sell_vol)]))  # fmt: skip
        arrays = load_arrays(provider, operators, exprs, instruments, dates, quoted)
        shape = (len(dates), len(instruments))
        close = arrays["$close"].astype(np.float64)
        factor = arrays["$factor"].astype(np.float64) if "$factor" in arrays else np.ones(shape)
        if "$change" in arrays:
            change = arrays["$change"].astype(np.float64)
        else:
            logger.warning("the store has no field '$change': price limits are checked on it derived from the "
                           "close of the previous trading bar")
            filled = pd.DataFrame(close).ffill().to_numpy()
            prev = np.vstack([np.full((1, shape[1]), np.nan), filled[:-1]])
            change = np.where(np.isnan(close), np.nan, close / prev - 1.0)
        ratio = np.asarray(rules.price_limits(list(instruments), dates), dtype=np.float64)
        raw_prev = close / factor / (1.0 + change)
        with np.errstate(invalid="ignore", divide="ignore"):
            tol = 0.5 * tick / raw_prev + 1e-6
            limit_buy = np.nan_to_num(change - (ratio - tol), nan=-1.0) >= 0
            limit_sell = np.nan_to_num(change + (ratio - tol), nan=1.0) <= 0
        costs = rules.costs
        stamp = [costs.stamp_duty_on(d) for d in dates]
        fees = Fees(
            open_cost=float(costs.commission),
            close_cost=float(costs.commission),
            min_cost=float(costs.min_commission),
            impact_cost=float(impact_cost),
            buy_extra=float(costs.transfer_fee),
            sell_extra=tuple(float(costs.transfer_fee) + s for s in stamp),
        )
        return cls(
            dates,
            instruments,
            close=close,
            factor=factor,
            volume=arrays["$volume"].astype(np.float64) if "$volume" in arrays else np.full(shape, np.nan),
            buy_price=arrays[buy_expr].astype(np.float64),
            sell_price=arrays[sell_expr].astype(np.float64),
            limit_buy=limit_buy,
            limit_sell=limit_sell,
            fees=fees,
            trade_unit=int(rules.lot_size) if rules.lot_size else None,
            settlement_days=int(rules.settlement_days),
            buy_volume_limits=[(kind, arrays[e].astype(np.float64)) for kind, e in buy_vol],
            sell_volume_limits=[(kind, arrays[e].astype(np.float64)) for kind, e in sell_vol],
            description=f"market rules {getattr(rules, 'name', type(rules).__name__)}",
        )._with_source(provider, operators, quoted)

    def _with_source(self, provider: Any, operators: Any, quoted: set[str] | None) -> Exchange:
        self._source = (provider, operators, quoted)
        return self

    # -- windows and the settlement clock ----------------------------------------------------------------------

    #: the attributes holding one row per bar (a :meth:`window` slices them)
    _BAR_ARRAYS = ("close", "factor", "volume", "suspended", "buy_price", "sell_price", "limit_buy", "limit_sell",
                   "_tradable_any", "_tradable_buy", "_tradable_sell", "ledger_day", "next_ledger_day",
                   "minute_windows", "stamps", "_short_ok")  # fmt: skip

    def window(self, lo: int, hi: int) -> Exchange:
        """The exchange of bars ``lo .. hi - 1`` only (bar ``t`` of the window is bar ``lo + t`` here): a view that
        shares this exchange's arrays; what a nested executor hands each inner run."""
        if not 0 <= lo <= hi <= len(self.dates):
            raise ValueError(f"window {lo}..{hi} outside {len(self.dates)} bars")
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        for name in self._BAR_ARRAYS:
            value = self.__dict__.get(name)
            if value is not None:
                view.__dict__[name] = value[lo:hi]
        view.dates = self.dates[lo:hi]
        view._sell_extra = self._sell_extra[lo:hi]
        view.buy_volume_limits = [(kind, values[lo:hi]) for kind, values in self.buy_volume_limits]
        view.sell_volume_limits = [(kind, values[lo:hi]) for kind, values in self.sell_volume_limits]
        view.base = self.base + lo
        view._parent = self
        view._window = (lo, hi)
        view._extra = {}
        return view

    def ledger(self, t: int) -> int:
        """The settlement clock of bar ``t``: the bar number for daily bars, the trading day for intraday ones
        (shares bought on ``ledger(t)`` are sellable from ``ledger(t) + settlement_days`` on)."""
        if self.ledger_day is None:
            return self.base + t
        return int(self.ledger_day[t])

    def release_ledger(self, t: int) -> int:
        """The settlement clock right after bar ``t`` ends (locks up to it are released then)."""
        if self.next_ledger_day is None:
            return self.base + t + 1
        return int(self.next_ledger_day[t])

    def field(self, expression: str) -> np.ndarray:
        """Any field or expression on the exchange's grid (float64), loaded on first use and kept."""
        key = normalise_price(expression)
        if self._parent is not None:
            lo, hi = self._window
            return self._parent.field(key)[lo:hi]
        if key not in self._extra:
            if self.field_loader is not None:  # an intraday level: aggregated from its minute bars
                self._extra[key] = self.field_loader(key)
                return self._extra[key]
            if self._source is None:
                raise ConfigError(f"this exchange has no data source to load {expression!r}")
            provider, operators, quoted = self._source
            arrays = load_arrays(provider, operators, [key], self.instruments, self.dates, quoted)
            self._extra[key] = arrays[key].astype(np.float64)
        return self._extra[key]

    # -- short selling ----------------------------------------------------------------------------------------

    def enable_shorting(self, rules: Any, position: Any) -> None:
        """Let sells of eligible names go below zero (:class:`qbacktest.short.ShortSelling`), within the margin of
        ``position``; rules that are not ``enabled`` leave the exchange long only."""
        if rules is None or not rules.enabled:
            self.shorting, self._short_position, self._short_ok = None, None, None
            return
        shape = self.close.shape
        if rules.eligible is None:
            ok = np.ones(shape, dtype=bool)
        elif isinstance(rules.eligible, str):
            values = self.field(rules.eligible)
            ok = np.nan_to_num(values, nan=0.0) != 0.0
        else:
            ok = np.zeros(shape, dtype=bool)
            for code in rules.eligible:
                j = self._cols.get(code)
                if j is not None:
                    ok[:, j] = True
        self.shorting, self._short_position, self._short_ok = rules, position, ok

    def can_short(self, t: int, j: int | None) -> bool:
        """True when shorting is on and the instrument may be lent on bar ``t``."""
        return self._short_ok is not None and j is not None and bool(self._short_ok[t, j])

    def short_room(self, t: int, j: int, price: float) -> float:
        """The amount that may be sold short on bar ``t`` at ``price`` beyond the holding (0 when the name is not
        eligible): what keeps the account's value at least ``margin ×`` its gross short value."""
        if not self.can_short(t, j) or not price > 0:
            return 0.0
        position = self._short_position
        room = position.value() / self.shorting.margin - position.short_value()
        return max(room, 0.0) / price

    # -- lookups ----------------------------------------------------------------------------------------------

    def col(self, instrument: str) -> int | None:
        """The column of ``instrument``, or None when the exchange does not quote it."""
        return self._cols.get(instrument)

    def is_suspended(self, t: int, j: int | None) -> bool:
        """True when the instrument has no close on bar ``t`` (or is not quoted at all)."""
        return True if j is None else bool(self.suspended[t, j])

    def is_tradable(self, t: int, j: int | None, direction: Direction | None = None) -> bool:
        """Not suspended and not at the limit of ``direction`` (either limit when ``direction`` is None)."""
        if j is None:
            return False
        if direction is None:
            return bool(self._tradable_any[t, j])
        return bool(self._tradable_buy[t, j] if direction == BUY else self._tradable_sell[t, j])

    def tradable_row(self, t: int, direction: Direction | None = None) -> np.ndarray:
        """Boolean row of :meth:`is_tradable` for every instrument on bar ``t``."""
        if direction is None:
            return self._tradable_any[t]
        return self._tradable_buy[t] if direction == BUY else self._tradable_sell[t]

    def deal_price(self, t: int, j: int, direction: Direction) -> float:
        """The price an order of ``direction`` trades at on bar ``t``."""
        return float(self.buy_price[t, j] if direction == BUY else self.sell_price[t, j])

    def close_price(self, t: int, j: int) -> float:
        """The bar's close (NaN when suspended)."""
        return float(self.close[t, j])

    def factor_at(self, t: int, j: int) -> float:
        """``$factor`` on bar ``t`` (NaN when missing)."""
        return float(self.factor[t, j])

    def round_amount(self, amount: float, factor: float) -> float:
        """Round adjusted ``amount`` down to whole lots of real shares (no rounding without a lot size)."""
        if self.trade_unit is None:
            return amount
        unit = self.trade_unit
        return (amount * factor + 0.1) // unit * unit / factor

    def sell_extra(self, t: int) -> float:
        """Proportional sell fees (not subject to the minimum) on bar ``t``."""
        return self._sell_extra[t]

    def fee(self, value: float, ratio: float, extra: float) -> float:
        """The fee of an order of traded ``value`` with rate ``ratio`` (+ ``extra`` not subject to the minimum)."""
        return max(value * ratio, self.fees.min_cost) + value * extra

    # -- dealing ----------------------------------------------------------------------------------------------

    def _clip_by_volume(self, t: int, j: int, direction: Direction, amount: float, dealt: float) -> float:
        limits = self.buy_volume_limits if direction == BUY else self.sell_volume_limits
        if not limits:
            return amount
        caps = []
        for kind, values in limits:
            cap = float(values[t, j])
            if math.isnan(cap):
                cap = 0.0
            caps.append(cap - dealt if kind == "cum" else cap)
        return max(min(min(caps), amount), 0.0)

    def _buy_amount_by_cash(self, price: float, cash: float, ratio: float, extra: float) -> float:
        """The largest (unrounded) amount ``cash`` pays for, fees included."""
        min_cost = self.fees.min_cost
        if cash < min_cost:
            return 0.0
        if ratio > 0:
            critical = min_cost / ratio * (1.0 + extra) + min_cost
        else:
            critical = math.inf if min_cost > 0 else 0.0
        if cash >= critical:
            return cash / (1 + ratio + extra) / price
        return (cash - min_cost) / (1.0 + extra) / price

    def trade(
        self,
        t: int,
        j: int,
        direction: Direction,
        amount: float,
        cash: float | None,
        held: float | None,
        dealt: float = 0.0,
    ) -> tuple[float, float, float, float]:
        """Price an order on bar ``t`` against the account (nothing is changed).

        :param cash: the cash available (None: unknown, no cash checks).
        :param held: the sellable amount held (None: unknown; sells are not clipped).
        :param dealt: the amount of this instrument already dealt on this bar (for ``cum`` volume limits).
        :returns: ``(deal_amount, price, value, cost)``; ``value`` and ``cost`` are 0 when nothing trades.
        """
        fees = self.fees
        price = float(self.buy_price[t, j] if direction == BUY else self.sell_price[t, j])
        total_value = float(self.volume[t, j]) * price
        factor = float(self.factor[t, j])
        deal = self._clip_by_volume(t, j, direction, amount, dealt)
        value = deal * price
        if not total_value or math.isnan(total_value):
            adj = fees.impact_cost
        else:
            adj = fees.impact_cost * (value / total_value) ** 2
        if direction == SELL:
            ratio = fees.close_cost + adj
            extra = self._sell_extra[t]
            if held is not None:
                if self._short_ok is not None and deal > held:  # the part beyond the holding is a short sale
                    held = held + self.short_room(t, j, price)
                if not _isclose(deal, held):
                    deal = self.round_amount(min(held, deal), factor)
                value = deal * price
                if cash is not None and cash + value < self.fee(value, ratio, extra):
                    deal = 0.0
        else:
            ratio = fees.open_cost + adj
            extra = fees.buy_extra
            if cash is not None:
                value = deal * price
                fee = self.fee(value, ratio, extra)
                if cash < fee:
                    deal = 0.0
                elif cash < value + fee:
                    deal = self.round_amount(min(self._buy_amount_by_cash(price, cash, ratio, extra), deal), factor)
                else:
                    deal = self.round_amount(deal, factor)
            else:
                deal = self.round_amount(deal, factor)
        value = deal * price
        cost = self.fee(value, ratio, extra)
        if value <= 1e-5:
            cost = 0.0
        return deal, price, value, cost



@attrs.frozen
class QlibQuotePlan:
    """What Qlib's ``exchange_kwargs`` ask an exchange to load, checked before any data is read.

    :ivar opts: the options with Qlib's defaults filled in.
    :ivar buy_expr: the buy deal-price expression; :ivar sell_expr: the sell one.
    :ivar limit: ``limit_threshold`` as given (a number, two expressions, or None).
    :ivar limit_exprs: the two limit expressions when ``limit`` is a pair.
    :ivar change_expr: ``$change``, or :data:`DERIVED_CHANGE` for a store that lacks it.
    :ivar buy_vol: ``(kind, expression)`` volume limits of buys; :ivar sell_vol: of sells.
    :ivar exprs: every expression to load that the store can give.
    """

    opts: Mapping[str, Any]
    buy_expr: str
    sell_expr: str
    limit: Any
    limit_exprs: tuple[str, ...]
    change_expr: str
    buy_vol: tuple[tuple[str, str], ...]
    sell_vol: tuple[tuple[str, str], ...]
    exprs: tuple[str, ...]

    @classmethod
    def parse(cls, exchange_kwargs: Mapping[str, Any], stored: set[str]) -> QlibQuotePlan:
        """Check ``exchange_kwargs`` (``freq``, dates, codes and quote options are the caller's business and are
        ignored here) against Qlib's names and ``stored`` (the store's field names); warn where a field is derived
        (``$change``) or missing (``$factor``: no lots)."""
        kwargs = dict(exchange_kwargs)
        for ignored in ("freq", "start_time", "end_time", "codes", "subscribe_fields", "extra_quote", "quote_cls"):
            kwargs.pop(ignored, None)
        unknown = set(kwargs) - set(QLIB_EXCHANGE_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown exchange_kwargs: {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(QLIB_EXCHANGE_DEFAULTS)})", path="backtest.exchange_kwargs")
        check_exchange(kwargs, _exchange_fail)
        opts = {**QLIB_EXCHANGE_DEFAULTS, **kwargs}
        buy_expr, sell_expr = _deal_price_exprs(opts["deal_price"])
        limit = opts["limit_threshold"]
        limit_exprs: tuple[str, ...] = ()
        if isinstance(limit, (list, tuple)):
            if len(limit) != 2:
                raise ConfigError("limit_threshold must be a number or (buy expression, sell expression)",
                                  path="backtest.exchange_kwargs.limit_threshold")  # fmt: skip
            limit_exprs = (str(limit[0]), str(limit[1]))
        elif limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
            raise ConfigError(f"limit_threshold must be a number, a pair of expressions or null, got {limit!r}",
                              path="backtest.exchange_kwargs.limit_threshold")  # fmt: skip
        buy_vol, sell_vol = _volume_limits(opts["volume_threshold"])
        change_expr = "$change"
        if limit is not None and not limit_exprs:
            warning = derived_change_warning(stored)
            if warning is not None:  # Qlib skips the limit check silently; derive $change and say so
                logger.warning(warning)
                change_expr = DERIVED_CHANGE
        if opts["trade_unit"] is not None and (warning := missing_factor_warning(stored)) is not None:
            logger.warning(warning)
        wanted = [buy_expr, sell_expr, "$close", change_expr, "$factor", "$volume", *limit_exprs,
                  *(e for _, e in buy_vol + sell_vol)]  # fmt: skip
        exprs = tuple(e for e in dict.fromkeys(wanted) if field_name(e) is None or field_name(e) in stored)
        return cls(opts, buy_expr, sell_expr, limit, limit_exprs, change_expr, tuple(buy_vol), tuple(sell_vol), exprs)

    def limits(self, arrays: Mapping[str, np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Limit-up (no buys) and limit-down (no sells) masks from the loaded ``arrays``."""
        if self.limit_exprs:
            # Qlib casts the expression to bool: NaN counts as limited
            return arrays[self.limit_exprs[0]] != 0, arrays[self.limit_exprs[1]] != 0
        if self.limit is None:
            return np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
        change = arrays.get(self.change_expr)
        if change is None:
            change = np.full(shape, np.nan, dtype=np.float32)
        # float32 comparison, as pandas/numpy do it on the float32 $change column
        return change >= np.float32(self.limit), change <= np.float32(-self.limit)

    def fees(self) -> Fees:
        """The cost rates of the options."""
        opts = self.opts
        return Fees(open_cost=float(opts["open_cost"]), close_cost=float(opts["close_cost"]),
                    min_cost=float(opts["min_cost"]), impact_cost=float(opts["impact_cost"]))  # fmt: skip


def _exchange_fail(message: str, key: str) -> ConfigError:
    """Errors about ``exchange_kwargs`` given to :meth:`Exchange.qlib` directly (no config file to point at)."""
    return ConfigError(message, path="backtest.exchange_kwargs" + key.removeprefix("exchange"))


def _deal_price_exprs(deal_price: Any) -> tuple[str, str]:
    if isinstance(deal_price, str):
        expr = normalise_price(deal_price)
        return expr, expr
    if isinstance(deal_price, (list, tuple)) and len(deal_price) == 2:
        return normalise_price(str(deal_price[0])), normalise_price(str(deal_price[1]))
    raise ConfigError(f"deal_price must be a price or (buy price, sell price), got {deal_price!r}",
                      path="backtest.exchange_kwargs.deal_price")  # fmt: skip
