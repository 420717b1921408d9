"""Hook implementations: registers the ``mlflow`` recorder (mlflow is imported only when it is built) and, after a
run it recorded, the ``mlflow ui`` line that browses it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from qcore import Registrar, hookimpl, lazy

if TYPE_CHECKING:
    from qcore.config import WorkflowConfig
    from qcore.context import RunResult

#: The recorder's registry name.
NAME = "mlflow"


@hookimpl
def qcore_register_recorders(register: Registrar) -> None:
    register(NAME, lazy("qrecorder_mlflow.recorder:MlflowRecorder",
                        description="MLflow tracking; a sqlite database ``./mlflow.db`` by default, any tracking URI "
                                    "works (``uri`` or ``tracking_uri``)."))  # fmt: skip


@hookimpl
def qcore_run_hints(config: WorkflowConfig, result: RunResult) -> Sequence[str]:
    """``mlflow ui --backend-store-uri ...`` for a run this plugin's recorder tracked."""
    if config.recorder.name != NAME:
        return []
    from qrecorder_mlflow.recorder import default_tracking_uri

    kwargs = config.recorder.kwargs
    uri = kwargs.get("tracking_uri") or kwargs.get("uri") or default_tracking_uri()
    return [f"browse runs: mlflow ui --backend-store-uri {uri}"]
