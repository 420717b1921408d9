"""Hook implementations of the analysis plugin: the ``analysis`` record (a default record of a workflow with a
model), the report path ``qcore run`` prints, and ``qcore analyze``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qcore import Registrar, hookimpl, lazy

if TYPE_CHECKING:
    from qcore.config import WorkflowConfig
    from qcore.context import RunResult


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    """Register the analysis record."""
    register("analysis", lazy("qanalysis.records:AnalysisRecord",
                              description="Signal analysis (quantile groups, IC by date/month, IC decay, "
                                          "auto-correlation, turnover) and position analysis, in the HTML report."))


@hookimpl
def qcore_default_records(config: WorkflowConfig) -> Sequence[str]:
    """A workflow with a model analyses its signal (before a backtest, whose report shows the sections)."""
    return ["analysis"] if config.model is not None else []


@hookimpl
def qcore_run_hints(config: WorkflowConfig, result: RunResult) -> Sequence[str]:
    """Where the standalone analysis page is, when one was written."""
    path = result.artifacts.get("analysis.html")
    return [f"Analysis report: {path}"] if path else []


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    """``qcore analyze``."""
    from qanalysis.cli import analyze_command

    cli.add_command(analyze_command)
