"""Orders for the next bar: the workflow's strategy decides bar D+1 from D's stored prediction, the current
positions and the market's rules as they stood at D's close.

The strategy is the ``backtest:`` section's (``TopkDropout`` with ``topk: 50, n_drop: 5`` when the workflow has
none), built from the kernel's registry; a weight strategy's target weights become orders here (Qlib's
``OrderGenWOInteract``: ``risk_degree × value × weight`` at D's close, rounded down to lots, sells first). The
exchange is the registered ``exchange`` component (``online.exchange``, default ``backtest``: the backtest's own
rules or Qlib's ``exchange_kwargs``), quoting the single bar D: the decision for D+1 sees D's closes, suspensions
and price limits (a name that closed at its upper limit on D is not bought, one at its lower limit not sold, a
suspended one not traded), exactly the information a desk has after D's close. The strategy's calendar ends with
D+1 (the store's next bar when it has one, else the next weekday), so it reads data up to D and no later.

A sell never exceeds what settlement leaves sellable (T+N lots of the positions file); a name whose planned order
cannot be placed is listed with the reason in the plan's ``blocked`` list.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.config import WorkflowConfig
from qcore.errors import ConfigError, DataError, RunError
from qcore.kernel import Kernel
from qcore.trading import BarCalendar, Direction, Order, Step, TradeDecision, TradingInfra
from qonline.positions import Holding, OnlineAccount, OnlinePosition, PositionsFile

#: The strategy of a workflow without a ``backtest:`` section (Qlib's example).
DEFAULT_STRATEGY = ("TopkDropout", {"topk": 50, "n_drop": 5})
DEFAULT_EXCHANGE = "backtest"
ORDER_COLUMNS = ("date", "instrument", "direction", "amount", "shares", "price", "real_price", "value", "reason")
TARGET_COLUMNS = ("instrument", "amount", "target_amount", "target_shares", "price", "target_value", "weight")


@attrs.frozen
class TradingSetup:
    """What the orders are decided with: the strategy, the exchange component and its options."""

    strategy: str
    strategy_kwargs: Mapping[str, Any]
    exchange: str
    market_rules: Any
    exchange_kwargs: Mapping[str, Any] | None
    region: str
    codes: Any

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (part of the orders' input digest)."""
        return {"strategy": self.strategy, "strategy_kwargs": _plain(self.strategy_kwargs), "exchange": self.exchange,
                "market_rules": _plain(self.market_rules), "exchange_kwargs": _plain(self.exchange_kwargs),
                "region": self.region, "codes": _plain(self.codes)}  # fmt: skip


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def trading_setup(config: WorkflowConfig) -> TradingSetup:
    """The strategy and exchange options of the workflow (``backtest:`` and ``data.market_rules``)."""
    spec = config.sections.get("backtest")
    online = config.sections.get("online")
    exchange = getattr(online, "exchange", None) or DEFAULT_EXCHANGE
    rules = config.data.market_rules
    market_rules = (rules.name, dict(rules.kwargs)) if rules is not None else "cn"
    if spec is None:
        name, kwargs = DEFAULT_STRATEGY
        return TradingSetup(name, dict(kwargs), exchange, market_rules, None, "cn", "all")
    kwargs = {k: v for k, v in dict(spec.strategy.kwargs).items() if k != "signal"}
    return TradingSetup(spec.strategy.name, kwargs, exchange, market_rules, spec.exchange_kwargs,
                        getattr(spec, "region", "cn"), getattr(spec, "codes", "all"))  # fmt: skip


def next_bar(calendar: pd.DatetimeIndex, date: pd.Timestamp) -> pd.Timestamp:
    """The bar after ``date``: the store's next calendar entry, else the next weekday."""
    k = int(calendar.searchsorted(date, "right"))
    if k < len(calendar):
        return pd.Timestamp(calendar[k])
    return pd.Timestamp(date + pd.offsets.BDay(1))


@attrs.frozen
class OrderPlan:
    """The decision for ``trade_date`` made after ``date``'s close.

    :ivar orders: one row per order (:data:`ORDER_COLUMNS`): ``amount`` in adjusted shares, ``shares`` in real
        shares (× D's ``$factor``), ``price`` D's adjusted close, ``real_price`` D's close in money.
    :ivar targets: the holdings after the orders (:data:`TARGET_COLUMNS`).
    :ivar blocked: names the strategy planned to trade that cannot be traded, each with the reason.
    """

    date: pd.Timestamp
    trade_date: pd.Timestamp
    orders: pd.DataFrame
    targets: pd.DataFrame
    blocked: tuple[Mapping[str, Any], ...]
    cash: float
    value: float


def _holdings(positions: PositionsFile, exchange: Any, provider: Any, calendar: pd.DatetimeIndex,
              date: pd.Timestamp, trade_pos: int) -> dict[str, Holding]:  # fmt: skip
    """The positions file's lots as holdings valued at D's close, with the amounts settlement locks on D+1."""
    settlement = int(getattr(exchange, "settlement_days", 0) or 0)
    holdings: dict[str, Holding] = {}
    missing = [lot.instrument for lot in positions.lots if exchange.col(lot.instrument) is None]
    if missing:
        raise DataError(f"{positions.path}: the store does not quote {', '.join(sorted(set(missing)))}")
    closes = _last_closes(provider, sorted({lot.instrument for lot in positions.lots}), calendar, date)
    for lot in positions.lots:
        j = exchange.col(lot.instrument)
        factor = exchange.factor_at(0, j)
        if lot.amount is not None:
            amount = lot.amount
        elif np.isfinite(factor) and factor > 0:
            amount = lot.shares / factor
        else:
            raise DataError(f"{lot.where}: shares need the store's $factor of {lot.instrument} on {date.date()}")
        price = lot.price if lot.price is not None else closes.get(lot.instrument, float("nan"))
        if not np.isfinite(price):
            raise DataError(f"{lot.where}: {lot.instrument} has no close in the 30 days to {date.date()}; give its "
                            "price")  # fmt: skip
        locked = 0.0
        if lot.bought is not None:
            if lot.bought > date:
                raise DataError(f"{lot.where}: bought {lot.bought.date()} is after {date.date()}")
            release = int(calendar.searchsorted(lot.bought, "left")) + settlement
            locked = amount if release > trade_pos else 0.0
        held = holdings.get(lot.instrument)
        count = lot.count_day if lot.count_day is not None else 1
        if held is None:
            holdings[lot.instrument] = Holding(amount, float(price), count, locked)
        else:
            held.amount += amount
            held.locked += locked
            held.count = max(held.count, count)
    return holdings


def _last_closes(provider: Any, names: list[str], calendar: pd.DatetimeIndex, date: pd.Timestamp) -> dict[str, float]:
    if not names:
        return {}
    first = calendar[int(calendar.searchsorted(date - pd.Timedelta(days=30), "left"))]
    panel = provider.load(["close"], names, first, date, "day")
    out = {}
    for j, name in enumerate(names):
        column = np.asarray(panel["close"][:, j], dtype=np.float64)
        valid = column[np.isfinite(column)]
        if len(valid):
            out[name] = float(valid[-1])
    return out


def _takes_signal(kernel: Kernel, name: str) -> bool:
    factory = kernel.registry("strategy").get(name)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "signal" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _weight_orders(weights: Mapping[str, float], strategy: Any, exchange: Any, position: OnlinePosition) -> list[Order]:
    """Orders that move the holdings to ``weights`` (Qlib's ``OrderGenWOInteract``): a target of
    ``risk_degree × value × weight`` at D's close (at the holding's price for a name not tradable), the change
    rounded down to lots, names not tradable on D left alone, sells first."""
    risk = getattr(strategy, "risk_degree", None)
    risk = 0.95 if risk is None else float(risk)
    value = risk * position.value()
    target: dict[str, float] = {}
    for name, weight in weights.items():
        w = float(weight)
        if not np.isfinite(w) or w < -1e-12:
            raise RunError(f"strategy weight of {name} must be finite and >= 0, got {weight}")
        j = exchange.col(name)
        if j is None:
            continue
        if exchange.is_tradable(0, j):
            target[name] = value * w / exchange.close_price(0, j)
        elif name in position:
            target[name] = value * w / position.price(name)
    sells, buys = [], []
    for name in sorted(set(position.instruments()) | set(target)):
        j = exchange.col(name)
        if j is None or not exchange.is_tradable(0, j):
            continue
        want, have = target.get(name, 0.0), position.amount(name)
        if want == have:
            continue
        factor = exchange.factor_at(0, j)
        if want == 0:
            delta = -have
        elif have < want:
            delta = exchange.round_amount(want - have, factor)
        else:
            delta = -exchange.round_amount(have - want, factor)
        if delta > 0:
            buys.append(Order(name, delta, Direction.BUY))
        elif delta < 0:
            sells.append(Order(name, -delta, Direction.SELL))
    return sells + buys


def _why_not(exchange: Any, position: OnlinePosition, name: str, direction: Direction, date: pd.Timestamp,
              hold_thresh: int | None) -> str:  # fmt: skip
    j = exchange.col(name)
    day = date.date()
    if j is None:
        return "not quoted by the exchange"
    if exchange.is_suspended(0, j):
        return f"suspended on {day}"
    if not exchange.is_tradable(0, j, Direction.BUY):
        return f"closed at the upper price limit on {day}"
    if not exchange.is_tradable(0, j, Direction.SELL):
        return f"closed at the lower price limit on {day}"
    if direction is Direction.SELL and hold_thresh is not None and position.count(name) < hold_thresh:
        return f"held {position.count(name)} bar(s), fewer than hold_thresh {hold_thresh}"
    if direction is Direction.SELL and position.sellable(name) <= 0:
        return "locked by settlement (T+N)"
    return "no amount after lot rounding"


def decide(config: WorkflowConfig, kernel: Kernel, provider: Any, date: pd.Timestamp, pred: pd.Series,
           positions: PositionsFile, cash: float | None = None) -> OrderPlan:  # fmt: skip
    """The orders for the bar after ``date`` (see the module docstring).

    :param pred: ``date``'s stored scores, indexed ``(datetime, instrument)``.
    :param cash: the cash (overrides the positions file's ``CASH`` row; one of the two is needed).
    """
    setup = trading_setup(config)
    if not len(pred):
        raise DataError(f"the stored prediction of {date.date()} holds no score")
    cash = positions.cash if cash is None else float(cash)
    if cash is None:
        raise DataError(f"{positions.path}: no CASH row; give the cash (--cash)")
    full = provider.calendar(config.data.freq)
    k = int(full.searchsorted(date, "left"))
    trade_date = next_bar(full, date)
    calendar = full[: k + 1].append(pd.DatetimeIndex([trade_date]))
    codes = setup.codes
    universe = provider.universe(codes) if isinstance(codes, str) else {c: () for c in codes}
    scored = sorted(set(pred.index.get_level_values("instrument")))
    held = {lot.instrument for lot in positions.lots}
    strategy_kwargs = dict(setup.strategy_kwargs)
    if _takes_signal(kernel, setup.strategy):
        strategy_kwargs["signal"] = pred
    strategy = kernel.create("strategy", setup.strategy, **strategy_kwargs)
    declared = list(strategy.instruments()) if callable(getattr(strategy, "instruments", None)) else []
    instruments = sorted(set(universe) | set(scored) | set(declared) | held)
    quoted = set(universe) | held | set(declared)
    try:
        exchange = kernel.create("exchange", setup.exchange, provider=provider, instruments=instruments,
                                 dates=pd.DatetimeIndex([date]), market_rules=setup.market_rules,
                                 exchange_kwargs=setup.exchange_kwargs, region=setup.region, quoted=quoted,
                                 provider_uri=config.data.provider.kwargs.get("provider_uri"))  # fmt: skip
    except TypeError as exc:
        raise ConfigError(f"exchange {setup.exchange!r} cannot be built for online orders: {exc}",
                          path="online.exchange") from None  # fmt: skip
    position = OnlinePosition(cash, _holdings(positions, exchange, provider, calendar, date, k + 1))
    account = OnlineAccount(position.value(), position)
    infra = TradingInfra(exchange, account, BarCalendar(calendar, k + 1, 1, config.data.freq), provider=provider,
                         operators=kernel.registry("operator"))  # fmt: skip
    strategy.reset(infra)
    step = Step(0, trade_date, trade_date + pd.Timedelta(days=1))
    if callable(getattr(strategy, "generate_trade_decision", None)):
        decision = strategy.generate_trade_decision(step)
    else:
        weights = strategy.target_weights(step)
        decision = TradeDecision(() if weights is None else _weight_orders(weights, strategy, exchange, position),
                                 {"target_weights": dict(weights or {})})  # fmt: skip
    return _plan(decision, exchange, position, pred, date, trade_date, strategy)


def _plan(decision: TradeDecision, exchange: Any, position: OnlinePosition, pred: pd.Series, date: pd.Timestamp,
          trade_date: pd.Timestamp, strategy: Any) -> OrderPlan:  # fmt: skip
    scores = pred.droplevel("datetime") if isinstance(pred.index, pd.MultiIndex) else pred
    ranks = scores.rank(ascending=False, method="first")
    hold_thresh = getattr(strategy, "hold_thresh", None)
    weights = decision.info.get("target_weights") or {}
    rows, blocked = [], []
    traded: set[tuple[str, Direction]] = set()
    for order in decision.orders:
        amount = order.amount
        if order.direction is Direction.SELL:
            amount = min(amount, position.sellable(order.instrument))
        if amount <= 0:
            blocked.append({"instrument": order.instrument, "direction": order.direction.name.lower(),
                            "reason": _why_not(exchange, position, order.instrument, order.direction, date,
                                               hold_thresh)})  # fmt: skip
            continue
        j = exchange.col(order.instrument)
        price = exchange.close_price(0, j)
        if not np.isfinite(price):
            price = position.price(order.instrument) if order.instrument in position else float("nan")
        factor = exchange.factor_at(0, j)
        factor = factor if np.isfinite(factor) and factor > 0 else 1.0
        rows.append({"date": trade_date, "instrument": order.instrument, "direction": order.direction.name.lower(),
                     "amount": amount, "shares": amount * factor, "price": price, "real_price": price / factor,
                     "value": amount * price,
                     "reason": _reason(order, ranks, scores, weights)})  # fmt: skip
        traded.add((order.instrument, order.direction))
    for key, direction in (("sell", Direction.SELL), ("buy", Direction.BUY)):
        for name in decision.info.get(key, ()) or ():
            if (name, direction) not in traded and not any(b["instrument"] == name for b in blocked):
                reason = _why_not(exchange, position, name, direction, date, hold_thresh)
                blocked.append({"instrument": name, "direction": key, "reason": reason})
    orders = pd.DataFrame(rows, columns=list(ORDER_COLUMNS))
    targets = _targets(orders, exchange, position)
    return OrderPlan(date, trade_date, orders, targets, tuple(blocked), position.cash, position.value())


def _reason(order: Order, ranks: pd.Series, scores: pd.Series, weights: Mapping[str, float]) -> str:
    name = order.instrument
    if weights:
        return f"target weight {float(weights.get(name, 0.0)):.6g}"
    if name in ranks.index and np.isfinite(scores.get(name, np.nan)):
        where = f"rank {int(ranks[name])} of {int(ranks.notna().sum())}, score {float(scores[name]):.6g}"
    else:
        where = "no score"
    return f"{'leaves' if order.direction is Direction.SELL else 'enters'} the strategy's holdings ({where})"


def _targets(orders: pd.DataFrame, exchange: Any, position: OnlinePosition) -> pd.DataFrame:
    target = dict(position.amounts())
    for row in orders.itertuples(index=False):
        sign = -1.0 if row.direction == "sell" else 1.0
        target[row.instrument] = target.get(row.instrument, 0.0) + sign * row.amount
    rows = []
    for name, amount in target.items():
        j = exchange.col(name)
        price = exchange.close_price(0, j) if j is not None else float("nan")
        if not np.isfinite(price):
            price = position.price(name) if name in position else float("nan")
        factor = exchange.factor_at(0, j) if j is not None else float("nan")
        factor = factor if np.isfinite(factor) and factor > 0 else 1.0
        amount = 0.0 if abs(amount) < 1e-9 else amount
        rows.append({"instrument": name, "amount": position.amount(name), "target_amount": amount,
                     "target_shares": amount * factor, "price": price, "target_value": amount * price})  # fmt: skip
    frame = pd.DataFrame(rows, columns=[c for c in TARGET_COLUMNS if c != "weight"])
    total = float(frame["target_value"].sum()) + _cash_after(orders, position)
    frame["weight"] = frame["target_value"] / total if total > 0 else np.nan
    frame = frame[frame["target_amount"] > 0].sort_values("instrument").reset_index(drop=True)
    return frame[list(TARGET_COLUMNS)]


def _cash_after(orders: pd.DataFrame, position: OnlinePosition) -> float:
    """The cash after the orders at the reference prices (costs left out)."""
    signed = np.where(orders["direction"] == "sell", 1.0, -1.0) * orders["value"].to_numpy(dtype=np.float64)
    return position.cash + float(signed.sum())
