"""Registered names, the executor hook, the toy market rules through the hook, and the trading value types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qbacktest.backtest import run_backtest
from qbacktest.executor import SimulatorExecutor
from qbacktest.strategies import TopkDropout

from qcore.errors import ConfigError
from qcore.trading import Direction, Executor, Fill, Order, Step, Strategy, TradeDecision


def test_strategies_and_executor_are_registered(session_kernel) -> None:
    strategies = session_kernel.registry("strategy")
    for name in ("TopkDropout", "topk_dropout", "TopkDropoutStrategy", "TargetWeight", "WeightStrategyBase", "SoftTopk",
                 "SoftTopkStrategy", "OrderReplay", "FileOrderStrategy"):
        assert name in strategies, name
    assert strategies.entry("TopkDropoutStrategy").plugin == "qbacktest"
    executor = session_kernel.create("executor", "SimulatorExecutor", time_per_step="day", trade_type="parallel")
    assert isinstance(executor, Executor) and executor.trade_type == "parallel"
    scores = pd.DataFrame({"score": [1.0]}, index=pd.MultiIndex.from_tuples([(pd.Timestamp("2021-01-04"), "A")],
                                                                             names=["datetime", "instrument"]))
    assert isinstance(session_kernel.create("strategy", "TopkDropout", topk=1, n_drop=0, signal=scores), Strategy)
    with pytest.raises(ConfigError, match="unknown strategy arguments: foo"):
        session_kernel.create("strategy", "TopkDropout", topk=1, n_drop=0, signal=scores, foo=1)
    # minute bars are simulated inside nested executors (issue 15); a bar length must still make sense
    assert SimulatorExecutor(time_per_step="30min").time_per_step == "30min"
    with pytest.raises(ConfigError, match="time_per_step"):
        SimulatorExecutor(time_per_step="7x")


def test_toy_market_rules_drive_a_run(session_kernel) -> None:
    provider = session_kernel.create("data_provider", "toy", n_instruments=6, n_days=40)
    rules = session_kernel.create("market_rules", "toy")
    dates = provider.calendar()
    rng = np.random.default_rng(1)
    names = sorted(provider.universe("all"))
    index = pd.MultiIndex.from_product([dates, names], names=["datetime", "instrument"])
    scores = pd.DataFrame({"score": rng.normal(size=len(index))}, index=index)
    result = run_backtest(provider, TopkDropout(signal=scores, topk=2, n_drop=1), market_rules=rules,
                          benchmark=None, account=10_000.0, kernel=session_kernel)  # fmt: skip
    fills = result.fills[result.fills["value"] > 0]
    assert len(fills) > 10
    assert (fills["deal_amount"] == fills["deal_amount"].round()).all()  # lot 1, whole shares
    assert np.allclose(fills["cost"], fills["value"] * 0.001)  # 0.1% commission, no minimum
    assert result.exchange.settlement_days == 0 and (result.report["bench"] == 0).all()
    delisted = result.positions.xs("TOY001", level="instrument", drop_level=False) if "TOY001" in \
        result.positions.index.get_level_values(1) else None
    if delisted is not None:
        assert delisted.index.get_level_values(0).max() <= result.report.index[-1]


def test_trading_value_types() -> None:
    assert Direction.parse("BUY") is Direction.BUY and Direction.parse(0) is Direction.SELL
    assert Direction.parse(-3.0) is Direction.SELL and Direction.BUY.sign == 1
    with pytest.raises(ValueError, match="unknown order direction"):
        Direction.parse("hold")
    order = Order("A", 100, "sell")
    assert order.direction is Direction.SELL and order.signed_amount == -100.0
    with pytest.raises(ValueError, match="amount must be >= 0"):
        Order("A", -1, "buy")
    fill = Fill(order, 0.0, float("nan"), 0.0, 0.0)
    assert not fill.filled and TradeDecision().empty and not TradeDecision((order,)).empty
    step = Step(0, "2021-01-04", "2021-01-05")
    assert step.start == pd.Timestamp("2021-01-04")
