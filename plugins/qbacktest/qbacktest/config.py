"""``BT.yaml``: a backtest described the way Qlib's ``port_analysis_config`` does, so Qlib users paste theirs.

Shape (the whole file, or its ``port_analysis_config`` key)::

    strategy:
      class: TopkDropoutStrategy            # a registered strategy name or alias (Qlib class names work)
      module_path: qlib.contrib.strategy    # ignored
      kwargs: {signal: <PRED>, topk: 50, n_drop: 5}
    executor:                               # optional (default: the daily simulator)
      class: SimulatorExecutor
      kwargs: {time_per_step: day, generate_portfolio_metrics: true}
    backtest:
      start_time: 2017-01-01                # optional: first score date
      end_time: 2020-08-01                  # optional: the bar after the last score date
      account: 100000000                    # or {cash: ..., SH600000: amount}
      benchmark: SH000300                   # a code, a list of codes, or null
      exchange_kwargs: {limit_threshold: 0.095, deal_price: close, open_cost: 0.0005, close_cost: 0.0015,
                        min_cost: 5}
      # qcore's native mode instead of exchange_kwargs:
      # market_rules: cn                    # or {name: cn, kwargs: {...}}
      # codes: all                          # the market the exchange quotes
      # region: cn                          # Qlib defaults of the compatible mode

``exchange_kwargs`` (even empty) selects the Qlib-compatible exchange; without it the market rules named by
``market_rules`` (default ``cn``) drive the run. ``signal`` placeholders (``<PRED>``) are replaced by the score file;
``model``/``dataset`` placeholders are dropped.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

import attrs
import pandas as pd

from qcore.config import Document, parse_yaml, read_yaml

_BACKTEST_KEYS = ("start_time", "end_time", "account", "benchmark", "exchange_kwargs", "pos_type", "market_rules",
                  "codes", "region")  # fmt: skip
_TOP_KEYS = ("strategy", "executor", "backtest")


@attrs.frozen
class ComponentRef:
    """A component by registered name, with keyword arguments."""

    name: str
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class BacktestSpec:
    """A parsed ``BT.yaml``."""

    strategy: ComponentRef
    executor: ComponentRef = ComponentRef("simulator")
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    account: Any = 1e9
    benchmark: Any = "SH000300"
    exchange_kwargs: Mapping[str, Any] | None = None
    market_rules: ComponentRef | None = None
    codes: Any = "all"
    region: str = "cn"


def _component(doc: Document, value: Any, path: str) -> ComponentRef:
    if isinstance(value, str):
        return ComponentRef(value)
    if not isinstance(value, Mapping):
        raise doc.error("expected a mapping with 'class' (or 'name') and 'kwargs'", path)
    unknown = set(value) - {"class", "name", "module_path", "kwargs"}
    if unknown:
        raise doc.error(f"unknown key(s) {', '.join(sorted(unknown))} (class, module_path, kwargs)", path)
    name = value.get("class", value.get("name"))
    if not isinstance(name, str) or not name:
        raise doc.error("missing 'class'", path)
    kwargs = value.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise doc.error("'kwargs' must be a mapping", f"{path}.kwargs")
    return ComponentRef(name, dict(kwargs))


def _date(doc: Document, value: Any, path: str) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, (dt.date, str, pd.Timestamp)):
        try:
            return pd.Timestamp(value)
        except ValueError:
            pass
    raise doc.error(f"expected a date, got {value!r}", path)


def _tuples(value: Any) -> Any:
    """YAML has no tuples: turn two-element lists (deal_price, limit_threshold, volume limits) into tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def parse_backtest(doc: Document) -> BacktestSpec:
    """Validate a parsed document into a :class:`BacktestSpec`."""
    data = doc.data
    prefix = ""
    if isinstance(data, Mapping) and "port_analysis_config" in data:
        data, prefix = data["port_analysis_config"], "port_analysis_config."
    if not isinstance(data, Mapping):
        raise doc.error("a backtest config is a mapping with strategy and backtest", prefix.rstrip("."))
    unknown = set(data) - set(_TOP_KEYS)
    if unknown:
        raise doc.error(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (strategy, executor, backtest)",
                        prefix.rstrip("."))  # fmt: skip
    if "strategy" not in data:
        raise doc.error("missing 'strategy'", prefix + "strategy")
    strategy = _component(doc, data["strategy"], prefix + "strategy")
    executor = _component(doc, data["executor"], prefix + "executor") if data.get("executor") else \
        ComponentRef("simulator")
    body = data.get("backtest") or {}
    if not isinstance(body, Mapping):
        raise doc.error("expected a mapping", prefix + "backtest")
    unknown = set(body) - set(_BACKTEST_KEYS)
    if unknown:
        raise doc.error(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} ({', '.join(_BACKTEST_KEYS)})",
                        prefix + "backtest")  # fmt: skip
    if body.get("pos_type", "Position") != "Position":
        raise doc.error("only pos_type Position is supported", prefix + "backtest.pos_type")
    exchange = body.get("exchange_kwargs")
    if exchange is not None and not isinstance(exchange, Mapping):
        raise doc.error("expected a mapping", prefix + "backtest.exchange_kwargs")
    rules = body.get("market_rules")
    rules_ref = _component(doc, rules, prefix + "backtest.market_rules") if rules is not None else None
    if exchange is None and rules_ref is None:
        rules_ref = ComponentRef("cn")
    kwargs = dict(strategy.kwargs)
    if isinstance(kwargs.get("signal"), str) and kwargs["signal"].startswith("<"):
        kwargs.pop("signal")
    for key in ("model", "dataset"):
        if isinstance(kwargs.get(key), str) and kwargs[key].startswith("<"):
            kwargs.pop(key)
    return BacktestSpec(
        strategy=ComponentRef(strategy.name, kwargs),
        executor=executor,
        start=_date(doc, body.get("start_time"), prefix + "backtest.start_time"),
        end=_date(doc, body.get("end_time"), prefix + "backtest.end_time"),
        account=body.get("account", 1e9),
        benchmark=body.get("benchmark", "SH000300"),
        exchange_kwargs=_tuples(dict(exchange)) if exchange is not None else None,
        market_rules=rules_ref,
        codes=body.get("codes", "all"),
        region=str(body.get("region", "cn")),
    )


def load_backtest_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> BacktestSpec:
    """Read ``BT.yaml`` (a path, YAML text with a newline, or an already parsed mapping)."""
    if isinstance(source, Mapping):
        return parse_backtest(Document(dict(source)))
    text = str(source)
    if "\n" in text:
        return parse_backtest(parse_yaml(text))
    return parse_backtest(read_yaml(source))
