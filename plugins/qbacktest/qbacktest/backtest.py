"""The backtest loop: build the exchange and the account, then strategy → executor once per bar.

Bars are the calendar entries between ``start`` and ``end``. A bar needs the next calendar entry (its end), so
the last calendar day can never be a bar; an ``end`` on it is moved one day back, with a warning (Qlib raises an
``IndexError`` there). The strategy of bar ``k`` reads the scores of bar ``k - 1``, so the first bar trades only
when scores exist for the day before it.
"""

from __future__ import annotations

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
from qbacktest.quote import benchmark_returns
from qbacktest.report import fills_frame, indicators_frame, positions_frame, report_frame, trade_summary
from qbacktest.risk import risk_report
from qcore.errors import ConfigError, DataError
from qcore.trading import Step, TradingInfra

logger = logging.getLogger(__name__)

#: Qlib's per-region exchange defaults (``qlib/config.py``): lot size and the flat limit threshold.
REGION_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "cn": {"trade_unit": 100, "limit_threshold": 0.095},
    "us": {"trade_unit": 1, "limit_threshold": None},
    "tw": {"trade_unit": 1000, "limit_threshold": 0.1},
}


@attrs.frozen
class BacktestResult:
    """What a run produced.

    :ivar report: Qlib's daily report (one row per bar).
    :ivar positions: holdings at every bar end, index ``(datetime, instrument)``.
    :ivar indicators: per-bar trade indicators (fill rate, price advantage...).
    :ivar fills: every order with its outcome.
    """

    report: pd.DataFrame
    positions: pd.DataFrame
    indicators: pd.DataFrame
    fills: pd.DataFrame
    exchange: Any = attrs.field(repr=False, eq=False)
    account: Any = attrs.field(repr=False, eq=False)

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
) -> BacktestResult:
    """Run a backtest.

    :param provider: a :class:`~qcore.protocols.DataProvider`.
    :param strategy: a :class:`~qcore.trading.Strategy`.
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
    """
    fail = plain_fail("backtest.")
    check_account(account, fail)
    check_benchmark(benchmark, fail)
    calendar = provider.calendar("day")
    signal = getattr(strategy, "signal", None)
    if (start is None or end is None) and signal is not None and len(signal.dates):
        first, last = default_range(calendar, signal.dates)
        start = first if start is None else start
        end = last if end is None else end
    lo, hi = bar_range(calendar, start, end)
    bars = calendar[lo : hi + 1]
    cash, holdings = _initial_holdings(account)
    universe = provider.universe(codes) if isinstance(codes, str) else {c: () for c in codes}
    if signal is not None and hasattr(signal, "check_instruments"):
        signal.check_instruments(provider.universe("all"))
    extra = list(strategy.instruments()) if hasattr(strategy, "instruments") else []
    instruments = sorted(set(universe) | set(extra) | set(holdings))
    quoted = set(universe) | set(holdings)
    operators = _operators(kernel)
    if exchange_kwargs is not None:
        if region not in REGION_DEFAULTS:
            raise ConfigError(f"region must be one of {', '.join(REGION_DEFAULTS)}, got {region!r}")
        kwargs = {**REGION_DEFAULTS[region], **exchange_kwargs}
        # Qlib: a null limit or deal price means the region's default; a null trade_unit disables lots
        if kwargs.get("limit_threshold") is None:
            kwargs["limit_threshold"] = REGION_DEFAULTS[region]["limit_threshold"]
        if kwargs.get("deal_price") is None:
            kwargs["deal_price"] = "close"
        exchange = Exchange.qlib(provider, operators, instruments, bars, quoted=quoted, **kwargs)
    else:
        if market_rules is None:
            raise ConfigError("give exchange_kwargs (Qlib-compatible mode) or market rules (native mode)")
        exchange = Exchange.from_rules(provider, operators, market_rules, instruments, bars, quoted=quoted)
    bench = benchmark_returns(provider, operators, benchmark, bars)
    holdings = _fill_prices(provider, holdings, calendar, lo) if holdings else {}
    trade_account = Account(cash, holdings, bench=bench, settlement_days=exchange.settlement_days)
    infra = TradingInfra(exchange, trade_account, bars, {"calendar": calendar, "bar_offset": lo, "provider": provider})
    executor = executor if executor is not None else SimulatorExecutor()
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
