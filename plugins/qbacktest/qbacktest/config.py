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
      # short: {enabled: true, borrow_rate: 0.08, margin: 0.5, eligible: [...]}   # long-short (qbacktest.short)

``exchange_kwargs`` (even empty) selects the Qlib-compatible exchange; without it the market rules named by
``market_rules`` (default ``cn``) drive the run. ``signal`` placeholders (``<PRED>``) are replaced by the score file;
``model``/``dataset`` placeholders are dropped.

A workflow's ``backtest:`` section is the same :class:`BacktestSpec` in qcore's spelling (``start``, ``end``,
``exchange`` for Qlib's ``start_time``, ``end_time``, ``exchange_kwargs``; market rules from ``data.market_rules``):
this plugin owns it (:class:`BacktestSection`, registered as the ``backtest`` config section), and both forms share
one set of defaults, Qlib's ``PortAnaRecord`` ones (:data:`DEFAULT_ACCOUNT`, :data:`DEFAULT_BENCHMARK`).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pandas as pd

from qcore.config import ComponentSpec, Reader
from qcore.dates import DateError, parse_date
from qcore.errors import ConfigError
from qcore.yamldoc import Document, parse_yaml, read_yaml

#: ``fail(message, key)``: the error to raise about ``key``, a backtest key in the form of :class:`BacktestSpec`
#: (``account``, ``benchmark``, ``start``, ``end``, ``codes``, ``region``, ``exchange.deal_price``,
#: ``strategy.kwargs.topk``, ``executor.kwargs.trade_type``); each config style maps it to its own key path.
Fail = Callable[[str, str], Exception]

_BACKTEST_KEYS = ("start_time", "end_time", "account", "benchmark", "exchange_kwargs", "pos_type", "market_rules",
                  "codes", "region", "short")  # fmt: skip
_TOP_KEYS = ("strategy", "executor", "backtest")

#: Starting cash when a config gives no ``account``: Qlib's ``PortAnaRecord`` default (100,000,000; Qlib's bare
#: ``backtest()`` function defaults to 1e9, which no config form here uses).
DEFAULT_ACCOUNT = 1e8
#: The benchmark when a config gives none (Qlib's): the CSI 300 index. ``null`` runs without a benchmark.
DEFAULT_BENCHMARK = "SH000300"
#: The executor when a config names none: the daily simulator (Qlib's ``SimulatorExecutor``).
DEFAULT_EXECUTOR = "simulator"

#: A component by registered name with keyword arguments: the kernel's :class:`qcore.config.ComponentSpec`.
ComponentRef = ComponentSpec


@attrs.frozen
class BacktestSpec:
    """A parsed backtest: a ``BT.yaml`` (``qcore backtest``) or a workflow's ``backtest:`` section."""

    strategy: ComponentRef
    executor: ComponentRef = attrs.field(factory=lambda: ComponentRef(DEFAULT_EXECUTOR))
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    account: Any = DEFAULT_ACCOUNT
    benchmark: Any = DEFAULT_BENCHMARK
    exchange_kwargs: Mapping[str, Any] | None = None
    market_rules: ComponentRef | None = None
    codes: Any = "all"
    region: str = "cn"
    #: short selling (:class:`qbacktest.short.ShortSelling`; off by default)
    short: Any = None
    #: the ``BT.yaml`` it was read from and the key prefix there (``port_analysis_config.``), so later checks name
    #: keys with their lines
    document: Document | None = attrs.field(default=None, eq=False, repr=False)
    prefix: str = attrs.field(default="", eq=False, repr=False)

    def fail(self) -> Fail:
        """The :data:`Fail` that names this spec's keys where they were written."""
        return bt_yaml_fail(self.document, self.prefix) if self.document is not None else plain_fail()


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
    try:
        return parse_date(value, path)
    except DateError as exc:
        raise doc.error(exc.message, path) from None


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
        ComponentRef(DEFAULT_EXECUTOR)
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
    spec = BacktestSpec(
        strategy=ComponentRef(strategy.name, kwargs),
        executor=executor,
        start=_date(doc, body.get("start_time"), prefix + "backtest.start_time"),
        end=_date(doc, body.get("end_time"), prefix + "backtest.end_time"),
        account=body.get("account", DEFAULT_ACCOUNT),
        benchmark=body.get("benchmark", DEFAULT_BENCHMARK),
        exchange_kwargs=_tuples(dict(exchange)) if exchange is not None else None,
        market_rules=rules_ref,
        codes=body.get("codes", "all"),
        region=body.get("region", "cn"),
        short=body.get("short"),
        document=doc,
        prefix=prefix,
    )
    check_spec(spec, spec.fail())
    return spec


#: Where each key of :class:`BacktestSpec` sits in a ``BT.yaml`` (below its optional ``port_analysis_config``).
_BT_YAML_KEYS = {"start": "backtest.start_time", "end": "backtest.end_time", "exchange": "backtest.exchange_kwargs",
                 "account": "backtest.account", "benchmark": "backtest.benchmark", "codes": "backtest.codes",
                 "region": "backtest.region", "market_rules": "backtest.market_rules",
                 "short": "backtest.short"}  # fmt: skip


def bt_yaml_fail(doc: Document, prefix: str = "") -> Fail:
    """The :data:`Fail` of a ``BT.yaml`` document: keys become its paths, with their lines."""

    def fail(message: str, key: str) -> Exception:
        head, dot, rest = key.partition(".")
        path = _BT_YAML_KEYS.get(head, head) + (dot + rest if dot else "")
        return doc.error(message, prefix + path)

    return fail


def plain_fail(prefix: str = "backtest.") -> Fail:
    """A :data:`Fail` without a file: a :class:`ConfigError` whose path is ``prefix`` + the key."""
    return lambda message, key: ConfigError(message, path=prefix + key)


# ---------------------------------------------------------------------------------------------------------------
# Checks that need no data: types, ranges and names of every backtest option
# ---------------------------------------------------------------------------------------------------------------

#: ``exchange_kwargs`` keys Qlib accepts that the runner sets itself: accepted and ignored.
EXCHANGE_IGNORED = ("freq", "start_time", "end_time", "codes", "subscribe_fields", "extra_quote", "quote_cls")
#: Every ``exchange_kwargs`` key the Qlib-compatible exchange takes.
EXCHANGE_KEYS = ("deal_price", "limit_threshold", "volume_threshold", "open_cost", "close_cost", "min_cost",
                 "impact_cost", "trade_unit")  # fmt: skip
REGIONS = ("cn", "us", "tw")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(value: Any) -> bool:
    """A real, finite number (not a boolean, not NaN or infinite)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_number(value: Any, key: str, fail: Fail, *, low: float = 0.0, high: float | None = None,
                 low_open: bool = False, integer: bool = False, what: str = "a number") -> None:
    """Raise ``fail`` unless ``value`` is a finite number (an integer with ``integer``) within the bounds."""
    if integer and not (isinstance(value, int) and not isinstance(value, bool)):
        raise fail(f"expected an integer, got {_shown(value)}", key)
    if not is_number(value):
        raise fail(f"expected {what}, got {_shown(value)}", key)
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bounds = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise fail(f"expected {what} {bounds}, got {_shown(value)}", key)


def check_account(account: Any, fail: Fail) -> None:
    """Starting cash (a positive number), or ``{cash: x, SYMBOL: amount | {amount, price}}``."""
    if isinstance(account, Mapping):
        if "cash" not in account:
            raise fail("an account mapping needs a 'cash' entry", "account")
        check_number(account["cash"], "account.cash", fail, what="cash")
        for name, holding in account.items():
            if name == "cash":
                continue
            key = f"account.{name}"
            if not isinstance(name, str) or not name.strip():
                raise fail(f"holdings are keyed by instrument code, got {_shown(name)}", "account")
            if isinstance(holding, Mapping):
                unknown = sorted(map(str, set(holding) - {"amount", "price"}))
                if unknown or "amount" not in holding:
                    raise fail(f"a holding is an amount or {{amount, price}}, got {_shown(dict(holding))}", key)
                check_number(holding["amount"], f"{key}.amount", fail, low_open=True, what="an amount")
                if holding.get("price") is not None:
                    check_number(holding["price"], f"{key}.price", fail, low_open=True, what="a price")
            else:
                check_number(holding, key, fail, low_open=True, what="an amount")
        return
    if not is_number(account):
        raise fail(f"expected starting cash (a positive number) or {{cash: ..., SYMBOL: amount}}, "
                   f"got {_shown(account)}", "account")  # fmt: skip
    if account <= 0:
        raise fail(f"starting cash must be > 0, got {_shown(account)}", "account")


def check_benchmark(benchmark: Any, fail: Fail) -> None:
    """A code, a non-empty list of codes, or null."""
    if benchmark is None or isinstance(benchmark, pd.Series):
        return
    codes = [benchmark] if isinstance(benchmark, str) else benchmark
    if not isinstance(codes, list | tuple) or not codes:
        raise fail(f"expected an instrument code, a list of codes or null, got {_shown(benchmark)}", "benchmark")
    for i, code in enumerate(codes):
        if not isinstance(code, str) or not code.strip():
            raise fail(f"expected an instrument code, got {_shown(code)}", "benchmark" if len(codes) == 1 else
                       f"benchmark.{i}")  # fmt: skip


def _expression(value: Any, key: str, fail: Fail, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(f"expected {what} (a field such as $close or an expression), got {_shown(value)}", key)
    return value


def deal_price_expressions(deal_price: Any, fail: Fail, key: str = "exchange.deal_price") -> list[str]:
    """The one or two expressions of a ``deal_price`` (``close``, ``$vwap``, or ``(buy, sell)``)."""
    if isinstance(deal_price, list | tuple):
        if len(deal_price) != 2:
            raise fail(f"expected a price or (buy price, sell price), got {_shown(deal_price)}", key)
        return [_expression(v, f"{key}.{i}", fail, "a price") for i, v in enumerate(deal_price)]
    return [_expression(deal_price, key, fail, "a price")]


def check_exchange(kwargs: Mapping[str, Any], fail: Fail) -> None:
    """Qlib's ``exchange_kwargs``: known keys, and each value of the right type and range."""
    for key in kwargs:
        if key not in EXCHANGE_KEYS and key not in EXCHANGE_IGNORED:
            close = difflib.get_close_matches(str(key), EXCHANGE_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise fail(f"unknown exchange option {key!r}{hint} (known: {', '.join(EXCHANGE_KEYS)})",
                       f"exchange.{key}")  # fmt: skip
    if kwargs.get("deal_price") is not None:
        deal_price_expressions(kwargs["deal_price"], fail)
    limit = kwargs.get("limit_threshold")
    if isinstance(limit, list | tuple):
        if len(limit) != 2:
            raise fail("expected a number, (buy limit expression, sell limit expression) or null",
                       "exchange.limit_threshold")  # fmt: skip
        for i, item in enumerate(limit):
            _expression(item, f"exchange.limit_threshold.{i}", fail, "a limit expression")
    elif limit is not None:
        check_number(limit, "exchange.limit_threshold", fail, low_open=True, high=1.0,
                     what="a price-limit ratio (0.095 for ±9.5%)")  # fmt: skip
    for name in ("open_cost", "close_cost", "impact_cost"):
        if kwargs.get(name) is not None:
            check_number(kwargs[name], f"exchange.{name}", fail, high=1.0, what="a cost rate")
    if kwargs.get("min_cost") is not None:
        check_number(kwargs["min_cost"], "exchange.min_cost", fail, what="a minimum cost")
    unit = kwargs.get("trade_unit")
    if unit is not None:
        check_number(unit, "exchange.trade_unit", fail, low_open=True, integer=True, what="a lot size")
    volume = kwargs.get("volume_threshold")
    if volume is not None:
        _check_volume(volume, fail)


def _check_volume(spec: Any, fail: Fail) -> None:
    key = "exchange.volume_threshold"
    items = {"all": spec} if isinstance(spec, list | tuple) else spec
    if not isinstance(items, Mapping):
        raise fail("expected (kind, expression) or a mapping of all/buy/sell to one", key)
    for side, limit in items.items():
        where = key if items is not spec else f"{key}.{side}"
        if side not in ("all", "buy", "sell"):
            raise fail(f"unknown volume_threshold side {side!r} (all, buy, sell)", where)
        if not isinstance(limit, list | tuple) or len(limit) != 2 or limit[0] not in ("cum", "current"):
            raise fail(f"expected ('cum' or 'current', expression), got {_shown(limit)}", where)
        _expression(limit[1], where, fail, "a volume expression")


def check_spec(spec: BacktestSpec, fail: Fail) -> None:
    """Every option of ``spec`` that can be checked without the store; the first problem raises ``fail``."""
    check_account(spec.account, fail)
    check_benchmark(spec.benchmark, fail)
    if spec.start is not None and spec.end is not None and spec.end < spec.start:
        raise fail(f"the backtest ends ({spec.end.date()}) before it starts ({spec.start.date()})", "end")
    if spec.exchange_kwargs is not None:
        if not isinstance(spec.exchange_kwargs, Mapping):
            raise fail(f"expected a mapping of exchange options, got {_shown(spec.exchange_kwargs)}", "exchange")
        check_exchange(spec.exchange_kwargs, fail)
    if not isinstance(spec.region, str) or spec.region not in REGIONS:
        raise fail(f"region must be one of {', '.join(REGIONS)}, got {_shown(spec.region)}", "region")
    codes = spec.codes
    if not (isinstance(codes, str) and codes.strip()) and not (
        isinstance(codes, list | tuple) and codes and all(isinstance(c, str) and c.strip() for c in codes)
    ):
        raise fail(f"expected a market name or a list of instrument codes, got {_shown(codes)}", "codes")
    if spec.short is not None:
        from qbacktest.short import ShortSelling

        try:
            ShortSelling.parse(spec.short)
        except ConfigError as exc:
            key = (exc.path or "backtest.short").removeprefix("backtest.")
            raise fail(exc.message, key) from None


# ---------------------------------------------------------------------------------------------------------------
# The workflow's ``backtest:`` section
# ---------------------------------------------------------------------------------------------------------------

#: The workflow section this plugin owns, and its keys.
SECTION = "backtest"
WORKFLOW_KEYS = ("strategy", "executor", "start", "end", "account", "benchmark", "exchange", "pos_type", "short")


class BacktestSection:
    """The workflow's ``backtest:`` section (a :class:`qcore.protocols.ConfigSection`): how the predictions are
    traded, as a :class:`BacktestSpec` in ``config.sections["backtest"]``.

    Keys: ``strategy`` (required), ``executor`` (default the daily simulator), ``start``/``end`` (the backtest's
    window within the predicted segment), ``account`` (default :data:`DEFAULT_ACCOUNT`), ``benchmark`` (default
    :data:`DEFAULT_BENCHMARK`), ``exchange`` (Qlib's ``exchange_kwargs``: selects the Qlib-compatible exchange) and
    ``pos_type`` (``Position`` only). Every value that needs no store is checked here, with the key and its line;
    the strategy's and executor's arguments and what the section names in the store are checked by the
    ``port_analysis`` record before the run (``qcore validate`` included).
    """

    def parse(self, value: Any, reader: Reader, path: str) -> BacktestSpec:
        """The section as a :class:`BacktestSpec` (``market_rules`` left None: the workflow's
        ``data.market_rules`` is used when it runs)."""
        body = reader.mapping(value, path, WORKFLOW_KEYS, required=("strategy",))
        strategy = reader.component(body["strategy"], f"{path}.strategy")
        executor = (reader.component(body["executor"], f"{path}.executor") if body.get("executor") is not None
                    else ComponentRef(DEFAULT_EXECUTOR))  # fmt: skip
        if body.get("pos_type", "Position") != "Position":
            raise reader.fail(f"only pos_type Position is supported, got {_shown(body['pos_type'])}",
                              f"{path}.pos_type")  # fmt: skip
        exchange = body.get("exchange")
        if exchange is not None and not isinstance(exchange, Mapping):
            raise reader.fail(f"expected a mapping of exchange options, got {_shown(exchange)}", f"{path}.exchange")
        spec = BacktestSpec(
            strategy=strategy,
            executor=executor,
            start=reader.date(body.get("start"), f"{path}.start"),
            end=reader.date(body.get("end"), f"{path}.end"),
            account=body.get("account", DEFAULT_ACCOUNT),
            benchmark=body.get("benchmark", DEFAULT_BENCHMARK),
            exchange_kwargs=_tuples(dict(exchange)) if exchange is not None else None,
            short=body.get("short"),
        )
        check_spec(spec, lambda message, key: reader.fail(message, f"{path}.{key}"))
        return spec

    def components(self, parsed: BacktestSpec, path: str) -> list[tuple[str, str, ComponentSpec]]:
        """The strategy and the executor."""
        return [(f"{path}.strategy", "strategy", parsed.strategy), (f"{path}.executor", "executor", parsed.executor)]


def load_backtest_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> BacktestSpec:
    """Read ``BT.yaml`` (a path, YAML text with a newline, or an already parsed mapping)."""
    if isinstance(source, Mapping):
        return parse_backtest(Document(dict(source)))
    text = str(source)
    if "\n" in text:
        return parse_backtest(parse_yaml(text))
    return parse_backtest(read_yaml(source))
