"""Execution indicators of nested backtests, per order and per step at every level (Qlib's ``Indicator``).

Per order (one row per instrument and step; a later order of an instrument replaces an earlier one, as Qlib's
dictionaries do), amounts signed (+ buy, - sell):

- at the innermost level, from the fills: ``amount`` (the order's), ``deal_amount``, ``trade_price`` (the deal
  price, NaN when the order could not trade), ``trade_value``, ``trade_cost``, ``ffr = deal / amount`` and
  ``pa = 0`` (the bottom level has no base price);
- at an outer level, from the inner steps that ran: the sums of the inner ``inner_amount``, ``deal_amount``,
  ``trade_value`` and ``trade_cost``; ``trade_price`` the deal-weighted price; ``amount`` the outer order's;
  ``ffr = deal / amount``; ``base_price`` the TWAP (or VWAP, ``pa_config.agg``) of the deal prices over the inner
  steps' windows (clipped to a decision's clock-time range), taken from an inner step's own base price where it
  has one; ``pa = sign × (trade_price / base_price - 1)``, sign +1 for sells and -1 for buys, so a positive price
  advantage is a better execution than the base.

Per step (:meth:`OrderTable.trade_indicators`): ``ffr`` and ``pa`` averaged over the step's orders (``mean``,
``amount_weighted`` by ``|deal_amount|`` or ``value_weighted`` by ``|trade_value|``; ``ffr_config`` and
``pa_config`` ``weight_method``), ``pos`` the share of orders with ``pa > 0``, ``deal_amount`` and ``value`` (sums
of absolute values) and ``count`` (orders). Qlib raises for a weighted method whose orders and deals name
different instruments; here a missing deal weighs 0. Over a period, :func:`indicator_analysis` weighs each step's
``ffr`` and ``pa`` by its ``count``, ``|deal_amount|`` or ``|value|`` and ``pos`` by its ``count``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError
from qcore.trading import Direction, Fill, Order

#: the per-step columns of a level's ``indicators`` frame
TRADE_INDICATORS = ("ffr", "pa", "pos", "deal_amount", "value", "count")
WEIGHT_METHODS = ("mean", "amount_weighted", "value_weighted")
#: ``base_price(instrument, direction, lo, hi, decision) -> (price, weight)`` over an inner step's minute rows
#: ``[lo, hi)`` (NaN price: no valid price there)
BasePrice = Callable[[str, Direction, int, int, Any], tuple[float, float]]


def check_indicator_config(config: Mapping[str, Any] | None, path: str = "executor.kwargs.indicator_config") -> dict:
    """Qlib's ``indicator_config`` (``show_indicator``, ``pa_config{agg, price, weight_method}``,
    ``ffr_config{weight_method}``), checked; the dictionary to use."""
    config = dict(config or {})
    unknown = set(config) - {"show_indicator", "pa_config", "ffr_config"}
    if unknown:
        raise ConfigError(f"unknown indicator_config key(s) {', '.join(sorted(unknown))} "
                          "(show_indicator, pa_config, ffr_config)", path=path)  # fmt: skip
    for section, keys in (("pa_config", {"agg", "base_price", "price", "weight_method"}),
                          ("ffr_config", {"weight_method"})):  # fmt: skip
        sub = config.get(section) or {}
        if not isinstance(sub, Mapping):
            raise ConfigError("expected a mapping", path=f"{path}.{section}")
        unknown = set(sub) - keys
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))} ({', '.join(sorted(keys))})",
                              path=f"{path}.{section}")  # fmt: skip
        method = sub.get("weight_method", "mean")
        if method not in WEIGHT_METHODS:
            raise ConfigError(f"weight_method must be one of {', '.join(WEIGHT_METHODS)}, got {method!r}",
                              path=f"{path}.{section}.weight_method")  # fmt: skip
        config[section] = dict(sub)
    pa = config["pa_config"]
    agg = str(pa.get("agg", pa.get("base_price", "twap"))).lower()
    if agg not in ("twap", "vwap"):
        raise ConfigError(f"pa_config.agg must be twap or vwap, got {agg!r}", path=f"{path}.pa_config.agg")
    if str(pa.get("price", "deal_price")).lower() != "deal_price":
        raise ConfigError("pa_config.price supports deal_price only (as Qlib)", path=f"{path}.pa_config.price")
    pa["agg"] = agg
    return config


def _divide(a: float, b: float) -> float:
    """``a / b`` with numpy's rules for zero (``±inf``, NaN for ``0 / 0``)."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


class OrderTable:
    """The order indicators of one step of one level (see the module docstring).

    Dictionaries are keyed by instrument: ``amount`` and ``ffr`` by the instruments of the level's decision,
    the others by the instruments its orders (or its inner steps) traded.
    """

    __slots__ = ("amount", "base", "cost", "deal", "direction", "ffr", "inner_amount", "pa", "price", "value")

    def __init__(self) -> None:
        self.amount: dict[str, float] = {}
        self.inner_amount: dict[str, float] = {}
        self.deal: dict[str, float] = {}
        self.price: dict[str, float] = {}
        self.value: dict[str, float] = {}
        self.cost: dict[str, float] = {}
        self.direction: dict[str, Direction] = {}
        self.ffr: dict[str, float] = {}
        self.pa: dict[str, float] = {}
        #: ``instrument -> (base price, base volume)``, outer levels only
        self.base: dict[str, tuple[float, float]] = {}

    # -- construction -----------------------------------------------------------------------------------------

    @classmethod
    def from_fills(cls, fills: Iterable[Fill]) -> OrderTable:
        """The innermost level's table: one row per instrument from its fills (``pa = 0``)."""
        table = cls()
        for fill in fills:
            order = fill.order
            name = order.instrument
            sign = order.direction.sign
            table.amount[name] = order.amount * sign
            table.deal[name] = fill.deal_amount * sign
            table.price[name] = fill.price
            table.value[name] = fill.value * sign
            table.cost[name] = fill.cost
            table.direction[name] = order.direction
            table.pa[name] = 0.0
        table.inner_amount = dict(table.amount)
        table.ffr = {name: _divide(table.deal.get(name, 0.0), amount) for name, amount in table.amount.items()}
        return table

    @classmethod
    def aggregate(
        cls,
        inner: Sequence[tuple[OrderTable, int, int, Any]],
        orders: Sequence[Order],
        base_price: BasePrice,
    ) -> OrderTable:
        """An outer level's table from its inner steps ``(table, lo, hi, inner decision)`` (``[lo, hi)`` the step's
        minute rows) and its own orders.

        :param base_price: the base price of an instrument over an inner step's minute rows, when the inner table
            has none.
        """
        table = cls()
        # Qlib's sum_by_index: per instrument, the inner steps' values in order, a missing or NaN one counting 0
        sums: dict[str, list[float]] = {}
        for step, *_ in inner:
            deal, price, value, cost, direction = step.deal, step.price, step.value, step.cost, step.direction
            for name, amount in step.inner_amount.items():
                acc = sums.get(name)
                if acc is None:
                    acc = sums[name] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
                if amount == amount:
                    acc[0] += amount
                d = deal.get(name)
                if d is not None:
                    if d == d:
                        acc[1] += d
                    p = price.get(name)
                    if p is not None and d * p == d * p:
                        acc[2] += d * p
                v = value.get(name)
                if v is not None and v == v:
                    acc[3] += v
                c = cost.get(name)
                if c is not None and c == c:
                    acc[4] += c
                if name in direction:
                    acc[5] += int(direction[name])
        names = sorted(sums)
        for name in names:
            inner_amount, deal, price_x_deal, value, cost, direction = sums[name]
            table.inner_amount[name] = inner_amount
            table.deal[name] = deal
            table.price[name] = math.nan if deal == 0 else price_x_deal / deal
            table.value[name] = value
            table.cost[name] = cost
            table.direction[name] = Direction.BUY if direction > 0 else Direction.SELL
        for order in orders:
            table.amount[order.instrument] = order.amount * order.direction.sign
        table.ffr = {name: _divide(table.deal.get(name, 0.0), amount) for name, amount in table.amount.items()}
        if names:
            for name in names:
                direction = table.direction[name]
                weighted = weight = 0.0
                for step, start, end, decision in inner:
                    bp, bv = step.base.get(name, (math.nan, math.nan))
                    if math.isnan(bp):
                        bp, bv = base_price(name, direction, start, end, decision)
                        if math.isnan(bp):
                            continue
                    weighted += bp * bv if not math.isnan(bp * bv) else 0.0
                    weight += bv if not math.isnan(bv) else 0.0
                table.base[name] = (_divide(weighted, weight), weight)
            for name in names:
                sign = 1.0 - 2.0 * int(table.direction[name])
                table.pa[name] = sign * (table.price[name] / table.base[name][0] - 1.0)
        return table

    # -- per-step indicators ----------------------------------------------------------------------------------

    def trade_indicators(self, config: Mapping[str, Any] | None = None) -> tuple[
            float, float, float, float, float, int]:  # fmt: skip
        """``(ffr, pa, pos, deal_amount, value, count)`` of the step, weighted as ``config`` says."""
        config = config or {}
        ffr = self._weighted(self.ffr, (config.get("ffr_config") or {}).get("weight_method", "mean"))
        pa = self._weighted(self.pa, (config.get("pa_config") or {}).get("weight_method", "mean"))
        pas = [x for x in self.pa.values() if x == x]
        pos = sum(1 for x in pas if x > 0) / len(pas) if pas else math.nan
        deal = math.fsum([abs(x) for x in self.deal.values() if x == x])
        value = math.fsum([abs(x) for x in self.value.values() if x == x])
        count = sum(1 for x in self.amount.values() if x == x)
        return ffr, pa, pos, deal, value, count

    def _weighted(self, values: Mapping[str, float], method: str) -> float:
        if method == "mean":
            valid = [x for x in values.values() if x == x]
            return math.fsum(valid) / len(valid) if valid else math.nan
        weights = self.deal if method == "amount_weighted" else self.value
        num = den = 0.0
        for name, x in values.items():
            w = abs(weights.get(name, 0.0))
            if math.isnan(w):
                continue
            den += w
            if not math.isnan(x * w):
                num += x * w
        return _divide(num, den)

    def rows(self) -> list[tuple[str, tuple[float, ...]]]:
        """``(instrument, values of ORDER_COLUMNS)`` for every instrument of the table, sorted by name."""
        nan2 = (math.nan, math.nan)
        out = []
        for n in sorted(set(self.amount) | set(self.inner_amount)):
            direction = self.direction.get(n)
            base = self.base.get(n, nan2)
            out.append((n, (self.amount.get(n, math.nan), self.inner_amount.get(n, math.nan),
                            self.deal.get(n, math.nan), self.price.get(n, math.nan), self.value.get(n, math.nan),
                            self.cost.get(n, math.nan), math.nan if direction is None else float(direction),
                            self.ffr.get(n, math.nan), self.pa.get(n, math.nan), base[0], base[1])))  # fmt: skip
        return out


#: the columns of a level's order indicators (:func:`orders_frame`)
ORDER_COLUMNS = ("amount", "inner_amount", "deal_amount", "trade_price", "trade_value", "trade_cost", "trade_dir",
                 "ffr", "pa", "base_price", "base_volume")  # fmt: skip


def orders_frame(tables: Sequence[OrderTable], times: Sequence[Any]) -> pd.DataFrame:
    """The order indicators of every bar of a level, index ``(datetime, instrument)``, :data:`ORDER_COLUMNS`."""
    stamps: list[Any] = []
    names: list[str] = []
    values: list[tuple[float, ...]] = []
    for when, table in zip(times, tables):
        for name, row in table.rows():
            stamps.append(when)
            names.append(name)
            values.append(row)
    index = pd.MultiIndex.from_arrays([pd.DatetimeIndex(stamps), pd.Index(names, dtype=object)],
                                      names=["datetime", "instrument"])  # fmt: skip
    data = np.asarray(values, dtype=np.float64).reshape(len(values), len(ORDER_COLUMNS))
    return pd.DataFrame(data, index=index, columns=list(ORDER_COLUMNS))


def indicator_analysis(indicators: pd.DataFrame, method: str = "mean") -> pd.DataFrame:
    """Qlib's ``indicator_analysis``: ``ffr`` and ``pa`` over the period weighted by each step's ``count``
    (``mean``), ``|deal_amount|`` (``amount_weighted``) or ``|value|`` (``value_weighted``); ``pos`` by
    ``count``. A frame with one ``value`` column indexed ``ffr, pa, pos``."""
    if method not in WEIGHT_METHODS:
        raise ConfigError(f"indicator_analysis_method must be one of {', '.join(WEIGHT_METHODS)}, got {method!r}")
    weights = {
        "mean": indicators["count"],
        "amount_weighted": indicators["deal_amount"].abs(),
        "value_weighted": indicators["value"].abs(),
    }[method]
    res = indicators[["ffr", "pa"]].mul(weights, axis=0).sum() / weights.sum()
    count = indicators["count"]
    res.loc["pos"] = indicators["pos"].mul(count).sum() / count.sum()
    return res.to_frame("value")
