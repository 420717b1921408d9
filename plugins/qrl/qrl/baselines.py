"""Baselines of the daily environments (portfolio, stock trading), run through the environment's own rules:
buy-and-hold, daily equal weight, minimum variance (estimated on the training span only), random and cash.

Each is a weight policy played by :func:`qrl.portfolio.env.run_episode` on a sequential environment, so it pays the
same lots, T+1, price limits and costs as the policy it is compared with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qrl.data import DailyData
from qrl.portfolio.env import run_episode

#: The names :func:`daily_baselines` reports.
NAMES = ("buy_and_hold", "equal_weight", "min_variance", "random", "cash")


def _project_simplex(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` on ``{w >= 0, sum(w) = 1}``."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.nonzero(u - css / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - css[k] / (k + 1), 0.0)


def min_variance_weights(returns: np.ndarray, ridge: float = 1e-6, iterations: int = 5000) -> np.ndarray:
    """Long-only, fully invested weights of least variance for a ``(dates, assets)`` return sample (projected
    gradient descent on the sample covariance plus ``ridge`` on its diagonal)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"expected at least two rows of (dates, assets) returns, got shape {r.shape}")
    cov = np.atleast_2d(np.cov(r, rowvar=False)) + ridge * np.eye(r.shape[1])
    step = 1.0 / max(float(np.linalg.eigvalsh(cov).max()), 1e-12)
    w = np.full(r.shape[1], 1.0 / r.shape[1])
    for _ in range(iterations):
        nxt = _project_simplex(w - step * (cov @ w))
        if np.abs(nxt - w).max() < 1e-12:
            return nxt
        w = nxt
    return w


def daily_baselines(env: Any, *, train: DailyData | None = None, seed: int = 0) -> dict[str, dict[str, float]]:
    """Metrics of every baseline of :data:`NAMES` on the sequential daily ``env``.

    :param train: the training split's data; minimum variance is estimated on its returns (and left out without it:
        estimating it on the evaluated rows would look ahead).
    :param seed: the random policy's seed (uniform Dirichlet weights, drawn afresh every day).
    """
    n = env.n
    equal = np.r_[np.full(n, 1.0 / n), 0.0]
    out = {
        "buy_and_hold": run_episode(env, lambda e, _: equal if e.t == e.t0 else None),
        "equal_weight": run_episode(env, lambda e, _: equal),
    }
    if train is not None:
        if tuple(train.instruments) != tuple(env.data.instruments):
            raise ValueError("the training data and the evaluated environment hold different instruments")
        mv = np.r_[min_variance_weights(train.returns()[1:]), 0.0]
        out["min_variance"] = run_episode(env, lambda e, _: mv)
    rng = np.random.default_rng(seed)
    out["random"] = run_episode(env, lambda e, _: np.r_[rng.dirichlet(np.ones(n)), 0.0])
    out["cash"] = run_episode(env, lambda e, _: None)
    return out
