"""Environment factories: assemble an environment from data and named components (``{"name": ..., "kwargs": ...}``),
built through the kernel's ``rl_*`` registries so another plugin's interpreters and rewards can be named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qrl.data import DailyData, IntradayData

if TYPE_CHECKING:
    from qcore.kernel import Kernel


def _component(kernel: Kernel, kind: str, spec: Mapping[str, Any] | None, default: str) -> Any:
    spec = dict(spec or {})
    return kernel.create(kind, spec.get("name", default), **dict(spec.get("kwargs") or {}))


def make_execution_env(
    data: IntradayData, *, kernel: Kernel, state: Mapping[str, Any] | None = None,
    action: Mapping[str, Any] | None = None, reward: Mapping[str, Any] | None = None, **kwargs: Any,
) -> Any:
    """An :class:`~qrl.execution.env.ExecutionEnv` with named state/action interpreters and reward.

    :param kernel: where the named ``rl_state_interpreter``, ``rl_action_interpreter`` and ``rl_reward`` come from.
    """
    from qrl.execution.env import ExecutionEnv
    from qrl.execution.spec import DEFAULT_ACTION, DEFAULT_REWARD, DEFAULT_STATE

    return ExecutionEnv(
        data, state=_component(kernel, "rl_state_interpreter", state, DEFAULT_STATE),
        action=_component(kernel, "rl_action_interpreter", action, DEFAULT_ACTION),
        reward=_component(kernel, "rl_reward", reward, DEFAULT_REWARD), **kwargs,
    )


def make_portfolio_env(data: DailyData, *, kernel: Kernel | None = None, reward: Any = None, **kwargs: Any) -> Any:
    """A :class:`~qrl.portfolio.env.PortfolioEnv`; ``reward`` is a name or ``{"name": ..., "kwargs": ...}`` of the
    kernel's ``rl_portfolio_reward`` registry (default ``log_growth``), or a reward object."""
    from qrl.portfolio.env import PortfolioEnv

    if isinstance(reward, str):
        reward = {"name": reward}
    if isinstance(reward, Mapping):
        if kernel is None:
            raise ValueError("a named portfolio reward needs the kernel's rl_portfolio_reward registry")
        reward = _component(kernel, "rl_portfolio_reward", reward, "log_growth")
    return PortfolioEnv(data, reward=reward, **kwargs)


def make_stock_trading_env(data: DailyData, *, kernel: Kernel | None = None, **kwargs: Any) -> Any:
    """A :class:`~qrl.stock.env.StockTradingEnv` (FinRL's parameter names; it names no component)."""
    from qrl.stock.env import StockTradingEnv

    return StockTradingEnv(data, **kwargs)
