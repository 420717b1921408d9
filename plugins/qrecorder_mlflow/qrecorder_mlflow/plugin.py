"""Hook implementations: registers the ``mlflow`` recorder (mlflow is imported only when it is built)."""

from __future__ import annotations

from qcore import Registrar, hookimpl, lazy


@hookimpl
def qcore_register_recorders(register: Registrar) -> None:
    register("mlflow", lazy("qrecorder_mlflow.recorder:MlflowRecorder",
                            description="MLflow tracking; a sqlite database ``./mlflow.db`` by default, any tracking "
                                        "URI works."))  # fmt: skip
