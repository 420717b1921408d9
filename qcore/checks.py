"""Everything about a workflow that can be checked without running it, in the order :func:`check_components` runs it.

Component names, each component's keyword arguments (a registered factory's ``check_kwargs(kwargs)`` attribute, or
its signature), the universes, fields and date ranges against the store, the dataset's expressions, and each
record's own ``check(context)`` (:class:`qcore.protocols.Record`). ``qcore run`` runs them before any step reads
data; ``qcore validate`` runs them without training.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from qcore.assembly import build_component, build_processor, dataset_engine, relocate
from qcore.config import WorkflowConfig
from qcore.context import RunContext
from qcore.dates import parse_date
from qcore.errors import ConfigError, DataError, QcoreError, UnknownComponentError
from qcore.kernel import Kernel
from qcore.types import clip_universe

logger = logging.getLogger(__name__)


def check_components(config: WorkflowConfig, kernel: Kernel, *, store: bool = True) -> None:
    """Check everything about ``config`` that can be checked without running it; raise at the first problem.

    In order: every component name exists (:func:`check_names`); every component's keyword arguments
    (:func:`check_arguments`); then, with ``store``, what needs the data: the data provider is opened (opening
    reads the store's calendar and lists, nothing more) and :func:`check_store` and :func:`check_records` run. A
    provider that cannot be opened here is reported as a warning and the store checks are skipped (``qcore run``
    then fails opening it); the records' checks still run without it. Every :class:`ConfigError` names the key as
    the config file wrote it, with its line.
    """
    check_names(config, kernel)
    check_arguments(config, kernel)
    if not store:
        return
    context = RunContext(config=config, kernel=kernel, run=None)
    spec = config.data.provider
    try:
        context.provider = build_component(config, kernel, "data_provider", spec, "data.provider")
    except DataError as exc:  # a store that is not there (yet): the config itself may still be right
        logger.warning("the data provider cannot be opened, so the checks that need the store were skipped: %s", exc)
    if context.provider is not None:
        check_store(context)
    if config.data.market_rules is not None:
        build_component(config, kernel, "market_rules", config.data.market_rules, "data.market_rules")
    check_records(context)


def check_names(config: WorkflowConfig, kernel: Kernel) -> None:
    """Every component the config names exists; an unknown one is a :class:`ConfigError` at its key."""
    for path, kind, name in config.components():
        try:
            kernel.registry(kind).entry(name)
        except UnknownComponentError as exc:
            raise config.error(str(exc), path) from None


def check_arguments(config: WorkflowConfig, kernel: Kernel) -> None:
    """Every component's keyword arguments, checked before any data is read.

    A registered factory may carry a ``check_kwargs(kwargs)`` attribute: it raises a :class:`ConfigError` whose
    ``path`` is relative to the arguments (``num_leaves``), which is reported at ``<component>.kwargs.num_leaves``
    with the line (the model zoo's models check every argument this way). Otherwise a factory whose signature
    lists its parameters (no ``**kwargs``) gets unknown names refused with the accepted ones. Feature sets and
    processors, plain values by contract, are built once so their own argument checks run too. The components
    plugin-owned sections name (``config.section_components``) are covered like the kernel's own. Last,
    :func:`check_reweighter`.
    """
    for path, kind, spec in config.component_specs():
        factory = kernel.registry(kind).get(spec.name)
        where = f"{path}.kwargs"
        try:
            check = getattr(factory, "check_kwargs", None)
            if callable(check):
                check(dict(spec.kwargs))
            else:
                _check_signature(factory, spec.kwargs, f"{kind} {spec.name!r}")
            if kind == "feature_set":
                factory(**spec.kwargs)
            elif kind == "processor":
                for key in ("fit_start_time", "fit_end_time"):
                    if spec.kwargs.get(key) is not None:
                        parse_date(spec.kwargs[key], key)
                build_processor(kernel, spec, None, None)
        except ConfigError as exc:
            raise relocate(config, exc, where) from None
        except QcoreError:
            raise
        except Exception as exc:
            raise config.error(f"invalid arguments for {kind} {spec.name!r}: {type(exc).__name__}: {exc}",
                               where if spec.kwargs else path) from None  # fmt: skip
    check_reweighter(config, kernel)


def check_reweighter(config: WorkflowConfig, kernel: Kernel) -> None:
    """With ``reweighter:``, the model must take sample weights (its ``fit`` has a ``reweighter`` keyword): checked
    on a model built from the config (building one reads no data) before the run starts."""
    if config.reweighter is None or config.model is None:
        return
    from qcore.reweight import accepts_reweighter

    model = kernel.create("model", config.model.name, **config.model.kwargs)
    if not accepts_reweighter(model.fit):
        raise config.error(f"model {config.model.name!r} does not take sample weights (its fit has no 'reweighter' "
                           "keyword); drop 'reweighter' or pick a model that accepts one", "reweighter")  # fmt: skip


def _check_signature(factory: Any, kwargs: Mapping[str, Any], component: str) -> None:
    """Unknown keyword arguments of a factory whose signature names them all, with a did-you-mean."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listing = ", ".join(accepted) or "none"
            raise ConfigError(f"unknown keyword argument {key!r} for {component}{hint} (accepted: {listing})",
                              path=str(key))  # fmt: skip


def check_store(context: RunContext) -> None:
    """What the config says about the store, checked against it: universes, fields and every date range."""
    config, provider = context.config, context.provider
    assert provider is not None
    data = config.data
    markets = list(provider.markets())
    universes = [("data.universe", data.universe)]
    if config.dataset is not None and config.dataset.instruments is not None:
        universes.append(("dataset.instruments", config.dataset.instruments))
    for path, name in universes:
        if name not in markets:
            raise config.error(str(UnknownComponentError("universe", name, markets)), path)
    try:
        calendar = provider.calendar(data.freq)
    except DataError as exc:
        raise config.error(f"the store has no {data.freq!r} calendar ({exc})", "data.freq") from None
    if not len(calendar):
        raise config.error("the store's calendar is empty", "data.provider")
    first, last = calendar[0], calendar[-1]
    span = f"the store's calendar is {first.date()}..{last.date()}"
    if data.fields:
        stored = {f.lower() for f in provider.fields(data.freq)}
        for i, name in enumerate(data.fields):
            if name not in stored:
                raise config.error(f"the store has no field {name!r} (fields: {', '.join(sorted(stored))})",
                                   f"data.fields.{i}")  # fmt: skip
    _check_range(config, calendar, data.start, data.end, "data.start", "data.end", "the data range", span)
    if not clip_universe(provider.universe(data.universe), data.start, data.end):
        raise config.error(f"universe {data.universe!r} has no member between {data.start} and {data.end}",
                           "data.universe")  # fmt: skip
    if config.dataset is not None:
        for name, (start, end) in config.dataset.segments.items():
            path = f"dataset.segments.{name}"
            _check_range(config, calendar, start, end, f"{path}.0", f"{path}.1", f"the {name} segment", span)
        spec = config.dataset
        _check_range(config, calendar, spec.fit_start, spec.fit_end, "dataset.fit_start", "dataset.fit_end",
                     "the fit window", span)  # fmt: skip
        check_dataset(context)
    if config.rolling is not None:
        from qcore.rolling.step import plan_windows

        plan_windows(context)  # a rolling setup that leaves no window is refused here


def check_dataset(context: RunContext) -> None:
    """The dataset's features and labels parsed and checked against the store's fields and the operators; its
    instruments have members in the span of its segments. Cheap: no data is read.

    A field a feature reads that the store lacks is a warning (the feature is NaN), or an error with
    ``data.missing_fields: error``; a label always needs its fields (an all-NaN label leaves nothing to learn).
    """
    from qcore.expr.engine import ExpressionEngine

    config, provider = context.config, context.provider
    spec = config.dataset
    assert spec is not None and provider is not None
    feature_set = build_component(config, context.kernel, "feature_set", spec.features, "dataset.features")
    strict = ExpressionEngine(provider, context.kernel.registry("operator"), freq=config.data.freq)
    resample = getattr(feature_set, "resample", None) or {}
    for freq, rule in _frequencies(config, provider, feature_set):  # the day's columns, then each resampled group
        labels = {k: v for k, v in feature_set.labels.items() if resample.get(k) == rule}
        columns = {k: v for k, v in {**feature_set.features, **feature_set.labels}.items() if resample.get(k) == rule}
        _plan_or_fail(config, strict.at_freq(freq), labels, "the label", "a label needs every field it reads")
        _plan_or_fail(config, dataset_engine(context).at_freq(freq), columns, "the feature",
                      "data.missing_fields: nan reads a missing field as NaN")  # fmt: skip
    instruments = spec.instruments or config.data.universe
    first = min(start for start, _ in spec.segments.values())
    last = max(end for _, end in spec.segments.values())
    if not clip_universe(provider.universe(instruments), first, last):
        where = "dataset.instruments" if spec.instruments else "data.universe"
        raise config.error(f"universe {instruments!r} has no member between {first.date()} and {last.date()}",
                           where)  # fmt: skip


def _frequencies(config: WorkflowConfig, provider: Any, feature_set: Any) -> list[tuple[str, Any]]:
    """``(freq, rule)`` of the dataset's own columns (rule None) and of each resampled group of ``feature_set``
    (:attr:`~qcore.types.FeatureSet.resample`), whose intraday bars the store must hold: a store without them is a
    :class:`ConfigError` at ``data.provider``, before any data is read."""
    from qcore.expr.resample import check_resample_freq

    out: list[tuple[str, Any]] = [(config.data.freq, None)]
    resample = getattr(feature_set, "resample", None) or {}
    for rule in dict.fromkeys(resample.values()):
        fault = check_resample_freq(provider, rule)
        if fault is not None:
            culprit, problem = fault
            columns = [name for name, r in resample.items() if r == rule]
            shown = ", ".join(columns[:5]) + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")
            if culprit == "rule":
                raise config.error(f"the dataset's columns {shown} take the {rule.freq} bar at {rule.at}, but "
                                   f"{problem}", "dataset.features")  # fmt: skip
            raise config.error(f"the dataset's columns {shown} are evaluated on {rule.freq} bars, but {problem}: "
                               f"give the store's {rule.freq} folder (a provider_uri per frequency: {{day: ..., "
                               f"{rule.freq}: ...}})", "data.provider")  # fmt: skip
        out.append((rule.freq, rule))
    return out


def _plan_or_fail(config: WorkflowConfig, engine: Any, expressions: Mapping[str, str], what: str, hint: str) -> None:
    """``engine.plan(expressions)``; an expression error becomes a :class:`ConfigError` at ``dataset.features``
    naming the column and its expression."""
    from qcore.errors import ExpressionError
    from qcore.expr.engine import OPT_IN_HINT

    if not expressions:
        return
    try:
        engine.plan(expressions)
    except ExpressionError as exc:
        names = [name for name, text in expressions.items() if text == exc.expression]
        named = bool(names) and names[0] != exc.expression
        column = f"{what} {names[0]} = {exc.expression}" if named else f"{what} {exc.expression}"
        raise config.error(f"{column}: {exc.message.replace(OPT_IN_HINT, f' ({hint})')}", "dataset.features") from None


def _check_range(config: WorkflowConfig, calendar: Any, start: Any, end: Any, start_path: str, end_path: str,
                 what: str, span: str) -> None:
    """``[start, end]`` (either may be None) must hold at least one day of ``calendar``."""
    if start is not None and start > calendar[-1]:
        raise config.error(f"{what} starts on {start.date()}, after the store's last day ({span})", start_path)
    if end is not None and end < calendar[0]:
        raise config.error(f"{what} ends on {end.date()}, before the store's first day ({span})", end_path)
    lo = 0 if start is None else int(calendar.searchsorted(start, "left"))
    hi = len(calendar) if end is None else int(calendar.searchsorted(end, "right"))
    if hi <= lo:
        raise config.error(f"{what} holds no trading day of the store ({span})", start_path if start else end_path)


def check_records(context: RunContext) -> None:
    """Build every record (records are plain values by contract) and run its ``check(context)`` if it has one.

    A record's ``check`` raises before any step runs; ``context.provider`` is None when the store could not be
    opened (``qcore validate``), so checks that need the store are skipped then.
    """
    config = context.config
    for i, spec in enumerate(config.records):
        record = build_component(config, context.kernel, "record", spec, f"records.{i}")
        check = getattr(record, "check", None)
        if callable(check):
            check(context)  # its errors name the config keys themselves (context.config.error)
