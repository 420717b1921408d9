"""The ``analysis`` record: artifacts, report sections (and the builder a later backtest calls), standalone page."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from qanalysis.records import AnalysisRecord

from qcore.context import RunState
from qcore.reporting import ReportSection, collect_sections

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"


def _context(sections: dict) -> SimpleNamespace:
    state = RunState(pred=pd.read_parquet(DATA / "score.parquet")["score"],
                     label=pd.read_parquet(DATA / "label.parquet")["label"].astype(float))  # fmt: skip
    config = SimpleNamespace(sections=sections, experiment="t", data=None)
    return SimpleNamespace(state=state, config=config)


def _trading(state: RunState) -> SimpleNamespace:
    """Equal weights in the 10 best-scored names of each date, and a report with a flat benchmark."""
    pred = state.pred
    top = pred.groupby(level="datetime", group_keys=False).nlargest(10)
    positions = pd.DataFrame({"weight": 0.095}, index=top.index)
    dates = pred.index.get_level_values("datetime").unique()
    rng = np.random.default_rng(0)
    report = pd.DataFrame({"return": rng.normal(0.001, 0.01, len(dates)), "bench": 0.0, "cost": 0.0001,
                           "turnover": 0.2}, index=dates)  # fmt: skip
    return SimpleNamespace(report=report, positions=positions)


def test_without_backtest_writes_a_standalone_page() -> None:
    context = _context({})
    output = AnalysisRecord(ic_decay=0).generate(context)
    assert "analysis_group_returns" in output.artifacts and "analysis.html" in output.artifacts
    assert abs(output.metrics["analysis.IC"] - pd.read_parquet(DATA / "ic.parquet")["IC"].mean()) < 1e-6
    assert all(isinstance(s, ReportSection) for s in context.state.report_sections)
    assert len(output.artifacts["analysis.html"]) < 1_000_000


def test_before_a_backtest_leaves_a_builder_for_position_sections() -> None:
    context = _context({"backtest": {}})
    AnalysisRecord(ic_decay=0).generate(context)
    assert collect_sections(context.state)[-1].anchor == "qa-coverage"  # nothing traded yet: no position section
    context.state.trading = _trading(context.state)
    anchors = [s.anchor for s in collect_sections(context.state)]
    assert {"qa-cum-status", "qa-rank-label", "qa-holdings", "qa-monthly-risk"} <= set(anchors)


def test_after_a_backtest_stores_position_artifacts() -> None:
    context = _context({"backtest": {}})
    context.state.trading = _trading(context.state)
    output = AnalysisRecord(ic_decay=0).generate(context)
    holdings = output.artifacts["analysis_holdings"]
    assert (holdings["count"] == 10).all() and np.allclose(holdings["effective_n"], 10)
    status = output.artifacts["analysis_cumulative_return_by_status"]
    assert {"cum_buy", "cum_sell", "cum_hold"} <= set(status.columns)
    ranks = output.artifacts["analysis_rank_label"]
    assert ((ranks >= 0) & (ranks <= 100)).all().all()
