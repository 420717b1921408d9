"""Tracking-error figures: ex-ante active risk and its parts against hand computations, the holdings' ex-ante
series over a risk-data folder, realised tracking error and information ratio, and the report sections."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qportfolio.benchmark import BenchmarkWeights
from qportfolio.report_html import tracking_sections
from qportfolio.risk.base import FactorRisk
from qportfolio.risk.riskdata import RiskData, write_day, write_meta
from qportfolio.tracking import active_risk, annualiser, ex_ante_tracking, realised_tracking

from qcore.errors import DataError, RunError

NAMES = ["A", "B", "C"]
F = np.array([[1.0, 0.5], [0.2, -1.0], [-0.4, 0.3]])
COV_B = np.array([[0.04, 0.01], [0.01, 0.09]])
SIGMA = np.array([0.2, 0.3, 0.1])  # specific risk (volatility)


def test_ex_ante_te_is_the_square_root_of_the_active_quadratic_form() -> None:
    w = np.array([0.5, 0.2, 0.3])
    wb = np.array([0.3, 0.3, 0.4])
    risk = active_risk(w, wb, F, COV_B, SIGMA**2)
    a = w - wb  # (0.2, -0.1, -0.1)
    V = F @ COV_B @ F.T + np.diag(SIGMA**2)
    assert risk.te == pytest.approx(math.sqrt(a @ V @ a), rel=1e-12)
    # by hand: v = F'a = (0.2 - 0.02 + 0.04, 0.1 + 0.1 - 0.03) = (0.22, 0.17)
    np.testing.assert_allclose(risk.exposures, [0.22, 0.17], atol=1e-15)
    factor_var = 0.22**2 * 0.04 + 2 * 0.22 * 0.17 * 0.01 + 0.17**2 * 0.09  # 0.005285
    specific_var = 0.2**2 * 0.04 + 0.1**2 * 0.09 + 0.1**2 * 0.01  # 0.0026
    assert risk.factor_te == pytest.approx(math.sqrt(factor_var), rel=1e-12)
    assert risk.specific_te == pytest.approx(math.sqrt(specific_var), rel=1e-12)
    assert risk.te == pytest.approx(math.sqrt(0.005285 + 0.0026), rel=1e-12)
    assert risk.factor_share == pytest.approx(0.005285 / 0.007885, rel=1e-12)
    assert active_risk(wb, wb, F, COV_B, SIGMA**2).te == 0.0
    assert math.isnan(active_risk(wb, wb, F, COV_B, SIGMA**2).factor_share)


def test_annualiser() -> None:
    assert annualiser("percent") == pytest.approx(math.sqrt(252) / 100)
    assert annualiser("decimal") == pytest.approx(math.sqrt(252))


def test_realised_tracking_error_and_information_ratio_by_hand() -> None:
    dates = pd.bdate_range("2024-01-01", periods=4)
    report = pd.DataFrame({"return": [0.01, -0.02, 0.015, 0.0], "bench": [0.005, -0.01, 0.01, 0.002],
                           "cost": [0.001, 0.0, 0.0005, 0.0]}, index=dates)  # fmt: skip
    out = realised_tracking(report)
    active = np.array([0.005, -0.01, 0.005, -0.002])
    mean, std = active.mean(), math.sqrt(((active - active.mean()) ** 2).sum() / 3)
    assert out["portfolio.tracking_error"] == pytest.approx(std * math.sqrt(252), rel=1e-12)
    assert out["portfolio.active_return"] == pytest.approx(mean * 252, rel=1e-12)
    assert out["portfolio.information_ratio"] == pytest.approx(mean * 252 / (std * math.sqrt(252)), rel=1e-12)
    net = active - np.array([0.001, 0.0, 0.0005, 0.0])
    assert out["portfolio.information_ratio_with_cost"] == pytest.approx(
        net.mean() * math.sqrt(252) / net.std(ddof=1), rel=1e-12)  # fmt: skip
    with pytest.raises(RunError, match="no bench column"):
        realised_tracking(report.drop(columns="bench"))


@pytest.fixture
def folder(tmp_path: Path) -> RiskData:
    dates = pd.bdate_range("2024-01-01", periods=3)
    risk = FactorRisk(pd.DataFrame(F, index=NAMES, columns=["f0", "f1"]),
                      pd.DataFrame(COV_B, index=["f0", "f1"], columns=["f0", "f1"]),
                      pd.Series(SIGMA, index=NAMES))  # fmt: skip
    for day in (dates[0], dates[2]):  # dates[1] has no risk data
        write_day(tmp_path / "risk", day, risk)
    write_meta(tmp_path / "risk", {"units": "decimal"})
    return RiskData(tmp_path / "risk")


def test_holdings_ex_ante_series(folder: RiskData) -> None:
    dates = pd.bdate_range("2024-01-01", periods=3)
    positions = pd.DataFrame({"weight": [0.5, 0.2, 0.28, 0.02, 0.6, 0.3]},
                             index=pd.MultiIndex.from_tuples([(dates[0], "A"), (dates[0], "B"), (dates[0], "C"),
                                                              (dates[0], "Z"), (dates[2], "A"), (dates[2], "B")],
                                                             names=["datetime", "instrument"]))  # fmt: skip
    bench = BenchmarkWeights.from_frame(pd.DataFrame({"date": [dates[0]] * 3, "instrument": NAMES,
                                                      "weight": [0.3, 0.3, 0.4]}))  # fmt: skip
    risk, exposures = ex_ante_tracking(positions, dates, folder, bench)
    assert list(risk.index) == [dates[0], dates[2]]  # the day without risk data is skipped
    V = F @ COV_B @ F.T + np.diag(SIGMA**2)
    for day, w in ((dates[0], [0.5, 0.2, 0.28]), (dates[2], [0.6, 0.3, 0.0])):
        a = np.array(w) - [0.3, 0.3, 0.4]
        assert risk.loc[day, "te"] == pytest.approx(math.sqrt(a @ V @ a), rel=1e-12)
        assert risk.loc[day, "te_annual"] == pytest.approx(math.sqrt(a @ V @ a) * math.sqrt(252), rel=1e-12)
        np.testing.assert_allclose(exposures.loc[day].to_numpy(), a @ F, atol=1e-15)
    assert risk.loc[dates[0], "uncovered"] == pytest.approx(0.02)  # Z is outside the risk universe
    assert risk.loc[dates[2], "uncovered"] == 0.0
    with pytest.raises(DataError, match="no risk data for any"):
        ex_ante_tracking(positions, dates[1:2], folder, bench)


def test_report_sections() -> None:
    dates = pd.bdate_range("2024-01-01", periods=30)
    rng = np.random.default_rng(0)
    risk = pd.DataFrame({"te": rng.uniform(1, 2, 30), "factor_te": rng.uniform(0, 1, 30),
                         "specific_te": rng.uniform(0, 1, 30)}, index=dates)  # fmt: skip
    exposures = pd.DataFrame(rng.normal(size=(30, 14)), index=dates, columns=[f"f{i}" for i in range(14)])
    rolling = pd.Series(np.r_[np.full(19, np.nan), rng.uniform(0.01, 0.05, 11)], index=dates)
    metrics = {"portfolio.tracking_error": 0.031, "portfolio.ex_ante_te": 0.0275}
    sections = tracking_sections(metrics, risk, exposures, rolling, 0.01)
    assert [s.anchor for s in sections] == ["portfolio-tracking", "portfolio-exposures"]
    body = sections[0].html
    assert "<svg id='portfolio-te-chart'" in body and "0.0310" in body and "0.0275" in body
    assert body.count("<polyline") == 4  # realised (one run after the NaN start) and the three ex-ante lines
    expo = sections[1].html
    assert expo.count("<polyline") == 12 and "The 12 largest of 14 factors are drawn" in expo
    only_realised = tracking_sections(metrics, None, None, rolling, 1.0)
    assert [s.anchor for s in only_realised] == ["portfolio-tracking"]
