"""Exchange rules: limits, suspension, deal prices, lots in real shares, costs, cash and volume limits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from qbacktest.exchange import Exchange

from qcore.errors import ConfigError
from qcore.trading import Direction

from .conftest import MemoryProvider, make_market

BUY, SELL = Direction.BUY, Direction.SELL
NAMES = ["SH600000", "SH600001", "SH600002"]


def exchange_for(kernel, fields, **kwargs) -> Exchange:
    provider = MemoryProvider(fields)
    dates = provider.calendar()
    return Exchange.qlib(provider, kernel.registry("operator"), NAMES, dates, **kwargs)


@pytest.fixture
def fields() -> dict[str, pd.DataFrame]:
    return make_market(10, NAMES, bench=None)


def test_flat_limit_compares_in_float32_and_suspension_blocks_both(session_kernel, fields) -> None:
    fields["change"].iloc[3] = [np.float32(0.095), 0.0949, -0.095]
    fields["close"].iloc[5, 1] = np.nan
    ex = exchange_for(session_kernel, fields, limit_threshold=0.095)
    assert not ex.is_tradable(3, 0, BUY) and ex.is_tradable(3, 0, SELL) and not ex.is_tradable(3, 0)
    assert ex.is_tradable(3, 1, BUY)  # 0.0949 < float32(0.095)
    assert ex.is_tradable(3, 2, BUY) and not ex.is_tradable(3, 2, SELL)
    assert ex.is_suspended(5, 1) and not ex.is_tradable(5, 1, BUY) and not ex.is_tradable(5, 1, SELL)
    assert not ex.is_tradable(0, None)  # not quoted at all


def test_no_threshold_means_only_suspension_blocks(session_kernel, fields) -> None:
    fields["change"].iloc[3] = 0.2
    ex = exchange_for(session_kernel, fields, limit_threshold=None)
    assert ex.is_tradable(3, 0)


def test_deal_price_per_side_and_fallback_to_close(session_kernel, fields) -> None:
    fields["open"] = fields["close"] * 0.98
    fields["vwap"].iloc[2, 0] = np.nan
    fields["vwap"].iloc[4, 0] = 0.0
    ex = exchange_for(session_kernel, fields, deal_price=("open", "$vwap"))
    close = fields["close"].to_numpy(dtype=np.float32).astype(float)
    assert ex.deal_price(1, 0, BUY) == pytest.approx(float(np.float32(fields["open"].iloc[1, 0])))
    assert ex.deal_price(1, 0, SELL) == pytest.approx(float(np.float32(fields["vwap"].iloc[1, 0])))
    assert ex.deal_price(2, 0, SELL) == close[2, 0] and ex.deal_price(4, 0, SELL) == close[4, 0]


def test_expression_deal_price_and_limit_rules(session_kernel, fields) -> None:
    fields["change"].iloc[3] = [0.06, -0.06, np.nan]
    ex = exchange_for(session_kernel, fields, deal_price="($open + $close) / 2",
                      limit_threshold=("$change >= 0.05", "$change <= -0.05"))  # fmt: skip
    assert not ex.is_tradable(3, 0, BUY) and ex.is_tradable(3, 0, SELL)
    assert ex.is_tradable(3, 1, BUY) and not ex.is_tradable(3, 1, SELL)
    assert ex.is_tradable(3, 2, BUY)  # a comparison with NaN is False: not limited
    assert ex.deal_price(1, 0, BUY) == pytest.approx(float(fields["close"].iloc[1, 0]), rel=1e-6)


def test_lots_are_counted_in_real_shares(session_kernel, fields) -> None:
    fields["factor"].iloc[:] = 0.5
    ex = exchange_for(session_kernel, fields)
    assert ex.round_amount(333.0, 0.5) == 200.0  # 166.5 real shares → 100 → 200 adjusted
    assert ex.round_amount(400.0, 0.5) == 400.0
    fields["factor"].iloc[2, 1] = np.nan  # a missing factor where a close exists: trade in adjusted shares
    ex = exchange_for(session_kernel, fields)
    assert ex.trade_w_adj_price and ex.round_amount(333.0, 0.5) == 333.0


def test_min_cost_and_cash_limited_buys(session_kernel, fields) -> None:
    fields["close"].iloc[:] = 10.0
    ex = exchange_for(session_kernel, fields, open_cost=0.0005, close_cost=0.0015, min_cost=5)
    deal, price, value, cost = ex.trade(1, 0, BUY, 100.0, cash=1e6, held=None)
    assert (deal, price, value, cost) == (100.0, 10.0, 1000.0, 5.0)  # 0.5 < min_cost
    deal, _, value, cost = ex.trade(1, 0, BUY, 2000.0, cash=10_000.0, held=None)
    assert deal == 900.0 and cost == 5.0  # cut to what the cash buys (999.5 shares), rounded to lots
    assert ex.trade(1, 0, BUY, 2000.0, cash=1000.0, held=None)[0] == 0.0  # cash below one lot plus fees
    assert ex.trade(1, 0, BUY, 2000.0, cash=4.0, held=None)[2:] == (0.0, 0.0)  # cash below min_cost


def test_sells_round_unless_selling_everything(session_kernel, fields) -> None:
    fields["close"].iloc[:] = 10.0
    ex = exchange_for(session_kernel, fields)
    assert ex.trade(1, 0, SELL, 150.0, cash=0.0, held=250.0)[0] == 100.0
    assert ex.trade(1, 0, SELL, 250.0, cash=0.0, held=250.0)[0] == 250.0
    assert ex.trade(1, 0, SELL, 999.0, cash=0.0, held=250.0)[0] == 200.0
    assert ex.trade(1, 0, SELL, 100.0, cash=0.0, held=0.0)[0] == 0.0
    _, _, value, cost = ex.trade(1, 0, SELL, 100.0, cash=0.0, held=100.0)
    assert value == 1000.0 and cost == 5.0


def test_volume_limits_current_and_cumulative(session_kernel, fields) -> None:
    fields["close"].iloc[:] = 10.0
    fields["volume"].iloc[:] = 10_000.0
    ex = exchange_for(session_kernel, fields, volume_threshold={"buy": ("current", "0.1 * $volume"),
                                                                "sell": ("cum", "$volume * 0.05")})  # fmt: skip
    assert ex.trade(1, 0, BUY, 5000.0, cash=1e9, held=None)[0] == 1000.0
    assert ex.trade(1, 0, SELL, 5000.0, cash=0.0, held=5000.0, dealt=200.0)[0] == 300.0
    with pytest.raises(ConfigError, match="volume_threshold"):
        exchange_for(session_kernel, fields, volume_threshold={"buy": ("daily", "$volume")})


def test_impact_cost_grows_with_the_share_of_the_bar(session_kernel, fields) -> None:
    fields["close"].iloc[:] = 10.0
    fields["volume"].iloc[:] = 10_000.0
    ex = exchange_for(session_kernel, fields, impact_cost=0.1, open_cost=0.0, min_cost=0.0)
    _, _, value, cost = ex.trade(1, 0, BUY, 1000.0, cash=1e9, held=None)
    assert cost == pytest.approx(value * 0.1 * (1000 / 10_000) ** 2)


def test_unknown_exchange_kwargs_are_rejected(session_kernel, fields) -> None:
    with pytest.raises(ConfigError, match="unknown exchange_kwargs: slippage"):
        exchange_for(session_kernel, fields, slippage=0.1)


def test_market_rules_mode_detects_board_and_st_limits(session_kernel) -> None:
    names = ["SH600000", "SH600001", "SZ300001"]
    fields = make_market(10, names, bench=None, price=3.33)
    close = fields["close"]
    close.iloc[4, 0] = round(close.iloc[3, 0] * 1.1, 2)  # main board at +10% (tick-rounded)
    close.iloc[4, 1] = round(close.iloc[3, 1] * 1.05, 2)  # ST name at +5%
    close.iloc[4, 2] = round(close.iloc[3, 2] * 1.1, 2)  # ChiNext after the 2020 reform: ±20%, +10% is tradable
    close.iloc[7, 2] = round(close.iloc[6, 2] * 1.2, 2)
    close.iloc[6, 0] = round(close.iloc[5, 0] * 1.05, 2)  # +5% on the main board: tradable
    fields["change"] = close / close.shift(1) - 1
    provider = MemoryProvider(fields)
    rules = session_kernel.create("market_rules", "cn", st={"SH600001": [("2021-01-01", "2021-12-31")]})
    ex = Exchange.from_rules(provider, session_kernel.registry("operator"), rules, names, provider.calendar())
    assert not ex.is_tradable(4, 0, BUY) and not ex.is_tradable(4, 1, BUY) and ex.is_tradable(4, 2, BUY)
    assert not ex.is_tradable(7, 2, BUY)
    assert ex.is_tradable(6, 0, BUY) and ex.is_tradable(4, 0, SELL)
    assert ex.trade_unit == 100 and ex.settlement_days == 1
    # commission (min 5) on both sides, stamp duty 0.1% on sells (2021)
    assert ex.trade(5, 0, SELL, 10_000.0, cash=0.0, held=10_000.0)[3] == pytest.approx(
        max(10_000 * ex.sell_price[5, 0] * 0.0003, 5) + 10_000 * ex.sell_price[5, 0] * 0.001)
    assert math.isclose(ex.trade(5, 0, BUY, 100.0, cash=1e6, held=None)[3], 5.0)
