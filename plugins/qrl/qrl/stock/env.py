"""FinRL's stock-trading environment with share-count actions, under the market's rules and the backtest's timing.

FinRL notebooks port with their parameter names: ``hmax`` (most shares one action trades per stock),
``initial_amount``, ``buy_cost_pct`` / ``sell_cost_pct`` (a rate per stock or for all), ``reward_scaling`` and
``turbulence_threshold``. The market's rules come from the kernel's market-rules hook (the workflow passes
``lot_size``, ``settlement_days`` and ``costs`` of ``market_rules: cn``): orders are whole lots, shares bought are
not sold for ``settlement_days`` rows (T+1), nothing is bought at limit-up nor sold at limit-down, nothing trades
where the instrument is not listed or quoted, and without explicit cost rates the market's :class:`CostSchedule`
charges commission, transfer fee and stamp duty on sells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from qcore.types import CostSchedule
from qrl.data import DailyData
from qrl.market import quotes
from qrl.portfolio.metrics import performance
from qrl.risk import turbulence
from qrl.timing import DEFAULT_TIMING, TIMINGS


def _rates(value: float | Sequence[float] | None, n: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    rates = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)) if np.ndim(value) == 0 else \
        np.asarray(value, dtype=np.float64)
    if rates.shape != (n,) or not np.all((rates >= 0) & (rates < 1)):
        raise ValueError(f"{name} must be a rate in [0, 1) or one per stock ({n}), got {value!r}")
    return rates


class StockTradingEnv(gym.Env):
    """Trade share counts of ``n`` stocks once a day (FinRL's ``StockTradingEnv``).

    Action: one value per stock in ``[-1, 1]``; ``a * hmax`` shares, rounded down to whole lots, are sold (``a <
    0``) or bought (``a > 0``), sells first to fund the buys, buys capped by the cash. A decision taken on row ``t``'s
    data trades per ``timing`` (:data:`qrl.timing.TIMINGS`; the default ``next_close`` matches the backtest).
    When ``turbulence_threshold`` is set and the decision row's turbulence exceeds it, every sellable share is sold
    and nothing is bought (FinRL's risk control); the turbulence is the data's series
    (:attr:`DailyData.turbulence`), else one over a trailing 20-day window of the environment's own rows.

    State at row ``t`` (FinRL's order: cash, prices, holdings, indicators): ``cash / initial_amount``, ``log`` of
    each close (0 before listing), holdings ``/ hmax``, the scaled indicators of each stock
    (:meth:`DailyData.observed_features`), then the tradable mask and, when the data carries turbulence,
    ``log1p(turbulence)``. ``normalize_obs=False`` observes cash, closes and holdings raw, as FinRL does.

    Reward: ``reward_scaling`` × the change of the total asset (cash + holdings at the close) over the step.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        data: DailyData,
        *,
        hmax: int = 1000,
        initial_amount: float = 1_000_000.0,
        buy_cost_pct: float | Sequence[float] | None = None,
        sell_cost_pct: float | Sequence[float] | None = None,
        reward_scaling: float = 1e-4,
        turbulence_threshold: float | None = None,
        lot_size: int = 100,
        settlement_days: int = 1,
        costs: CostSchedule | None = None,
        episode_days: int | None = None,
        sequential: bool = False,
        timing: str = DEFAULT_TIMING,
        normalize_obs: bool = True,
    ) -> None:
        if len(data.dates) < 3:
            raise ValueError("the stock trading environment needs at least 3 dates")
        if timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
        if not (isinstance(hmax, int) and hmax >= lot_size >= 1):
            raise ValueError(f"hmax must be a whole number of shares >= lot_size ({lot_size}), got {hmax!r}")
        if not initial_amount > 0:
            raise ValueError(f"initial_amount must be positive, got {initial_amount!r}")
        assert data.tradable is not None and data.open is not None
        if timing == "next_open" and not np.isfinite(data.open[data.tradable]).all():
            raise ValueError("timing next_open needs an open price on every tradable day (the data has none)")
        self.data = data
        self.n = len(data.instruments)
        self.hmax = hmax
        self.initial_amount = float(initial_amount)
        self.buy_cost_pct = _rates(buy_cost_pct, self.n, "buy_cost_pct")
        self.sell_cost_pct = _rates(sell_cost_pct, self.n, "sell_cost_pct")
        self.reward_scaling = float(reward_scaling)
        self.turbulence_threshold = turbulence_threshold
        self.lot_size = lot_size
        self.settlement_days = settlement_days
        self.costs = costs or CostSchedule(commission=0.0003, min_commission=5.0)
        self.episode_days = min(episode_days or len(data.dates) - 1, len(data.dates) - 1)
        self.sequential = sequential
        self.timing = timing
        self.normalize_obs = normalize_obs
        if data.turbulence is not None:
            self.turb = np.asarray(data.turbulence, dtype=np.float64)
        elif turbulence_threshold is not None:
            self.turb = turbulence(data.close, window=20)
        else:
            self.turb = np.zeros(len(data.dates))
        self.observe_turbulence = data.turbulence is not None
        self.mark = np.nan_to_num(data.close, nan=0.0)
        with np.errstate(divide="ignore"):
            self.log_close = np.where(self.mark > 0, np.log(np.where(self.mark > 0, self.mark, 1.0)), 0.0)
        self.features = data.observed_features()
        self.tradable = np.asarray(data.tradable, dtype=bool)
        f = data.features.shape[2]
        size = 1 + self.n * (3 + f) + int(self.observe_turbulence)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.n,), dtype=np.float32)

    # -- state -----------------------------------------------------------------------------------------------------

    def value(self) -> float:
        """Total asset at the current close."""
        return float(self.cash + self.shares @ self.mark[self.t])

    def observation(self, t: int, cash: float, shares: np.ndarray) -> np.ndarray:
        """The state at row ``t``'s close for ``cash`` and ``shares`` (reads rows ``<= t`` only)."""
        if self.normalize_obs:
            head = [[cash / self.initial_amount], self.log_close[t], shares / self.hmax]
        else:
            head = [[cash], self.mark[t], shares]
        turb = [np.log1p(self.turb[t])] if self.observe_turbulence else []
        return np.concatenate([*head, self.features[t].reshape(-1), self.tradable[t], turb]).astype(np.float32)

    def _obs(self) -> np.ndarray:
        return self.observation(self.t, self.cash, self.shares)

    def turbulent(self, row: int) -> bool:
        """Whether row ``row``'s turbulence exceeds :attr:`turbulence_threshold` (never when it is None)."""
        return self.turbulence_threshold is not None and bool(self.turb[row] > self.turbulence_threshold)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        last_start = len(self.data.dates) - 1 - self.episode_days
        start = 0 if self.sequential or last_start <= 0 else int(self.np_random.integers(last_start + 1))
        self.t0 = self.t = start
        self.cash = self.initial_amount
        self.shares = np.zeros(self.n)
        self.buys: dict[int, np.ndarray] = {}
        self.values = [self.value()]
        self.total_cost = 0.0
        self.trades = 0
        return self._obs(), {}

    # -- trading ---------------------------------------------------------------------------------------------------

    def _fee(self, i: int, value: float, *, sell: bool, row: int) -> float:
        rates = self.sell_cost_pct if sell else self.buy_cost_pct
        if rates is not None:
            return float(value * rates[i])
        return self.costs.cost(value, sell=sell, date=self.data.dates[row])

    def locked(self, row: int) -> np.ndarray:
        """Shares of each stock bought within ``settlement_days`` rows before ``row`` (not sellable on it)."""
        out = np.zeros(self.n)
        for r, bought in self.buys.items():
            if row - r < self.settlement_days:
                out += bought
        return out

    def trade(self, delta: np.ndarray, row: int, decided: int) -> None:
        """Sell then buy the whole-lot share counts ``delta`` on ``row`` under the market's rules; ``decided`` is the
        row the decision was taken on (its turbulence applies)."""
        q = quotes(self.data, row, self.timing)
        lot = self.lot_size
        delta = np.trunc(np.asarray(delta, dtype=np.float64) / lot) * lot
        stop = self.turbulent(decided)
        if stop:
            delta = -self.shares.copy()
        sellable = np.maximum(self.shares - self.locked(row), 0.0)
        bought = np.zeros(self.n)
        for i in np.argsort(delta):  # sells first, to fund the buys
            d = float(delta[i])
            if not q.ok[i] or d == 0:
                continue
            if d < 0 and not q.down[i]:
                d = -min(-d, float(sellable[i]))
                if d < 0:
                    proceeds = -d * q.price[i]
                    fee = self._fee(i, proceeds, sell=True, row=row)
                    self.shares[i] += d
                    self.cash += proceeds - fee
                    self.total_cost += fee
                    self.trades += 1
            elif d > 0 and not q.up[i] and not stop:
                fee = self._fee(i, d * q.price[i], sell=False, row=row)
                afford = np.floor(max(self.cash - fee, 0.0) / q.price[i] / lot) * lot
                d = min(d, afford)
                if d > 0:
                    fee = self._fee(i, d * q.price[i], sell=False, row=row)
                    self.shares[i] += d
                    self.cash -= d * q.price[i] + fee
                    self.total_cost += fee
                    self.trades += 1
                    bought[i] = d
        if bought.any():
            self.buys[row] = bought
        self.buys = {r: b for r, b in self.buys.items() if row - r < self.settlement_days}

    def _advance(self, delta_of: Any) -> tuple[float, bool]:
        before = self.value()
        decided = self.t
        if self.timing != "same_close":
            self.t += 1
        self.trade(delta_of(self.t), self.t, decided)
        if self.timing == "same_close":
            self.t += 1
        after = self.value()
        self.values.append(after)
        done = self.t >= len(self.data.dates) - 1 or self.t - self.t0 >= self.episode_days
        return after - before, done

    def advance(self, weights: np.ndarray | None) -> tuple[float, bool]:
        """Trade towards target ``weights`` (stocks then cash; None holds) instead of share counts, uncapped by
        ``hmax`` (how weight baselines run here); returns ``(log growth, done)``."""
        before = self.value()

        def delta(row: int) -> np.ndarray:
            if weights is None:
                return np.zeros(self.n)
            q = quotes(self.data, row, self.timing)
            value = float(self.cash + self.shares @ np.where(q.ok, q.price, self.mark[row]))
            return np.floor(np.asarray(weights)[: self.n] * value / q.price / self.lot_size) * self.lot_size - \
                self.shares

        change, done = self._advance(delta)
        return float(np.log((before + change) / before)), done

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if a.shape != (self.n,):
            raise ValueError(f"expected an action of {self.n} values, got shape {a.shape}")
        change, done = self._advance(lambda _row: a * self.hmax)
        info = self.metrics() if done else {}
        return self._obs(), change * self.reward_scaling, done, False, info

    def metrics(self) -> dict[str, float]:
        """Performance of the total asset so far (:func:`qrl.portfolio.metrics.performance`) and the cost paid."""
        return {**performance(np.asarray(self.values)), "cost": float(self.total_cost)}


def policy_metrics(env: StockTradingEnv, act: Any) -> dict[str, float]:
    """Metrics of a policy ``act(obs) -> action`` (share actions) over one sequential episode."""
    obs, _ = env.reset()
    done = False
    while not done:
        obs, _, done, _, _ = env.step(act(obs))
    return env.metrics()
