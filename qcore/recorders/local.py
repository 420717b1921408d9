"""A recorder that keeps each run as a folder: ``<uri>/<experiment>/<run_id>/``.

Inside: ``meta.json`` (name, status, times, tags), ``params.json`` (flattened), ``metrics.json`` (every logged
value with its step) and ``artifacts/`` (frames as Parquet, mappings as JSON, text as text). No pickle anywhere,
and every file is written atomically, so a crash never leaves a half-written run file.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qcore import atomic
from qcore.errors import QcoreError, UnknownComponentError
from qcore.recorders.common import flatten, jsonable, write_artifact


def _write_json(path: Path, obj: Any) -> None:
    atomic.write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n")


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except json.JSONDecodeError as exc:
        raise QcoreError(f"{path}: run file is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LocalRun:
    """One run folder; see the module docstring for its layout."""

    def __init__(self, root: Path, experiment: str, run_id: str) -> None:
        self.root = root
        self.experiment = experiment
        self.run_id = run_id

    @property
    def artifact_dir(self) -> Path:
        """Where artifacts are stored."""
        return self.root / "artifacts"

    def _update(self, name: str, changes: Mapping[str, Any]) -> None:
        path = self.root / name
        current = _read_json(path, {})
        current.update(changes)
        _write_json(path, current)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters, flattened with dots."""
        self._update("params.json", flatten(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record metrics; each name keeps its history as ``[step, value]`` pairs."""
        path = self.root / "metrics.json"
        current = _read_json(path, {})
        for name, value in metrics.items():
            history = current.setdefault(str(name), [])
            history.append([step if step is not None else len(history), jsonable(float(value))])
        _write_json(path, current)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Attach string tags."""
        meta = _read_json(self.root / "meta.json", {})
        meta.setdefault("tags", {}).update({str(k): str(v) for k, v in tags.items()})
        _write_json(self.root / "meta.json", meta)

    def log_artifact(self, name: str, obj: Any) -> Path:
        """Store ``obj`` under ``artifacts/``; see :func:`qcore.recorders.common.write_artifact`."""
        return write_artifact(self.artifact_dir, name, obj)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run with a status."""
        self._update("meta.json", {"status": status, "end_time": _now()})


class LocalRecorder:
    """Runs as folders under ``uri`` (default ``./runs``)."""

    def __init__(self, uri: str | os.PathLike[str] = "runs") -> None:
        self.uri = Path(uri).expanduser()

    def start_run(self, experiment: str, run_name: str | None = None) -> LocalRun:
        """Create ``<uri>/<experiment>/<run_id>/`` and return its run."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(3)}"
        root = self.uri / experiment / run_id
        root.mkdir(parents=True, exist_ok=False)
        run = LocalRun(root, experiment, run_id)
        _write_json(
            root / "meta.json",
            {
                "run_id": run_id,
                "experiment": experiment,
                "run_name": run_name or run_id,
                "status": "RUNNING",
                "start_time": _now(),
                "tags": {},
            },
        )
        return run

    def _run_dirs(self, experiment: str | None) -> list[Path]:
        if not self.uri.exists():
            return []
        experiments = [self.uri / experiment] if experiment else [p for p in self.uri.iterdir() if p.is_dir()]
        return [d for e in experiments if e.is_dir() for d in e.iterdir() if (d / "meta.json").exists()]

    def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Run summaries (meta plus the last value of each metric), newest first."""
        runs = []
        for run_dir in self._run_dirs(experiment):
            meta = _read_json(run_dir / "meta.json", {})
            metrics = _read_json(run_dir / "metrics.json", {})
            meta["metrics"] = {k: v[-1][1] for k, v in metrics.items() if v}
            runs.append(meta)
        return sorted(runs, key=lambda m: (m.get("start_time", ""), m.get("run_id", "")), reverse=True)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Everything stored about ``run_id``: meta, params, metric histories and artifact names."""
        for run_dir in self._run_dirs(None):
            if run_dir.name == run_id:
                meta = _read_json(run_dir / "meta.json", {})
                meta["params"] = _read_json(run_dir / "params.json", {})
                meta["metrics"] = _read_json(run_dir / "metrics.json", {})
                art = run_dir / "artifacts"
                meta["artifacts"] = sorted(p.name for p in art.iterdir()) if art.exists() else []
                meta["path"] = str(run_dir)
                return meta
        known = [d.name for d in self._run_dirs(None)]
        raise UnknownComponentError("run", run_id, known)
