"""Hook implementations of the analysis plugin: the ``analysis`` record (a default record of a workflow with a
model), the report path ``qcore run`` prints, ``qcore analyze`` and the curves of ``qcore runs compare --html``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qcore import Registrar, hookimpl, lazy

if TYPE_CHECKING:
    from qcore.config import WorkflowConfig
    from qcore.context import RunResult
    from qcore.reporting import ComparedRun, ReportSection


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    """Register the analysis record."""
    register("analysis", lazy("qanalysis.records:AnalysisRecord",
                              description="Signal analysis (quantile groups, IC by date/month, IC decay, "
                                          "auto-correlation, turnover) and position analysis, in the HTML report."))


@hookimpl(trylast=True)
def qcore_default_records(config: WorkflowConfig) -> Sequence[str]:
    """A workflow with a model analyses its signal: after the other plugins' signal records (trylast: it reuses the
    per-date IC a ``sig_analysis`` left), before a backtest (trylast too, a later plugin), whose report shows the
    sections."""
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


@hookimpl
def qcore_render_comparison(runs: Sequence[ComparedRun]) -> Sequence[ReportSection]:
    """The compared runs' equity, excess return, drawdown and IC curves."""
    from qanalysis.compare import comparison_sections

    return comparison_sections(runs)
