"""The kernel's own plugin: the built-in component kinds, the local recorder (runs are tracked without any extra
package), the signal record, and what a workflow does and prints with them (its default record, the summary rows
of the kernel's own steps, where a local run is stored)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from qcore.builtin.kinds import BUILTIN_KINDS
from qcore.plugins import hookimpl
from qcore.registry import KindRegistrar, Registrar, lazy

if TYPE_CHECKING:
    from qcore.config import WorkflowConfig
    from qcore.context import RunResult

#: The local recorder's names (its registry name and alias).
LOCAL_RECORDER = ("local", "file")
#: Metric prefixes of the kernel's own workflow steps (data, dataset, model), and the signal record's metric.
KERNEL_METRICS = ("data.", "dataset.", "model.", "rolling.")
SIGNAL_METRICS = ("signal.rows",)


@hookimpl
def qcore_register_kinds(register_kind: KindRegistrar) -> None:
    for spec in BUILTIN_KINDS:
        register_kind(spec)


@hookimpl
def qcore_register_recorders(register: Registrar) -> None:
    register(LOCAL_RECORDER[0], lazy("qcore.recorders.local:LocalRecorder",
                                     description="Runs stored as folders of JSON and Parquet files (no pickle), under "
                                                 "``uri`` (default ``./runs``)."),
             aliases=LOCAL_RECORDER[1:])  # fmt: skip


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    register("signal", lazy("qcore.builtin.records:SignalRecord",
                            description="Store predictions and the raw label (Qlib's SignalRecord)."),
             aliases=("SignalRecord",))  # fmt: skip


@hookimpl
def qcore_register_execution_backends(register: Registrar) -> None:
    register("serial", lazy("qcore.backends:SerialBackend",
                            description="Tasks one after the other in this process (the default)."))
    register("processes", lazy("qcore.backends:ProcessesBackend",
                               description="Tasks in local worker processes (``max_workers``, ``start_method``)."),
             aliases=("local",))  # fmt: skip


@hookimpl
def qcore_default_records(config: WorkflowConfig) -> Sequence[str]:
    """A workflow with a model stores its predictions and label (the signal record)."""
    return ["signal"] if config.model is not None else []


@hookimpl(trylast=True)
def qcore_run_summary(config: WorkflowConfig, result: RunResult) -> Sequence[tuple[str, str]]:
    """The metrics of the kernel's own steps and of the signal record, by key, below the plugins' headline rows."""
    return [(key, f"{value:.6g}") for key, value in result.metrics.items()
            if key.startswith(KERNEL_METRICS) or key in SIGNAL_METRICS]  # fmt: skip


@hookimpl
def qcore_run_hints(config: WorkflowConfig, result: RunResult) -> Sequence[str]:
    """Where the run's artifacts are; for a local run, its folder and the command that shows everything in it."""
    folders = sorted({str(Path(path).parent) for path in result.artifacts.values()})
    if config.recorder.name not in LOCAL_RECORDER:
        return [f"artifacts: {folder}" for folder in folders]
    uri = config.recorder.kwargs.get("uri", "runs")
    runs = sorted({str(Path(folder).parent) for folder in folders})
    return [f"run folder: {run} (qcore runs --uri {uri} show {result.run_id})" for run in runs]
