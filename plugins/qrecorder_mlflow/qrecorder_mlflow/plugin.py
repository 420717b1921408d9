"""Hook implementations: registers the ``mlflow`` recorder (mlflow is imported only when it is built)."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


def _mlflow_recorder(**kwargs: Any) -> Any:
    """MLflow tracking; a sqlite database ``./mlflow.db`` by default, any tracking URI works."""
    from qrecorder_mlflow.recorder import MlflowRecorder

    return MlflowRecorder(**kwargs)


@hookimpl
def qcore_register_recorders(register: Any) -> None:
    register("mlflow", _mlflow_recorder)
