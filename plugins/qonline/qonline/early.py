"""Retraining off the schedule when drift is flagged: an *early window*.

When the monitor flags drift on date F while the schedule's window W serves and no scheduled window is due,
``retrain`` trains W's setup moved forward to F: its train and valid segments shifted by the bars between W's test
start and the bar after F (as if a window's test started then), so they end ``gap`` bars before it (labels realised
by F only); an expanding train window keeps W's start.
Processors are fitted on the new train span, as for any window. The model is stored in
``<online folder>/models/drift-F/`` (the model's files and ``window.json``, the folder renamed into place whole) and
serves every date after F until a later scheduled window starts; without drift models serving is the rolling run's
exactly.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from qcore.config import WorkflowConfig
from qcore.errors import DataError
from qcore.kernel import Kernel

MODELS = "models"
PREFIX = "drift-"


@attrs.frozen
class EarlyModel:
    """A stored early window: the flag date it was trained at, its train span and its folder."""

    flagged: pd.Timestamp
    train: tuple[pd.Timestamp, pd.Timestamp]
    path: Path


def early_models(root: Path) -> list[EarlyModel]:
    """The finished early windows under ``root/models``, by flag date."""
    folder = root / MODELS
    out = []
    if folder.is_dir():
        for path in folder.glob(f"{PREFIX}*"):
            try:
                meta = json.loads((path / "window.json").read_text())
                train = (pd.Timestamp(meta["train"][0]), pd.Timestamp(meta["train"][1]))
                out.append(EarlyModel(pd.Timestamp(meta["flagged"]), train, path))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return sorted(out, key=lambda m: m.flagged)


def early_window(window: Any, calendar: pd.DatetimeIndex, flagged: pd.Timestamp, gap: int, expanding: bool) -> Any:
    """``window`` moved forward so its train span ends ``gap`` bars before the bar after ``flagged``."""
    from qcore.rolling.windows import Window

    k = int(calendar.searchsorted(flagged, "left"))
    shift = k + 1 - int(calendar.searchsorted(window.segments["test"][0], "left"))
    if shift <= 0:
        raise DataError(f"drift flagged on {flagged.date()}, before the serving {window.name}'s test span starts")
    segments: dict[str, tuple[pd.Timestamp, pd.Timestamp | None]] = {}
    for name, (start, stop) in window.segments.items():
        if name == "test":
            continue
        lo, hi = int(calendar.searchsorted(start, "left")), int(calendar.searchsorted(stop, "left"))
        lo = lo if (name == "train" and expanding) else lo + shift
        segments[name] = (calendar[lo], calendar[hi + shift])
    segments["test"] = (flagged, flagged)
    return Window(window.index, segments, (flagged, flagged))


def train_early(config: WorkflowConfig, kernel: Kernel, provider: Any, root: Path, window: Any,
                flagged: pd.Timestamp) -> EarlyModel:  # fmt: skip
    """Train ``window`` moved to ``flagged`` (:func:`early_window`) and store it under ``root/models``."""
    from qcore.assembly import build_component, build_processor, dataset_engine
    from qcore.context import RunContext
    from qcore.dataset import build_dataset
    from qcore.rolling.window import WindowJob, train_window, window_frame

    rolling, spec = config.rolling, config.dataset
    assert rolling is not None and spec is not None and config.model is not None
    calendar = provider.calendar(config.data.freq)
    moved = early_window(window, calendar, flagged, rolling.gap, rolling.window == "expanding")
    start, end = moved.train
    feature_set = build_component(config, kernel, "feature_set", spec.features, "dataset.features")
    first = min(s for s, _ in moved.dataset_segments().values())
    engine = dataset_engine(RunContext(config=config, kernel=kernel, run=None, provider=provider))
    raw = build_dataset(engine, feature_set, instruments=spec.instruments or config.data.universe,
                        segments={"span": (first, flagged)})  # fmt: skip
    job = WindowJob(
        window=moved,
        frame=window_frame(raw.frame("raw"), moved),
        infer_processors=tuple(build_processor(kernel, p, start, end) for p in spec.infer_processors),
        learn_processors=tuple(build_processor(kernel, p, start, end) for p in spec.learn_processors),
        model=build_component(config, kernel, "model", config.model, "model"),
        reweighter=(build_component(config, kernel, "reweighter", config.reweighter, "reweighter")
                    if config.reweighter is not None else None),
        seed=config.seed,
    )  # fmt: skip
    result = train_window(job)
    if not result.model_files:
        raise DataError(f"model {config.model.name!r} has no save/restore: an early window cannot be stored")
    target = root / MODELS / f"{PREFIX}{flagged.date()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in result.model_files.items():
            (tmp / name).write_bytes(data)
        meta = {"flagged": str(flagged.date()), "from_window": window.name, "train": [str(start.date()),
                str(end.date())], "segments": moved.describe()}  # fmt: skip
        (tmp / "window.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EarlyModel(flagged, (start, end), target)
