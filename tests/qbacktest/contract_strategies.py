"""Strategies written only against the kernel's trading contracts (:mod:`qcore.trading`): no qbacktest import.

``test_trading_contracts.py`` runs them in qbacktest's backtest and checks (by parsing this file) that they import
nothing from any plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qcore.trading import Direction, Order, Step, TradeDecision, TradingInfra


class BuyAndHold:
    """A :class:`qcore.trading.Strategy`: on its first bar, spend ``share`` of the cash equally on ``names``, in
    whole lots at the bar's deal price; never trade again."""

    def __init__(self, names: Sequence[str], share: float = 0.9) -> None:
        self.names = list(names)
        self.share = share
        self.infra: TradingInfra | None = None
        self.seen: list[object] = []

    def reset(self, infra: TradingInfra) -> None:
        self.infra = infra
        self.done = False

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        assert self.infra is not None
        self.seen.append(self.infra.calendar.information_date(step))
        if self.done:
            return TradeDecision(())
        self.done = True
        exchange, position = self.infra.exchange, self.infra.account.position
        budget = position.cash * self.share / len(self.names)
        orders = []
        for name in self.names:
            j = exchange.col(name)
            if j is None or not exchange.is_tradable(step.index, j, Direction.BUY):
                continue
            price = exchange.deal_price(step.index, j, Direction.BUY)
            amount = exchange.round_amount(budget / price, exchange.factor_at(step.index, j))
            orders.append(Order(name, amount, Direction.BUY))
        return TradeDecision(tuple(orders))


class FixedWeights:
    """A :class:`qcore.trading.WeightStrategy` holding the same target weights every bar (no decision on the bars
    listed in ``skip``); optional attributes only when given."""

    def __init__(self, weights: Mapping[str, float], *, skip: Sequence[int] = (), risk_degree: float | None = None,
                 order_generator: str | None = None, extra: Sequence[str] = ()) -> None:  # fmt: skip
        self.weights = weights
        self.skip = set(skip)
        if risk_degree is not None:
            self.risk_degree = risk_degree
        if order_generator is not None:
            self.order_generator = order_generator
        self.extra = list(extra)
        self.infra: TradingInfra | None = None

    def instruments(self) -> list[str]:
        return self.extra

    def reset(self, infra: TradingInfra) -> None:
        self.infra = infra

    def target_weights(self, step: Step) -> Mapping[str, float] | None:
        return None if step.index in self.skip else self.weights
