"""Risk and performance statistics of a return series.

Two conventions, both labelled in every output:

- ``sum`` and ``product``: Qlib's ``risk_analysis`` (``qlib/contrib/evaluate.py``) with Qlib's daily scaler
  ``N = 238``. ``sum`` accumulates returns arithmetically (annualised return = mean × N, drawdown on the cumulative
  sum); ``product`` compounds them (geometric mean, log-return volatility). Both keep Qlib's numbers;
- ``compounded``: the usual compounded statistics with ``N = 252``: annualised return (CAGR), volatility, Sharpe
  and Sortino ratios (zero risk-free rate), maximum drawdown from the starting value, Calmar ratio, win rate (share
  of bars with a positive return) and the one-bar historical 95% VaR and CVaR (as positive losses).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Qlib's annualisation scaler for daily bars.
QLIB_DAYS = 238
#: Trading days per year of the compounded statistics.
YEAR_DAYS = 252

CONVENTIONS = {
    "sum": f"Qlib risk_analysis, mode='sum', N={QLIB_DAYS}: arithmetic accumulation",
    "product": f"Qlib risk_analysis, mode='product', N={QLIB_DAYS}: geometric accumulation",
    "compounded": f"compounded statistics, N={YEAR_DAYS}, zero risk-free rate; VaR/CVaR are 1-bar historical 95%",
}


def risk_analysis(r: pd.Series, N: float = QLIB_DAYS, mode: str = "sum") -> dict[str, float]:
    """Qlib's ``risk_analysis``: ``mean std annualized_return information_ratio max_drawdown``."""
    r = pd.Series(r, dtype=np.float64)
    if mode == "sum":
        mean = r.mean()
        std = r.std(ddof=1)
        annualized = mean * N
        cum = r.cumsum()
        max_drawdown = (cum - cum.cummax()).min()
    elif mode == "product":
        curve = (1 + r).cumprod()
        mean = curve.iloc[-1] ** (1 / len(r)) - 1
        std = np.log(1 + r).std(ddof=1)
        annualized = (1 + (curve.iloc[-1] - 1)) ** (N / len(r)) - 1
        max_drawdown = (curve / curve.cummax() - 1).min()
    else:
        raise ValueError(f"mode must be 'sum' or 'product', got {mode!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / std * np.sqrt(N)
    return {
        "mean": float(mean),
        "std": float(std),
        "annualized_return": float(annualized),
        "information_ratio": float(ratio),
        "max_drawdown": float(max_drawdown),
    }


def performance(r: pd.Series, N: float = YEAR_DAYS) -> dict[str, float]:
    """Compounded statistics of per-bar returns ``r`` (see the module doc)."""
    values = pd.Series(r, dtype=np.float64).dropna().to_numpy()
    n = len(values)
    if n == 0:
        return {k: math.nan for k in ("total_return", "annualized_return", "volatility", "sharpe", "sortino",
                                      "max_drawdown", "calmar", "win_rate", "var_95", "cvar_95")}  # fmt: skip
    curve = np.cumprod(1.0 + values)
    total = float(curve[-1] - 1.0)
    annualized = float(curve[-1] ** (N / n) - 1.0) if curve[-1] > 0 else -1.0
    std = float(np.std(values, ddof=1)) if n > 1 else math.nan
    mean = float(values.mean())
    downside = float(np.sqrt(np.mean(np.minimum(values, 0.0) ** 2)))
    peak = np.maximum.accumulate(np.concatenate([[1.0], curve]))
    max_dd = float(np.min(np.concatenate([[1.0], curve]) / peak - 1.0))
    q = float(np.quantile(values, 0.05))
    tail = values[values <= q]
    return {
        "total_return": total,
        "annualized_return": annualized,
        "volatility": std * math.sqrt(N) if n > 1 else math.nan,
        "sharpe": mean / std * math.sqrt(N) if n > 1 and std > 0 else math.nan,
        "sortino": mean / downside * math.sqrt(N) if downside > 0 else math.nan,
        "max_drawdown": max_dd,
        "calmar": annualized / abs(max_dd) if max_dd < 0 else math.nan,
        "win_rate": float(np.mean(values > 0)),
        "var_95": -q,
        "cvar_95": float(-tail.mean()) if len(tail) else math.nan,
    }


def return_series(report: pd.DataFrame) -> dict[str, pd.Series]:
    """The series PortAnaRecord analyses: excess return without and with cost, the benchmark, the return."""
    return {
        "excess_return_without_cost": report["return"] - report["bench"],
        "excess_return_with_cost": report["return"] - report["bench"] - report["cost"],
        "benchmark": report["bench"],
        "return": report["return"],
    }


def risk_report(report: pd.DataFrame) -> dict[str, Any]:
    """``risk.json``: for each series its ``sum``, ``product`` (Qlib, N=238) and ``compounded`` (N=252) stats."""
    out: dict[str, Any] = {}
    for name, series in return_series(report).items():
        out[name] = {
            "sum": risk_analysis(series, QLIB_DAYS, "sum"),
            "product": risk_analysis(series, QLIB_DAYS, "product"),
            "compounded": performance(series, YEAR_DAYS),
        }
    out["conventions"] = dict(CONVENTIONS)
    return out
