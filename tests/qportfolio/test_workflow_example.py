"""``examples/workflow_enhanced_indexing.yaml`` end to end on a small store: LightGBM on Alpha158 → risk data →
enhanced indexing against the csi300-like benchmark → tracking error and information ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from qportfolio.risk.riskdata import RiskData, read_meta

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflow_enhanced_indexing.yaml"
LONG_SHORT = EXAMPLE.with_name("workflow_long_short.yaml")


def _overrides(calendar: pd.DatetimeIndex, tmp_path: Path) -> list[str]:
    """The examples shrunk to the small store: short training, a 60-day, 4-factor risk model."""
    return [
        "dataset.segments.train=[2020-01-02, 2020-12-31]",
        "dataset.segments.valid=[2021-01-04, 2021-03-31]",
        f"dataset.segments.test=[2021-04-01, {calendar[-1].date()}]",
        "model.kwargs.num_boost_round=20",
        "model.kwargs.early_stopping_rounds=5",
        "backtest.start=2021-04-02",
        f"backtest.end={calendar[-2].date()}",
        "records.2.kwargs.window=60",
        "records.2.kwargs.model.kwargs.num_factors=4",
        f"recorder.kwargs.uri={tmp_path / 'runs'}",
    ]


def _artifact(result: Any, name: str) -> Path:
    """The stored file of artifact ``name`` (the recorder may key it with or without its suffix)."""
    key = next((k for k in result.artifacts if k == name or k.split(".")[0] == name.split(".")[0]), None)
    assert key is not None, sorted(result.artifacts)
    path = Path(result.artifacts[key])
    assert path.is_file(), path
    return path


@pytest.mark.slow
def test_enhanced_indexing_workflow_runs(small_store: Path, tmp_path: Path, pkernel: Any) -> None:
    from qcore.config import load_config
    from qcore.runner import run_workflow

    calendar = pkernel.create("data_provider", "qlib_bin", provider_uri=str(small_store)).calendar()
    last = calendar[-2].date()
    riskdata = tmp_path / "riskdata"
    overrides = _overrides(calendar, tmp_path)
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
    assert float(rows["Tracking error (ex ante, mean, annualised)"]) == pytest.approx(metrics["portfolio.ex_ante_te"],
                                                                                     abs=1e-4)  # fmt: skip
    # ex-ante figures of the holdings under the run's risk data, their parts, and the report's sections
    assert 0 < metrics["portfolio.ex_ante_te"] < 0.5
    assert metrics["portfolio.ex_ante_factor_te"] <= metrics["portfolio.ex_ante_te"] + 1e-12
    assert 0 <= metrics["portfolio.ex_ante_factor_share"] <= 1
    ex_ante = pd.read_parquet(_artifact(result, "portfolio_ex_ante.parquet"))
    assert np.allclose(ex_ante["te"] ** 2, ex_ante["factor_te"] ** 2 + ex_ante["specific_te"] ** 2)
    exposures = pd.read_parquet(_artifact(result, "portfolio_exposures.parquet"))
    assert exposures.shape == (len(ex_ante), 4)
    page = _artifact(result, "report.html").read_text()
    for anchor in ("portfolio-tracking", "portfolio-te-chart", "portfolio-exposures", "portfolio-exposure-chart"):
        assert f"id='{anchor}'" in page, anchor


@pytest.mark.slow
def test_long_short_workflow_runs(small_store: Path, tmp_path: Path, pkernel: Any) -> None:
    from qcore.config import load_config
    from qcore.runner import run_workflow

    calendar = pkernel.create("data_provider", "qlib_bin", provider_uri=str(small_store)).calendar()
    # 20 csi300-like members: weights near 5%, so b_dev and max_short are set for shorts to be possible; the
    # example's strong L1/L2 penalties leave 20 rounds on this small store without a view (constant scores, which
    # the optimiser answers with pure tracking and no short): lighter ones here
    overrides = [*_overrides(calendar, tmp_path), "backtest.strategy.kwargs.optimizer_kwargs.b_dev=0.08",
                 "backtest.strategy.kwargs.optimizer_kwargs.long_short.max_short=0.03",
                 "model.kwargs.lambda_l1=0.0", "model.kwargs.lambda_l2=1.0"]
    environ = {"QCORE_DATA": str(small_store), "QCORE_RISKDATA": str(tmp_path / "riskdata")}
    config = load_config(LONG_SHORT, overrides, environ=environ, kernel=pkernel)
    result = run_workflow(config, pkernel)
    positions = pd.read_parquet(_artifact(result, "positions_normal_1day.parquet"))
    shorts = positions[positions["amount"] < 0]
    assert len(shorts) > 0 and shorts.index.get_level_values(0).nunique() > 5
    gross = positions["weight"].abs().groupby(level=0).sum()
    assert gross.max() <= 1.3 * 0.95 + 0.05
    report = pd.read_parquet(_artifact(result, "report_normal_1day.parquet"))
    assert (report["cost"] > 0).sum() > len(report) // 2  # trading costs and the daily borrow fee
    assert "portfolio.ex_ante_te" in result.metrics and "portfolio.information_ratio_with_cost" in result.metrics


def test_long_short_without_the_short_option_is_refused_before_training(small_store: Path, tmp_path: Path,
                                                                        pkernel: Any) -> None:  # fmt: skip
    from qcore.config import load_config
    from qcore.errors import ConfigError
    from qcore.runner import run_workflow

    calendar = pkernel.create("data_provider", "qlib_bin", provider_uri=str(small_store)).calendar()
    environ = {"QCORE_DATA": str(small_store), "QCORE_RISKDATA": str(tmp_path / "riskdata")}
    config = load_config(LONG_SHORT, [*_overrides(calendar, tmp_path), "backtest.short.enabled=false"],
                         environ=environ, kernel=pkernel)  # fmt: skip
    with pytest.raises(ConfigError, match=r"long_short.*backtest holds no short positions") as err:
        run_workflow(config, pkernel)
    assert "workflow_long_short.yaml" in str(err.value)
    assert not (tmp_path / "riskdata").exists()  # nothing was built
