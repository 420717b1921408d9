"""The execution environment: a gymnasium env assembled from a simulator, interpreters and a reward."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from qrl.data import IntradayData
from qrl.execution.interpreters import CategoricalAction, ContinuousAction, RecentBarsState
from qrl.execution.reward import PriceAdvantageReward
from qrl.execution.simulator import ExecutionSimulator, Order
from qrl.timing import DEFAULT_TIMING


class ExecutionEnv(gym.Env):
    """Liquidate (``side="sell"``) or acquire (``"buy"``) ``amount`` shares within a day's bar window.

    Each episode draws one ``(day, instrument)`` of ``data`` (cycling through them in order when
    ``sequential``, for evaluation). ``info`` of the last step carries ``pa_bps`` and ``fill_rate``. ``timing``
    (default ``next_close``) says which bars a step's observation shows (:class:`ExecutionSimulator`).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        data: IntradayData,
        *,
        side: str = "sell",
        amount: float = 100_000,
        n_steps: int = 8,
        start_bar: int = 0,
        end_bar: int | None = None,
        lot_size: int = 100,
        volume_cap: float = 0.1,
        state: RecentBarsState | None = None,
        action: CategoricalAction | ContinuousAction | None = None,
        reward: PriceAdvantageReward | None = None,
        sequential: bool = False,
        timing: str = DEFAULT_TIMING,
    ) -> None:
        if side not in ("sell", "buy"):
            raise ValueError(f"side must be 'sell' or 'buy', got {side!r}")
        if amount <= 0:
            raise ValueError(f"amount must be > 0, got {amount}")
        self.data = data
        self.side = side
        self.amount = float(amount)
        self.sim_kwargs = {
            "n_steps": n_steps, "start_bar": start_bar, "end_bar": end_bar, "lot_size": lot_size,
            "volume_cap": volume_cap, "timing": timing,
        }
        self.state = state or RecentBarsState()
        self.action = action or CategoricalAction()
        self.reward = reward or PriceAdvantageReward()
        self.observation_space = self.state.space()
        self.action_space = self.action.space()
        self.pairs: Sequence[tuple[int, int]] = data.orders()
        if not self.pairs:
            raise ValueError("no complete trading day in the execution data")
        self.sequential = sequential
        self._cursor = 0
        self.sim: ExecutionSimulator | None = None

    def make_order(self, day: int, instrument: int) -> Order:
        """The order this environment trades on ``(day, instrument)``."""
        return Order(day, instrument, 1 if self.side == "buy" else -1, self.amount)

    def simulator(self, day: int, instrument: int) -> ExecutionSimulator:
        """A fresh simulator of this environment's order on ``(day, instrument)``."""
        return ExecutionSimulator(self.data, self.make_order(day, instrument), **self.sim_kwargs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if self.sequential:
            pair = self.pairs[self._cursor % len(self.pairs)]
            self._cursor += 1
        else:
            pair = self.pairs[int(self.np_random.integers(len(self.pairs)))]
        self.sim = self.simulator(*pair)
        return self.state(self.sim), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.sim is not None, "call reset() first"
        fill = self.sim.execute(self.action(self.sim, action))
        reward = self.reward(self.sim, fill)
        info: dict[str, Any] = {}
        if self.sim.done:
            info = self.sim.metrics()
        return self.state(self.sim), reward, self.sim.done, False, info
