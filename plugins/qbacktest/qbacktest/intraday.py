"""Intraday quotes: a run's minute bars, loaded once, aggregated into the exchange of each level of a nested run.

Qlib's nested backtest loads its exchange at the finest frequency (``exchange_kwargs.freq: 1min``) and answers
every level's question about a bar from the minute bars inside the bar's window ``[start, next bar's start)``
(Qlib's ``[start, next start - 1 s]``). :class:`MinuteMarket` does the same once per run, as whole arrays:

- *suspended*: every minute close of the window is NaN;
- *limits*: a minute is buy-limited at ``$change >= threshold`` (sell: ``<= -threshold``) or when its close is
  NaN; the window is blocked only when **every** minute is limited;
- *deal price*: the last non-NaN deal price of the window; NaN or ``<= 1e-8`` falls back to the last valid close;
- *close* (valuation) and *factor*: the last valid value of the window;
- *volume*: the window's sum (the impact cost's denominator);
- *volume limits*: ``("current", expr)`` is the window's sum of ``expr``; ``("cum", expr)`` its last valid value,
  less what the executor has dealt in the instrument that day;
- *base prices* of the price advantage: the TWAP (mean) or VWAP (volume-weighted mean) of the minute deal prices
  above ``1e-8`` over any minute range, from running sums.

In native mode (market rules) a minute is limited when its close is within half a tick of the day's limit price
(``$change`` of a minute bar is against the previous day's close, so the daily ratio applies), and the settlement
clock counts trading days, so T+1 holds intraday: shares bought today are sellable tomorrow (Qlib has no such
ledger and lets minute backtests sell the same day, Qlib #1741).

Each level's exchange is an ordinary :class:`~qbacktest.exchange.Exchange` on the level's bars, so executors and
strategies use the same lookups at every level.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qbacktest.exchange import (
    Exchange,
    Fees,
    QlibQuotePlan,
    _deal_price_exprs,
    _volume_limits,
)
from qbacktest.quote import load_arrays, normalise_price
from qcore.errors import ConfigError, DataError
from qcore.trading import Direction

logger = logging.getLogger(__name__)

#: the store frequency a nested run's quotes are read at
MINUTE_FREQ = "1min"


def _running_sum(values: np.ndarray) -> np.ndarray:
    """``out[i] = Σ values[:i]`` along rows (``(n + 1, ...)``), NaN counted as 0, in float64."""
    out = np.zeros((values.shape[0] + 1, *values.shape[1:]), dtype=np.float64)
    np.cumsum(np.nan_to_num(values, nan=0.0), axis=0, dtype=np.float64, out=out[1:])
    return out


class WindowAggregator:
    """Reductions of ``(minutes, instruments)`` arrays over the minute windows ``[starts[k], stops[k])``.

    The windows of a level are consecutive (each starts where the previous one stops), so every reduction is one
    ``ufunc.reduceat`` over the rows they cover; an empty window (a bar without minute bars) gets the reduction's
    empty value.
    """

    def __init__(self, starts: np.ndarray, stops: np.ndarray) -> None:
        self.starts = np.asarray(starts, dtype=np.intp)
        self.stops = np.asarray(stops, dtype=np.intp)
        self.empty = self.stops <= self.starts
        if len(self.starts) and not (self.starts[1:] == self.stops[:-1]).all():
            raise ValueError("the windows of a level must be consecutive")
        self._end = int(self.stops[-1]) if len(self.stops) else 0
        # the non-empty windows still tile [first start, end): reduce over them, fill the empty ones
        self._full = ~self.empty
        self._at = self.starts[self._full]

    def _reduce(self, ufunc: np.ufunc, values: np.ndarray, empty: Any) -> np.ndarray:
        shape = (len(self.starts), *values.shape[1:])
        if not len(self._at):
            return np.full(shape, empty, dtype=values.dtype)
        reduced = ufunc.reduceat(values[: self._end], self._at, axis=0)
        if len(self._at) == len(self.starts):
            return reduced
        out = np.full(shape, empty, dtype=values.dtype)
        out[self._full] = reduced
        return out

    def last_valid(self, values: np.ndarray) -> np.ndarray:
        """The last non-NaN value of each window (NaN when it has none), float64."""
        n = values.shape[0]
        rows = np.where(np.isnan(values), np.int32(-1), np.arange(n, dtype=np.int32)[:, None])
        last = self._reduce(np.maximum, rows, -1)
        ok = last >= self.starts[:, None]
        picked = np.take_along_axis(values, np.maximum(last, 0).astype(np.intp), axis=0)
        return np.where(ok, picked.astype(np.float64), np.nan)

    def total(self, values: np.ndarray) -> np.ndarray:
        """The NaN-skipping sum of each window (0 for an empty window), summed in float64."""
        return self._reduce(np.add, np.nan_to_num(values.astype(np.float64), nan=0.0), 0.0)

    def every(self, flags: np.ndarray) -> np.ndarray:
        """True where every row of the window is set (and for an empty window)."""
        return self._reduce(np.logical_and, flags, True)


class MinuteMarket:
    """One run's minute quotes: the source every level's exchange is aggregated from.

    Build it with :meth:`qlib` (Qlib's ``exchange_kwargs``) or :meth:`from_rules` (market rules); then
    :meth:`level` gives the exchange of any bars inside its span.
    """

    def __init__(
        self,
        minutes: pd.DatetimeIndex,
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
        settlement_days: int,
        buy_volume_limits: Sequence[tuple[str, np.ndarray]] = (),
        sell_volume_limits: Sequence[tuple[str, np.ndarray]] = (),
        stamp: Callable[[pd.DatetimeIndex], tuple[float, ...]] | None = None,
        source: tuple[Any, Any, set[str] | None] | None = None,
        freq: str = MINUTE_FREQ,
        description: str = "",
    ) -> None:
        self.minutes = pd.DatetimeIndex(minutes)
        self.instruments = tuple(instruments)
        self.close = close
        self.factor = factor
        self.volume = volume
        self.buy_price = buy_price
        self.sell_price = sell_price
        self.limit_buy = limit_buy | np.isnan(close)
        self.limit_sell = limit_sell | np.isnan(close)
        self.fees = fees
        self.trade_unit = trade_unit
        self.settlement_days = int(settlement_days)
        self.buy_volume_limits = list(buy_volume_limits)
        self.sell_volume_limits = list(sell_volume_limits)
        self.stamp = stamp
        self.freq = freq
        self.description = description
        self._source = source
        #: Qlib's ``trade_w_adj_price``: a minute with a close but no factor disables lots for the whole run
        self.trade_w_adj_price = bool((np.isnan(factor) & ~np.isnan(close)).any())
        #: the trading days of the span; a bar's settlement clock is its day's position here
        self.days = pd.DatetimeIndex(np.unique(self.minutes.normalize()))
        self._base_sums: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._fields: dict[str, np.ndarray] = {}

    # -- construction -----------------------------------------------------------------------------------------

    @staticmethod
    def span(provider: Any, start: pd.Timestamp, end: pd.Timestamp | None, freq: str = MINUTE_FREQ) -> pd.DatetimeIndex:
        """The stored minute bars in ``[start, end)`` (``end`` None: to the calendar's end)."""
        try:
            calendar = provider.calendar(freq)
        except DataError as error:
            raise DataError(f"a nested backtest needs the store's {freq} bars: {error.message}") from None
        lo = int(calendar.searchsorted(pd.Timestamp(start), "left"))
        hi = len(calendar) if end is None else int(calendar.searchsorted(pd.Timestamp(end), "left"))
        if hi <= lo:
            raise DataError(f"the store has no {freq} bars between {pd.Timestamp(start)} and {end}")
        return calendar[lo:hi]

    @classmethod
    def qlib(
        cls,
        provider: Any,
        operators: Any,
        instruments: Sequence[str],
        minutes: pd.DatetimeIndex,
        *,
        quoted: set[str] | None = None,
        **exchange_kwargs: Any,
    ) -> MinuteMarket:
        """Minute quotes with Qlib's ``exchange_kwargs`` (``freq`` names the store frequency read, ``1min``)."""
        freq = str(exchange_kwargs.get("freq") or MINUTE_FREQ)
        plan = QlibQuotePlan.parse(exchange_kwargs, {f.lower() for f in provider.fields(freq)})
        arrays = load_arrays(provider, operators, list(plan.exprs), instruments, minutes, quoted, freq=freq)
        shape = (len(minutes), len(instruments))
        nan = np.full(shape, np.nan, dtype=np.float32)
        close = arrays["$close"]
        limit_buy, limit_sell = plan.limits(arrays, shape)
        fees = plan.fees()
        opts, buy_expr, sell_expr, buy_vol, sell_vol = plan.opts, plan.buy_expr, plan.sell_expr, plan.buy_vol, \
            plan.sell_vol
        unit = opts["trade_unit"]
        return cls(
            minutes,
            instruments,
            close=close,
            factor=arrays.get("$factor", nan),
            volume=arrays.get("$volume", nan),
            buy_price=arrays[buy_expr],
            sell_price=arrays[buy_expr] if sell_expr == buy_expr else arrays[sell_expr],
            limit_buy=limit_buy,
            limit_sell=limit_sell,
            fees=fees,
            trade_unit=None if unit is None else int(unit),
            settlement_days=0,
            buy_volume_limits=[(kind, arrays[e]) for kind, e in buy_vol],
            sell_volume_limits=[(kind, arrays[e]) for kind, e in sell_vol],
            source=(provider, operators, quoted),
            freq=freq,
            description=f"qlib-compatible, {freq} quotes",
        )

    @classmethod
    def from_rules(
        cls,
        provider: Any,
        operators: Any,
        rules: Any,
        instruments: Sequence[str],
        minutes: pd.DatetimeIndex,
        *,
        deal_price: str | Sequence[str] = "close",
        impact_cost: float = 0.0,
        volume_threshold: Any = None,
        tick: float = 0.01,
        quoted: set[str] | None = None,
        freq: str = MINUTE_FREQ,
    ) -> MinuteMarket:
        """Minute quotes under market rules (lots, T+N in trading days, dated costs, daily price-limit ratios)."""
        buy_expr, sell_expr = _deal_price_exprs(deal_price)
        buy_vol, sell_vol = _volume_limits(volume_threshold)
        stored = {f.lower() for f in provider.fields(freq)}
        needed = [e for e in ("$close", "$factor", "$volume", "$change") if e[1:] in stored]
        exprs = list(dict.fromkeys([buy_expr, sell_expr, *needed, *(e for _, e in buy_vol + sell_vol)]))
        arrays = load_arrays(provider, operators, exprs, instruments, minutes, quoted, freq=freq)
        shape = (len(minutes), len(instruments))
        close = arrays["$close"].astype(np.float64)
        factor = arrays["$factor"].astype(np.float64) if "$factor" in arrays else np.ones(shape, dtype=np.float32)
        day_of = pd.DatetimeIndex(minutes).normalize()
        days = pd.DatetimeIndex(np.unique(day_of))
        if "$change" in arrays:
            change = arrays["$change"].astype(np.float64)
        else:
            logger.warning("the store has no field '$change' at %s: price limits are checked against the previous "
                           "day's last close", freq)  # fmt: skip
            change = _change_from_previous_day(close, day_of)
        ratio = np.asarray(rules.price_limits(list(instruments), days), dtype=np.float64)
        ratio = ratio[days.searchsorted(day_of)]
        raw_prev = close / factor / (1.0 + change)
        with np.errstate(invalid="ignore", divide="ignore"):
            tol = 0.5 * tick / raw_prev + 1e-6
            limit_buy = np.nan_to_num(change - (ratio - tol), nan=-1.0) >= 0
            limit_sell = np.nan_to_num(change + (ratio - tol), nan=1.0) <= 0
        costs = rules.costs
        fees = Fees(open_cost=float(costs.commission), close_cost=float(costs.commission),
                    min_cost=float(costs.min_commission), impact_cost=float(impact_cost),
                    buy_extra=float(costs.transfer_fee))  # fmt: skip

        def stamp(dates: pd.DatetimeIndex) -> tuple[float, ...]:
            return tuple(float(costs.transfer_fee) + float(costs.stamp_duty_on(d)) for d in dates)

        return cls(
            minutes,
            instruments,
            close=arrays["$close"],
            factor=arrays["$factor"] if "$factor" in arrays else np.ones(shape, dtype=np.float32),
            volume=arrays["$volume"] if "$volume" in arrays else np.full(shape, np.nan, dtype=np.float32),
            buy_price=arrays[buy_expr],
            sell_price=arrays[buy_expr] if sell_expr == buy_expr else arrays[sell_expr],
            limit_buy=limit_buy,
            limit_sell=limit_sell,
            fees=fees,
            trade_unit=int(rules.lot_size) if rules.lot_size else None,
            settlement_days=int(rules.settlement_days),
            buy_volume_limits=[(kind, arrays[e]) for kind, e in buy_vol],
            sell_volume_limits=[(kind, arrays[e]) for kind, e in sell_vol],
            stamp=stamp,
            source=(provider, operators, quoted),
            freq=freq,
            description=f"market rules {getattr(rules, 'name', type(rules).__name__)}, {freq} quotes",
        )

    # -- levels -----------------------------------------------------------------------------------------------

    def windows(self, bars: pd.DatetimeIndex, end: pd.Timestamp | None) -> tuple[np.ndarray, np.ndarray]:
        """The minute rows ``[starts[k], stops[k])`` of each bar: from its start to the next bar's (``end`` after the
        last bar; None: to the span's end)."""
        bars = pd.DatetimeIndex(bars)
        starts = self.minutes.searchsorted(bars, "left")
        stops = np.empty(len(bars), dtype=np.intp)
        stops[:-1] = starts[1:]
        if len(bars):
            stops[-1] = len(self.minutes) if end is None else self.minutes.searchsorted(pd.Timestamp(end), "left")
        return np.asarray(starts, dtype=np.intp), stops

    def ledger_days(self, bars: pd.DatetimeIndex) -> np.ndarray:
        """The settlement clock of each bar: its trading day's position in the span."""
        return np.asarray(self.days.searchsorted(pd.DatetimeIndex(bars).normalize()), dtype=np.int64)

    def level(self, bars: pd.DatetimeIndex, end: pd.Timestamp | None = None) -> Exchange:
        """The exchange of ``bars`` (any frequency, inside the span), each bar aggregated from its minutes.

        :param end: where the last bar ends (None: at the span's end).
        """
        bars = pd.DatetimeIndex(bars)
        starts, stops = self.windows(bars, end)
        agg = WindowAggregator(starts, stops)
        close = agg.last_valid(self.close)
        with np.errstate(invalid="ignore"):
            volume = agg.total(self.volume)
        exchange = Exchange(
            bars,
            self.instruments,
            close=close,
            factor=agg.last_valid(self.factor),
            volume=volume,
            buy_price=(buy := agg.last_valid(self.buy_price)),
            sell_price=buy if self.sell_price is self.buy_price else agg.last_valid(self.sell_price),
            limit_buy=agg.every(self.limit_buy),
            limit_sell=agg.every(self.limit_sell),
            fees=Fees(
                open_cost=self.fees.open_cost,
                close_cost=self.fees.close_cost,
                min_cost=self.fees.min_cost,
                impact_cost=self.fees.impact_cost,
                buy_extra=self.fees.buy_extra,
                sell_extra=self.stamp(bars) if self.stamp is not None else (),
            ),
            trade_unit=self.trade_unit,
            settlement_days=self.settlement_days,
            buy_volume_limits=[(kind, self._limit(kind, values, agg)) for kind, values in self.buy_volume_limits],
            sell_volume_limits=[(kind, self._limit(kind, values, agg)) for kind, values in self.sell_volume_limits],
            description=self.description,
            ledger_day=self.ledger_days(bars),
            trade_w_adj_price=self.trade_w_adj_price,
        )
        exchange.minutes = self
        exchange.minute_windows = np.stack([starts, stops], axis=1)
        exchange.field_loader = lambda key: agg.last_valid(self.field(key))
        return exchange

    @staticmethod
    def _limit(kind: str, values: np.ndarray, agg: WindowAggregator) -> np.ndarray:
        if kind == "current":
            return agg.total(values)
        return agg.last_valid(values)

    def field(self, expression: str) -> np.ndarray:
        """Any field or expression on the minute grid (float64), loaded on first use and kept."""
        key = normalise_price(expression)
        if key not in self._fields:
            if self._source is None:
                raise ConfigError(f"these minute quotes have no data source to load {expression!r}")
            provider, operators, quoted = self._source
            arrays = load_arrays(provider, operators, [key], self.instruments, self.minutes, quoted, freq=self.freq)
            self._fields[key] = arrays[key]
        return self._fields[key]

    # -- base prices (price advantage) ------------------------------------------------------------------------

    def base_sums(self, direction: Direction, agg: str) -> tuple[np.ndarray, np.ndarray]:
        """Running sums ``(Σ price × weight, Σ weight)`` down the minutes (``(minutes + 1, instruments)``) of the
        deal prices above ``1e-8`` of ``direction``, weighted 1 (``twap``) or by volume (``vwap``): the base price
        of rows ``[lo, hi)`` is ``(num[hi] - num[lo]) / (den[hi] - den[lo])``."""
        return self._sums(direction, agg)

    def _sums(self, direction: Direction, agg: str) -> tuple[np.ndarray, np.ndarray]:
        same = self.sell_price is self.buy_price
        key = ("buy" if direction == Direction.BUY or same else "sell", agg)
        if key not in self._base_sums:
            price = self.buy_price if key[0] == "buy" else self.sell_price
            with np.errstate(invalid="ignore"):
                valid = price > 1e-08
            if agg == "twap":
                weight = valid.astype(np.float64)
            elif agg == "vwap":
                weight = np.where(valid, self.volume, np.nan)
            else:
                raise ConfigError(f"the base price aggregates by twap or vwap, got {agg!r}",
                                  path="executor.kwargs.indicator_config.pa_config.agg")  # fmt: skip
            with np.errstate(invalid="ignore"):
                weighted = np.where(valid & ~np.isnan(weight), price.astype(np.float64) * weight, np.nan)
            self._base_sums[key] = (_running_sum(weighted), _running_sum(weight))
        return self._base_sums[key]

    def base_price(self, j: int, lo: int, hi: int, direction: Direction, agg: str = "twap") -> tuple[float, float]:
        """``(price, weight)`` of instrument column ``j`` over minute rows ``[lo, hi)``: the TWAP (weight: the
        count of valid prices) or VWAP (weight: their volume) of the deal prices above ``1e-8``; ``(nan, 0)``
        when there are none."""
        num, den = self._sums(direction, agg)
        weight = float(den[hi, j] - den[lo, j])
        if hi <= lo or not weight > 0:
            return math.nan, 0.0
        return float(num[hi, j] - num[lo, j]) / weight, weight

    def rows_between(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[int, int]:
        """Minute rows ``[lo, hi)`` of the closed clock range ``[start, end]``."""
        lo = int(self.minutes.searchsorted(pd.Timestamp(start), "left"))
        hi = int(self.minutes.searchsorted(pd.Timestamp(end), "right"))
        return lo, max(lo, hi)


def _change_from_previous_day(close: np.ndarray, day_of: pd.DatetimeIndex) -> np.ndarray:
    """Each minute's close against the previous day's last valid close."""
    frame = pd.DataFrame(close)
    last_per_day = frame.groupby(np.asarray(day_of)).last()
    previous = last_per_day.shift(1).ffill()
    prev = previous.reindex(np.asarray(day_of)).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isnan(close), np.nan, close / prev - 1.0)


def level_benchmark(
    provider: Any,
    operators: Any,
    benchmark: str | Sequence[str] | pd.Series | None,
    minutes: pd.DatetimeIndex,
    starts: np.ndarray,
    stops: np.ndarray,
    freq: str = MINUTE_FREQ,
) -> np.ndarray | None:
    """Per-bar benchmark returns of an intraday level: ``Π(1 + r) - 1`` over each bar's minutes, ``r`` the
    minute change ``$close / Ref($close, 1) - 1`` (float32, the mean over several codes), as Qlib resamples it.

    A Series of returns is read at the bars' starts. None without a benchmark.
    """
    if benchmark is None:
        return None
    if isinstance(benchmark, pd.Series):
        series = benchmark.copy()
        series.index = pd.DatetimeIndex(series.index)
        bars = minutes[np.minimum(starts, len(minutes) - 1)]
        return series.reindex(bars).fillna(0.0).to_numpy(dtype=np.float64)
    codes = [benchmark] if isinstance(benchmark, str) else list(benchmark)
    from qcore.expr.engine import ExpressionEngine

    engine = ExpressionEngine(provider, operators, freq=freq)
    plan = engine.plan(["$close/Ref($close,1)-1"])
    panel, _ = engine.evaluate_panel(plan, codes, minutes[0], minutes[-1])
    values = panel["e0"]
    with np.errstate(invalid="ignore"), _quiet():
        count = np.sum(~np.isnan(values), axis=1)
        mean = (np.nansum(values, axis=1, dtype=np.float64) / np.where(count, count, 1)).astype(np.float32)
    mean[count == 0] = 0.0
    if not count.any():
        logger.warning("the benchmark %s has no %s bars: its returns at this level are 0", ", ".join(codes), freq)
    growth = mean + np.float32(1.0)
    out = np.zeros(len(starts), dtype=np.float64)
    for k, (lo, hi) in enumerate(zip(starts.tolist(), stops.tolist())):
        if hi > lo:
            out[k] = float(np.prod(growth[lo:hi], dtype=np.float32) - np.float32(1.0))
    return out


class _quiet:
    """Silence numpy's mean-of-empty warnings."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def minute_market(
    provider: Any,
    operators: Any,
    instruments: Sequence[str],
    minutes: pd.DatetimeIndex,
    *,
    quoted: set[str] | None,
    exchange_kwargs: Mapping[str, Any] | None,
    market_rules: Any,
) -> MinuteMarket:
    """The run's minute quotes in Qlib-compatible mode (``exchange_kwargs``) or under ``market_rules``."""
    if exchange_kwargs is not None:
        return MinuteMarket.qlib(provider, operators, instruments, minutes, quoted=quoted, **exchange_kwargs)
    if market_rules is None:
        raise ConfigError("give exchange_kwargs (Qlib-compatible mode) or market rules (native mode)")
    return MinuteMarket.from_rules(provider, operators, market_rules, instruments, minutes, quoted=quoted)
