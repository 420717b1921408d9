"""FinRL-style portfolio environment on daily bars with A-share rules (lots, T+1, price limits, costs) and the
backtest's execution timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from qcore.types import CostSchedule
from qrl.data import DailyData
from qrl.market import quotes
from qrl.portfolio.metrics import performance
from qrl.portfolio.rewards import LogGrowth, PortfolioReward, StepOutcome
from qrl.risk import turbulence
from qrl.timing import DEFAULT_TIMING, TIMINGS

#: The shortest window of the covariance observation (``lookback`` when longer).
COV_WINDOW = 20


def weights_from_action(action: Any, n_assets: int, sharpness: float = 3.0) -> np.ndarray:
    """Target weights (assets then cash, summing to 1) from an action in ``[-1, 1]^(n_assets + 1)`` (softmax)."""
    a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
    if a.shape != (n_assets + 1,):
        raise ValueError(f"expected an action of {n_assets + 1} values, got shape {a.shape}")
    e = np.exp(sharpness * (a - a.max()))
    return e / e.sum()


class PortfolioEnv(gym.Env):
    """Rebalance towards target weights once a day, under A-share rules, with the backtest's execution timing.

    State at row ``t`` (what is known at that day's close): cash share, asset weights, the day's returns (×10), the
    tradable mask and the scaled features of each asset (:meth:`DailyData.observed_features`), then, when the data
    carries a turbulence series (:attr:`DailyData.turbulence`), ``log1p`` of the day's turbulence. Action: one value per
    asset plus one for cash in ``[-1, 1]``, turned into weights by a softmax.

    ``timing`` says when a decision made on row ``t``'s data trades (:data:`TIMINGS`): ``next_close`` (the default,
    as the ``rl_policy`` backtest strategy with close deal prices: decided on bar ``t - 1``'s data, executed at bar
    ``t``'s close), ``next_open`` (at the next day's open) or ``same_close`` (at the close just observed, which no
    backtest can do). Orders are whole lots; an instrument that is not tradable on the execution day (not listed or
    not quoted) is neither bought nor sold, so its target weight stays in cash; nothing is bought at limit-up nor
    sold at limit-down; shares bought are locked for ``settlement_days`` (T+1); costs come from the market's
    :class:`CostSchedule`. When ``turbulence_threshold`` is set and the decision row's turbulence (known when
    deciding) exceeds it, the portfolio sells everything it may and buys nothing; the turbulence is the data's series
    (:attr:`DailyData.turbulence`), else one over a trailing 20-day window of the environment's own rows. Reward:
    ``reward_scale`` × ``reward`` of the step (default log growth of the portfolio value from one close to the next;
    any :class:`~qrl.portfolio.rewards.PortfolioReward`, named in configs through the ``rl_portfolio_reward``
    registry: differential Sharpe, drawdown or turnover penalties).

    Optional observations: the data's market-volatility series (:attr:`DailyData.market_volatility`, /100),
    ``lookback`` days of each asset's daily returns (×10), and with ``covariance`` the upper triangle of the
    covariance of the daily returns over the last ``max(lookback, 20)`` rows (×1e3). All read rows ``<= t`` only.
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
        timing: str = DEFAULT_TIMING,
        reward: Any = None,
        lookback: int = 0,
        covariance: bool = False,
    ) -> None:
        if len(data.dates) < 3:
            raise ValueError("the portfolio environment needs at least 3 dates")
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
        assert data.tradable is not None and data.open is not None and data.prev_close is not None
        if timing == "next_open" and not np.isfinite(data.open[data.tradable]).all():
            raise ValueError("timing next_open needs an open price on every tradable day (the data has none)")
        self.data = data
        self.timing = timing
        self.n = len(data.instruments)
        self.initial_cash = float(initial_cash)
        self.lot_size = lot_size
        self.settlement_days = settlement_days
        self.costs = costs or CostSchedule(commission=0.0003, min_commission=5.0)
        self.episode_days = min(episode_days or len(data.dates) - 1, len(data.dates) - 1)
        self.turbulence_threshold = turbulence_threshold
        if data.turbulence is not None:
            self.turb = np.asarray(data.turbulence, dtype=np.float64)
        elif turbulence_threshold is not None:
            self.turb = turbulence(data.close, window=20)
        else:
            self.turb = np.zeros(len(data.dates))
        self.reward_scale = reward_scale
        self.reward = LogGrowth() if reward is None else reward
        if not isinstance(self.reward, PortfolioReward):
            raise ValueError(f"reward must have reset(value) and __call__(StepOutcome), got {type(reward).__name__}")
        if not isinstance(lookback, int) or isinstance(lookback, bool) or lookback < 0:
            raise ValueError(f"lookback must be a whole number of days >= 0, got {lookback!r}")
        self.lookback = lookback
        self.covariance = bool(covariance)
        self.cov_window = max(lookback, COV_WINDOW)
        self.sequential = sequential
        self.mark = np.nan_to_num(data.close, nan=0.0)  # valuation prices: no price before listing, no holding
        self.rets = data.returns()
        self.features = data.observed_features()
        self.tradable = np.asarray(data.tradable, dtype=bool)
        f = data.features.shape[2]
        self.observe_turbulence = data.turbulence is not None
        self.observe_vix = data.market_volatility is not None
        self.vix = np.nan_to_num(np.asarray(data.market_volatility, dtype=np.float64) / 100.0) if self.observe_vix \
            else None
        size = (1 + self.n * (3 + f) + int(self.observe_turbulence) + int(self.observe_vix) + self.n * lookback
                + (self.n * (self.n + 1) // 2 if self.covariance else 0))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.n + 1,), dtype=np.float32)

    # -- state -----------------------------------------------------------------------------------------------------

    def value(self) -> float:
        """Portfolio value at the current close."""
        return float(self.cash + self.shares @ self.mark[self.t])

    def observation(self, t: int, cash: float, shares: np.ndarray) -> np.ndarray:
        """The observation at row ``t``'s close for a portfolio of ``cash`` and ``shares`` (reads rows ``<= t``)."""
        v = float(cash + shares @ self.mark[t])
        w = shares * self.mark[t] / v
        turb = [np.log1p(self.turb[t])] if self.observe_turbulence else []
        extra: list[Any] = []
        if self.vix is not None:
            extra.append([self.vix[t]])
        if self.lookback:
            past = np.zeros((self.lookback, self.n))
            rows = self.rets[max(0, t - self.lookback + 1): t + 1]
            past[self.lookback - len(rows):] = rows
            extra.append(past.reshape(-1) * 10)
        if self.covariance:
            extra.append(self.covariance_at(t))
        return np.concatenate([[cash / v], w, self.rets[t] * 10, self.tradable[t], self.features[t].reshape(-1),
                               turb, *extra]).astype(np.float32)  # fmt: skip

    def covariance_at(self, t: int) -> np.ndarray:
        """The upper triangle (row by row) of the covariance of daily returns over the :attr:`cov_window` rows up to
        ``t`` (×1e3; zeros with fewer than two rows)."""
        rows = self.rets[max(0, t - self.cov_window + 1): t + 1]
        if len(rows) < 2:
            return np.zeros(self.n * (self.n + 1) // 2)
        cov = np.atleast_2d(np.cov(rows, rowvar=False))
        return cov[np.triu_indices(self.n)] * 1e3

    def turbulent(self, row: int) -> bool:
        """Whether row ``row``'s turbulence exceeds :attr:`turbulence_threshold` (never when it is None)."""
        return self.turbulence_threshold is not None and bool(self.turb[row] > self.turbulence_threshold)

    def _obs(self) -> np.ndarray:
        return self.observation(self.t, self.cash, self.shares)

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
        self.traded = 0.0
        self.last_step = StepOutcome(self.initial_cash, self.initial_cash)
        self.reward.reset(self.initial_cash)
        return self._obs(), {}

    # -- trading ---------------------------------------------------------------------------------------------------

    def rebalance(self, weights: np.ndarray | None, row: int | None = None) -> None:
        """Trade on ``row`` (default: the current row) towards ``weights`` (assets then cash); ``None`` holds.

        The deal price is the row's open under ``next_open`` timing, else its close.
        """
        if weights is None:
            return
        e = self.t if row is None else row
        q = quotes(self.data, e, self.timing)
        price, ok, up, down = q.price, q.ok, q.up, q.down
        stop = self.turbulent(e if self.timing == "same_close" else max(e - 1, 0))  # known when deciding
        if stop:
            weights = np.r_[np.zeros(self.n), 1.0]
        value = float(self.cash + self.shares @ np.where(ok, price, self.mark[e]))
        target = np.floor(weights[: self.n] * value / price / self.lot_size) * self.lot_size
        delta = np.where(ok, target - self.shares, 0.0)
        locked = e - self.bought_at < self.settlement_days
        date = self.data.dates[e]
        for i in np.argsort(delta):  # sells first, to fund the buys
            d = delta[i]
            if d < 0 and not down[i] and not locked[i]:
                proceeds = -d * price[i]
                fee = self.costs.cost(proceeds, sell=True, date=date)
                self.shares[i] += d
                self.cash += proceeds - fee
                self.total_cost += fee
                self.traded += proceeds
            elif d > 0 and not up[i] and not stop:
                fee = self.costs.cost(d * price[i], sell=False, date=date)
                afford = np.floor(max(self.cash - fee, 0.0) / price[i] / self.lot_size) * self.lot_size
                d = min(d, afford)
                if d > 0:
                    fee = self.costs.cost(d * price[i], sell=False, date=date)
                    self.shares[i] += d
                    self.cash -= d * price[i] + fee
                    self.total_cost += fee
                    self.traded += d * price[i]
                    self.bought_at[i] = e

    def advance(self, weights: np.ndarray | None) -> tuple[float, bool]:
        """Carry out the decision taken on the current row (per :attr:`timing`), move to the next row; returns
        ``(log growth from this close to the next, done)``."""
        before = self.value()
        self.traded = 0.0
        if self.timing == "same_close":
            self.rebalance(weights)
            self.t += 1
        else:
            self.t += 1
            self.rebalance(weights)
        after = self.value()
        self.values.append(after)
        self.last_step = StepOutcome(before, after, self.traded)
        done = self.t >= len(self.data.dates) - 1 or self.t - self.t0 >= self.episode_days
        return float(np.log(after / before)), done

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        _, done = self.advance(weights_from_action(action, self.n))
        info = self.metrics() if done else {}
        return self._obs(), float(self.reward(self.last_step)) * self.reward_scale, done, False, info

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


def baselines(env: PortfolioEnv, *, train: DailyData | None = None, seed: int = 0) -> dict[str, dict[str, float]]:
    """The daily baselines of :func:`qrl.baselines.daily_baselines` (buy-and-hold, equal weight, minimum variance
    on ``train``, random, cash)."""
    from qrl.baselines import daily_baselines

    return daily_baselines(env, train=train, seed=seed)


def policy_metrics(env: PortfolioEnv, act: Callable[[np.ndarray], Any]) -> dict[str, float]:
    """Metrics of a policy ``act(obs) -> action`` over one sequential episode."""
    return run_episode(env, lambda e, obs: weights_from_action(act(obs), e.n))
