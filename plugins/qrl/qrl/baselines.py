"""Baselines of the daily environments (portfolio, stock trading), run through the environment's own rules:
buy-and-hold, daily equal weight, minimum variance and maximum Sharpe (estimated on the training span only), random
and cash. Both optimised baselines come from the ``portfolio_optimizer`` registry's ``portfolio`` optimiser (methods
``gmv`` and ``max_sharpe``) when a plugin provides it, else from numpy solvers; long-only, so maximum Sharpe is all
cash when no asset has a positive mean return in the training span.

Each is a weight policy played by :func:`qrl.portfolio.env.run_episode` on a sequential environment, so it pays the
same lots, T+1, price limits and costs as the policy it is compared with.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from qcore.errors import QcoreError
from qrl.data import DailyData
from qrl.portfolio.env import run_episode

logger = logging.getLogger(__name__)

#: The names :func:`daily_baselines` reports.
NAMES = ("buy_and_hold", "equal_weight", "min_variance", "max_sharpe", "random", "cash")


def _project_simplex(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` on ``{w >= 0, sum(w) = 1}``."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.nonzero(u - css / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - css[k] / (k + 1), 0.0)


def min_variance_weights(returns: np.ndarray, ridge: float = 1e-10, iterations: int = 20000) -> np.ndarray:
    """Long-only, fully invested weights of least variance for a ``(dates, assets)`` return sample (accelerated
    projected gradient descent, FISTA, on the sample covariance plus ``ridge`` on its diagonal)."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"expected at least two rows of (dates, assets) returns, got shape {r.shape}")
    cov = np.atleast_2d(np.cov(r, rowvar=False)) + ridge * np.eye(r.shape[1])
    step = 1.0 / max(float(np.linalg.eigvalsh(cov).max()), 1e-12)
    w = y = np.full(r.shape[1], 1.0 / r.shape[1])
    t = 1.0
    for _ in range(iterations):
        nxt = _project_simplex(y - step * (cov @ y))
        if np.abs(nxt - w).max() < 1e-14:
            return nxt
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y = nxt + (t - 1.0) / t_next * (nxt - w)
        w, t = nxt, t_next
    return w


def max_sharpe_numpy(returns: np.ndarray, ridge: float = 1e-10, iterations: int = 5000) -> np.ndarray:
    """Long-only, fully invested weights of greatest ``mean / std`` for a ``(dates, assets)`` return sample
    (projected gradient ascent of the Sharpe ratio on the simplex, with backtracking: the ratio is quasi-concave
    there); all zeros (cash) when no asset has a positive mean."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"expected at least two rows of (dates, assets) returns, got shape {r.shape}")
    mu = r.mean(axis=0)
    if not (mu > 0).any():
        return np.zeros(r.shape[1])
    cov = np.atleast_2d(np.cov(r, rowvar=False)) + ridge * np.eye(r.shape[1])

    def sharpe(w: np.ndarray) -> float:
        return float(mu @ w) / np.sqrt(max(float(w @ cov @ w), 1e-300))

    w = np.where(mu > 0, mu, 0.0) / mu[mu > 0].sum()
    best, step = sharpe(w), 0.1
    for _ in range(iterations):
        var = float(w @ cov @ w)
        grad = (mu - float(mu @ w) / var * (cov @ w)) / np.sqrt(var)
        scale = np.abs(grad).max()
        if scale < 1e-14:
            break
        nxt = _project_simplex(w + step * grad / scale)
        value = sharpe(nxt)
        if value > best + 1e-15:
            w, best = nxt, value
            step = min(step * 1.5, 1.0)
        else:
            step *= 0.5
            if step < 1e-12:
                break
    return w


def min_variance_from(returns: np.ndarray, kernel: Any = None) -> np.ndarray:
    """Minimum-variance weights from the kernel's ``portfolio_optimizer`` ``portfolio`` (method ``gmv``, long-only)
    when it has one, else (or when its solve fails, with a warning) :func:`min_variance_weights`'s."""
    r = np.asarray(returns, dtype=np.float64)
    if kernel is not None and r.ndim == 2 and r.shape[0] >= 2 and "portfolio" in _optimizers(kernel):
        try:
            opt = kernel.create("portfolio_optimizer", "portfolio", method="gmv")
            w = np.asarray(opt(np.atleast_2d(np.cov(r, rowvar=False))), dtype=np.float64)
        except QcoreError as exc:
            logger.warning("the gmv optimiser failed (%s); the baseline uses the numpy solver", exc)
        else:
            if np.isfinite(w).all() and abs(w.sum() - 1) < 1e-6 and (w > -1e-6).all():
                return np.maximum(w, 0.0) / np.maximum(w, 0.0).sum()
            logger.warning("the gmv optimiser returned invalid weights; the baseline uses the numpy solver")
    return min_variance_weights(r)


def max_sharpe_weights(returns: np.ndarray, kernel: Any = None) -> np.ndarray:
    """Maximum-Sharpe weights from the kernel's ``portfolio_optimizer`` ``portfolio`` (method ``max_sharpe``) when it
    has one, else (or when its solve fails, with a warning) :func:`max_sharpe_numpy`'s."""
    r = np.asarray(returns, dtype=np.float64)
    mu = r.mean(axis=0)
    if kernel is not None and (mu > 0).any() and "portfolio" in _optimizers(kernel):
        try:
            opt = kernel.create("portfolio_optimizer", "portfolio", method="max_sharpe", scale_return=False)
            w = np.asarray(opt(np.atleast_2d(np.cov(r, rowvar=False)), mu), dtype=np.float64)
        except QcoreError as exc:
            logger.warning("the max_sharpe optimiser failed (%s); the baseline uses the numpy solver", exc)
        else:
            if np.isfinite(w).all() and abs(w.sum() - 1) < 1e-6:
                return np.maximum(w, 0.0) / np.maximum(w, 0.0).sum()
            logger.warning("the max_sharpe optimiser returned invalid weights; the baseline uses the numpy solver")
    return max_sharpe_numpy(r)


def _optimizers(kernel: Any) -> list[str]:
    try:
        return list(kernel.registry("portfolio_optimizer").names())
    except (QcoreError, KeyError):  # no plugin declares the kind
        return []


def daily_baselines(env: Any, *, train: DailyData | None = None, seed: int = 0,
                    kernel: Any = None) -> dict[str, dict[str, float]]:
    """Metrics of every baseline of :data:`NAMES` on the sequential daily ``env``.

    :param train: the training split's data; minimum variance is estimated on its returns (and left out without it:
        estimating it on the evaluated rows would look ahead).
    :param seed: the random policy's seed (uniform Dirichlet weights, drawn afresh every day).
    :param kernel: where the minimum-variance and maximum-Sharpe optimisers are looked up (None: numpy solvers).
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
        mv = np.r_[min_variance_from(train.returns()[1:], kernel), 0.0]
        out["min_variance"] = run_episode(env, lambda e, _: mv)
        ms = max_sharpe_weights(train.returns()[1:], kernel)
        ms = np.r_[ms, 1.0 - ms.sum()]
        out["max_sharpe"] = run_episode(env, lambda e, _: ms)
    rng = np.random.default_rng(seed)
    out["random"] = run_episode(env, lambda e, _: np.r_[rng.dirichlet(np.ones(n)), 0.0])
    out["cash"] = run_episode(env, lambda e, _: None)
    return out
