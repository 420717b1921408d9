"""The backtest loop: build the exchange and the account, then strategy → executor once per bar.

Bars are the calendar entries between ``start`` and ``end``. A daily bar needs the next calendar entry (its end),
so the last calendar day can never be a bar; an ``end`` on it is moved one day back, with a warning (Qlib raises an
``IndexError`` there). The strategy of bar ``k`` reads the scores of bar ``k - 1``, so the first bar trades only
when scores exist for the day before it.

A run whose executor is nested (:class:`qbacktest.nested.NestedExecutor`), whose executor trades minute bars, or
whose ``exchange_kwargs`` name a minute ``freq`` reads the store's minute bars (:mod:`qbacktest.intraday`): every
level's exchange is aggregated from them, and the calendar's last day is a bar like any other (its minutes say
where it ends). Its result holds each level's report, holdings and indicators (:attr:`BacktestResult.levels`).
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qbacktest.account import Account
from qbacktest.config import check_account, check_benchmark, plain_fail
from qbacktest.exchange import Exchange
from qbacktest.executor import SimulatorExecutor
from qbacktest.freq import Freq
from qbacktest.quote import benchmark_returns
from qbacktest.report import (
    fills_frame,
    indicators_frame,
    level_indicators_frame,
    level_positions_frame,
    level_report_frame,
    positions_frame,
    report_frame,
    trade_summary,
)
from qbacktest.risk import risk_report
from qbacktest.short import ShortSelling
from qbacktest.signal import Signal
from qbacktest.weight_orders import as_order_strategy
from qcore.errors import ConfigError, DataError
from qcore.trading import BarCalendar, Step, TradingInfra

logger = logging.getLogger(__name__)

#: Qlib's per-region exchange defaults (``qlib/config.py``): lot size and the flat limit threshold.
REGION_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "cn": {"trade_unit": 100, "limit_threshold": 0.095},
    "us": {"trade_unit": 1, "limit_threshold": None},
    "tw": {"trade_unit": 1000, "limit_threshold": 0.1},
}


@attrs.frozen(slots=False)
class LevelResult:
    """One level of a nested run (or the only level of a minute-bar run).

    :ivar freq: Qlib's name of the level's frequency (``1day``, ``30min``, ``5min``).
    :ivar report: the level's report, one row per bar it ran.
    :ivar positions: holdings at each of its bar ends, with its own bar count (``count_day``, ``count_30min``).
    :ivar indicators: its trade indicators per bar (``ffr pa pos deal_amount value count``).
    """

    freq: str
    report: pd.DataFrame
    positions: pd.DataFrame
    indicators: pd.DataFrame
    account: Any = attrs.field(repr=False, eq=False)

    @functools.cached_property
    def orders(self) -> pd.DataFrame:
        """The level's order indicators per bar, index ``(datetime, instrument)`` (built on first use)."""
        from qbacktest.indicators import orders_frame

        return orders_frame(self.account.tables or [], self.account.times)

    def indicator_analysis(self, method: str = "mean") -> pd.DataFrame:
        """Qlib's ``indicator_analysis`` of the level's indicators (``mean``, ``amount_weighted``,
        ``value_weighted``)."""
        from qbacktest.indicators import indicator_analysis

        return indicator_analysis(self.indicators, method)


@attrs.frozen
class BacktestResult:
    """What a run produced.

    :ivar report: Qlib's daily report (one row per bar; the outermost level's in a nested run).
    :ivar positions: holdings at every bar end, index ``(datetime, instrument)``.
    :ivar indicators: per-bar trade indicators (fill rate, price advantage...).
    :ivar fills: every order with its outcome (the innermost level's orders in a nested run).
    :ivar levels: a nested (or minute-bar) run's levels by Qlib's frequency name, outermost first; empty for a
        daily run.
    """

    report: pd.DataFrame
    positions: pd.DataFrame
    indicators: pd.DataFrame
    fills: pd.DataFrame
    exchange: Any = attrs.field(repr=False, eq=False)
    account: Any = attrs.field(repr=False, eq=False)
    levels: Mapping[str, LevelResult] = attrs.field(factory=dict, repr=False, eq=False)

    def risk(self) -> dict[str, Any]:
        """``risk.json`` content (Qlib's ``sum``/``product`` and the compounded statistics, labelled)."""
        out = risk_report(self.report)
        out["trades"] = trade_summary(self.fills)
        return out


def _operators(kernel: Any) -> Any:
    if kernel is None:
        from qcore.kernel import Kernel

        kernel = Kernel.load(use_env=False)
    return kernel.registry("operator")


def bar_range(calendar: pd.DatetimeIndex, start: object, end: object) -> tuple[int, int]:
    """Calendar positions of the first and last bar for ``[start, end]`` (the last calendar day is excluded)."""
    if len(calendar) < 2:
        raise DataError("the store's calendar needs at least two days for one bar")
    lo = 0 if start is None else int(calendar.searchsorted(pd.Timestamp(start), "left"))
    hi = len(calendar) - 1 if end is None else int(calendar.searchsorted(pd.Timestamp(end), "right")) - 1
    if hi >= len(calendar) - 1:
        if end is not None and pd.Timestamp(end) >= calendar[-1]:
            logger.warning("the last calendar day %s cannot be a bar (a bar ends at the next calendar entry); "
                           "the run ends on %s", calendar[-1].date(), calendar[-2].date())  # fmt: skip
        hi = len(calendar) - 2
    if hi < lo:
        between = f"{_day(start) or 'the start'} and {_day(end) or 'the end'}"
        raise ConfigError(f"no bar between {between} in the store's calendar "
                          f"({calendar[0].date()}..{calendar[-2].date()} can be bars)")  # fmt: skip
    return lo, hi


def _day(value: object) -> str | None:
    return None if value is None else str(pd.Timestamp(value).date())


def default_range(calendar: pd.DatetimeIndex, score_dates: pd.DatetimeIndex) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Qlib's PortAnaRecord defaults: from the first score date to the bar after the last one."""
    first, last = score_dates.min(), score_dates.max()
    k = int(calendar.searchsorted(last, "right"))  # the next calendar entry after the last score
    end = calendar[min(k, len(calendar) - 2)]
    return pd.Timestamp(first), pd.Timestamp(end)


def _initial_holdings(account: Any) -> tuple[float, dict[str, Any]]:
    if isinstance(account, (int, float)):
        return float(account), {}
    if isinstance(account, Mapping):
        spec = dict(account)
        if "cash" not in spec:
            raise ConfigError("account needs a 'cash' entry", path="backtest.account")
        cash = float(spec.pop("cash"))
        return cash, spec
    raise ConfigError(f"account must be a number or a mapping with 'cash', got {account!r}", path="backtest.account")


def _fill_prices(provider: Any, holdings: dict[str, Any], calendar: pd.DatetimeIndex, lo: int) -> dict[str, Any]:
    """Give starting holdings without a price the last close of the 30 calendar days before the start."""
    out = {}
    need = [s for s, v in holdings.items() if not (isinstance(v, Mapping) and v.get("price") is not None)]
    closes: dict[str, float] = {}
    if need:
        first = calendar.searchsorted(calendar[lo] - pd.Timedelta(days=30))
        panel = provider.load(["close"], need, calendar[first], calendar[lo], "day")
        for j, name in enumerate(need):
            column = panel["close"][:, j]
            valid = column[~np.isnan(column)]
            if not len(valid):
                raise DataError(f"starting holding {name} has no close in the 30 days before {calendar[lo].date()}")
            closes[name] = float(valid[-1])
    for name, spec in holdings.items():
        amount = float(spec["amount"]) if isinstance(spec, Mapping) else float(spec)
        price = spec.get("price") if isinstance(spec, Mapping) else None
        out[name] = {"amount": amount, "price": closes[name] if price is None else float(price)}
    return out


def run_backtest(
    provider: Any,
    strategy: Any,
    executor: Any = None,
    *,
    start: object = None,
    end: object = None,
    account: float | Mapping[str, Any] = 1e9,
    benchmark: str | Sequence[str] | pd.Series | None = "SH000300",
    exchange_kwargs: Mapping[str, Any] | None = None,
    market_rules: Any = None,
    codes: str | Sequence[str] = "all",
    region: str = "cn",
    kernel: Any = None,
    short: Any = None,
) -> BacktestResult:
    """Run a backtest.

    :param provider: a :class:`~qcore.protocols.DataProvider`.
    :param strategy: a :class:`~qcore.trading.Strategy`, or a :class:`~qcore.trading.WeightStrategy` (traded
        through :class:`~qbacktest.weight_orders.WeightOrders`); anything else is a :class:`ConfigError`.
    :param executor: a :class:`~qcore.trading.Executor` (default: the daily :class:`SimulatorExecutor`).
    :param start: first bar (default: the first score date of the strategy's signal, else the calendar start).
    :param end: last bar (default: the bar after the last score date).
    :param account: starting cash, or ``{"cash": x, SYMBOL: amount | {"amount", "price"}}``.
    :param benchmark: a code, a list of codes (their mean return), a Series of returns, or None.
    :param exchange_kwargs: Qlib's exchange arguments: the run is Qlib-compatible (region defaults apply).
    :param market_rules: a :class:`~qcore.protocols.MarketRules` object: qcore's native mode (used when
        ``exchange_kwargs`` is None).
    :param codes: the market (or symbols) the exchange quotes.
    :param region: Qlib region of the defaults (``cn``, ``us``, ``tw``) in Qlib-compatible mode.
    :param kernel: the kernel whose operators evaluate expressions (default: a freshly loaded one).
    :param short: short selling (:class:`~qbacktest.short.ShortSelling` or its mapping; None: long only).
    """
    shorting = ShortSelling.parse(short)
    strategy = as_order_strategy(strategy)
    fail = plain_fail("backtest.")
    check_account(account, fail)
    check_benchmark(benchmark, fail)
    executor = executor if executor is not None else SimulatorExecutor()
    freq = Freq.parse(getattr(executor, "time_per_step", None) or "day")
    if _reads_minutes(executor, freq, exchange_kwargs):
        if shorting.enabled:
            raise ConfigError("short selling is simulated on daily bars only (the executor trades minute bars)",
                              path="backtest.short")  # fmt: skip
        return _run_levels(provider, strategy, executor, freq, start=start, end=end, account=account,
                           benchmark=benchmark, exchange_kwargs=exchange_kwargs, market_rules=market_rules,
                           codes=codes, region=region, kernel=kernel)  # fmt: skip
    calendar = provider.calendar("day")
    signal = getattr(strategy, "signal", None)
    signal = signal if isinstance(signal, Signal) else None
    if (start is None or end is None) and signal is not None and len(signal.dates):
        first, last = default_range(calendar, signal.dates)
        start = first if start is None else start
        end = last if end is None else end
    lo, hi = bar_range(calendar, start, end)
    bars = calendar[lo : hi + 1]
    cash, holdings = _initial_holdings(account)
    instruments, quoted = _instruments(provider, strategy, signal, codes, holdings)
    operators = _operators(kernel)
    if exchange_kwargs is not None:
        kwargs = _qlib_kwargs(exchange_kwargs, region)
        exchange = Exchange.qlib(provider, operators, instruments, bars, quoted=quoted, **kwargs)
    else:
        if market_rules is None:
            raise ConfigError("give exchange_kwargs (Qlib-compatible mode) or market rules (native mode)")
        exchange = Exchange.from_rules(provider, operators, market_rules, instruments, bars, quoted=quoted)
    bench = benchmark_returns(provider, operators, benchmark, bars)
    holdings = _fill_prices(provider, holdings, calendar, lo) if holdings else {}
    trade_account = Account(cash, holdings, bench=bench, settlement_days=exchange.settlement_days)
    trade_account.enable_shorting(shorting)
    exchange.enable_shorting(shorting, trade_account.position)
    infra = TradingInfra(exchange, trade_account, BarCalendar(calendar, lo, len(bars), "day"), provider=provider,
                         operators=operators)
    strategy.reset(infra)
    executor.reset(infra)
    ends = calendar[lo + 1 : hi + 2]
    collect = gc.isenabled()
    gc.disable()  # the loop makes many small objects and no cycles worth collecting mid-run
    try:
        for i, (bar_start, bar_end) in enumerate(zip(bars, ends)):
            step = Step(i, bar_start, bar_end)
            decision = strategy.generate_trade_decision(step)
            executor.execute(decision, step)
    finally:
        if collect:
            gc.enable()
    return BacktestResult(
        report=report_frame(trade_account, bars),
        positions=positions_frame(trade_account, bars),
        indicators=indicators_frame(trade_account, bars),
        fills=fills_frame(trade_account, bars),
        exchange=exchange,
        account=trade_account,
    )


# ---------------------------------------------------------------------------------------------------------------
# Runs on minute bars: nested executors, minute-bar executors, minute exchanges
# ---------------------------------------------------------------------------------------------------------------


def _instruments(provider: Any, strategy: Any, signal: Signal | None, codes: str | Sequence[str],
                 holdings: Mapping[str, Any]) -> tuple[list[str], set[str]]:  # fmt: skip
    """The exchange's columns and the names that get quotes.

    A signal's names get columns (a name outside the universe can be ranked but never trades, as in Qlib); the
    names a strategy declares with ``instruments()`` are quoted even outside the universe.
    """
    universe = provider.universe(codes) if isinstance(codes, str) else {c: () for c in codes}
    scored: list[str] = []
    if signal is not None:
        signal.check_instruments(provider.universe("all"))
        scored = signal.instruments
    declared = list(strategy.instruments()) if callable(getattr(strategy, "instruments", None)) else []
    instruments = sorted(set(universe) | set(scored) | set(declared) | set(holdings))
    quoted = set(universe) | set(holdings) | set(declared)
    return instruments, quoted


def _qlib_kwargs(exchange_kwargs: Mapping[str, Any], region: str) -> dict[str, Any]:
    """Qlib's exchange arguments with the region's defaults."""
    if region not in REGION_DEFAULTS:
        raise ConfigError(f"region must be one of {', '.join(REGION_DEFAULTS)}, got {region!r}")
    kwargs = {**REGION_DEFAULTS[region], **exchange_kwargs}
    # Qlib: a null limit or deal price means the region's default; a null trade_unit disables lots
    if kwargs.get("limit_threshold") is None:
        kwargs["limit_threshold"] = REGION_DEFAULTS[region]["limit_threshold"]
    if kwargs.get("deal_price") is None:
        kwargs["deal_price"] = "close"
    return kwargs


def _reads_minutes(executor: Any, freq: Freq, exchange_kwargs: Mapping[str, Any] | None) -> bool:
    """Whether a run prices its bars from the store's minute bars."""
    from qbacktest.nested import NestedExecutor

    if isinstance(executor, NestedExecutor) or not freq.daily:
        return True
    quote_freq = (exchange_kwargs or {}).get("freq")
    return quote_freq is not None and not Freq.parse(quote_freq, path="backtest.exchange_kwargs.freq").daily


def level_range(calendar: pd.DatetimeIndex, start: object, end: object, freq: Freq) -> tuple[int, int]:
    """Calendar positions of the first and last bar for ``[start, end]``: every bar of the calendar can be one
    (minute bars say where the last ends); a date ``end`` of intraday bars takes that day's bars."""
    if not len(calendar):
        raise DataError(f"the store's {freq.name} calendar is empty")
    lo = 0 if start is None else int(calendar.searchsorted(pd.Timestamp(start), "left"))
    if end is None:
        hi = len(calendar) - 1
    else:
        last = pd.Timestamp(end)
        if not freq.daily and last == last.normalize():
            last = last + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
        hi = int(calendar.searchsorted(last, "right")) - 1
    if hi < lo:
        between = f"{_day(start) or 'the start'} and {_day(end) or 'the end'}"
        raise ConfigError(f"no {freq.name} bar between {between} in the store's calendar "
                          f"({calendar[0]}..{calendar[-1]})")  # fmt: skip
    return lo, hi


def _run_levels(
    provider: Any,
    strategy: Any,
    executor: Any,
    freq: Freq,
    *,
    start: object,
    end: object,
    account: float | Mapping[str, Any],
    benchmark: str | Sequence[str] | pd.Series | None,
    exchange_kwargs: Mapping[str, Any] | None,
    market_rules: Any,
    codes: str | Sequence[str],
    region: str,
    kernel: Any,
) -> BacktestResult:
    """:func:`run_backtest` on minute bars: the exchange of every level is aggregated from them."""
    from qbacktest.intraday import MINUTE_FREQ, MinuteMarket, level_benchmark, minute_market
    from qbacktest.nested import Level, level_results

    calendar = provider.calendar(freq.name)
    signal = getattr(strategy, "signal", None)
    signal = signal if isinstance(signal, Signal) else None
    if (start is None or end is None) and signal is not None and len(signal.dates):
        days = provider.calendar("day")
        k = int(days.searchsorted(signal.dates.max(), "right"))  # the day after the last score
        start = signal.dates.min() if start is None else start
        end = days[min(k, len(days) - 1)] if end is None else end
    lo, hi = level_range(calendar, start, end, freq)
    bars = calendar[lo : hi + 1]
    span_end = calendar[hi + 1] if hi + 1 < len(calendar) else None
    cash, holdings = _initial_holdings(account)
    instruments, quoted = _instruments(provider, strategy, signal, codes, holdings)
    operators = _operators(kernel)
    kwargs = None
    quote_freq = MINUTE_FREQ
    if exchange_kwargs is not None:
        kwargs = _qlib_kwargs(exchange_kwargs, region)
        quote_freq = Freq.parse(kwargs.pop("freq", None) or MINUTE_FREQ, path="backtest.exchange_kwargs.freq").name
        kwargs["freq"] = quote_freq
    minutes = MinuteMarket.span(provider, bars[0], span_end, quote_freq)
    market = minute_market(provider, operators, instruments, minutes, quoted=quoted, exchange_kwargs=kwargs,
                           market_rules=market_rules)  # fmt: skip
    exchange = market.level(bars, end=span_end)
    if freq.daily:
        bench = benchmark_returns(provider, operators, benchmark, bars)
    else:
        windows = exchange.minute_windows
        bench = level_benchmark(provider, operators, benchmark, minutes, windows[:, 0], windows[:, 1], quote_freq)
    if holdings:
        days = provider.calendar("day")
        holdings = _fill_prices(provider, holdings, days, int(days.searchsorted(bars[0].normalize(), "left")))
    trade_account = Account(cash, holdings, bench=bench, settlement_days=exchange.settlement_days, freq=freq.key)
    trade_account.tables = []
    trade_account.indicator_config = getattr(executor, "indicator_config", {}) or {}
    infra = TradingInfra(exchange, trade_account, BarCalendar(calendar, lo, len(bars), freq.name), provider=provider,
                         operators=operators)
    if callable(getattr(executor, "set_benchmark", None)):
        executor.set_benchmark(benchmark)
    strategy.reset(infra)
    executor.reset(infra)
    top = Level(freq, calendar, lo, bars, exchange, trade_account)
    ends = top.ends()
    collect = gc.isenabled()
    gc.disable()
    try:
        for i, (bar_start, bar_end) in enumerate(zip(bars, ends)):
            step = Step(i, bar_start, bar_end)
            executor.execute(strategy.generate_trade_decision(step), step)
    finally:
        if collect:
            gc.enable()
    levels = list(level_results(executor)) or [top]
    results = {level.freq.key: _level_result(level) for level in levels}
    first = results[levels[0].freq.key]
    bottom = levels[-1]
    return BacktestResult(
        report=first.report,
        positions=first.positions,
        indicators=first.indicators,
        fills=fills_frame(bottom.account, bottom.bars),
        exchange=exchange,
        account=trade_account,
        levels=results,
    )


def _level_result(level: Any) -> LevelResult:
    account = level.account
    return LevelResult(
        freq=level.freq.key,
        report=level_report_frame(account),
        positions=level_positions_frame(account, f"count_{level.freq.name}"),
        indicators=level_indicators_frame(account),
        account=account,
    )
