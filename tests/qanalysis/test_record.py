"""The ``analysis`` record: artifacts, report sections (and the builder a later backtest calls), standalone page."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from qanalysis.records import AnalysisRecord
from qanalysis.signal import calc_ic

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


def test_reuses_the_ic_an_earlier_signal_record_left() -> None:
    context = _context({})
    own = AnalysisRecord(ic_decay=0).generate(context).artifacts["analysis_ic"]
    context = _context({})
    context.state.ic = own * 0.5  # what a sig_analysis before it left (halved, so reuse shows)
    output = AnalysisRecord(ic_decay=0).generate(context)
    pd.testing.assert_frame_equal(output.artifacts["analysis_ic"], own * 0.5)
    assert output.metrics["analysis.IC"] == pytest.approx(own["IC"].mean() * 0.5, rel=1e-12)


def test_a_date_of_equal_scores_has_no_ic() -> None:
    """As the ``sig_analysis`` record: NaN, where pandas' ``corr`` (Qlib) gives NaN or a ~1e-17 residue of the
    rounded mean, depending on the count; other dates equal pandas."""
    names = list("ABCDEFG")  # the mean of seven equal scores rounds: residues of ~1e-19 around it
    dates = pd.to_datetime(["2020-01-02"] * 7 + ["2020-01-03"] * 7)
    index = pd.MultiIndex.from_arrays([dates, names * 2], names=["datetime", "instrument"])
    pred = pd.Series([-7.290836e-04] * 7 + [0.1, 0.3, 0.2, 0.4, 0.0, -0.1, 0.25], index=index)
    label = pd.Series(np.random.default_rng(3).normal(0, 0.02, 14), index=index)
    ic = calc_ic(pred, label)
    with np.errstate(invalid="ignore", divide="ignore"):  # pandas' own constant-column division
        expected = pd.DataFrame({"score": pred, "label": label}).groupby(level="datetime").apply(
            lambda d: d["score"].corr(d["label"]))
    assert np.isnan(ic["IC"].iloc[0]) and abs(expected.iloc[0]) < 1e-15  # pandas (Qlib): a rounding residue
    assert ic["IC"].iloc[1] == pytest.approx(expected.iloc[1], rel=1e-12)


def test_report_of_a_long_run_stays_small() -> None:
    """Charts are thinned: 1,500 dates of 100 names make a page far below a few MB."""
    rng = np.random.default_rng(1)
    dates = pd.bdate_range("2015-01-05", periods=1500)
    index = pd.MultiIndex.from_product([dates, [f"S{i:03d}" for i in range(100)]], names=["datetime", "instrument"])
    label = pd.Series(rng.normal(0, 0.02, len(index)), index=index)
    pred = label * 0.1 + pd.Series(rng.normal(0, 0.02, len(index)), index=index)
    context = SimpleNamespace(state=RunState(pred=pred, label=label),
                              config=SimpleNamespace(sections={}, experiment="t", data=None))  # fmt: skip
    page = AnalysisRecord(ic_decay=0).generate(context).artifacts["analysis.html"]
    assert "qa-group-returns" in page and len(page.encode()) < 1_500_000
