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

import logging
import platform
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from qcore.assembly import build_component, build_processor, dataset_engine, start_tracking
from qcore.checks import check_arguments, check_names, check_records, check_store
from qcore.config import ComponentSpec, WorkflowConfig
from qcore.context import RecordOutput, RunContext, RunResult
from qcore.errors import QcoreError, UnknownComponentError
from qcore.kernel import Kernel
from qcore.reweight import fit_model
from qcore.tracking import BackgroundRun
from qcore.types import Panel, clip_universe, membership_mask

logger = logging.getLogger(__name__)


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
    reweighter = None
    if config.reweighter is not None:
        reweighter = build_component(config, kernel, "reweighter", config.reweighter, "reweighter")
    start_tracking(context)
    fit_model(model, dataset, reweighter)
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


def _record_step(spec: ComponentSpec) -> Any:
    def step(context: RunContext) -> tuple[dict[str, float], dict[str, Any]]:
        start_tracking(context)
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
            began = time.perf_counter()
            step_metrics, artifacts = step(context)
            logger.info("step %s: %.2f s", step.__name__.removeprefix("_").removesuffix("_step"),
                        time.perf_counter() - began)
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
