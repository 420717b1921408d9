"""Target-weight strategies: ``TargetWeight`` (weights given per date) and ``SoftTopk`` (weights from scores).

Both follow Qlib's ``WeightStrategyBase``: each bar they turn target weights into target amounts and trade the
difference. Two order generators, as in Qlib:

- ``without_interact`` (Qlib's ``OrderGenWOInteract``, the default of ``TargetWeight``): target value =
  ``risk_degree × account value × weight``, priced at the previous bar's close (or the holding's price when the
  name is not tradable then);
- ``with_interact`` (``OrderGenWInteract``, the default of ``SoftTopk``): the tradable value (tradable holdings at
  today's deal price plus cash, less the reserved ``1 - risk_degree``, less the larger cost rate) is split over the
  tradable targets at today's prices.

Orders are generated for the names in ``targets ∪ holdings`` in Qlib's fixed shuffled order, sells first; amounts
are rounded to lots. A holding that is suspended is valued at its last price (Qlib would produce NaN there).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np

from qbacktest.strategies.base import SignalStrategy, desc_order
from qbacktest.strategies.topk_dropout import _ignore_qlib_infra
from qcore.errors import ConfigError
from qcore.trading import Direction, Order, Step, TradeDecision

SELL = Direction.SELL
BUY = Direction.BUY
GENERATORS = ("without_interact", "with_interact")
_GENERATOR_ALIASES = {"OrderGenWOInteract": "without_interact", "OrderGenWInteract": "with_interact"}


def _generator_name(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("class", "")
    if isinstance(value, type):
        value = value.__name__
    name = _GENERATOR_ALIASES.get(str(value), str(value))
    if name not in GENERATORS:
        raise ConfigError(f"order_generator must be one of {', '.join(GENERATORS)}, got {value!r}",
                          path="strategy.kwargs.order_generator")  # fmt: skip
    return name


class WeightStrategy(SignalStrategy):
    """Base of the weight strategies: subclasses implement :meth:`target_weights`."""

    def __init__(self, *, signal: Any = None, risk_degree: float = 0.95, order_generator: Any = "without_interact",
                 **qlib_kwargs: Any) -> None:  # fmt: skip
        generator = qlib_kwargs.pop("order_generator_cls_or_obj", order_generator)
        _ignore_qlib_infra(qlib_kwargs)
        super().__init__(signal=signal, risk_degree=risk_degree)
        self.order_generator = _generator_name(generator)

    def target_weights(self, values: np.ndarray, present: np.ndarray, step: Step) -> dict[int, float]:
        """Target weight per exchange column for ``step``."""
        raise NotImplementedError

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """Orders that move the holdings to the target weights."""
        row = self.scores_for(step)
        if row is None:
            return TradeDecision(())
        targets = self.target_weights(row[0], row[1], step)
        if self.order_generator == "with_interact":
            amounts = self._amounts_with_interact(targets, step.index)
        else:
            amounts = self._amounts_without_interact(targets, step.index)
        return TradeDecision(tuple(self._orders_for_amounts(amounts, step.index)))

    # -- order generators --------------------------------------------------------------------------------------

    def _value_of(self, t: int, only_tradable: bool) -> float:
        exchange, position = self.exchange, self.position
        total = 0.0
        for name, holding in position.holdings.items():
            c = exchange.col(name)
            tradable = c is not None and exchange.is_tradable(t, c)
            if only_tradable and not tradable:
                continue
            price = exchange.deal_price(t, c, SELL) if c is not None and not exchange.is_suspended(t, c) else np.nan
            total += (price if not np.isnan(price) else holding.price) * holding.amount
        return total

    def _amounts_with_interact(self, targets: dict[int, float], t: int) -> dict[int, float]:
        exchange, position = self.exchange, self.position
        total = self._value_of(t, only_tradable=False)
        tradable_value = self._value_of(t, only_tradable=True) + position.cash
        reserved = (1.0 - self.risk_degree) * (total + position.cash)
        tradable_value -= reserved
        current = {exchange.col(n): a for n, a in position.amounts().items()}
        if tradable_value < 0:
            return {c: a for c, a in current.items() if not exchange.is_tradable(t, c)}
        fees = exchange.fees
        tradable_value /= 1 + max(fees.close_cost, fees.open_cost)
        tradable_weight = 0.0
        for c, w in targets.items():
            if exchange.is_tradable(t, c):
                if w < 0 or w > 1:
                    raise ConfigError(f"target weight {w} of {exchange.instruments[c]} is outside [0, 1]")
                tradable_weight += w
        if tradable_weight - 1.0 >= 1e-5:
            raise ConfigError(f"target weights sum to {tradable_weight}, more than 1")
        out: dict[int, float] = {}
        for c, w in targets.items():
            if w > 0.0 and exchange.is_tradable(t, c):
                out[c] = tradable_value * w / tradable_weight // exchange.deal_price(t, c, BUY)
        return out

    def _amounts_without_interact(self, targets: dict[int, float], t: int) -> dict[int, float]:
        exchange, position = self.exchange, self.position
        risk_value = self.risk_degree * position.value()
        out: dict[int, float] = {}
        for c, w in targets.items():
            name = exchange.instruments[c]
            prev_close = exchange.close_price(t - 1, c) if t > 0 else np.nan
            if exchange.is_tradable(t, c) and t > 0 and exchange.is_tradable(t - 1, c):
                out[c] = risk_value * w / prev_close
            elif name in position:
                out[c] = risk_value * w / position.price(name)
        return out

    def _orders_for_amounts(self, target: dict[int, float], t: int) -> list[Order]:
        exchange, position = self.exchange, self.position
        names = exchange.instruments
        current = {exchange.col(n): a for n, a in position.amounts().items()}
        ids = sorted({names[c] for c in list(current) + list(target)})
        random.Random(0).shuffle(ids)
        sells: list[Order] = []
        buys: list[Order] = []
        for name in ids:
            c = exchange.col(name)
            if not exchange.is_tradable(t, c):
                continue
            want, have = target.get(c, 0.0), current.get(c, 0.0)
            factor = exchange.factor_at(t, c)
            if have == want:
                continue
            if have < want:
                delta = exchange.round_amount(want - have, factor)
            elif want == 0:
                delta = -have
            else:
                delta = -exchange.round_amount(have - want, factor)
            if delta > 0:
                buys.append(Order(name, delta, BUY))
            elif delta < 0:
                sells.append(Order(name, -delta, SELL))
        return sells + buys


class TargetWeight(WeightStrategy):
    """Trade to the target weights given per date (the signal's values are weights of the account value).

    :param signal: weights indexed ``(datetime, instrument)``; the weights dated on the previous bar apply.
    :param risk_degree: the share of the account value the weights refer to.
    :param order_generator: ``without_interact`` (default, Qlib's) or ``with_interact``.
    """

    def target_weights(self, values: np.ndarray, present: np.ndarray, step: Step) -> dict[int, float]:
        """Every finite, positive weight of the row."""
        cols = np.flatnonzero(present & np.isfinite(values) & (values > 0))
        return {int(c): float(values[c]) for c in cols}


class SoftTopk(WeightStrategy):
    """Qlib's ``SoftTopkStrategy``: move weight from names leaving the top ``topk`` to those entering it.

    :param topk: names in the buy set.
    :param max_sold_weight: the most weight taken from one name per bar.
    :param buy_method: ``first_fill`` (fill names up to ``1/topk`` in score order) or ``average_fill``.
    """

    def __init__(self, *, topk: int, max_sold_weight: float = 1.0, buy_method: str = "first_fill",
                 order_generator: Any = "with_interact", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(order_generator=order_generator, **kwargs)
        if int(topk) < 1:
            raise ConfigError(f"topk must be >= 1, got {topk}", path="strategy.kwargs.topk")
        if buy_method not in ("first_fill", "average_fill"):
            raise ConfigError(f"buy_method must be first_fill or average_fill, got {buy_method!r}",
                              path="strategy.kwargs.buy_method")  # fmt: skip
        self.topk = int(topk)
        self.max_sold_weight = float(max_sold_weight)
        self.buy_method = buy_method

    def target_weights(self, values: np.ndarray, present: np.ndarray, step: Step) -> dict[int, float]:
        """Qlib's soft top-k weights (names in score order instead of a set's arbitrary order)."""
        exchange, position = self.exchange, self.position
        scored = np.flatnonzero(present)
        buy_set = [int(c) for c in scored[desc_order(values[scored])][: self.topk]]
        current = {exchange.col(n): w for n, w in position.weights(only_stock=True).items()} if len(position) else {}
        if not current:
            return {c: 1 / self.topk for c in buy_set}
        final = dict(current)
        sold = 0.0
        chosen = set(buy_set)
        for c in list(final):
            if c not in chosen:
                sw = min(self.max_sold_weight, final[c])
                sold += sw
                final[c] -= sw
        if self.buy_method == "first_fill":
            for c in buy_set:
                add = min(max(1 / self.topk - final.get(c, 0.0), 0.0), sold)
                final[c] = final.get(c, 0.0) + add
                sold -= add
        else:
            for c in buy_set:
                final[c] = final.get(c, 0.0) + sold / len(buy_set)
        return final

