"""The intraday exchange (issue 15): every level's quotes aggregated from the minute bars of its windows, Qlib's
rules per window, volume limits per day, and the T+1 ledger intraday."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qbacktest.backtest import run_backtest
from qbacktest.intraday import MinuteMarket

from qcore.trading import Direction

from .nested_market import QLIB_EXCHANGE, build_store, healthy, orders_file, patch_minutes


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 days x 10 stocks with minute bars; one stock limit-up all of day 3, one suspended from 13:00 of day 4."""
    path = build_store(tmp_path_factory.mktemp("intraday") / "store")
    return path


@pytest.fixture(scope="module")
def events(store: Path, session_kernel) -> dict:
    provider = session_kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    days = provider.calendar("day")
    limited = healthy(provider, days[3])[0]
    halted = healthy(provider, days[4], skip=1)[0]
    partly = healthy(provider, days[3], skip=2)[0]
    day3, day4 = days[3], days[4]
    patch_minutes(store, limited, {"change": 0.1}, day3 + pd.Timedelta("09:30:00"), day3 + pd.Timedelta("14:59:00"))
    patch_minutes(store, partly, {"change": 0.1}, day3 + pd.Timedelta("09:30:00"), day3 + pd.Timedelta("10:29:00"))
    nan = float("nan")
    patch_minutes(store, halted, {f: nan for f in ("open", "high", "low", "close", "vwap", "volume", "amount",
                                                   "factor", "change")},
                  day4 + pd.Timedelta("13:00:00"), day4 + pd.Timedelta("14:59:00"))  # fmt: skip
    return {"limited": limited, "halted": halted, "partly": partly, "day3": day3, "day4": day4}


@pytest.fixture(scope="module")
def provider(store: Path, events: dict, session_kernel):
    return session_kernel.create("data_provider", "qlib_bin", provider_uri=str(store))


def _market(provider, session_kernel, **kwargs) -> MinuteMarket:
    names = sorted(provider.universe("all"))
    minutes = provider.calendar("1min")
    return MinuteMarket.qlib(provider, session_kernel.registry("operator"), names, minutes,
                             **{**QLIB_EXCHANGE, **kwargs})  # fmt: skip


def test_level_quotes_are_the_minutes_of_each_window(provider, session_kernel) -> None:
    market = _market(provider, session_kernel)
    bars = provider.calendar("30min")
    exchange = market.level(bars)
    names = list(market.instruments)
    panel = provider.load(["close", "volume", "factor"], names, None, None, "1min")
    minutes = provider.calendar("1min")
    for k in (0, 3, 7, 20):
        rows = (minutes >= bars[k]) & (minutes < (bars[k + 1] if k + 1 < len(bars) else minutes[-1] + pd.Timedelta(1)))
        assert rows.sum() == 30
        close = panel["close"][rows].astype(np.float64)
        for j in range(len(names)):
            valid = close[:, j][~np.isnan(close[:, j])]
            expected = valid[-1] if len(valid) else np.nan
            assert exchange.close[k, j] == expected or (np.isnan(expected) and np.isnan(exchange.close[k, j]))
            # the deal price is the close here: the last valid minute close of the window
            if len(valid):
                assert exchange.deal_price(k, j, Direction.BUY) == expected
            assert exchange.volume[k, j] == pytest.approx(np.nansum(panel["volume"][rows][:, j].astype(np.float64)))


def test_a_window_is_blocked_only_when_every_minute_is_limited(provider, events, session_kernel) -> None:
    market = _market(provider, session_kernel)
    days = provider.calendar("day")
    day = market.level(days)
    half = market.level(provider.calendar("30min"))
    t = int(days.get_loc(events["day3"]))
    limited, partly = day.col(events["limited"]), day.col(events["partly"])
    # limit-up all day: no buying that day; selling is still allowed
    assert not day.is_tradable(t, limited, Direction.BUY) and day.is_tradable(t, limited, Direction.SELL)
    # limit-up from 09:30 to 10:29 only: the day is tradable, its first two half hours are not
    assert day.is_tradable(t, partly, Direction.BUY)
    first = int(provider.calendar("30min").searchsorted(events["day3"] + pd.Timedelta("09:30:00")))
    assert [half.is_tradable(first + i, partly, Direction.BUY) for i in range(4)] == [False, False, True, True]


def test_a_mid_day_suspension_blocks_the_afternoon_only(provider, events, session_kernel) -> None:
    market = _market(provider, session_kernel)
    bars = provider.calendar("30min")
    half = market.level(bars)
    days = provider.calendar("day")
    day = market.level(days)
    j = half.col(events["halted"])
    first = int(bars.searchsorted(events["day4"] + pd.Timedelta("09:30:00")))
    assert [half.is_suspended(first + i, j) for i in range(8)] == [False] * 4 + [True] * 4
    t = int(days.get_loc(events["day4"]))
    assert not day.is_suspended(t, j)
    # the day's close (valuation) is the last valid minute close: 11:29
    minutes = provider.calendar("1min")
    at = minutes.get_loc(events["day4"] + pd.Timedelta("11:29:00"))
    close = provider.load(["close"], [events["halted"]], minutes[at], minutes[at], "1min")["close"][0, 0]
    assert day.close[t, j] == np.float64(close)


def test_volume_limits_current_and_cum(provider, session_kernel) -> None:
    current = _market(provider, session_kernel, volume_threshold=("current", "$volume * 0.01"))
    cum = _market(provider, session_kernel, volume_threshold={"buy": ("cum", "$volume")})
    bars = provider.calendar("30min")
    a, b = current.level(bars), cum.level(bars)
    j = 1
    k = 5
    cap = a.volume[k, j] * 0.01  # ("current", expr): the window's sum of the expression
    lot = 100 / a.factor[k, j]
    deal, *_ = a.trade(k, j, Direction.BUY, 1e12, None, None)
    assert cap - lot < deal <= cap + 1e-6
    last_minute = b.buy_volume_limits[0][1][k, j]
    deal, *_ = b.trade(k, j, Direction.BUY, 1e12, None, None, dealt=last_minute / 2)
    assert 0 < deal <= last_minute / 2
    assert b.trade(k, j, Direction.BUY, 1e12, None, None, dealt=last_minute)[0] == 0


def _round_trip(provider, kernel, tmp_path: Path, name: str, day: pd.Timestamp, **mode) -> dict:
    """Buy ``name`` at 09:30 and sell it at 13:00 of ``day``, then sell again at 09:30 the next day (30-minute
    bars, orders from a file)."""
    days = provider.calendar("day")
    nxt = days[days.get_loc(day) + 1]
    file = orders_file(tmp_path / "orders.csv", [
        (str(day + pd.Timedelta("09:30:00")), name, 10000, "buy"),
        (str(day + pd.Timedelta("13:00:00")), name, 10000, "sell"),
        (str(nxt + pd.Timedelta("09:30:00")), name, 10000, "sell"),
    ])  # fmt: skip
    strategy = kernel.create("strategy", "OrderReplay", file=str(file))
    executor = kernel.create("executor", "SimulatorExecutor", time_per_step="30min")
    result = run_backtest(provider, strategy, executor, start=day, end=nxt, benchmark=None, account=1e7, kernel=kernel,
                          **mode)  # fmt: skip
    fills = result.fills.set_index("datetime")
    return {"fills": fills, "levels": result.levels}


def test_t_plus_1_holds_intraday_under_market_rules(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    day = days[2]
    name = healthy(provider, day)[0]
    rules = session_kernel.create("market_rules", "cn")
    native = _round_trip(provider, session_kernel, tmp_path, name, day, market_rules=rules)["fills"]
    qlib = _round_trip(provider, session_kernel, tmp_path, name, day, exchange_kwargs=QLIB_EXCHANGE)["fills"]
    same_day = day + pd.Timedelta("13:00:00")
    nxt = days[3] + pd.Timedelta("09:30:00")
    # qcore's ledger: shares bought today are not sellable today, and are tomorrow
    assert native.loc[same_day, "deal_amount"] == 0
    assert native.loc[nxt, "deal_amount"] > 0
    # Qlib (#1741) lets a minute backtest sell them the same day
    assert qlib.loc[same_day, "deal_amount"] > 0
    assert qlib.loc[nxt, "deal_amount"] == 0


def test_the_calendars_last_bar_runs(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    last = days[-1]
    name = healthy(provider, last)[0]
    file = orders_file(tmp_path / "orders.csv", [(str(last + pd.Timedelta("14:30:00")), name, 100000, "buy")])
    strategy = session_kernel.create("strategy", "OrderReplay", file=str(file))
    executor = session_kernel.create("executor", "SimulatorExecutor", time_per_step="30min")
    result = run_backtest(provider, strategy, executor, start=last, end=last, benchmark="SH000300", account=1e6,
                          exchange_kwargs=QLIB_EXCHANGE, kernel=session_kernel)  # fmt: skip
    report = result.levels["30min"].report
    assert report.index[-1] == last + pd.Timedelta("14:30:00") and len(report) == 8
    assert result.fills["deal_amount"].iloc[-1] > 0
