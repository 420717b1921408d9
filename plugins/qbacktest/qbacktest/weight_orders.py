"""Orders from target weights: the adapter that runs any :class:`qcore.trading.WeightStrategy` in a backtest.

A weight strategy (any plugin's: it needs only :mod:`qcore.trading`) says, per bar, which share of
``risk_degree ×`` the account value each instrument should hold; :class:`WeightOrders` turns that into the bar's
orders the way Qlib's ``WeightStrategyBase`` does, with one of Qlib's two order generators:

- ``without_interact`` (Qlib's ``OrderGenWOInteract``, the default): target value = ``risk_degree × account value
  × weight``, priced at the previous bar's close (or the holding's price when the name is not tradable then);
- ``with_interact`` (``OrderGenWInteract``): the tradable value (tradable holdings at today's deal price plus cash,
  less the reserved ``1 - risk_degree``, less the larger cost rate) is split over the tradable targets at today's
  prices.

Orders are generated for the names in ``targets ∪ holdings`` in Qlib's fixed shuffled order, sells first; amounts
are rounded to lots. A holding that is suspended is valued at its last price (Qlib would produce NaN there).

The adapter reads three optional attributes of the strategy: ``risk_degree`` (0.95 when absent), ``order_generator``
(``without_interact`` when absent; Qlib's class names ``OrderGenWOInteract``/``OrderGenWInteract`` are accepted) and
``instruments()`` (names the runner quotes beyond its universe). Weights must be finite, in ``[0, 1]`` and sum to
at most 1 (a :class:`~qcore.errors.RunError` naming the strategy and the bar otherwise).

Long–short weights: when the run's ``short:`` option is on (the exchange's ``shorting``,
:class:`qbacktest.short.ShortSelling`), a weight may be negative for a name eligible for lending on the bar, with
``Σ|w| <= max_gross`` and ``|Σw| <= 1``; a negative target becomes a short holding of ``risk_degree × account value
× w`` at the previous close (``without_interact`` only). Without the option a negative weight is an error that
names it.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qcore.errors import ConfigError, RunError
from qcore.trading import Direction, Order, Step, Strategy, TradeDecision, TradingInfra, WeightStrategy

logger = logging.getLogger(__name__)

SELL = Direction.SELL
BUY = Direction.BUY
#: The order generators, by their qcore names.
GENERATORS = ("without_interact", "with_interact")
_GENERATOR_ALIASES = {"OrderGenWOInteract": "without_interact", "OrderGenWInteract": "with_interact"}
#: The share of the account value weights refer to when a strategy has no ``risk_degree``.
DEFAULT_RISK_DEGREE = 0.95
#: How far a weight (or the sum of the weights) may exceed 1 through rounding.
WEIGHT_TOLERANCE = 1e-5


def _generator_name(value: Any) -> str:
    """The qcore name of an order generator given by name, Qlib class name, class or ``{"class": ...}``."""
    if isinstance(value, Mapping):
        value = value.get("class", "")
    if isinstance(value, type):
        value = value.__name__
    name = _GENERATOR_ALIASES.get(str(value), str(value))
    if name not in GENERATORS:
        raise ConfigError(f"order_generator must be one of {', '.join(GENERATORS)}, got {value!r}",
                          path="strategy.kwargs.order_generator")  # fmt: skip
    return name


def _describe(strategy: object, name: str | None) -> str:
    kind = type(strategy).__qualname__
    return f"strategy {name!r} ({kind})" if name else f"strategy {kind}"


class WeightOrders:
    """A :class:`qcore.trading.Strategy` that trades a :class:`qcore.trading.WeightStrategy`'s target weights.

    :param strategy: the weight strategy.
    :param name: its registry name, for error messages (None: its class name is used).
    :raises ConfigError: ``strategy`` is not a weight strategy, or its ``order_generator`` is unknown.
    """

    def __init__(self, strategy: WeightStrategy, *, name: str | None = None) -> None:
        if not isinstance(strategy, WeightStrategy):
            raise ConfigError(f"{_describe(strategy, name)} is not a qcore.trading.WeightStrategy "
                              "(reset(infra), target_weights(step))", path="strategy")  # fmt: skip
        self.strategy = strategy
        self.name = name
        self.order_generator = _generator_name(getattr(strategy, "order_generator", GENERATORS[0]))
        self.infra: TradingInfra | None = None
        self._unquoted: set[str] = set()

    @property
    def signal(self) -> Any:
        """The strategy's signal, when it has one (the runner takes its default dates from it)."""
        return getattr(self.strategy, "signal", None)

    @property
    def risk_degree(self) -> float:
        """The share of the account value the weights refer to (the strategy's, else 0.95)."""
        value = getattr(self.strategy, "risk_degree", None)
        return DEFAULT_RISK_DEGREE if value is None else float(value)

    def instruments(self) -> list[str]:
        """The names the strategy asks the runner to quote (none when it has no ``instruments()``)."""
        method = getattr(self.strategy, "instruments", None)
        return list(method()) if callable(method) else []

    def reset(self, infra: TradingInfra) -> None:
        """Bind the weight strategy, then this adapter, to the run."""
        self.strategy.reset(infra)
        self.infra = infra
        self._unquoted = set()

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The orders that move the holdings to the strategy's target weights for ``step`` (none when it has no
        decision for the bar)."""
        assert self.infra is not None, "reset() first"
        weights = self.strategy.target_weights(step)
        if weights is None:
            return TradeDecision(())
        if not callable(getattr(weights, "items", None)):
            raise RunError(f"{_describe(self.strategy, self.name)}: target_weights() must return a mapping of "
                           f"instrument to weight (or None), got {type(weights).__name__}")  # fmt: skip
        risk_degree = self.risk_degree
        if not 0.0 <= risk_degree <= 1.0:
            raise RunError(f"{_describe(self.strategy, self.name)}: risk_degree must be in [0, 1], got {risk_degree}")
        targets = self._columns(weights, step)
        if self.order_generator == "with_interact":
            amounts = self._amounts_with_interact(targets, step.index, risk_degree)
        else:
            amounts = self._amounts_without_interact(targets, step.index, risk_degree)
        return TradeDecision(tuple(self._orders_for_amounts(amounts, step.index)), {"target_weights": dict(weights)})

    # -- weights → exchange columns ----------------------------------------------------------------------------

    def _columns(self, weights: Mapping[str, float], step: Step) -> dict[int, float]:
        """Checked weights by exchange column, in the strategy's order; names the exchange does not quote are
        dropped (with one warning each)."""
        assert self.infra is not None
        exchange = self.infra.exchange
        col = exchange.col
        shorting = getattr(exchange, "shorting", None)
        who = _describe(self.strategy, self.name)
        out: dict[int, float] = {}
        total = gross = 0.0
        unquoted: list[str] = []
        for name, value in weights.items():
            try:
                w = float(value)
            except (TypeError, ValueError):
                w = math.nan
            if w < 0.0 and shorting is None and w == w:
                raise RunError(f"{who} gave {name} the target weight {value!r} on {step.start.date()}; short "
                               "positions need the backtest option short: {enabled: true, ...}")  # fmt: skip
            low = -math.inf if shorting is not None else 0.0
            if not (low <= w <= 1.0 + WEIGHT_TOLERANCE) or math.isinf(w):
                raise RunError(f"{who} gave {name} the target weight {value!r} on "
                               f"{step.start.date()}; weights must be numbers in [0, 1]")  # fmt: skip
            total += w
            gross += abs(w)
            c = col(name)
            if w < 0.0:
                if self.order_generator != "without_interact":
                    raise RunError(f"{who}: short target weights need order_generator without_interact")
                if not exchange.can_short(step.index, c):
                    raise RunError(f"{who} gave {name} the short target weight {w:.6g} on {step.start.date()}, but "
                                   f"{name} is not eligible for securities lending then (backtest.short.eligible)")
            if c is None:
                if name not in self._unquoted:
                    unquoted.append(name)
                continue
            out[c] = w
        if abs(total) - 1.0 >= WEIGHT_TOLERANCE:
            raise RunError(f"{who}: target weights on {step.start.date()} sum to "
                           f"{total:.6g}, more than 1")  # fmt: skip
        if shorting is not None and gross - shorting.max_gross >= WEIGHT_TOLERANCE:
            raise RunError(f"{who}: target weights on {step.start.date()} have a gross exposure Σ|w| = {gross:.6g}, "
                           f"more than backtest.short.max_gross = {shorting.max_gross:g}")  # fmt: skip
        if unquoted:
            self._unquoted.update(unquoted)
            logger.warning("%s targets %s, which the backtest does not quote: never traded (list them in the "
                           "strategy's instruments())", _describe(self.strategy, self.name),
                           ", ".join(sorted(unquoted)))  # fmt: skip
        return out

    # -- order generators --------------------------------------------------------------------------------------

    def _value_of(self, t: int, only_tradable: bool) -> float:
        assert self.infra is not None
        exchange, position = self.infra.exchange, self.infra.account.position
        total = 0.0
        for name in position:
            c = exchange.col(name)
            tradable = c is not None and exchange.is_tradable(t, c)
            if only_tradable and not tradable:
                continue
            price = exchange.deal_price(t, c, SELL) if c is not None and not exchange.is_suspended(t, c) else np.nan
            total += (price if not np.isnan(price) else position.price(name)) * position.amount(name)
        return total

    def _amounts_with_interact(self, targets: dict[int, float], t: int, risk_degree: float) -> dict[int, float]:
        """Qlib's ``OrderGenWInteract``: target amounts at the bar's deal prices."""
        assert self.infra is not None
        exchange, position = self.infra.exchange, self.infra.account.position
        total = self._value_of(t, only_tradable=False)
        tradable_value = self._value_of(t, only_tradable=True) + position.cash
        reserved = (1.0 - risk_degree) * (total + position.cash)
        tradable_value -= reserved
        current = {exchange.col(n): a for n, a in position.amounts().items()}
        if tradable_value < 0:
            return {c: a for c, a in current.items() if not exchange.is_tradable(t, c)}
        fees = exchange.fees
        tradable_value /= 1 + max(fees.close_cost, fees.open_cost)
        tradable_weight = 0.0
        for c, w in targets.items():
            if exchange.is_tradable(t, c):
                tradable_weight += w
        out: dict[int, float] = {}
        for c, w in targets.items():
            if w > 0.0 and exchange.is_tradable(t, c):
                out[c] = tradable_value * w / tradable_weight // exchange.deal_price(t, c, BUY)
        return out

    def _amounts_without_interact(self, targets: dict[int, float], t: int, risk_degree: float) -> dict[int, float]:
        """Qlib's ``OrderGenWOInteract``: target amounts at the previous bar's close."""
        assert self.infra is not None
        exchange, position = self.infra.exchange, self.infra.account.position
        risk_value = risk_degree * position.value()
        names = exchange.instruments
        out: dict[int, float] = {}
        for c, w in targets.items():
            name = names[c]
            prev_close = exchange.close_price(t - 1, c) if t > 0 else np.nan
            if exchange.is_tradable(t, c) and t > 0 and exchange.is_tradable(t - 1, c):
                out[c] = risk_value * w / prev_close
            elif name in position:
                out[c] = risk_value * w / position.price(name)
        return out

    def _orders_for_amounts(self, target: dict[int, float], t: int) -> list[Order]:
        """Orders from the held to the target amounts, in Qlib's fixed shuffled order, sells first, in lots."""
        assert self.infra is not None
        exchange, position = self.infra.exchange, self.infra.account.position
        names: Sequence[str] = exchange.instruments
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
            if want == 0 and have < 0:  # cover the whole short holding
                delta = -have
            elif have < want:
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


def as_order_strategy(strategy: object, name: str | None = None) -> Strategy:
    """``strategy`` itself when it places orders (:class:`qcore.trading.Strategy`), a :class:`WeightOrders` around
    it when it gives target weights (:class:`qcore.trading.WeightStrategy`).

    :param name: its registry name, for error messages.
    :raises ConfigError: it is neither.
    """
    if isinstance(strategy, Strategy):
        return strategy
    if isinstance(strategy, WeightStrategy):
        return WeightOrders(strategy, name=name)
    raise ConfigError(f"{_describe(strategy, name)} is neither a qcore.trading.Strategy (reset(infra), "
                      "generate_trade_decision(step)) nor a qcore.trading.WeightStrategy (reset(infra), "
                      "target_weights(step))", path="strategy")  # fmt: skip
