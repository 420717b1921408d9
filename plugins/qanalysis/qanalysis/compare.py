"""Two (or more) stored runs side by side: their equity, excess return, drawdown and IC curves, drawn from the
artifacts the backtest (``report_normal_1day``) and the signal records (``ic`` or ``analysis_ic``) stored."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from qanalysis import charts
from qcore.errors import DataError
from qcore.reporting import ComparedRun, ReportSection

#: The backtest's daily report, and the per-date IC (the analysis record's, else the signal-analysis record's).
REPORT = ("report_normal_1day.parquet",)
IC = ("analysis_ic.parquet", "ic.parquet")


def read_artifact(run: ComparedRun, names: Sequence[str], columns: Sequence[str]) -> pd.DataFrame | None:
    """The first of ``names`` the run stored, as a frame by date with ``columns``; None when it stored none.

    :raises DataError: the file cannot be read or lacks one of ``columns``.
    """
    path: Path | None = next((run.artifacts[n] for n in names if n in run.artifacts), None)
    if path is None:
        return None
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise DataError(f"artifact of run {run.run_id} is not readable Parquet: {exc}", path=str(path)) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"artifact of run {run.run_id} has no column {', '.join(missing)}", path=str(path))
    frame = frame[list(columns)].astype("float64")
    frame.index = pd.DatetimeIndex(frame.index, name="datetime")
    return frame.sort_index()


def _net(report: pd.DataFrame) -> pd.Series:
    return (1.0 + report["return"] - report["cost"]).cumprod() - 1.0


def _excess(report: pd.DataFrame) -> pd.Series:
    return (report["return"] - report["bench"] - report["cost"]).cumsum()


def _drawdown(report: pd.DataFrame) -> pd.Series:
    wealth = 1.0 + _net(report)
    return wealth / wealth.cummax().clip(lower=1.0) - 1.0


def _side_by_side(frames: dict[str, pd.DataFrame], curve: Callable[[pd.DataFrame], pd.Series]) -> pd.DataFrame:
    """One column per run (its label), over the union of the runs' dates."""
    return pd.DataFrame({label: curve(frame) for label, frame in frames.items()})


def _missing_note(runs: Sequence[ComparedRun], frames: dict[str, pd.DataFrame], what: str) -> str:
    absent = [run.label for run in runs if run.label not in frames]
    if not absent:
        return ""
    return f"<p class='note'>{html.escape(', '.join(absent))}: no {html.escape(what)} stored.</p>"


def comparison_sections(runs: Sequence[ComparedRun]) -> list[ReportSection]:
    """The runs' curves as report sections: net cumulative return, cumulative excess return with cost, drawdown
    (from ``report_normal_1day``), IC and Rank IC by date (from ``analysis_ic``/``ic``). A curve a run lacks is
    named in a note; a section no run has data for is left out."""
    reports = {run.label: f for run in runs
               if (f := read_artifact(run, REPORT, ("return", "cost", "bench"))) is not None}  # fmt: skip
    ics = {run.label: f for run in runs if (f := read_artifact(run, IC, ("IC", "RankIC"))) is not None}
    sections = []
    if reports:
        note = _missing_note(runs, reports, "backtest report (report_normal_1day)")
        for title, chart_id, curve in (
            ("Compared: cumulative return net of cost", "cmp-equity", _net),
            ("Compared: cumulative excess return with cost (sum)", "cmp-excess", _excess),
            ("Compared: drawdown net of cost", "cmp-drawdown", _drawdown),
        ):
            body = charts.line_chart(chart_id, _side_by_side(reports, curve)) + note
            sections.append(ReportSection(title, body, f"compare-{chart_id[4:]}"))
    if ics:
        note = _missing_note(runs, ics, "per-date IC (analysis_ic or ic)")
        for title, chart_id, column in (("Compared: IC by date", "cmp-ic", "IC"),
                                        ("Compared: Rank IC by date", "cmp-rank-ic", "RankIC")):  # fmt: skip
            body = charts.line_chart(chart_id, _side_by_side(ics, lambda f, c=column: f[c])) + note
            sections.append(ReportSection(title, body, f"compare-{chart_id[4:]}"))
    return sections
