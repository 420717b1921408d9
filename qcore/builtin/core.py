"""The kernel's own plugin: the built-in component kinds, the local recorder (runs are tracked without any extra
package) and the signal record."""

from __future__ import annotations

from qcore.builtin.kinds import BUILTIN_KINDS
from qcore.plugins import hookimpl
from qcore.registry import KindRegistrar, Registrar, lazy


@hookimpl
def qcore_register_kinds(register_kind: KindRegistrar) -> None:
    for spec in BUILTIN_KINDS:
        register_kind(spec)


@hookimpl
def qcore_register_recorders(register: Registrar) -> None:
    register("local", lazy("qcore.recorders.local:LocalRecorder",
                           description="Runs stored as folders of JSON and Parquet files (no pickle), under ``uri`` "
                                       "(default ``./runs``)."), aliases=("file",))  # fmt: skip


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    register("signal", lazy("qcore.builtin.records:SignalRecord",
                            description="Store predictions and the raw label (Qlib's SignalRecord)."),
             aliases=("SignalRecord",))  # fmt: skip
