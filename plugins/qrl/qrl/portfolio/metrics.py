"""Performance metrics of a daily portfolio value series."""

from __future__ import annotations

import numpy as np


def performance(values: np.ndarray, periods_per_year: int = 252) -> dict[str, float]:
    """Cumulative and annual return, annual volatility, Sharpe ratio (no risk-free rate) and max drawdown."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or v[0] <= 0:
        raise ValueError("need at least two positive portfolio values")
    rets = v[1:] / v[:-1] - 1
    cum = v[-1] / v[0] - 1
    annual = (1 + cum) ** (periods_per_year / len(rets)) - 1
    vol = float(rets.std(ddof=0) * np.sqrt(periods_per_year))
    sharpe = float(rets.mean() / rets.std(ddof=0) * np.sqrt(periods_per_year)) if rets.std() > 0 else 0.0
    mdd = float((v / np.maximum.accumulate(v) - 1).min())
    return {
        "cumulative_return": float(cum), "annual_return": float(annual), "volatility": vol, "sharpe": sharpe,
        "max_drawdown": mdd,
    }
