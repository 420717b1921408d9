"""The workflow step of a rolling run: windows → one dataset evaluation → per-window training → one joined signal.

With a ``rolling:`` section, :func:`qcore.runner.run_workflow` runs :func:`rolling_step` in place of its dataset and
model steps. The feature set is evaluated once over the span of every window (the engine handles the warm-up);
each window then builds its own dataset from those raw rows with *fresh* processors fitted on its own train span
(never another window's: Qlib #1620), trains a fresh model and predicts what it owns of the test segment. Windows
run on the configured execution backend (:mod:`qcore.backends`: ``rolling.backend``, else the workflow's
``backend``), shut down when they are done; each finished window is checkpointed at once
(:mod:`qcore.rolling.checkpoint`) and recorded as a child run of the workflow's run (tags ``qcore.parent_run_id``,
``qcore.rolling.window``; params ``window.*``). The windows' predictions are joined (no date twice) into
``context.state.pred``/``label`` for the workflow's records, exactly as a single model's would be.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pandas as pd

from qcore.errors import RunError
from qcore.rolling.checkpoint import Checkpoint, checkpoint_key, default_folder
from qcore.rolling.window import WindowJob, WindowResult, train_window, window_frame
from qcore.rolling.windows import Window, WindowError, rolling_windows

if TYPE_CHECKING:
    from qcore.context import RunContext

logger = logging.getLogger(__name__)

#: Tags of a window's child run.
PARENT_TAG = "qcore.parent_run_id"
WINDOW_TAG = "qcore.rolling.window"


def plan_windows(context: RunContext) -> list[Window]:
    """The run's windows over its store's calendar; a setup that leaves none is a config error at ``rolling``."""
    config = context.config
    assert config.rolling is not None and config.dataset is not None and context.provider is not None
    calendar = context.provider.calendar(config.data.freq)
    rolling = config.rolling
    try:
        return rolling_windows(calendar, config.dataset.segments, rolling.step, rolling.window, rolling.gap)
    except WindowError as exc:
        raise config.error(str(exc), "rolling") from None


def join_predictions(results: list[WindowResult]) -> tuple[pd.Series, pd.Series | None]:
    """The windows' predictions (and labels) as one signal, in date order; a date two windows predict is a bug."""
    ordered = sorted(results, key=lambda r: r.window.index)
    pred = pd.concat([r.pred for r in ordered]).sort_index()
    if pred.index.has_duplicates:
        raise RunError("rolling windows predicted the same (datetime, instrument) twice")
    labels = [r.label for r in ordered if r.label is not None]
    label = pd.concat(labels).sort_index() if len(labels) == len(ordered) else None
    return pred, label


def _record_child(context: RunContext, recorder: Any, parent_id: str, result: WindowResult) -> str:
    """One child run for a finished window: params, tags, metrics, its predictions and model files."""
    window = result.window
    child = recorder.start_run(context.config.experiment, f"{window.name}")
    try:
        child.set_tags({PARENT_TAG: parent_id, WINDOW_TAG: window.name,
                        "qcore.rolling.resumed": str(result.resumed).lower()})  # fmt: skip
        child.log_params({"window": {"index": window.index, **{name: [str(v) for v in span]
                                                               for name, span in window.describe().items()}}})
        child.log_metrics(dict(result.metrics))
        child.log_artifact("pred", result.pred.rename("score").to_frame())
        for name, data in result.model_files.items():
            child.log_artifact(f"model-{name}", data)
    except BaseException:
        child.end("FAILED")
        raise
    child.end("FINISHED")
    return child.run_id


def _jobs(context: RunContext, windows: list[Window], frame: pd.DataFrame, fingerprint: str | None,
          keep_model: bool) -> list[WindowJob]:  # fmt: skip
    """A job per window, each with processors and a model built afresh from the config."""
    from qcore.assembly import build_component, build_processor

    config, kernel = context.config, context.kernel
    spec = config.dataset
    assert spec is not None and config.model is not None
    jobs = []
    for window in windows:
        start, end = window.train
        jobs.append(WindowJob(
            window=window,
            frame=window_frame(frame, window),
            infer_processors=tuple(build_processor(kernel, p, start, end) for p in spec.infer_processors),
            learn_processors=tuple(build_processor(kernel, p, start, end) for p in spec.learn_processors),
            model=build_component(config, kernel, "model", config.model, "model"),
            reweighter=(build_component(config, kernel, "reweighter", config.reweighter, "reweighter")
                        if config.reweighter is not None else None),
            seed=config.seed,
            fingerprint=fingerprint,
            keep_model=keep_model,
        ))
    return jobs


def rolling_step(context: RunContext) -> tuple[dict[str, float], dict[str, Any]]:
    """Run every window (resuming finished ones), record each as a child run, join their signals."""
    from qcore.assembly import build_component, dataset_engine, start_tracking
    from qcore.backends import SerialBackend
    from qcore.dataset import build_dataset

    config, kernel, provider = context.config, context.kernel, context.provider
    rolling, spec = config.rolling, config.dataset
    assert rolling is not None and spec is not None and provider is not None and context.run is not None
    windows = plan_windows(context)
    version = getattr(provider, "version", None)
    folder = rolling.checkpoint or default_folder(checkpoint_key(config.raw, version if isinstance(version, str)
                                                                  else None))  # fmt: skip
    checkpoint = Checkpoint(folder)
    done = {w.index: r for w in windows if rolling.resume and (r := checkpoint.load(w)) is not None}
    todo = [w for w in windows if w.index not in done]
    logger.info("rolling: %d windows, %d finished before, checkpoint %s", len(windows), len(done), folder)
    backend = build_component(config, kernel, "execution_backend", rolling.backend, "rolling.backend")
    recorder = build_component(config, kernel, "recorder", config.recorder, "recorder")
    jobs: list[WindowJob] = []
    if todo:
        feature_set = build_component(config, kernel, "feature_set", spec.features, "dataset.features")
        first = min(s for w in todo for s, _ in w.dataset_segments().values())
        last = max(e for w in todo for _, e in w.dataset_segments().values())
        raw = build_dataset(dataset_engine(context), feature_set, instruments=spec.instruments or config.data.universe,
                            segments={"span": (first, last)})  # fmt: skip
        jobs = _jobs(context, todo, raw.frame("raw"), raw.fingerprint, isinstance(backend, SerialBackend))
    start_tracking(context)
    parent_id = context.run.run_id
    children: dict[str, str] = {}
    for result in sorted(done.values(), key=lambda r: r.window.index):
        children[result.window.name] = _record_child(context, recorder, parent_id, result)
    results = dict(done)
    with backend:
        for i, result in backend.map(train_window, jobs, labels=[f"window {job.window.name}" for job in jobs]):
            checkpoint.save(result)
            results[result.window.index] = result
            children[result.window.name] = _record_child(context, recorder, parent_id, result)
            jobs[i] = None  # type: ignore[call-overload]  # let its frame go
    pred, label = join_predictions(list(results.values()))
    state = context.state
    last_window = max(results.values(), key=lambda r: r.window.index)
    state.pred, state.label, state.segment, state.model = pred, label, "test", last_window.model
    state.extra["rolling"] = {"windows": [w.describe() for w in windows], "children": children,
                              "checkpoint": str(folder)}  # fmt: skip
    metrics = {"rolling.windows": float(len(windows)), "rolling.windows_trained": float(len(todo)),
               "rolling.windows_resumed": float(len(done)), "model.predictions": float(pred.notna().sum())}
    return metrics, {"rolling": {"step": str(rolling.step), "window": rolling.window, "gap": rolling.gap,
                                 "checkpoint": str(folder), "windows": [
                                     {"name": w.name, "run_id": children[w.name], **w.describe(),
                                      "predict": [str(w.predict[0].date()), str(w.predict[1].date())]}
                                     for w in windows]}}  # fmt: skip
