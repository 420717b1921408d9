"""A recorder that keeps each run as a folder: ``<uri>/<experiment>/<run_id>/``.

Inside: ``meta.json`` (name, status, times, tags), ``params.json`` (flattened), ``metrics.json`` (every logged
value with its step) and ``artifacts/`` (frames as Parquet, mappings as JSON, text as text). No pickle anywhere,
and every file is written atomically, so a crash never leaves a half-written run file.

The experiment's folder is its name made a safe file name (:func:`~qcore.recorders.common.safe_component`:
``../x``, ``/abs``, ``a/b``, ``..`` all stay inside ``uri``); ``meta.json`` keeps the name as given. A run folder
appears under its final name only once its ``meta.json`` is written. Reading is defensive: ``list_runs`` skips a
folder it cannot read (a missing or garbled ``meta.json``, a file where a folder should be, JSON of the wrong
shape, bytes that are not UTF-8) with a warning naming it, and ``get_run`` raises a
:class:`~qcore.errors.DataError` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qcore import atomic
from qcore.errors import ConfigError, DataError, RunError, UnknownComponentError
from qcore.recorders.common import flatten, inside, jsonable, safe_component, write_artifact

logger = logging.getLogger(__name__)

#: The string fields of ``meta.json`` (each may also be null or absent).
_META_STRINGS = ("run_id", "experiment", "run_name", "status", "start_time", "end_time")


def _write_json(path: Path, obj: Any) -> None:
    atomic.write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n")


def _read_json(path: Path, default: Any) -> Any:
    """The JSON object in ``path`` (``default`` when there is no such file).

    :raises DataError: naming ``path``, when it cannot be read, is not UTF-8 JSON, or holds no JSON object.
    """
    try:
        text = path.read_bytes().decode("utf-8")
        value = json.loads(text)
    except FileNotFoundError:
        return default
    except IsADirectoryError:
        raise DataError("run file is a folder, not a file", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"run file is not UTF-8 text (byte {exc.start})", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"run file is not valid JSON ({exc.msg} at line {exc.lineno})", path=str(path)) from None
    except RecursionError:
        raise DataError("run file nests JSON too deeply", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read run file: {exc.strerror or exc}", path=str(path)) from None
    if not isinstance(value, dict):
        raise DataError(f"run file holds a JSON {type(value).__name__}, expected an object", path=str(path))
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _is_plain_name(name: Any) -> bool:
    """Whether ``name`` is one existing-style path component (no separator, NUL, ``.`` or ``..``)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\x00" not in name)  # fmt: skip


def _printable(value: Any) -> Any:
    """``value`` with every string made encodable (a lone surrogate, from a name given as undecodable bytes,
    becomes ``\\udcff`` text), so that printing a run never fails."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name the file system refuses
        return False


def _read_meta(run_dir: Path) -> dict[str, Any]:
    """``meta.json`` of ``run_dir``, checked: string fields are strings, tags a mapping of strings."""
    path = run_dir / "meta.json"
    if not path.exists():
        raise DataError("run folder has no meta.json", path=str(run_dir))
    meta = _read_json(path, {})
    for key in _META_STRINGS:
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(f"'{key}' must be a string, got {type(value).__name__} {value!r:.60}", path=str(path))
    tags = meta.get("tags", {})
    if tags is None:
        tags = {}
    if not isinstance(tags, dict):
        raise DataError(f"'tags' must be an object, got {type(tags).__name__}", path=str(path))
    meta["tags"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()}
    meta["run_id"] = run_dir.name  # the folder is what get_run() finds a run by
    return meta


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_metric_entry(pair: Any) -> bool:
    """Whether ``pair`` is ``[int step, number or null]``."""
    if not isinstance(pair, list) or len(pair) != 2:
        return False
    return isinstance(pair[0], int) and not isinstance(pair[0], bool) and (pair[1] is None or _is_number(pair[1]))


def _read_metrics(run_dir: Path) -> dict[str, list[list[Any]]]:
    """``metrics.json`` of ``run_dir``, checked: each metric is a list of ``[step, number or null]`` pairs."""
    path = run_dir / "metrics.json"
    metrics = _read_json(path, {})
    for name, history in metrics.items():
        if not isinstance(history, list):
            raise DataError(f"metric {name!r} must be a list of [step, value] pairs", path=str(path))
        for pair in history:
            if not _is_metric_entry(pair):
                raise DataError(f"metric {name!r} has an entry {pair!r:.60} that is not [step, number]",
                                path=str(path))  # fmt: skip
    return metrics


def _last_value(history: list[list[Any]]) -> float:
    """The last logged value of a metric history as a float (NaN for a value stored as null)."""
    value = history[-1][1]
    return math.nan if value is None else float(value)


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

    def _experiment_dir(self, experiment: str) -> Path:
        """The folder of ``experiment`` (created), refused when a link there leads outside ``uri``."""
        folder = self.uri / safe_component(experiment, "experiment")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create the folder of experiment {experiment!r} in {self.uri}: "
                           f"{exc.strerror or exc}") from None  # fmt: skip
        if not inside(folder, self.uri):
            raise RunError(f"the folder of experiment {experiment!r} ({folder}) leads outside the runs folder "
                           f"{self.uri}; remove the link or choose another experiment name")  # fmt: skip
        return folder

    def start_run(self, experiment: str, run_name: str | None = None) -> LocalRun:
        """Create ``<uri>/<experiment folder>/<run_id>/`` (with its ``meta.json``) and return its run."""
        if run_name is not None and not isinstance(run_name, str):
            raise ConfigError(f"run name must be a string, got {type(run_name).__name__}", path="run_name")
        folder = self._experiment_dir(experiment)
        for _ in range(8):
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            run_id = f"{stamp}-{secrets.token_hex(3)}"
            root = folder / run_id
            if root.exists():
                continue
            staging = folder / f".{run_id}.starting"
            try:
                staging.mkdir()
            except FileExistsError:  # another process is starting a run of the same id
                continue
            meta = {"run_id": run_id, "experiment": experiment, "run_name": run_name or run_id,
                    "status": "RUNNING", "start_time": _now(), "tags": {}}  # fmt: skip
            _write_json(staging / "meta.json", meta)
            try:
                os.rename(staging, root)
            except OSError as exc:
                (staging / "meta.json").unlink()
                staging.rmdir()
                if root.exists():  # another run took the name meanwhile
                    continue
                raise RunError(f"cannot create run folder {root}: {exc.strerror or exc}") from None
            return LocalRun(root, experiment, run_id)
        raise RunError(f"could not find a free run id in {folder}")

    def _entries(self, folder: Path, *, quiet: bool) -> Iterator[Path]:
        """The visible sub-folders of ``folder``; other entries are skipped (with a warning unless ``quiet``)."""
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            if folder == self.uri:
                raise DataError(f"cannot read the runs folder: {exc.strerror or exc}", path=str(folder)) from None
            if not quiet:
                logger.warning("skipping %s: cannot read it (%s)", folder, exc.strerror or exc)
            return
        for entry in entries:
            if entry.name.startswith("."):  # runs being started, editors' and systems' files
                continue
            if entry.is_dir():
                yield entry
            elif not quiet:
                what = "experiment" if folder == self.uri else "run"
                logger.warning("skipping %s: a file where a%s %s folder should be", entry,
                               "n" if what == "experiment" else "", what)  # fmt: skip

    def _experiment_dirs(self, experiment: str | None, *, quiet: bool) -> list[Path]:
        if not self.uri.exists():
            return []
        if not self.uri.is_dir():
            raise DataError("the runs folder is a file, not a folder", path=str(self.uri))
        if experiment is None:
            return list(self._entries(self.uri, quiet=quiet))
        names = {safe_component(experiment, "experiment")}
        if _is_plain_name(experiment) and not experiment.startswith(".") and len(experiment.encode(
                "utf-8", "surrogatepass")) <= 255:  # fmt: skip
            names.add(experiment)  # a folder made before names were escaped
        return [self.uri / n for n in sorted(names) if _is_dir(self.uri / n)]

    def _run_dirs(self, experiment: str | None, *, quiet: bool = False) -> list[Path]:
        return [d for e in self._experiment_dirs(experiment, quiet=quiet) for d in self._entries(e, quiet=quiet)]

    def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Run summaries (meta plus the last value of each metric, NaN for a NaN value), newest first.

        A folder that cannot be read as a run is skipped with a warning that names it.
        """
        runs = []
        for run_dir in self._run_dirs(experiment):
            try:
                meta = _read_meta(run_dir)
                metrics = _read_metrics(run_dir)
            except DataError as exc:
                logger.warning("skipping a run folder that cannot be read: %s", exc)
                continue
            if experiment is not None and meta.get("experiment", experiment) != experiment:
                continue  # a folder named like another experiment's escaped name
            meta["metrics"] = {k: _last_value(v) for k, v in metrics.items() if v}
            runs.append(_printable(meta))
        return sorted(runs, key=lambda m: (m.get("start_time") or "", m["run_id"]), reverse=True)

    def _find(self, run_id: str) -> Path | None:
        if not _is_plain_name(run_id) or run_id.startswith("."):
            return None
        for experiment_dir in self._experiment_dirs(None, quiet=True):
            candidate = experiment_dir / run_id
            if candidate.exists() or candidate.is_symlink():
                return candidate
        return None

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Everything stored about ``run_id``: meta, params, metric histories and artifact names.

        :raises UnknownComponentError: no run folder has that name.
        :raises DataError: naming the folder or file, when the run's folder cannot be read.
        """
        run_dir = self._find(run_id)
        if run_dir is None:
            known = [d.name for d in self._run_dirs(None, quiet=True)]
            raise UnknownComponentError("run", str(run_id), known)
        if not run_dir.is_dir():
            raise DataError(f"run {run_id} is a file, not a run folder", path=str(run_dir))
        meta = _read_meta(run_dir)
        meta["params"] = _read_json(run_dir / "params.json", {})
        meta["metrics"] = _read_metrics(run_dir)
        art = run_dir / "artifacts"
        try:
            meta["artifacts"] = sorted(p.name for p in art.iterdir()) if art.exists() else []
        except OSError as exc:
            raise DataError(f"cannot list the run's artifacts: {exc.strerror or exc}", path=str(art)) from None
        meta["path"] = str(run_dir)
        return _printable(meta)
