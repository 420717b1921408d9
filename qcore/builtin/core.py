"""The kernel's own plugin: the local recorder (runs are tracked without any extra package) and the signal record."""

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


def _signal_record(**kwargs: Any) -> Any:
    """Store predictions and the raw label (Qlib's SignalRecord)."""
    from qcore.builtin.records import SignalRecord

    return SignalRecord(**kwargs)


@hookimpl
def qcore_register_records(register: Any) -> None:
    register("signal", _signal_record, aliases=("SignalRecord",))
