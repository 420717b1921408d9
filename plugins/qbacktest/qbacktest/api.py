"""Running a backtest from a :class:`~qbacktest.config.BacktestSpec`: components come from the kernel's registries.

Before anything is loaded, :func:`check_backtest` checks the spec (option types and ranges, the strategy's and
executor's arguments) and, given a store, what it names in the store (fields of the deal price and limits,
benchmark codes, the market, the dates). The workflow's ``port_analysis`` record runs the same checks at
``qcore validate`` time through :func:`check_workflow`, with errors at the workflow's keys and lines.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any

import pandas as pd

from qbacktest.backtest import BacktestResult, bar_range, default_range, run_backtest
from qbacktest.config import (
    BacktestSpec,
    ComponentRef,
    Fail,
    check_number,
    check_spec,
    deal_price_expressions,
    is_number,
)
from qbacktest.quote import field_name
from qbacktest.signal import Signal
from qbacktest.strategies.base import as_signal
from qbacktest.weight_orders import as_order_strategy
from qcore.errors import ConfigError, DataError, ExpressionError, QcoreError


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def build_market_rules(kernel: Any, spec: BacktestSpec, provider_uri: Any = None) -> Any:
    """The market rules of ``spec`` (None in Qlib-compatible mode); ``provider_uri`` is passed when accepted."""
    if spec.exchange_kwargs is not None or spec.market_rules is None:
        return None
    kwargs = dict(spec.market_rules.kwargs)
    factory = kernel.registry("market_rules").get(spec.market_rules.name)
    if provider_uri is not None and "provider_uri" not in kwargs and _accepts(factory, "provider_uri"):
        kwargs["provider_uri"] = provider_uri
    return kernel.create("market_rules", spec.market_rules.name, **kwargs)


def backtest_from_spec(
    spec: BacktestSpec,
    provider: Any,
    kernel: Any,
    *,
    signal: Signal | pd.Series | pd.DataFrame | None = None,
    provider_uri: Any = None,
) -> BacktestResult:
    """Build the strategy (with ``signal`` as its ``signal`` argument), the executor and the exchange; run.

    :func:`check_backtest` runs first, so a bad option is an error naming it before any data is loaded.
    """
    check_backtest(spec, kernel, spec.fail(), provider=provider)
    kwargs = dict(spec.strategy.kwargs)
    start, end = spec.start, spec.end
    if signal is not None and "signal" not in kwargs:
        if _takes_signal(kernel, spec.strategy.name):
            kwargs["signal"] = signal
        elif start is None or end is None:  # a strategy without a signal still trades the scores' window
            first, last = default_range(provider.calendar("day"), as_signal(signal).dates)
            start, end = (first if start is None else start), (last if end is None else end)
    # a weight strategy (qcore.trading.WeightStrategy) trades through qbacktest's order generators
    strategy = as_order_strategy(kernel.create("strategy", spec.strategy.name, **kwargs), spec.strategy.name)
    executor = kernel.create("executor", spec.executor.name, **dict(spec.executor.kwargs))
    return run_backtest(
        provider,
        strategy,
        executor,
        start=start,
        end=end,
        account=spec.account,
        benchmark=spec.benchmark,
        exchange_kwargs=spec.exchange_kwargs,
        market_rules=build_market_rules(kernel, spec, provider_uri),
        codes=spec.codes,
        region=spec.region,
        kernel=kernel,
        short=spec.short,
    )


# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------

#: Keyword arguments of Qlib's strategies that have no meaning here: accepted and ignored by every strategy.
_QLIB_INFRA = ("trade_exchange", "level_infra", "common_infra", "model", "dataset")
#: Extra Qlib spellings some strategies take.
_QLIB_EXTRA = {"TargetWeight": ("order_generator_cls_or_obj",), "SoftTopk": ("order_generator_cls_or_obj",),
               "OrderReplay": ("trade_range",)}  # fmt: skip
#: Ranges of the strategy arguments qbacktest's strategies share: name → (low, high, integer).
_RANGES: Mapping[str, tuple[float, float | None, bool]] = {
    "topk": (1, None, True),
    "n_drop": (0, None, True),
    "hold_thresh": (0, None, True),
    "risk_degree": (0.0, 1.0, False),
    "max_sold_weight": (0.0, 1.0, False),
}
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "method_sell": ("bottom", "random"),
    "method_buy": ("top", "random"),
    "buy_method": ("first_fill", "average_fill"),
}


def _takes_signal(kernel: Any, name: str) -> bool:
    """Whether strategy ``name`` takes a ``signal`` argument (its class says; a third party's factory signature)."""
    found = _strategy_class(kernel, name)
    if found is not None:
        return "signal" in _parameters(found[1])
    return _accepts(kernel.registry("strategy").get(name), "signal")


def _strategy_class(kernel: Any, name: str) -> tuple[str, type] | None:
    """The class behind one of qbacktest's own registered strategies (a lazy factory into this package), else None."""
    from qcore.registry import LazyFactory

    factory = kernel.registry("strategy").get(name)
    if not isinstance(factory, LazyFactory) or not factory.target.startswith(f"{__package__}."):
        return None
    cls = factory.load()
    return cls.__name__, cls


def _parameters(cls: type) -> dict[str, Any]:
    """Named keyword parameters of ``cls`` with their type hints, following ``**kwargs`` passed up the MRO."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # unresolvable annotations: names only
            hints = {}
        params = inspect.signature(init).parameters
        for name, param in params.items():
            if name != "self" and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                out.setdefault(name, hints.get(name, Any))
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return out


def _matches(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` fits the type hint (None: the hint says nothing checkable)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, arg) for arg in typing.get_args(hint)]
        return True if any(r is True for r in results) else (None if None in results else False)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (collections.abc.Mapping, dict) or hint is dict:
        return isinstance(value, Mapping)
    if origin in (collections.abc.Sequence, list, tuple) or hint in (list, tuple):
        return isinstance(value, list | tuple)
    return None


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in args)


def check_strategy(kernel: Any, ref: ComponentRef, fail: Fail) -> None:
    """Argument names, types and ranges of one of qbacktest's strategies; another plugin's strategy that takes no
    signal is built once (it checks its own arguments), so its errors come before any expensive step."""
    found = _strategy_class(kernel, ref.name)
    if found is None:
        if "signal" not in ref.kwargs and not _takes_signal(kernel, ref.name):
            _check_third_party(kernel, ref, fail)
        return
    name, cls = found
    params = _parameters(cls)
    accepted = [p for p in params if p != "signal"] + list(_QLIB_INFRA) + list(_QLIB_EXTRA.get(name, ()))
    kwargs = dict(ref.kwargs)
    for key, value in kwargs.items():
        where = f"strategy.kwargs.{key}"
        if key not in accepted and key != "signal":
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise fail(f"unknown argument {key!r} of strategy {name}{hint} (accepted: {', '.join(accepted)})", where)
        ok = _matches(value, params.get(key, Any))
        if ok is False:
            raise fail(f"expected {_describe(params[key])}, got {value!r}", where)
        if key in _RANGES and value is not None:
            low, high, integer = _RANGES[key]
            check_number(value, where, fail, low=low, high=high, integer=integer)
        if key in _CHOICES and value not in _CHOICES[key]:
            raise fail(f"expected one of {', '.join(_CHOICES[key])}, got {value!r}", where)
    for key, param in inspect.signature(cls).parameters.items():
        if param.kind is param.KEYWORD_ONLY and param.default is param.empty and key not in kwargs:
            raise fail(f"missing required argument {key!r} of strategy {name}", "strategy.kwargs")
    if kwargs.get("seed") is not None and (not _matches(kwargs["seed"], int) or kwargs["seed"] < 0):
        raise fail(f"expected a non-negative integer or null, got {kwargs['seed']!r}", "strategy.kwargs.seed")
    if name == "TopkDropout" and kwargs["n_drop"] > kwargs["topk"]:
        raise fail(f"n_drop ({kwargs['n_drop']}) cannot exceed topk ({kwargs['topk']}): a bar replaces at most "
                   "the names it holds", "strategy.kwargs.n_drop")  # fmt: skip
    _check_by_building(kernel, ref, name, kwargs, fail)


def _check_by_building(kernel: Any, ref: ComponentRef, name: str, kwargs: dict[str, Any], fail: Fail) -> None:
    """The checks a strategy makes when built, for the strategies that need no signal to be built (the order
    replay reads its file) and the order generators of the weight strategies."""
    try:
        if name == "OrderReplay":
            kernel.create("strategy", ref.name, **kwargs)
        elif name in ("TargetWeight", "SoftTopk"):
            from qbacktest.weight_orders import _generator_name

            _generator_name(kwargs.get("order_generator_cls_or_obj", kwargs.get("order_generator",
                                                                                   "without_interact")))
    except ConfigError as exc:
        raise fail(exc.message, exc.path if exc.path.startswith("strategy") else "strategy.kwargs") from None
    except (DataError, TypeError, ValueError, OSError) as exc:
        key = "strategy.kwargs.file" if "file" in kwargs else "strategy.kwargs.orders"
        reason = str(exc) if isinstance(exc, DataError) else f"cannot read the orders: {type(exc).__name__}: {exc}"
        raise fail(reason, key if name == "OrderReplay" else "strategy.kwargs") from None


def _check_third_party(kernel: Any, ref: ComponentRef, fail: Fail) -> None:
    """Build another plugin's strategy and its order adapter: argument errors, the kind's protocol and a weight
    strategy's ``order_generator`` are reported at the strategy's keys."""
    try:
        as_order_strategy(kernel.create("strategy", ref.name, **dict(ref.kwargs)), ref.name)
    except ConfigError as exc:
        raise fail(exc.message, exc.path if exc.path.startswith("strategy.") else "strategy") from None
    except QcoreError:
        raise
    except Exception as exc:
        raise fail(f"invalid arguments of strategy {ref.name!r}: {type(exc).__name__}: {exc}",
                   "strategy.kwargs") from None  # fmt: skip


def check_executor(kernel: Any, ref: ComponentRef, fail: Fail) -> None:
    """Build the executor once (executors read no data when built), so its own argument checks run now."""
    try:
        kernel.create("executor", ref.name, **dict(ref.kwargs))
    except ConfigError as exc:
        key = exc.path if exc.path.startswith("executor") else "executor.kwargs"
        raise fail(exc.message, key) from None
    except QcoreError:
        raise
    except Exception as exc:
        raise fail(f"invalid executor arguments: {type(exc).__name__}: {exc}", "executor.kwargs") from None


def _check_expression(engine: Any, expression: str, key: str, stored: set[str], fail: Fail) -> None:
    name = field_name(expression)
    if name is not None:
        if name not in stored:
            raise fail(f"the store has no field ${name} (fields: {', '.join('$' + f for f in sorted(stored))})", key)
        return
    try:
        engine.plan([expression])
    except ExpressionError as exc:
        raise fail(f"invalid expression {expression!r}: {exc.message} at position {exc.position}", key) from None


def check_store(spec: BacktestSpec, provider: Any, kernel: Any, fail: Fail, *, executor_kwargs: Any = None) -> None:
    """What ``spec`` names in the store: price fields and expressions, benchmark and holding codes, the market,
    and that ``start``/``end`` hold at least one bar."""
    from qcore.expr.engine import ExpressionEngine

    stored = {f.lower() for f in provider.fields("day")}
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    _check_expression(engine, "$close", "exchange", stored, fail)
    exchange = spec.exchange_kwargs
    if exchange is not None:
        deal_price = exchange.get("deal_price") if exchange.get("deal_price") is not None else "close"
        for i, expr in enumerate(deal_price_expressions(deal_price, fail)):
            key = "exchange.deal_price" + (f".{i}" if isinstance(deal_price, list | tuple) else "")
            _check_expression(engine, expr, key, stored, fail)
        limit = exchange.get("limit_threshold")
        if isinstance(limit, list | tuple):
            for i, expr in enumerate(limit):
                _check_expression(engine, str(expr), f"exchange.limit_threshold.{i}", stored, fail)
        # a numeric limit on a store without $change: the exchange derives it from $close (checked above)
        volume = exchange.get("volume_threshold")
        if volume is not None:
            items = {"all": volume} if isinstance(volume, list | tuple) else dict(volume)
            for side, (_, expr) in items.items():
                where = "exchange.volume_threshold" + ("" if items.get("all") is volume else f".{side}")
                _check_expression(engine, str(expr), where, stored, fail)
    pa_base = (executor_kwargs or {}).get("pa_base")
    if isinstance(pa_base, str):
        _check_expression(engine, pa_base, "executor.kwargs.pa_base", stored, fail)
    known = provider.universe("all")
    if spec.benchmark is not None and not isinstance(spec.benchmark, pd.Series):
        codes = [spec.benchmark] if isinstance(spec.benchmark, str) else list(spec.benchmark)
        for i, code in enumerate(codes):
            if code not in known:
                close = difflib.get_close_matches(code, list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise fail(f"the benchmark {code!r} is not in the store{hint} ({len(known)} instruments)",
                           "benchmark" if isinstance(spec.benchmark, str) else f"benchmark.{i}")  # fmt: skip
    if isinstance(spec.codes, str):
        markets = list(provider.markets())
        if spec.codes not in markets:
            raise fail(f"the store has no market {spec.codes!r} (markets: {', '.join(markets)})", "codes")
    if isinstance(spec.account, Mapping):
        for name in spec.account:
            if name != "cash" and name not in known:
                raise fail(f"the starting holding {name!r} is not in the store", f"account.{name}")
    if spec.start is not None or spec.end is not None:
        calendar = provider.calendar("day")
        span = f"the store's calendar is {calendar[0].date()}..{calendar[-1].date()}" if len(calendar) else ""
        if spec.start is not None and len(calendar) and spec.start > calendar[-1]:
            raise fail(f"the backtest starts on {spec.start.date()}, after the store's last day ({span})", "start")
        if spec.end is not None and len(calendar) and spec.end < calendar[0]:
            raise fail(f"the backtest ends on {spec.end.date()}, before the store's first day ({span})", "end")
        try:
            bar_range(calendar, spec.start, spec.end)
        except ConfigError as exc:
            if not _minute_run(spec, kernel):  # minute bars say where the calendar's last day ends
                raise fail(exc.message, "start" if spec.start is not None else "end") from None


def _level_freqs(executor: Any) -> list[tuple[str, str]]:
    """``(frequency, key)`` of every level of an executor, outermost first (one for a plain executor)."""
    from qbacktest.nested import NestedExecutor

    out: list[tuple[str, str]] = []
    key = "executor.kwargs"
    while True:
        out.append((str(getattr(executor, "time_per_step", None) or "day"), f"{key}.time_per_step"))
        if not isinstance(executor, NestedExecutor):
            return out
        executor, key = executor.inner_executor, f"{key}.inner_executor.kwargs"


def _minute_run(spec: BacktestSpec, kernel: Any) -> bool:
    """Whether ``spec`` runs on minute bars."""
    from qbacktest.backtest import _reads_minutes
    from qbacktest.freq import Freq

    executor = kernel.create("executor", spec.executor.name, **dict(spec.executor.kwargs))
    return _reads_minutes(executor, Freq.parse(getattr(executor, "time_per_step", None) or "day"), spec.exchange_kwargs)


def check_minute_store(spec: BacktestSpec, provider: Any, kernel: Any, fail: Fail) -> None:
    """A run on minute bars (a nested executor, a minute executor or a minute ``exchange.freq``) needs the store's
    minute bars and a calendar for every level, with the fields its exchange reads."""
    from qbacktest.freq import Freq

    if not _minute_run(spec, kernel):
        return
    executor = kernel.create("executor", spec.executor.name, **dict(spec.executor.kwargs))
    quote = (spec.exchange_kwargs or {}).get("freq") or "1min"
    checks = [(Freq.parse(quote).name, "exchange.freq" if spec.exchange_kwargs else "executor")]
    checks += [(Freq.parse(f).name, key) for f, key in _level_freqs(executor)]
    for name, key in checks:
        try:
            calendar = provider.calendar(name)
        except DataError as exc:
            raise fail(f"this backtest trades {name} bars, which the store cannot give: {exc.message}", key) from None
        if not len(calendar):
            raise fail(f"the store's {name} calendar is empty", key)
    stored = {f.lower() for f in provider.fields(checks[0][0])}
    exchange = spec.exchange_kwargs or {}
    deal_price = exchange.get("deal_price") if exchange.get("deal_price") is not None else "close"
    for expr in ["$close", *deal_price_expressions(deal_price, fail)]:
        name = field_name(expr)
        if name is not None and name not in stored:
            raise fail(f"the store has no field ${name} at {checks[0][0]} (fields: "
                       f"{', '.join('$' + f for f in sorted(stored))})", "exchange.deal_price")  # fmt: skip


def check_backtest(spec: BacktestSpec, kernel: Any, fail: Fail, *, provider: Any = None) -> None:
    """Every check of a backtest: the options (:func:`~qbacktest.config.check_spec`), the strategy's and
    executor's arguments and, with ``provider``, what the spec names in the store."""
    check_spec(spec, fail)
    check_strategy(kernel, spec.strategy, fail)
    check_executor(kernel, spec.executor, fail)
    if provider is not None:
        check_store(spec, provider, kernel, fail, executor_kwargs=spec.executor.kwargs)
        check_minute_store(spec, provider, kernel, fail)


def spec_from_workflow(config: Any) -> BacktestSpec:
    """The :class:`BacktestSpec` of a workflow's ``backtest`` section (``config.sections["backtest"]``, parsed by
    :class:`~qbacktest.config.BacktestSection`), with the market rules of ``data.market_rules``."""
    import attrs

    from qbacktest.config import SECTION

    rules = config.data.market_rules
    return attrs.evolve(config.sections[SECTION], market_rules=ComponentRef(rules.name, dict(rules.kwargs))
                        if rules is not None else ComponentRef("cn"))  # fmt: skip


def workflow_fail(config: Any) -> Fail:
    """The :data:`Fail` of a workflow config: backtest keys become ``backtest.<key>``, with the file's line."""

    def fail(message: str, key: str) -> Exception:
        path = "data.market_rules" if key == "market_rules" else f"backtest.{key}"
        return config.error(message, path)

    return fail


def check_workflow(context: Any) -> None:
    """The ``port_analysis`` record's check: the workflow's backtest section, against the store when open."""
    from qbacktest.config import SECTION

    config = context.config
    if SECTION not in config.sections:
        raise config.error("the port_analysis record needs a backtest section", "records")
    if config.model is None:
        raise config.error("the port_analysis record needs a model's predictions: add a model section", "records")
    spec = spec_from_workflow(config)
    check_backtest(spec, context.kernel, workflow_fail(config), provider=context.provider)
    _check_predicted_window(config, spec, workflow_fail(config))


def _check_predicted_window(config: Any, spec: BacktestSpec, fail: Fail) -> None:
    """The backtest trades on the model's predictions of the test segment (else the last one): its window must
    overlap that segment, or the run would train and then find no score to trade on."""
    if config.dataset is None or not config.dataset.segments:
        return
    segments = config.dataset.segments
    name = "test" if "test" in segments else list(segments)[-1]
    first, last = segments[name]
    if spec.start is not None and spec.start > last:
        raise fail(f"the backtest starts on {spec.start.date()}, after the {name} segment the model predicts "
                   f"({first.date()}..{last.date()})", "start")  # fmt: skip
    if spec.end is not None and spec.end < first:
        raise fail(f"the backtest ends on {spec.end.date()}, before the {name} segment the model predicts "
                   f"({first.date()}..{last.date()})", "end")  # fmt: skip
