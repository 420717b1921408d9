"""Where a rolling run keeps each finished window, so an interrupted run resumes without retraining it.

One folder per rolling setup (:func:`checkpoint_key`: the data version and every config section that changes a
window's result); per window ``window-NNN.parquet`` (``score`` and ``label`` by ``(datetime, instrument)``),
``window-NNN.model/`` (the model's saved files) and ``window-NNN.json`` (its segments and metrics), each written
atomically and the JSON last: a window counts as finished only when its JSON is there and names the same segments.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qcore.atomic import atomic_path, write_bytes, write_text
from qcore.rolling.window import WindowResult
from qcore.rolling.windows import Window

#: The config sections a window's result depends on (``rolling.backend``, ``checkpoint``, ``resume`` do not count).
KEYED_SECTIONS = ("seed", "data", "dataset", "model")


def default_folder(key: str) -> Path:
    """``$QCORE_CACHE_DIR/rolling/KEY``, else ``$XDG_CACHE_HOME/qcore/rolling/KEY``, else ``~/.cache/qcore/...``."""
    base = os.environ.get("QCORE_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "rolling" / key
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "qcore" / "rolling" / key


def checkpoint_key(raw: Mapping[str, Any], data_version: str | None) -> str:
    """A digest of the data version and the result-changing parts of the config (``raw``, as written)."""
    from qcore.dataset import dataset_fingerprint

    rolling = {k: v for k, v in dict(raw.get("rolling") or {}).items() if k not in ("backend", "checkpoint", "resume")}
    parts = [json.dumps(raw.get(name), sort_keys=True, default=str) for name in KEYED_SECTIONS]
    if raw.get("reweighter") is not None:  # sample weights change every window's model (keys without one unchanged)
        parts.append(json.dumps(raw.get("reweighter"), sort_keys=True, default=str))
    return dataset_fingerprint(data_version, *parts, json.dumps(rolling, sort_keys=True, default=str))


class Checkpoint:
    """The finished windows of one rolling setup, in ``folder``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _path(self, window: Window, suffix: str) -> Path:
        return self.folder / f"{window.name}{suffix}"

    def load(self, window: Window) -> WindowResult | None:
        """The stored result of ``window``, or None when it is not finished (or was stored for other segments)."""
        meta_path = self._path(window, ".json")
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("segments") != window.describe():
                return None
            frame = pd.read_parquet(self._path(window, ".parquet"))
        except (OSError, ValueError):
            return None
        files = {}
        model_dir = self._path(window, ".model")
        if model_dir.is_dir():
            files = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}
        label = frame["label"] if "label" in frame.columns else None
        return WindowResult(window, frame["score"], label, meta.get("metrics", {}), files, resumed=True)

    def save(self, result: WindowResult) -> None:
        """Store ``result``: the predictions and model files first, its JSON (the marker of a finished window) last."""
        window = result.window
        frame = result.pred.rename("score").to_frame()
        if result.label is not None:
            frame["label"] = result.label.reindex(frame.index)
        with atomic_path(self._path(window, ".parquet")) as tmp:
            frame.to_parquet(tmp)
        for name, data in result.model_files.items():
            write_bytes(self._path(window, ".model") / name, data)
        meta = {"window": window.index, "segments": window.describe(), "metrics": dict(result.metrics)}
        write_text(self._path(window, ".json"), json.dumps(meta, indent=1, sort_keys=True))
