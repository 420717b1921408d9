"""A-share market rules: lot, T+1, price limits by board, ST and date, stamp duty history, minimum commission."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qdata_cn.rules import CNMarketRules, board_of, limit_ratios, split_symbol

from qcore.protocols import MarketRules
from qcore.types import Span


def test_satisfies_protocol_and_basics() -> None:
    rules = CNMarketRules()
    assert isinstance(rules, MarketRules)
    assert rules.name == "cn" and rules.lot_size == 100 and rules.settlement_days == 1
    np.testing.assert_array_equal(rules.round_lots([99, 100, 250, 1999.9999999]), [0, 100, 200, 2000])


@pytest.mark.parametrize(
    ("symbol", "board"),
    [
        ("SH600000", "main"), ("SH601318", "main"), ("SH603259", "main"), ("SZ000001", "main"),
        ("SZ002594", "main"), ("SZ003816", "main"), ("SZ300750", "chinext"), ("SZ301269", "chinext"),
        ("SH688981", "star"), ("SH689009", "star"), ("BJ830799", "bse"), ("BJ920002", "bse"),
        ("SH000300", "index"), ("SZ399006", "index"), ("SH900901", "bshare"), ("SZ200002", "bshare"),
        ("600000.SH", "main"), ("300750.SZ", "chinext"), ("AAPL", "unknown"), ("SH12", "unknown"),
    ],
)  # fmt: skip
def test_boards(symbol: str, board: str) -> None:
    assert board_of(symbol) == board


def test_split_symbol() -> None:
    assert split_symbol("sh600000") == ("SH", "600000")
    assert split_symbol("600000.SS") == ("SH", "600000")


def test_limits_by_board_and_date() -> None:
    dates = pd.DatetimeIndex(["2019-07-19", "2020-08-21", "2020-08-24", "2024-01-02"])
    symbols = ["SH600000", "SZ300750", "SH688981", "BJ830799", "SH000300", "AAPL"]
    lim = limit_ratios(symbols, dates)
    np.testing.assert_array_equal(lim[:, 0], [0.10] * 4)
    np.testing.assert_array_equal(lim[:, 1], [0.10, 0.10, 0.20, 0.20])  # ChiNext reform on 2020-08-24
    np.testing.assert_array_equal(lim[:, 2], [0.20] * 4)
    np.testing.assert_array_equal(lim[:, 3], [0.30] * 4)
    assert np.isnan(lim[:, 4]).all() and np.isnan(lim[:, 5]).all()


def test_st_limits() -> None:
    dates = pd.DatetimeIndex(["2020-01-02", "2020-06-01", "2021-01-04"])
    st = {"SH600001": [Span("2020-05-01", "2020-12-31")], "SZ300001": [("2020-01-01", "2021-12-31")]}
    rules = CNMarketRules(st=st)
    lim = rules.price_limits(["SH600001", "SZ300001", "SH600000"], dates)
    np.testing.assert_array_equal(lim[:, 0], [0.10, 0.05, 0.10])
    np.testing.assert_array_equal(lim[:, 1], [0.05, 0.05, 0.20])  # ChiNext ST: 5% before the reform, 20% after
    np.testing.assert_array_equal(lim[:, 2], [0.10, 0.10, 0.10])
    assert rules.is_st(["SH600001"], dates)[:, 0].tolist() == [False, True, False]


def test_rules_read_st_and_listings_from_a_store(synth_small: Path) -> None:
    from qdata_cn.binstore import QlibBinProvider

    provider = QlibBinProvider(synth_small)
    st = provider.universe("st")
    rules = CNMarketRules(provider_uri=synth_small)
    cal = provider.calendar()
    assert rules.calendar().equals(cal)
    assert rules.calendar("2019-07-01", "2019-07-31").equals(cal[(cal >= "2019-07-01") & (cal <= "2019-07-31")])
    if st:
        sym = next(iter(st))
        span = st[sym][0]
        inside = cal[(cal >= span.start) & (cal <= span.end)][-1:]
        assert rules.is_st([sym], inside).all()
    uni = provider.universe("all")
    late = [s for s, spans in uni.items() if spans[0].start > cal[0] and board_of(s) in ("main", "star")]
    assert late
    for sym in late:
        listed = uni[sym][0].start
        k = cal.get_loc(listed)
        window = cal[k : k + 6]
        lim = rules.price_limits([sym], window)[:, 0]
        free = 5 if board_of(sym) == "star" else 1
        assert np.isnan(lim[:free]).all()  # new-listing days have no limit
        assert not np.isnan(lim[free:]).any()


def test_stamp_duty_history() -> None:
    costs = CNMarketRules().costs
    assert costs.stamp_duty_on("2008-04-23") == 0.003
    assert costs.stamp_duty_on("2008-04-24") == 0.001
    assert costs.stamp_duty_on("2008-09-19") == 0.001
    assert costs.stamp_duty_on("2023-08-27") == 0.001
    assert costs.stamp_duty_on("2023-08-28") == 0.0005
    assert costs.stamp_duty_on("2007-05-29") == 0.001
    assert costs.stamp_duty_on("2007-05-30") == 0.003
    assert costs.stamp_duty_on("1990-01-01") == 0.0


def test_commission_minimum_and_sell_side_duty() -> None:
    rules = CNMarketRules()
    assert rules.costs.cost(10_000, sell=False, date="2024-01-02") == pytest.approx(5.0)  # 3.0 < 5 minimum
    assert rules.costs.cost(100_000, sell=False, date="2024-01-02") == pytest.approx(30.0)
    assert rules.costs.cost(100_000, sell=True, date="2024-01-02") == pytest.approx(30.0 + 50.0)
    assert rules.costs.cost(100_000, sell=True, date="2015-06-01") == pytest.approx(30.0 + 100.0)
    assert rules.costs.cost(0, sell=True, date="2015-06-01") == 0.0
    custom = CNMarketRules(commission=0.00025, min_commission=0.0, transfer_fee=0.00001)
    assert custom.costs.cost(100_000, sell=False, date="2024-01-02") == pytest.approx(25.0 + 1.0)


def test_kernel_registers_cn_rules() -> None:
    from qcore.kernel import Kernel

    kernel = Kernel.load(use_env=False)
    rules = kernel.create("market_rules", "cn")
    assert isinstance(rules, CNMarketRules) and isinstance(rules, MarketRules)
    assert kernel.create("market_rules", "a_share").lot_size == 100
