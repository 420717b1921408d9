"""Reward of the execution environment: price advantage against TWAP with a concentration penalty."""

from __future__ import annotations

import numpy as np

from qrl.execution.simulator import ExecutionSimulator, StepFill


class PriceAdvantageReward:
    """Per step: the filled share of the order times its price advantage over the window's TWAP price (bps),
    minus ``penalty`` times the squared filled share (concentrated trading costs more), scaled by ``scale``.

    Summed over an episode the first term is ``fill_rate * pa_bps``; unfilled shares at the end cost
    ``unfilled_bps`` each (as a fraction of the order).
    """

    def __init__(self, penalty: float = 10.0, unfilled_bps: float = 100.0, scale: float = 0.1) -> None:
        self.penalty = penalty
        self.unfilled_bps = unfilled_bps
        self.scale = scale

    def __call__(self, sim: ExecutionSimulator, fill: StepFill) -> float:
        """Reward for the step that produced ``fill``."""
        share = fill.filled / sim.order.amount
        reward = 0.0
        if fill.filled > 0:
            reward += sim.order.direction * (1.0 - fill.price / sim.twap_price()) * 1e4 * share
            reward -= self.penalty * share**2
        if sim.done:
            reward -= self.unfilled_bps * sim.remaining / sim.order.amount
        return float(np.float64(reward) * self.scale)
