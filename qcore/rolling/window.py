"""One rolling window's work: fit its own processors on its own train span, train its model, predict its test span.

:func:`train_window` is a module-level function of a picklable :class:`WindowJob`, so any execution backend
(:mod:`qcore.backends`) can run it, in this process or another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pandas as pd

from qcore.rolling.windows import Window


@attrs.frozen
class WindowJob:
    """What one window needs: its raw rows (features evaluated once for the whole run), unfitted processors and
    an unfitted model built from the config, the seed, the run's dataset fingerprint (for model caches) and the
    reweighter whose sample weights the model trains with (None: equal weights).
    ``keep_model``: hand the fitted model back (in-process backends; another process sends only its files)."""

    window: Window
    frame: pd.DataFrame = attrs.field(repr=False)
    infer_processors: tuple[Any, ...]
    learn_processors: tuple[Any, ...]
    model: Any
    seed: int = 0
    fingerprint: str | None = None
    keep_model: bool = True
    reweighter: Any = None


@attrs.frozen
class WindowResult:
    """A finished window: its predictions and raw label over :attr:`Window.predict`, metrics, the model's saved
    files, and the fitted model (None when it was read back from a checkpoint)."""

    window: Window
    pred: pd.Series
    label: pd.Series | None
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    model_files: Mapping[str, bytes] = attrs.field(factory=dict, repr=False)
    model: Any = attrs.field(default=None, eq=False, repr=False)
    resumed: bool = False


def _rows(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Rows of a ``(datetime, instrument)`` frame within ``[start, end]`` (a positional slice when date-sorted)."""
    dates = frame.index.get_level_values("datetime")
    if not dates.is_monotonic_increasing:
        return frame[(dates >= start) & (dates <= end)]
    return frame.iloc[int(dates.searchsorted(start, "left")) : int(dates.searchsorted(end, "right"))]


def window_frame(frame: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The raw rows ``window``'s dataset spans (its first segment start to its last predicted day)."""
    segments = window.dataset_segments()
    return _rows(frame, min(s for s, _ in segments.values()), max(e for _, e in segments.values()))


def train_window(job: WindowJob) -> WindowResult:
    """Build the window's dataset (processors fitted on its train span only), fit, predict its test span.

    A reweighter with a ``for_window(window, frame)`` method (a rolling meta-learner such as DDG-DA) is bound to
    the window first: it gets the window and the raw rows of its train span only, and returns the reweighter
    the model trains with.
    """
    import tempfile
    from pathlib import Path

    import numpy as np

    from qcore.dataset import PanelDataset, dataset_fingerprint
    from qcore.reweight import fit_model

    np.random.seed(job.seed)
    window = job.window
    train_start, train_end = window.train
    dataset = PanelDataset(job.frame, window.dataset_segments(), infer_processors=job.infer_processors,
                           learn_processors=job.learn_processors, fit_start=train_start, fit_end=train_end,
                           lazy_learn=True)  # fmt: skip
    if job.fingerprint is not None:
        dataset.fingerprint = dataset_fingerprint(job.fingerprint, window.describe())
    model = job.model
    reweighter = job.reweighter
    bind = getattr(reweighter, "for_window", None)
    if callable(bind):
        reweighter = bind(window, _rows(job.frame, train_start, train_end))
    fit_model(model, dataset, reweighter)
    pred = model.predict(dataset, "test")
    _, label = dataset.xy("test", "raw")
    files: dict[str, bytes] = {}
    save = getattr(model, "save", None)
    if callable(save):
        with tempfile.TemporaryDirectory(prefix="qcore-model-") as tmp:
            save(Path(tmp))
            files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
    metrics = {"model.predictions": float(pred.notna().sum()),
               "dataset.rows.train": float(len(dataset.prepare("train", "label", "raw")))}  # fmt: skip
    return WindowResult(window, pred, label, metrics, files, model if job.keep_model else None)
