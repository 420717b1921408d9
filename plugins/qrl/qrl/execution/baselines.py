"""Baseline execution schedules (TWAP, VWAP) and the evaluation loop shared with trained policies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from qrl.execution.env import ExecutionEnv
from qrl.execution.simulator import ExecutionSimulator
from qrl.twap import TwapExecutor


def run_schedule(sim: ExecutionSimulator, schedule: np.ndarray) -> dict[str, float]:
    """Request ``schedule[k]`` shares at step ``k`` (the last step requests all that is left)."""
    for k in range(sim.n_steps):
        sim.execute(sim.remaining if k == sim.n_steps - 1 else float(schedule[k]))
    return sim.metrics()


def twap_schedule(sim: ExecutionSimulator) -> np.ndarray:
    """Equal whole lots per step (:class:`qrl.twap.TwapExecutor`)."""
    return TwapExecutor(sim.n_steps, sim.lot_size).schedule(sim.order.amount)


def volume_profile(env: ExecutionEnv) -> np.ndarray:
    """Mean share of the window's volume traded in each step, over the environment's data (the VWAP curve)."""
    sim = env.simulator(*env.pairs[0])
    vol = env.data.volume[:, :, sim.start_bar:sim.end_bar]
    per_step = np.nansum(vol.reshape(*vol.shape[:2], sim.n_steps, sim.bars_per_step), axis=3)
    shares = per_step / np.nansum(per_step, axis=2, keepdims=True)
    return np.nanmean(shares, axis=(0, 1))


def vwap_schedule(sim: ExecutionSimulator, profile: np.ndarray) -> np.ndarray:
    """Shares per step in proportion to the historical volume ``profile``, in whole lots."""
    raw = sim.order.amount * profile / profile.sum()
    return np.floor(raw / sim.lot_size) * sim.lot_size


def evaluate(env: ExecutionEnv, act: Callable[[np.ndarray], Any] | str, profile: np.ndarray | None = None) -> dict:
    """Mean ``pa_bps`` and ``fill_rate`` over every order of ``env`` for a policy ``act(obs) -> action``, or for
    the baseline ``"twap"`` / ``"vwap"``."""
    pa, fill = [], []
    if act == "vwap" and profile is None:
        profile = volume_profile(env)
    for day, inst in env.pairs:
        sim = env.simulator(day, inst)
        if act == "twap":
            m = run_schedule(sim, twap_schedule(sim))
        elif act == "vwap":
            m = run_schedule(sim, vwap_schedule(sim, profile))  # type: ignore[arg-type]
        else:
            while not sim.done:
                sim.execute(env.action(sim, act(env.state(sim))))
            m = sim.metrics()
        pa.append(m["pa_bps"])
        fill.append(m["fill_rate"])
    return {"pa_bps": float(np.mean(pa)), "fill_rate": float(np.mean(fill)), "orders": len(pa)}


def baselines(env: ExecutionEnv, *, train: Any = None) -> dict[str, dict[str, Any]]:
    """TWAP and VWAP results on ``env``'s orders (``train`` is not needed: neither is estimated)."""
    return {"twap": evaluate(env, "twap"), "vwap": evaluate(env, "vwap")}
