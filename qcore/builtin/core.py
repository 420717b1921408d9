"""The kernel's own plugin: the local recorder, so qcore tracks runs without any extra package."""

from __future__ import annotations

from typing import Any

from qcore.plugins import hookimpl


def _local_recorder(**kwargs: Any) -> Any:
    """Runs stored as folders of JSON and Parquet files (no pickle), under ``uri`` (default ``./runs``)."""
    from qcore.recorders.local import LocalRecorder

    return LocalRecorder(**kwargs)


@hookimpl
def qcore_register_recorders(register: Any) -> None:
    register("local", _local_recorder, aliases=("file",))
