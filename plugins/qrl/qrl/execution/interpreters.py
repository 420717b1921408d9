"""State and action interpreters of the execution environment."""

from __future__ import annotations

from typing import Any

import numpy as np

from qrl.execution.simulator import ExecutionSimulator


class RecentBarsState:
    """Observation: the last ``window`` deal prices relative to the window's first price (in percent), then the
    elapsed time fraction, the remaining-shares fraction and the order direction."""

    def __init__(self, window: int = 30) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window

    def space(self) -> Any:
        """The gymnasium observation space."""
        import gymnasium as gym

        return gym.spaces.Box(-np.inf, np.inf, shape=(self.window + 3,), dtype=np.float32)

    def __call__(self, sim: ExecutionSimulator) -> np.ndarray:
        """Observe ``sim`` before its next step: only its observable bars (:meth:`ExecutionSimulator.seen_prices`)."""
        seen = sim.seen_prices()
        recent = np.zeros(self.window)
        if len(seen):
            tail = seen[-self.window:] / seen[0] * 100 - 100
            recent[-len(tail):] = tail
        extra = [sim.step / sim.n_steps, sim.remaining / sim.order.amount, float(sim.order.direction)]
        return np.concatenate([recent, extra]).astype(np.float32)


class CategoricalAction:
    """Discrete action ``k`` trades ``k / (n - 1) * max_multiple`` TWAP slices (``amount / n_steps``)."""

    def __init__(self, n: int = 5, max_multiple: float = 4.0) -> None:
        if n < 2:
            raise ValueError(f"n must be >= 2, got {n}")
        self.values = np.linspace(0.0, max_multiple, n)

    def space(self) -> Any:
        """The gymnasium action space."""
        import gymnasium as gym

        return gym.spaces.Discrete(len(self.values))

    def __call__(self, sim: ExecutionSimulator, action: Any) -> float:
        """Shares to request for ``action``; the last step requests everything left."""
        if sim.step == sim.n_steps - 1:
            return sim.remaining
        return float(self.values[int(np.asarray(action).reshape(-1)[0])] * sim.order.amount / sim.n_steps)


class ContinuousAction:
    """Continuous action ``a`` in ``[0, 1]`` trades ``a * max_multiple`` TWAP slices (clipped)."""

    def __init__(self, max_multiple: float = 4.0) -> None:
        self.max_multiple = max_multiple

    def space(self) -> Any:
        """The gymnasium action space."""
        import gymnasium as gym

        return gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    def __call__(self, sim: ExecutionSimulator, action: Any) -> float:
        """Shares to request for ``action``; the last step requests everything left."""
        if sim.step == sim.n_steps - 1:
            return sim.remaining
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], 0.0, 1.0))
        return a * self.max_multiple * sim.order.amount / sim.n_steps
