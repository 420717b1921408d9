"""Short positions in the backtest: negative holdings, borrow cost, margin, eligibility, and the off switch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qbacktest.config import load_backtest_config
from qbacktest.position import Position
from qbacktest.short import ShortSelling

from qcore.errors import ConfigError, RunError
from qcore.trading import Step, TradingInfra
from tests.qbacktest.conftest import run_memory

EXCHANGE = {"deal_price": "close", "open_cost": 0.0, "close_cost": 0.0, "min_cost": 0.0, "trade_unit": 1,
            "limit_threshold": None}  # fmt: skip


def _market(closes: dict[str, list[float]]) -> dict[str, pd.DataFrame]:
    dates = pd.bdate_range("2021-01-04", periods=len(next(iter(closes.values()))))
    close = pd.DataFrame(closes, index=dates)
    return {"close": close, "open": close.copy(), "vwap": close.copy(), "high": close * 1.01, "low": close * 0.99,
            "volume": close * 0 + 1e9, "factor": close * 0 + 1.0, "change": close / close.shift(1) - 1}  # fmt: skip


class Fixed:
    """Target weights per bar index (None on the other bars: no decision)."""

    risk_degree = 1.0

    def __init__(self, plan: dict[int, dict[str, float]]) -> None:
        self.plan = plan

    def reset(self, infra: TradingInfra) -> None:
        self.infra = infra

    def target_weights(self, step: Step):
        return self.plan.get(step.index)


def _run(kernel, closes, plan, short=None, **kwargs):
    return run_memory(kernel, _market(closes), Fixed(plan), exchange_kwargs=dict(EXCHANGE), benchmark=None,
                      start="2021-01-04", end=kwargs.pop("end", "2021-01-06"), short=short, **kwargs)  # fmt: skip


def test_short_pnl_and_borrow_cost_on_a_hand_checked_two_day_case(session_kernel) -> None:
    # bar 1 sells 50,000 A short at 10 (half of 1e6); A then rises to 11: the short loses 50,000.
    short = {"enabled": True, "borrow_rate": 0.252, "margin": 0.5}  # 0.1% a day
    result = _run(session_kernel, {"A": [10.0, 10.0, 11.0, 11.0]}, {1: {"A": -0.5}}, short=short)
    report = result.report
    assert result.account.position.amount("A") == pytest.approx(-50_000.0)
    # bar 1: proceeds in the cash, the short valued at -500,000; borrow 500,000 × 0.001
    assert report["account"].iloc[1] == pytest.approx(1e6 - 500.0)
    assert report["cash"].iloc[1] == pytest.approx(1.5e6 - 500.0)
    assert report["value"].iloc[1] == pytest.approx(-500_000.0)
    # bar 2: a 10% rise of a 500,000 short loses 50,000; borrow on 550,000
    assert report["account"].iloc[2] == pytest.approx(1e6 - 50_000.0 - 500.0 - 550.0)
    assert report["cost"].iloc[2] == pytest.approx(550.0 / (1e6 - 500.0))
    assert report["total_cost"].iloc[2] == pytest.approx(1050.0)
    assert result.account.total_borrow == pytest.approx(1050.0)
    # return is gross of cost (Qlib's rule): the price move alone
    assert report["return"].iloc[2] == pytest.approx(-50_000.0 / (1e6 - 500.0))


def test_a_falling_price_makes_a_short_profit_and_an_empty_target_covers_it(session_kernel) -> None:
    short = {"enabled": True}
    result = _run(session_kernel, {"A": [10.0, 10.0, 9.5, 9.5]}, {1: {"A": -0.5}, 2: {}}, short=short,
                  end="2021-01-06")  # fmt: skip
    report = result.report
    assert report["account"].iloc[1] == pytest.approx(1e6)
    # bar 2 covers the 50,000 shares at 9.5: +25,000, nothing held after
    assert report["account"].iloc[2] == pytest.approx(1.025e6)
    assert len(result.account.position) == 0 and result.account.position.cash == pytest.approx(1.025e6)
    assert list(result.fills["direction"]) == ["sell", "buy"]


def test_short_targets_are_refused_when_short_selling_is_off(session_kernel) -> None:
    with pytest.raises(RunError, match=r"target weight -0.5 .*short positions need the backtest option short"):
        _run(session_kernel, {"A": [10.0, 10.0, 11.0, 11.0]}, {1: {"A": -0.5}})


def test_only_eligible_names_may_be_shorted(session_kernel) -> None:
    closes = {"A": [10.0, 10.0, 11.0, 11.0], "B": [5.0, 5.0, 5.0, 5.0]}
    with pytest.raises(RunError, match="B is not eligible for securities lending"):
        _run(session_kernel, closes, {1: {"B": -0.5}}, short={"eligible": ["A"]})
    result = _run(session_kernel, closes, {1: {"A": -0.5, "B": 0.5}}, short={"eligible": ["A"]})
    assert result.account.position.amount("A") == pytest.approx(-50_000.0)
    assert result.account.position.amount("B") == pytest.approx(100_000.0)


def test_eligibility_from_a_field(session_kernel) -> None:
    fields = _market({"A": [10.0, 10.0, 11.0, 11.0]})
    fields["lendable"] = fields["close"] * 0 + np.array([[1.0], [0.0], [0.0], [0.0]])  # lendable on day 0 only
    with pytest.raises(RunError, match="A is not eligible"):
        run_memory(session_kernel, fields, Fixed({1: {"A": -0.5}}), exchange_kwargs=dict(EXCHANGE), benchmark=None,
                   start="2021-01-04", end="2021-01-06", short={"eligible": "$lendable"})  # fmt: skip


def test_the_margin_requirement_cuts_a_short_sale(session_kernel) -> None:
    # margin 2: the short value may reach half the account value (500,000 = 50,000 shares), not the 1e6 asked
    result = _run(session_kernel, {"A": [10.0, 10.0, 10.0, 10.0]}, {1: {"A": -1.0}}, short={"margin": 2.0})
    assert result.account.position.amount("A") == pytest.approx(-50_000.0)
    assert result.fills["deal_amount"].abs().max() == pytest.approx(50_000.0)


def test_gross_and_net_limits_of_long_short_weights(session_kernel) -> None:
    closes = {"A": [10.0] * 4, "B": [10.0] * 4}
    result = _run(session_kernel, closes, {1: {"A": 0.9, "B": -0.9}}, short={"max_gross": 2.0})
    assert result.account.position.amount("A") == pytest.approx(90_000.0)
    assert result.account.position.amount("B") == pytest.approx(-90_000.0)
    with pytest.raises(RunError, match="gross exposure"):
        _run(session_kernel, closes, {1: {"A": 1.0, "B": -1.5}}, short={"max_gross": 2.0})
    with pytest.raises(RunError, match=r"sum to -1\.5"):
        _run(session_kernel, closes, {1: {"A": -0.7, "B": -0.8}}, short={"max_gross": 2.0})


def test_a_long_only_run_is_unchanged_by_short_rules_it_does_not_use(session_kernel) -> None:
    closes = {"A": [10.0, 10.0, 11.0, 12.0], "B": [5.0, 5.0, 4.0, 4.5]}
    plain = _run(session_kernel, closes, {1: {"A": 0.5, "B": 0.5}}, end="2021-01-07")
    shorted = _run(session_kernel, closes, {1: {"A": 0.5, "B": 0.5}}, end="2021-01-07",
                   short={"borrow_rate": 0.1})  # fmt: skip
    pd.testing.assert_frame_equal(plain.report, shorted.report)


def test_position_holds_and_covers_negative_amounts() -> None:
    pos = Position(1000.0)
    with pytest.raises(KeyError):
        pos.sell("A", 100.0, 0.0, 10.0)
    pos.allow_short = True
    pos.sell("A", 100.0, 1.0, 10.0)
    assert pos.amount("A") == -10.0 and pos.cash == 1099.0 and pos.short_value() == 100.0
    assert pos.value() == pytest.approx(999.0) and pos.sellable("A") == 0.0
    pos.buy("A", 60.0, 0.0, 10.0)
    assert pos.amount("A") == pytest.approx(-4.0)
    pos.buy("A", 40.0, 0.0, 10.0)
    assert "A" not in pos and pos.cash == pytest.approx(999.0)


def test_short_option_is_checked_with_its_key() -> None:
    assert ShortSelling.parse(None).enabled is False
    assert ShortSelling.parse({"borrow_rate": 0.05}).daily_rate == pytest.approx(0.05 / 252)
    with pytest.raises(ConfigError) as info:
        ShortSelling.parse({"margin": 0})
    assert info.value.path == "backtest.short.margin"
    with pytest.raises(ConfigError, match="unknown key 'rate'"):
        ShortSelling.parse({"rate": 0.1})
    bt = {"strategy": {"class": "TopkDropoutStrategy", "kwargs": {"topk": 5, "n_drop": 1}},
          "backtest": {"short": {"enabled": True, "borrow_rate": -1}}}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_backtest_config(bt)
    assert "backtest.short.borrow_rate" in str(info.value)
    spec = load_backtest_config({**bt, "backtest": {"short": {"enabled": True, "eligible": ["SH600000"]}}})
    assert ShortSelling.parse(spec.short).eligible == ("SH600000",)
