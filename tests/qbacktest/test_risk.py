"""risk_analysis in Qlib's sum and product modes (N=238) and the compounded statistics (N=252)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from qbacktest.risk import performance, risk_analysis, risk_report

R = pd.Series([0.01, -0.02, 0.015, 0.0, 0.005, -0.01, 0.02])


def test_sum_mode_is_arithmetic() -> None:
    out = risk_analysis(R, mode="sum")
    assert out["mean"] == pytest.approx(R.mean())
    assert out["std"] == pytest.approx(R.std(ddof=1))
    assert out["annualized_return"] == pytest.approx(R.mean() * 238)
    assert out["information_ratio"] == pytest.approx(R.mean() / R.std() * math.sqrt(238))
    cum = R.cumsum()
    assert out["max_drawdown"] == pytest.approx((cum - cum.cummax()).min())


def test_product_mode_compounds() -> None:
    out = risk_analysis(R, mode="product")
    curve = (1 + R).cumprod()
    assert out["mean"] == pytest.approx(curve.iloc[-1] ** (1 / len(R)) - 1)
    assert out["std"] == pytest.approx(np.log1p(R).std(ddof=1))
    assert out["annualized_return"] == pytest.approx(curve.iloc[-1] ** (238 / len(R)) - 1)
    with pytest.raises(ValueError, match="mode"):
        risk_analysis(R, mode="geometric")


def test_compounded_statistics() -> None:
    out = performance(R)
    values = R.to_numpy()
    assert out["total_return"] == pytest.approx(np.prod(1 + values) - 1)
    assert out["annualized_return"] == pytest.approx(np.prod(1 + values) ** (252 / 7) - 1)
    assert out["sharpe"] == pytest.approx(values.mean() / values.std(ddof=1) * math.sqrt(252))
    downside = math.sqrt(np.mean(np.minimum(values, 0) ** 2))
    assert out["sortino"] == pytest.approx(values.mean() / downside * math.sqrt(252))
    curve = np.concatenate([[1.0], np.cumprod(1 + values)])
    assert out["max_drawdown"] == pytest.approx((curve / np.maximum.accumulate(curve) - 1).min())
    assert out["max_drawdown"] == pytest.approx(1.01 * 0.98 / 1.01 - 1)
    assert out["calmar"] == pytest.approx(out["annualized_return"] / abs(out["max_drawdown"]))
    assert out["win_rate"] == pytest.approx(4 / 7)
    assert out["var_95"] == pytest.approx(-np.quantile(values, 0.05))
    assert out["cvar_95"] == pytest.approx(0.02)
    assert math.isnan(performance(pd.Series([], dtype=float))["sharpe"])


def test_risk_report_labels_every_convention() -> None:
    report = pd.DataFrame({"return": R, "bench": R * 0.5, "cost": 0.001})
    out = risk_report(report)
    assert set(out) == {"excess_return_without_cost", "excess_return_with_cost", "benchmark", "return",
                        "conventions"}  # fmt: skip
    with_cost = out["excess_return_with_cost"]["sum"]["mean"]
    assert with_cost == pytest.approx((R - R * 0.5 - 0.001).mean())
