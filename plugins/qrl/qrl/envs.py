"""Environment factories: assemble an environment from data and named components (``{"name": ..., "kwargs": ...}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qrl.data import DailyData, IntradayData


def _component(kind: str, spec: Mapping[str, Any] | None, default: str) -> Any:
    from qrl.registry import components

    spec = dict(spec or {})
    return components().create(kind, spec.get("name", default), **dict(spec.get("kwargs") or {}))


def make_execution_env(
    data: IntradayData, *, state: Mapping[str, Any] | None = None, action: Mapping[str, Any] | None = None,
    reward: Mapping[str, Any] | None = None, **kwargs: Any,
) -> Any:
    """An :class:`~qrl.execution.env.ExecutionEnv` with named state/action interpreters and reward."""
    from qrl.execution.env import ExecutionEnv

    return ExecutionEnv(
        data, state=_component("state_interpreter", state, "recent_bars"),
        action=_component("action_interpreter", action, "categorical"),
        reward=_component("reward", reward, "pa_penalty"), **kwargs,
    )


def make_portfolio_env(data: DailyData, **kwargs: Any) -> Any:
    """A :class:`~qrl.portfolio.env.PortfolioEnv`."""
    from qrl.portfolio.env import PortfolioEnv

    return PortfolioEnv(data, **kwargs)
