"""Running a workflow: resolve its components, open a tracked run, execute its steps, fire lifecycle hooks.

Steps, each present when its config section is: data (open the provider, pick the universe, record field
coverage) → dataset (evaluate the feature set, fit processors) → model (fit, predict the test segment), or with a
``rolling:`` section one rolling step in their place (:mod:`qcore.rolling.step`: a dataset, model and child run
per window, their signals joined) → records
(registered components that run after the model, reading what earlier steps left in ``context.state``, a
:class:`qcore.context.RunState`). The recorder opens the run and records what the steps produce on a worker thread
(:class:`qcore.tracking.BackgroundRun`), so a slow tracking store does not hold the steps up: the worker starts
when the model begins training (native code that leaves the interpreter to the worker), or before the records
when there is no model.

Before any step reads data, the run is checked (:func:`check_components`, which ``qcore validate`` runs too):
component names, each component's keyword arguments, the universes, fields and date ranges against the store,
and each record's own ``check(context)``. Components take part through two optional conventions: a registered
factory's ``check_kwargs(kwargs)`` attribute, and a record object's ``check(context)`` method
(:class:`qcore.protocols.Record`). The value types runs exchange are in :mod:`qcore.context`.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import platform
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from qcore.config import ComponentSpec, WorkflowConfig
from qcore.context import RecordOutput, RunContext, RunResult
from qcore.dates import parse_date
from qcore.errors import ComponentContractError, ConfigError, DataError, QcoreError, UnknownComponentError
from qcore.kernel import Kernel
from qcore.registry import missing_members
from qcore.tracking import BackgroundRun
from qcore.types import Panel, clip_universe, membership_mask

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


def relocate(config: WorkflowConfig, error: ConfigError, prefix: str) -> ConfigError:
    """``error`` raised by a component about its own arguments (``path`` relative to them, no file yet), placed at
    ``prefix`` of the config with the file's line. An error that already names its file is returned as it is."""
    if error.source is not None:
        return error
    path = f"{prefix}.{error.path}" if error.path else prefix
    return config.error(error.message, path)


def check_arguments(config: WorkflowConfig, kernel: Kernel) -> None:
    """Every component's keyword arguments, checked before any data is read.

    A registered factory may carry a ``check_kwargs(kwargs)`` attribute: it raises a :class:`ConfigError` whose
    ``path`` is relative to the arguments (``num_leaves``), which is reported at ``<component>.kwargs.num_leaves``
    with the line (the model zoo's models check every argument this way). Otherwise a factory whose signature
    lists its parameters (no ``**kwargs``) gets unknown names refused with the accepted ones. Feature sets and
    processors, plain values by contract, are built once so their own argument checks run too. The components
    plugin-owned sections name (``config.section_components``) are covered like the kernel's own.
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


def build_component(config: WorkflowConfig, kernel: Kernel, kind: str, spec: ComponentSpec, path: str) -> Any:
    """``kernel.create(kind, spec.name, **spec.kwargs)``; an error building it names the config key.

    A :class:`ConfigError` with a path relative to the arguments is placed under ``<path>.kwargs``; an unexpected
    exception (a ``TypeError`` from a wrong argument type...) becomes a :class:`ConfigError` at ``path``.
    """
    try:
        return kernel.create(kind, spec.name, **spec.kwargs)
    except ConfigError as exc:
        raise relocate(config, exc, f"{path}.kwargs") from None
    except QcoreError:
        raise
    except Exception as exc:
        raise config.error(f"cannot build {kind} {spec.name!r} from its arguments: {type(exc).__name__}: {exc}",
                           path) from exc  # fmt: skip


def build_processor(kernel: Kernel, spec: ComponentSpec, fit_start: Any, fit_end: Any) -> Any:
    """A processor built from ``spec`` (:func:`qcore.dataset.make_processor` passes the fit window to a factory
    that takes it), checked against :class:`qcore.protocols.Processor`."""
    from qcore.dataset import make_processor

    entry = kernel.registry("processor").entry(spec.name)
    processor = make_processor(entry.factory, spec.kwargs, fit_start, fit_end)
    protocol = kernel.kind("processor").resolve_protocol()
    missing = missing_members(processor, protocol) if protocol is not None else []
    if missing:
        wanted = " or ".join(f"{p.__module__}.{p.__qualname__}"
                             for p in (protocol if isinstance(protocol, tuple) else (protocol,)))  # fmt: skip
        raise ComponentContractError("processor", entry.name, entry.plugin, type(processor).__qualname__, wanted,
                                     missing)  # fmt: skip
    return processor


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


def dataset_engine(context: RunContext) -> Any:
    """The run's expression engine for its dataset (one per run, kept in ``context.state.engine``), reading a
    field the store lacks as NaN unless ``data.missing_fields`` is ``error``."""
    from qcore.expr.engine import ExpressionEngine

    engine = context.state.engine
    if engine is None:
        config = context.config
        missing = config.data.missing_fields or "nan"
        engine = ExpressionEngine(context.provider, context.kernel.registry("operator"), freq=config.data.freq,
                                  missing_fields=missing)  # fmt: skip
        context.state.engine = engine
    return engine


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
    _plan_or_fail(config, strict, dict(feature_set.labels), "the label", "a label needs every field it reads")
    _plan_or_fail(config, dataset_engine(context), {**feature_set.features, **feature_set.labels}, "the feature",
                  "data.missing_fields: nan reads a missing field as NaN")  # fmt: skip
    instruments = spec.instruments or config.data.universe
    first = min(start for start, _ in spec.segments.values())
    last = max(end for _, end in spec.segments.values())
    if not clip_universe(provider.universe(instruments), first, last):
        where = "dataset.instruments" if spec.instruments else "data.universe"
        raise config.error(f"universe {instruments!r} has no member between {first.date()} and {last.date()}",
                           where)  # fmt: skip


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


def _data_step(context: RunContext) -> tuple[dict[str, float], dict[str, Any]]:
    cfg = context.config.data
    provider = context.provider
    assert provider is not None
    if cfg.universe not in provider.markets():
        raise context.config.error(str(UnknownComponentError("universe", cfg.universe, provider.markets())),
                                   "data.universe")  # fmt: skip
    calendar = provider.calendar(cfg.freq)
    universe = clip_universe(provider.universe(cfg.universe), cfg.start, cfg.end)
    instruments = sorted(universe)
    fields = list(cfg.fields) if cfg.fields else provider.fields(cfg.freq)
    if not instruments:
        raise QcoreError(f"universe {cfg.universe!r} has no member between {cfg.start} and {cfg.end}")
    panel: Panel = provider.load(fields, instruments, cfg.start, cfg.end, cfg.freq)
    mask = membership_mask(universe, panel.dates, panel.instruments)
    member_cells = int(mask.sum())
    metrics: dict[str, float] = {
        "data.instruments": float(len(instruments)),
        "data.dates": float(len(panel.dates)),
        "data.member_cells": float(member_cells),
    }
    coverage = {}
    for name in panel.fields:
        finite = np.isfinite(panel[name]) & mask
        share = float(finite.sum() / member_cells) if member_cells else 0.0
        metrics[f"data.coverage.{name}"] = share
        coverage[name] = share
    summary = {
        "provider": cfg.provider.name,
        "universe": cfg.universe,
        "freq": cfg.freq,
        "calendar": [str(calendar[0].date()), str(calendar[-1].date())] if len(calendar) else [],
        "range": [str(panel.dates[0].date()), str(panel.dates[-1].date())] if len(panel.dates) else [],
        "instruments": len(instruments),
        "dates": len(panel.dates),
        "coverage": coverage,
    }
    context.state.panel = panel
    context.state.universe = universe
    return metrics, {"data_summary": summary}


def _dataset_step(context: RunContext) -> tuple[dict[str, float], dict[str, Any]]:
    from qcore.dataset import build_dataset

    config, kernel = context.config, context.kernel
    spec = config.dataset
    assert spec is not None and context.provider is not None
    feature_set = build_component(config, kernel, "feature_set", spec.features, "dataset.features")
    train = spec.segments["train"]
    fit_start = spec.fit_start or train[0]
    fit_end = spec.fit_end or train[1]

    def build(specs: tuple[ComponentSpec, ...]) -> list[Any]:
        return [build_processor(kernel, p, fit_start, fit_end) for p in specs]

    engine = dataset_engine(context)
    dataset = build_dataset(
        engine,
        feature_set,
        instruments=spec.instruments or config.data.universe,
        segments=spec.segments,
        infer_processors=build(spec.infer_processors),
        learn_processors=build(spec.learn_processors),
        fit_start=fit_start,
        fit_end=fit_end,
    )
    context.state.dataset = dataset
    metrics = {"dataset.features": float(len(dataset.feature_names))}
    for name in spec.segments:
        metrics[f"dataset.rows.{name}"] = float(len(dataset.prepare(name, "label", "raw")))
    return metrics, {}


def _model_step(context: RunContext) -> tuple[dict[str, float], dict[str, Any]]:
    import tempfile

    config, kernel = context.config, context.kernel
    assert config.model is not None
    dataset = context.state.dataset
    assert dataset is not None
    model = build_component(config, kernel, "model", config.model, "model")
    _start_tracking(context)
    model.fit(dataset)
    segment = "test" if "test" in dataset.segments else list(dataset.segments)[-1]
    pred = model.predict(dataset, segment)
    _, label = dataset.xy(segment, "raw")
    state = context.state
    state.model, state.pred, state.label, state.segment = model, pred, label, segment
    artifacts: dict[str, Any] = {}
    save = getattr(model, "save", None)
    if callable(save):
        with tempfile.TemporaryDirectory(prefix="qcore-model-") as tmp:
            save(Path(tmp))
            for path in sorted(Path(tmp).iterdir()):
                if path.is_file():
                    artifacts[f"model-{path.name}"] = path.read_bytes()
    return {"model.predictions": float(pred.notna().sum())}, artifacts


def _start_tracking(context: RunContext) -> None:
    """Let the run's recorder worker begin (see :class:`qcore.tracking.BackgroundRun`); no-op for other runs."""
    start = getattr(context.run, "start", None)
    if callable(start):
        start()


def _record_step(spec: ComponentSpec) -> Any:
    def step(context: RunContext) -> tuple[dict[str, float], dict[str, Any]]:
        _start_tracking(context)
        record = context.kernel.create("record", spec.name, **spec.kwargs)
        output: RecordOutput = record.generate(context)
        return dict(output.metrics), dict(output.artifacts)

    step.__name__ = f"record_{spec.name}"
    return step


def run_workflow(config: WorkflowConfig, kernel: Kernel, *, run_name: str | None = None) -> RunResult:
    """Execute ``config`` with the components of ``kernel``, tracked by the configured recorder."""
    check_names(config, kernel)
    check_arguments(config, kernel)
    recorder = build_component(config, kernel, "recorder", config.recorder, "recorder")
    run = BackgroundRun(lambda: recorder.start_run(config.experiment, run_name), start=False)
    context = RunContext(config=config, kernel=kernel, run=run)
    try:
        run.log_params(config.params())
        run.set_tags(_tags(kernel))
        np.random.seed(config.seed)
        context.provider = build_component(config, kernel, "data_provider", config.data.provider, "data.provider")
        if config.data.market_rules is not None:
            context.market_rules = build_component(config, kernel, "market_rules", config.data.market_rules,
                                                   "data.market_rules")  # fmt: skip
        kernel.before_run(context)
        check_store(context)  # every check that needs the store, before any data is read
        check_records(context)
        metrics: dict[str, float] = {}
        stored: dict[str, Future[Path | str]] = {}
        steps = [_data_step]
        if config.rolling is not None:
            from qcore.rolling.step import rolling_step

            steps.append(rolling_step)  # per-window datasets and models in place of the dataset and model steps
        else:
            if config.dataset is not None:
                steps.append(_dataset_step)
            if config.model is not None:
                steps.append(_model_step)
        steps += [_record_step(spec) for spec in config.records]
        for step in steps:
            step_metrics, artifacts = step(context)
            if step_metrics:
                run.log_metrics(step_metrics)
                metrics.update(step_metrics)
            stored.update({name: run.log_artifact_later(name, obj) for name, obj in artifacts.items()})
        result = RunResult(run.run_id, metrics, {name: str(path.result()) for name, path in stored.items()})
        kernel.after_run(context, result)
    except BaseException as exc:
        try:
            kernel.on_run_error(context, exc)
        finally:
            _end_failed(run, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    run.end("FINISHED")
    return result


def _end_failed(run: BackgroundRun, status: str) -> None:
    """Close a failed run with ``status``; a recorder error on the way is logged, so the run's own error is what
    the caller sees."""
    try:
        run.end(status)
    except Exception as exc:  # the recorder itself may be what failed
        logger.debug("could not mark the run %s: %s", status, exc)


def _tags(kernel: Kernel) -> dict[str, str]:
    from qcore import __version__

    tags = {"qcore.version": __version__, "python.version": platform.python_version()}
    for info in kernel.plugins():
        tags[f"plugin.{info.name}"] = info.version or info.module
    return tags
