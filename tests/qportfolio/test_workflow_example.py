"""``examples/workflow_enhanced_indexing.yaml`` end to end on a small store: LightGBM on Alpha158 → risk data →
enhanced indexing against the csi300-like benchmark → tracking error and information ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from qportfolio.risk.riskdata import RiskData, read_meta

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflow_enhanced_indexing.yaml"


@pytest.mark.slow
def test_enhanced_indexing_workflow_runs(small_store: Path, tmp_path: Path, pkernel: Any) -> None:
    from qcore.config import load_config
    from qcore.runner import run_workflow

    calendar = pkernel.create("data_provider", "qlib_bin", provider_uri=str(small_store)).calendar()
    last = calendar[-2].date()
    riskdata = tmp_path / "riskdata"
    overrides = [
        "dataset.segments.train=[2020-01-02, 2020-12-31]",
        "dataset.segments.valid=[2021-01-04, 2021-03-31]",
        f"dataset.segments.test=[2021-04-01, {calendar[-1].date()}]",
        "model.kwargs.num_boost_round=20",
        "model.kwargs.early_stopping_rounds=5",
        "backtest.start=2021-04-02",
        f"backtest.end={last}",
        "records.2.kwargs.window=60",
        "records.2.kwargs.model.kwargs.num_factors=4",
        f"recorder.kwargs.uri={tmp_path / 'runs'}",
    ]
    environ = {"QCORE_DATA": str(small_store), "QCORE_RISKDATA": str(riskdata)}
    config = load_config(EXAMPLE, overrides, environ=environ, kernel=pkernel)
    result = run_workflow(config, pkernel)
    metrics = result.metrics
    days = RiskData(riskdata).days
    assert days[0] == pd.Timestamp("2021-04-01") and days[-1] == pd.Timestamp(last)  # T-1 of the first bar on
    assert metrics["risk.days_written"] == len(days) and metrics["risk.factors"] == 4
    assert read_meta(riskdata)["universe"] == "csi300"
    assert 0 < metrics["portfolio.tracking_error"] < 0.5
    assert "portfolio.information_ratio_with_cost" in metrics and "backtest.excess.information_ratio" in metrics
    rows = dict(pkernel.run_summary(config, result))
    assert "Tracking error (realised, annualised)" in rows and "Information ratio (active, with cost)" in rows
