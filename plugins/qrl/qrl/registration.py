"""qrl's environments in gymnasium's registry: ``qrl/StockTrading-v0``, ``qrl/Portfolio-v0``, ``qrl/Execution-v0``.

Importing this module registers them, so gymnasium's ``module:id`` form works without a prior import::

    env = gymnasium.make("qrl.registration:qrl/StockTrading-v0", data=daily_data, hmax=1000)

Each takes its data as ``data=`` (:class:`~qrl.data.DailyData`, or :class:`~qrl.data.IntradayData` for execution)
and the environment's keyword arguments (the execution environment's default interpreters and reward when none are
given).
"""

from __future__ import annotations

import gymnasium as gym

#: gymnasium id -> entry point.
ENV_IDS = {
    "qrl/StockTrading-v0": "qrl.stock.env:StockTradingEnv",
    "qrl/Portfolio-v0": "qrl.portfolio.env:PortfolioEnv",
    "qrl/Execution-v0": "qrl.execution.env:ExecutionEnv",
}


def register() -> None:
    """Register every id of :data:`ENV_IDS` that gymnasium does not know yet."""
    for env_id, entry in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry, disable_env_checker=True)


register()
