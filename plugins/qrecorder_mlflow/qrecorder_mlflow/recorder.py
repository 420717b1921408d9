"""A :class:`qcore.protocols.Recorder` backed by MLflow.

The default backend is a sqlite database in the working directory (``sqlite:///mlflow.db``): MLflow's file store
is deprecated and refused by recent versions. Artifacts go to ``mlartifacts/<experiment folder>/`` (the
experiment's name made a safe file name, so ``../x`` or ``/abs`` stay inside) unless the experiment already has a
location; an artifact's file name is made safe the same way. Everything goes through one
:class:`mlflow.tracking.MlflowClient`, so no global MLflow state (active run, tracking URI) is touched, and
anything MLflow refuses (a parameter or tag name it does not allow, a name over its length limits) becomes a
:class:`~qcore.errors.RunError` saying what was being logged.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from qcore.errors import ConfigError, OptionalDependencyError, RunError, UnknownComponentError
from qcore.recorders.common import flatten, inside, safe_component, write_artifact

#: MLflow rejects longer parameter values.
_MAX_PARAM_LENGTH = 6000


def default_tracking_uri(folder: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<folder>/mlflow.db`` (folder: the working directory)."""
    path = Path(folder or Path.cwd()).resolve() / "mlflow.db"
    return f"sqlite:///{path}"


#: MLflow 3 sends usage telemetry to its servers unless told not to; qcore works offline and sends nothing, so the
#: recorder turns it off before MLflow is first imported. A user who sets the variable (to ``false``) keeps theirs.
TELEMETRY_SWITCH = "MLFLOW_DISABLE_TELEMETRY"


def _client(tracking_uri: str) -> Any:
    os.environ.setdefault(TELEMETRY_SWITCH, "true")  # before the import: MLflow reads it when it starts
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:  # pragma: no cover - the distribution depends on mlflow
        raise OptionalDependencyError("the mlflow recorder", "mlflow", "pip install qrecorder-mlflow") from exc
    with _refused(f"open the tracking store {tracking_uri}"):
        return MlflowClient(tracking_uri=tracking_uri)


def _store_errors() -> tuple[type[BaseException], ...]:
    """The errors of a tracking store that refuses a call or cannot be opened (a file that is not a database)."""
    from mlflow.exceptions import MlflowException

    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - mlflow's sqlite store needs SQLAlchemy
        return (MlflowException, UnicodeEncodeError)
    return (MlflowException, SQLAlchemyError, UnicodeEncodeError)  # a lone surrogate cannot be stored


@contextlib.contextmanager
def _refused(what: str) -> Iterator[None]:
    """Turn an error MLflow raises on purpose into a :class:`RunError` that says ``what`` was being done."""
    try:
        yield
    except _store_errors() as exc:
        reason = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise RunError(f"mlflow refused to {what}: {reason}") from None


#: The tag with which the kernel names a run's parent run (:mod:`qcore.rolling`).
PARENT_TAG = "qcore.parent_run_id"


def _short(name: str) -> str:
    """``repr(name)``, cut to 60 characters for messages."""
    text = repr(name)
    return text if len(text) <= 60 else f"{text[:57]}..."


class MlflowRun:
    """One MLflow run, written through the client.

    :param artifact_uri: the run's artifact location (as MLflow reported it when the run was created).
    """

    def __init__(self, client: Any, run_id: str, artifact_uri: str) -> None:
        self._client = client
        self.run_id = run_id
        self.artifact_uri = artifact_uri

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flattened params; values are stringified and cut to MLflow's limit."""
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MAX_PARAM_LENGTH]) for k, v in flatten(params).items()]
        with _refused(f"log the params of run {self.run_id}"):
            for start in range(0, len(items), 100):
                self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric metrics at ``step`` (0 when not given)."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(str(k), float(v), now, step or 0) for k, v in metrics.items()]
        with _refused(f"log the metrics of run {self.run_id}"):
            for start in range(0, len(items), 500):
                self._client.log_batch(self.run_id, metrics=items[start : start + 500])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set string tags. The kernel's ``qcore.parent_run_id`` (a rolling window's run names its parent) is also
        set as ``mlflow.parentRunId``, so the MLflow UI nests the run under its parent."""
        from mlflow.entities import RunTag

        items = {str(k): str(v) for k, v in tags.items()}
        if PARENT_TAG in items:
            items["mlflow.parentRunId"] = items[PARENT_TAG]
        with _refused(f"set the tags of run {self.run_id}"):
            self._client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in items.items()])

    def log_artifact(self, name: str, obj: Any) -> str:
        """Serialise ``obj`` as the local recorder does (Parquet, JSON, text, a copied file) and upload it
        directly into the run's artifact folder (under a safe file name, see
        :func:`~qcore.recorders.common.safe_component`)."""
        with tempfile.TemporaryDirectory(prefix="qcore-artifact-") as tmp:
            path = write_artifact(Path(tmp), name, obj)
            with _refused(f"store artifact {_short(name)} of run {self.run_id}"):
                self._client.log_artifact(self.run_id, str(path))
            return f"{self.artifact_uri}/{path.name}"

    def end(self, status: str = "FINISHED") -> None:
        """Terminate the run with ``status``."""
        with _refused(f"end run {self.run_id}"):
            self._client.set_terminated(self.run_id, status=status)


class MlflowRecorder:
    """Experiments and runs in an MLflow tracking store.

    :param tracking_uri: any MLflow tracking URI (``http://127.0.0.1:5000``, ``sqlite:///x.db``...); default
        :func:`default_tracking_uri`.
    :param artifact_root: where new experiments keep artifacts when the store is a local database.
    :param uri: the location argument every recorder takes (``qcore runs --uri``): the tracking URI, as
        ``tracking_uri`` (give one of them).
    """

    def __init__(self, tracking_uri: str | None = None, artifact_root: str | os.PathLike[str] | None = None,
                 uri: str | None = None) -> None:  # fmt: skip
        if uri is not None and tracking_uri is not None and uri != tracking_uri:
            raise ConfigError(f"uri {uri!r} and tracking_uri {tracking_uri!r} name two stores: give one of them",
                              path="uri")  # fmt: skip
        self.tracking_uri = tracking_uri or uri or default_tracking_uri()
        self.artifact_root = Path(artifact_root or Path.cwd() / "mlartifacts").resolve()

    @cached_property
    def _client(self) -> Any:
        """The MLflow client, made on first use: importing mlflow and opening (or creating) the store takes
        seconds, which a workflow spends while its first steps run (see :class:`qcore.tracking.BackgroundRun`)."""
        return _client(self.tracking_uri)

    def artifact_location(self, experiment: str) -> Path:
        """Where a new experiment of a local store keeps its artifacts: a safe folder inside ``artifact_root``.

        :raises RunError: a link there leads outside ``artifact_root``.
        """
        folder = self.artifact_root / safe_component(experiment, "experiment")
        if os.path.lexists(folder) and not inside(folder, self.artifact_root):
            raise RunError(f"the artifact folder of experiment {_short(experiment)} ({folder}) leads outside "
                           f"{self.artifact_root}; remove the link or choose another experiment name")  # fmt: skip
        return folder

    def _experiment_id(self, name: str, create: bool) -> str | None:
        with _refused(f"look up experiment {_short(name)}"):
            experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        if not create:
            return None
        location = None
        if not self.tracking_uri.startswith(("http://", "https://", "databricks")):
            location = self.artifact_location(name).as_uri()
        with _refused(f"create experiment {_short(name)}"):
            return self._client.create_experiment(name, artifact_location=location)

    def start_run(self, experiment: str, run_name: str | None = None) -> MlflowRun:
        """Open a run in ``experiment`` (created if needed)."""
        safe_component(experiment, "experiment")  # a string, not empty
        experiment_id = self._experiment_id(experiment, create=True)
        with _refused(f"start a run in experiment {_short(experiment)}"):
            run = self._client.create_run(experiment_id, run_name=run_name)
        return MlflowRun(self._client, run.info.run_id, run.info.artifact_uri)

    def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Run summaries, newest first."""
        if experiment is not None:
            ids = [i for i in [self._experiment_id(experiment, create=False)] if i is not None]
        else:
            with _refused("list the experiments"):
                ids = [e.experiment_id for e in self._client.search_experiments()]
        if not ids:
            return []
        with _refused("list the runs"):
            runs = self._client.search_runs(ids, order_by=["attributes.start_time DESC"])
            return [self._summary(r) for r in runs]

    def _summary(self, run: Any) -> dict[str, Any]:
        experiment = self._client.get_experiment(run.info.experiment_id)
        return {
            "run_id": run.info.run_id,
            "experiment": experiment.name,
            "run_name": run.info.run_name,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            "metrics": dict(run.data.metrics),
        }

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Everything about one run: summary, params, metric histories and artifact names."""
        from mlflow.exceptions import MlflowException

        try:
            run = self._client.get_run(run_id)
        except MlflowException:
            raise UnknownComponentError("run", run_id, [r["run_id"] for r in self.list_runs()]) from None
        with _refused(f"read run {_short(run_id)}"):
            summary = self._summary(run)
            summary["params"] = dict(run.data.params)
            summary["metrics"] = {key: [[m.step, m.value] for m in self._client.get_metric_history(run_id, key)]
                                  for key in run.data.metrics}  # fmt: skip
            summary["artifacts"] = sorted(a.path for a in self._client.list_artifacts(run_id))
        summary["path"] = run.info.artifact_uri
        return summary
