"""FinRL-style portfolio environment on daily bars with A-share rules (lots, T+1, price limits, costs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from qcore.types import CostSchedule
from qrl.data import DailyData
from qrl.portfolio.metrics import performance


def weights_from_action(action: Any, n_assets: int, sharpness: float = 3.0) -> np.ndarray:
    """Target weights (assets then cash, summing to 1) from an action in ``[-1, 1]^(n_assets + 1)`` (softmax)."""
    a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
    if a.shape != (n_assets + 1,):
        raise ValueError(f"expected an action of {n_assets + 1} values, got shape {a.shape}")
    e = np.exp(sharpness * (a - a.max()))
    return e / e.sum()


def turbulence(close: np.ndarray, lookback: int = 20) -> np.ndarray:
    """Mahalanobis distance of each day's returns from the trailing ``lookback`` days (0 before enough history)."""
    rets = np.zeros_like(close)
    rets[1:] = close[1:] / close[:-1] - 1
    out = np.zeros(len(close))
    for t in range(lookback + 1, len(close)):
        hist = rets[t - lookback:t]
        cov = np.cov(hist, rowvar=False).reshape(close.shape[1], close.shape[1])
        d = rets[t] - hist.mean(axis=0)
        out[t] = float(d @ np.linalg.pinv(cov) @ d)
    return out


class PortfolioEnv(gym.Env):
    """Rebalance at each day's close towards target weights, then hold until the next close.

    State: cash share, asset weights, the day's returns (×10) and the features of each asset. Action: one value
    per asset plus one for cash in ``[-1, 1]``, turned into weights by a softmax. Orders are whole lots; nothing is
    bought at limit-up nor sold at limit-down; shares bought are locked for ``settlement_days`` (T+1); costs come
    from the market's :class:`CostSchedule`. When ``turbulence_threshold`` is set and exceeded, the portfolio sells
    everything it may and buys nothing. Reward: ``reward_scale`` × log growth of the portfolio value.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        data: DailyData,
        *,
        initial_cash: float = 1_000_000.0,
        lot_size: int = 100,
        settlement_days: int = 1,
        costs: CostSchedule | None = None,
        episode_days: int | None = None,
        turbulence_threshold: float | None = None,
        reward_scale: float = 100.0,
        sequential: bool = False,
    ) -> None:
        if len(data.dates) < 3:
            raise ValueError("the portfolio environment needs at least 3 dates")
        self.data = data
        self.n = len(data.instruments)
        self.initial_cash = float(initial_cash)
        self.lot_size = lot_size
        self.settlement_days = settlement_days
        self.costs = costs or CostSchedule(commission=0.0003, min_commission=5.0)
        self.episode_days = min(episode_days or len(data.dates) - 1, len(data.dates) - 1)
        self.turbulence_threshold = turbulence_threshold
        self.turb = turbulence(data.close) if turbulence_threshold is not None else np.zeros(len(data.dates))
        self.reward_scale = reward_scale
        self.sequential = sequential
        f = data.features.shape[2]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1 + self.n * (2 + f),), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.n + 1,), dtype=np.float32)

    # -- state -----------------------------------------------------------------------------------------------------

    def value(self) -> float:
        """Portfolio value at the current close."""
        return float(self.cash + self.shares @ self.data.close[self.t])

    def _obs(self) -> np.ndarray:
        v = self.value()
        w = self.shares * self.data.close[self.t] / v
        ret = self.data.close[self.t] / self.data.close[max(self.t - 1, 0)] - 1
        return np.concatenate([[self.cash / v], w, ret * 10, self.data.features[self.t].reshape(-1)]).astype(
            np.float32
        )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        last_start = len(self.data.dates) - 1 - self.episode_days
        start = 0 if self.sequential or last_start <= 0 else int(self.np_random.integers(last_start + 1))
        self.t0 = self.t = start
        self.cash = self.initial_cash
        self.shares = np.zeros(self.n)
        self.bought_at = np.full((self.n,), -(10**9))
        self.values = [self.value()]
        self.total_cost = 0.0
        return self._obs(), {}

    # -- trading ---------------------------------------------------------------------------------------------------

    def rebalance(self, weights: np.ndarray | None) -> None:
        """Trade at today's close towards ``weights`` (assets then cash); ``None`` holds."""
        if weights is None:
            return
        price = self.data.close[self.t]
        prev = self.data.close[max(self.t - 1, 0)]
        limit = self.data.limit[self.t]
        has_limit = np.isfinite(limit) & (self.t > 0)
        up = has_limit & (price >= np.round(prev * (1 + np.nan_to_num(limit)), 2) - 1e-9)
        down = has_limit & (price <= np.round(prev * (1 - np.nan_to_num(limit)), 2) + 1e-9)
        stop = self.turbulence_threshold is not None and self.turb[self.t] > self.turbulence_threshold
        if stop:
            weights = np.r_[np.zeros(self.n), 1.0]
        value = self.value()
        target = np.floor(weights[: self.n] * value / price / self.lot_size) * self.lot_size
        delta = target - self.shares
        locked = self.t - self.bought_at < self.settlement_days
        date = self.data.dates[self.t]
        for i in np.argsort(delta):  # sells first, to fund the buys
            d = delta[i]
            if d < 0 and not down[i] and not locked[i]:
                proceeds = -d * price[i]
                fee = self.costs.cost(proceeds, sell=True, date=date)
                self.shares[i] += d
                self.cash += proceeds - fee
                self.total_cost += fee
            elif d > 0 and not up[i] and not stop:
                fee = self.costs.cost(d * price[i], sell=False, date=date)
                afford = np.floor(max(self.cash - fee, 0.0) / price[i] / self.lot_size) * self.lot_size
                d = min(d, afford)
                if d > 0:
                    fee = self.costs.cost(d * price[i], sell=False, date=date)
                    self.shares[i] += d
                    self.cash -= d * price[i] + fee
                    self.total_cost += fee
                    self.bought_at[i] = self.t

    def advance(self, weights: np.ndarray | None) -> tuple[float, bool]:
        """Rebalance to ``weights`` at today's close, move to the next day; returns ``(log growth, done)``."""
        before = self.value()
        self.rebalance(weights)
        self.t += 1
        after = self.value()
        self.values.append(after)
        done = self.t >= len(self.data.dates) - 1 or self.t - self.t0 >= self.episode_days
        return float(np.log(after / before)), done

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        growth, done = self.advance(weights_from_action(action, self.n))
        info = self.metrics() if done else {}
        return self._obs(), growth * self.reward_scale, done, False, info

    def metrics(self) -> dict[str, float]:
        """Performance of the values so far (see :func:`qrl.portfolio.metrics.performance`)."""
        return performance(np.asarray(self.values))


def run_episode(env: PortfolioEnv, decide: Callable[[PortfolioEnv, np.ndarray], np.ndarray | None]) -> dict:
    """Play one sequential episode with ``decide(env, obs) -> weights or None`` and return its metrics."""
    obs, _ = env.reset()
    done = False
    while not done:
        _, done = env.advance(decide(env, obs))
        obs = env._obs()
    return env.metrics()


def baselines(env: PortfolioEnv) -> dict[str, dict[str, float]]:
    """Buy-and-hold (equal weights on day one, then hold) and daily-rebalanced equal weight."""
    equal = np.r_[np.full(env.n, 1.0 / env.n), 0.0]
    return {
        "buy_and_hold": run_episode(env, lambda e, _: equal if e.t == e.t0 else None),
        "equal_weight": run_episode(env, lambda e, _: equal),
    }


def policy_metrics(env: PortfolioEnv, act: Callable[[np.ndarray], Any]) -> dict[str, float]:
    """Metrics of a policy ``act(obs) -> action`` over one sequential episode."""
    return run_episode(env, lambda e, obs: weights_from_action(act(obs), e.n))
