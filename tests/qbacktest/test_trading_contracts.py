"""qbacktest on the kernel's trading contracts: its exchange, account, position and fees satisfy the protocols of
:mod:`qcore.trading`, the run hands strategies a typed :class:`~qcore.trading.TradingInfra`, strategies written
only against :mod:`qcore.trading` run, and any :class:`~qcore.trading.WeightStrategy` is traded through
:class:`~qbacktest.weight_orders.WeightOrders`."""

from __future__ import annotations

import ast
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from qbacktest.strategies import SoftTopk, TargetWeight, TopkDropout
from qbacktest.weight_orders import WeightOrders, as_order_strategy

from qcore import trading
from qcore.errors import ConfigError, QcoreError, RunError
from qcore.registry import protocol_members

from .conftest import MemoryProvider, make_market, run_memory
from .contract_strategies import BuyAndHold, FixedWeights

STOCKS = ["SH600000", "SH600001", "SH600002", "SH600003", "SH600004", "SH600005"]
WEIGHTS = {"SH600000": 0.5, "SH600001": 0.3, "SH600002": 0.1}


def _weights_signal(dates: pd.DatetimeIndex, weights: dict[str, float]) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([dates, sorted(weights)], names=["datetime", "instrument"])
    return pd.DataFrame({"score": [weights[name] for _, name in index]}, index=index)


class Recorder(BuyAndHold):
    """BuyAndHold that keeps the infrastructure it was given."""

    def reset(self, infra: trading.TradingInfra) -> None:
        super().reset(infra)
        self.given = infra


def test_qbacktest_objects_satisfy_the_kernel_protocols(session_kernel) -> None:
    fields = make_market(20, STOCKS)
    dates = fields["close"].index
    strategy = Recorder(["SH600000", "SH600001"])
    result = run_memory(session_kernel, fields, strategy, start=dates[3], end=dates[-2])
    checks = [(result.exchange, trading.Exchange), (result.exchange.fees, trading.FeeSchedule),
              (result.account, trading.Account), (result.account.position, trading.Position)]  # fmt: skip
    for obj, protocol in checks:
        assert isinstance(obj, protocol), (type(obj).__name__, protocol.__name__)
        for member in protocol_members(protocol):
            assert hasattr(obj, member), (type(obj).__name__, member)
    exchange, position = result.exchange, result.account.position
    assert exchange.dates.equals(result.report.index) and list(exchange.instruments) == sorted(fields["close"])
    j = exchange.col("SH600001")
    assert exchange.instruments[j] == "SH600001" and exchange.col("NOPE") is None and exchange.is_suspended(0, None)
    assert exchange.close_price(2, j) == pytest.approx(float(fields["close"]["SH600001"].iloc[5]))
    assert exchange.field("Ref($close, 1)")[1, j] == pytest.approx(exchange.close_price(0, j))
    # the position the strategy bought, through the protocol's members only
    assert set(position) == {"SH600000", "SH600001"} and len(position) == 2 and "SH600002" not in position
    assert position.amounts() == {n: position.amount(n) for n in position} and position.sellable("SH600002") == 0
    weights = position.weights()
    assert sum(weights.values()) == pytest.approx(1 - position.cash / position.value())
    assert sum(position.weights(only_stock=True).values()) == pytest.approx(1.0)
    # the typed infrastructure the run handed the strategy
    infra = strategy.given
    calendar = fields["close"].index
    assert isinstance(infra.calendar, trading.TradeCalendar) and infra.calendar.freq == "day"
    assert infra.calendar.calendar.equals(calendar) and infra.bar_offset == 3
    assert infra.bars.equals(result.report.index) and infra.exchange is exchange and infra.account is result.account
    assert isinstance(infra.provider, MemoryProvider) and "Ref" in infra.operators
    assert strategy.seen == list(calendar[2 : 2 + len(infra.bars)])  # information date: the calendar day before


def test_strategy_written_only_against_qcore_trading_runs(session_kernel) -> None:
    source = Path(__file__).with_name("contract_strategies.py").read_text()
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom) and node.module}  # fmt: skip
    assert imported <= {"__future__", "collections", "qcore"}, imported
    fields = make_market(20, STOCKS)
    dates = fields["close"].index
    result = run_memory(session_kernel, fields, BuyAndHold(["SH600002", "SH600004"], share=0.5), start=dates[1],
                        end=dates[-2])  # fmt: skip
    bought = result.fills[result.fills["value"] > 0]
    assert sorted(bought["instrument"]) == ["SH600002", "SH600004"] and (bought["datetime"] == dates[1]).all()
    assert (bought["deal_amount"] % 100 == 0).all()  # whole lots
    held = result.positions.xs(dates[-2], level="datetime")
    assert sorted(held.index) == ["SH600002", "SH600004"]
    assert held["weight"].sum() == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("generator", ["without_interact", "OrderGenWInteract"])
def test_weight_strategy_through_the_contract_trades_like_target_weight(session_kernel, generator: str) -> None:
    fields = make_market(25, STOCKS)
    dates = fields["close"].index
    fields["change"].iloc[8, 1] = 0.1  # SH600001 at the limit up on one bar: not tradable there
    kwargs = dict(start=dates[1], end=dates[-2])
    builtin = run_memory(session_kernel, fields, TargetWeight(signal=_weights_signal(dates, WEIGHTS),
                                                              risk_degree=0.9, order_generator=generator), **kwargs)
    public = run_memory(session_kernel, fields, FixedWeights(WEIGHTS, risk_degree=0.9, order_generator=generator),
                        **kwargs)  # fmt: skip
    assert len(public.fills) > 3
    for name in ("report", "positions", "indicators", "fills"):
        pd.testing.assert_frame_equal(getattr(public, name), getattr(builtin, name), check_exact=True)


def test_weight_adapter_defaults_and_optional_attributes(session_kernel, caplog) -> None:
    fields = make_market(15, STOCKS)
    dates = fields["close"].index
    plain = FixedWeights({"SH600003": 1.0}, skip=[0, 1, 2])
    adapter = WeightOrders(plain)
    assert adapter.order_generator == "without_interact" and adapter.risk_degree == 0.95 and adapter.signal is None
    result = run_memory(session_kernel, fields, plain, start=dates[0], end=dates[-2], codes=STOCKS[:3],
                        benchmark=None)  # fmt: skip
    assert "SH600003" not in result.exchange.instruments
    assert result.fills.empty  # no decision on the first bars, then a name the backtest does not quote
    assert "SH600003, which the backtest does not quote" in caplog.text
    quoted = FixedWeights({"SH600003": 1.0}, skip=[0, 1, 2], extra=["SH600003"])
    result = run_memory(session_kernel, fields, quoted, start=dates[0], end=dates[-2], codes=STOCKS[:3],
                        benchmark=None)  # fmt: skip
    assert result.fills["datetime"].min() == dates[3]  # None: nothing traded on the skipped bars
    last = result.positions.xs(dates[-2], level="datetime")
    assert last.loc["SH600003", "weight"] == pytest.approx(0.95, abs=0.01)  # risk_degree defaults to 0.95
    assert WeightOrders(FixedWeights({}, order_generator="OrderGenWInteract")).order_generator == "with_interact"
    with pytest.raises(ConfigError, match="order_generator must be one of") as err:
        WeightOrders(FixedWeights({}, order_generator="greedy"))
    assert err.value.path == "strategy.kwargs.order_generator"


class NotAStrategy:
    def reset(self, infra: Any) -> None: ...


def test_neither_strategy_nor_weight_strategy_is_refused(session_kernel) -> None:
    fields = make_market(10, STOCKS)
    with pytest.raises(ConfigError, match=r"strategy NotAStrategy is neither a qcore\.trading\.Strategy .* nor a "
                                          r"qcore\.trading\.WeightStrategy"):  # fmt: skip
        run_memory(session_kernel, fields, NotAStrategy())
    with pytest.raises(ConfigError, match=r"strategy 'mine' \(NotAStrategy\) is neither"):
        as_order_strategy(NotAStrategy(), "mine")
    with pytest.raises(ConfigError, match=r"is not a qcore\.trading\.WeightStrategy"):
        WeightOrders(NotAStrategy())  # type: ignore[arg-type]
    topk = TopkDropout(signal=_weights_signal(fields["close"].index, WEIGHTS), topk=1, n_drop=0)
    assert as_order_strategy(topk) is topk  # an order strategy is run as it is
    assert isinstance(as_order_strategy(FixedWeights(WEIGHTS)), WeightOrders)


@pytest.mark.parametrize(("weights", "message"), [
    ({"SH600000": math.nan}, r"gave SH600000 the target weight nan on 2021-01-05; weights must be numbers in \[0, 1\]"),
    ({"SH600000": -0.1}, r"gave SH600000 the target weight -0.1"),
    ({"SH600000": "half"}, r"gave SH600000 the target weight 'half'"),
    ({"SH600000": 0.7, "SH600001": 0.6}, r"target weights on 2021-01-05 sum to 1\.3, more than 1"),
    (["SH600000"], r"must return a mapping of instrument to weight \(or None\), got list"),
])  # fmt: skip
def test_bad_target_weights_are_a_run_error_naming_the_strategy(session_kernel, weights, message) -> None:
    fields = make_market(10, STOCKS)
    dates = fields["close"].index
    with pytest.raises(RunError, match=r"strategy FixedWeights.*" + message):
        run_memory(session_kernel, fields, FixedWeights(weights), start=dates[1], end=dates[-2])  # type: ignore


def test_target_weight_refuses_weights_above_one_when_built() -> None:
    dates = pd.bdate_range("2021-01-04", periods=3)
    with pytest.raises(ConfigError, match=r"target weight 1\.5 of SH600001 on 2021-01-04 is more than 1") as err:
        TargetWeight(signal=_weights_signal(dates, {"SH600000": 0.2, "SH600001": 1.5}))
    assert err.value.path == "strategy.kwargs.signal"
    with pytest.raises(ConfigError, match=r"target weights on 2021-01-04 sum to 1\.2, more than 1 \(3 date"):
        TargetWeight(signal=_weights_signal(dates, {"SH600000": 0.6, "SH600001": 0.6, "SH600002": -3.0}))
    TargetWeight(signal=_weights_signal(dates, {"SH600000": 0.6, "SH600001": 0.4, "SH600002": -3.0}))


def test_qbacktest_weight_strategies_are_public_weight_strategies(session_kernel) -> None:
    dates = pd.bdate_range("2021-01-04", periods=5)
    scores = _weights_signal(dates, WEIGHTS)
    for strategy in (session_kernel.create("strategy", "TargetWeight", signal=scores),
                     session_kernel.create("strategy", "soft_topk", signal=scores, topk=2)):  # fmt: skip
        assert isinstance(strategy, trading.WeightStrategy) and not isinstance(strategy, trading.Strategy)
    soft = SoftTopk(signal=scores, topk=2)
    assert soft.order_generator == "with_interact" and soft.risk_degree == 0.95
    fields = make_market(5, STOCKS)
    provider = MemoryProvider(fields)
    from qbacktest.backtest import run_backtest

    result = run_backtest(provider, soft, start=dates[1], end=dates[-2], account=1e6, benchmark=None,
                          exchange_kwargs={"limit_threshold": 0.095}, kernel=session_kernel)  # fmt: skip
    held = result.positions.xs(dates[-2], level="datetime")
    assert sorted(held.index) == ["SH600000", "SH600001"]  # the two best "scores" (the weights' values)
    assert np.allclose(held["weight"].to_numpy(), 0.95 / 2, atol=0.01)


def test_unquoted_names_warn_once(session_kernel, caplog) -> None:
    fields = make_market(12, STOCKS)
    dates = fields["close"].index
    with caplog.at_level(logging.WARNING):
        run_memory(session_kernel, fields, FixedWeights({"SH600000": 0.5, "XX999": 0.2}), start=dates[1],
                   end=dates[-2])  # fmt: skip
    assert caplog.text.count("XX999, which the backtest does not quote") == 1


def test_kernel_refuses_a_registered_strategy_of_neither_kind() -> None:
    from qcore import hookimpl
    from qcore.kernel import Kernel

    class Plugin:
        @hookimpl
        def qcore_register_strategies(self, register: Any) -> None:
            register("half_strategy", NotAStrategy)

    kernel = Kernel.load(extra={"halfplugin": Plugin()}, use_env=False)
    with pytest.raises(QcoreError, match=r"strategy 'half_strategy' from plugin 'halfplugin'.*Strategy or "
                                         r"qcore\.trading\.WeightStrategy"):  # fmt: skip
        kernel.create("strategy", "half_strategy")
