"""Hook implementations of the RL plugin; tianshou, torch and gymnasium are imported only inside factories."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


def _twap(**kwargs: Any) -> Any:
    """TWAP baseline execution: equal lots over the window's steps."""
    from qrl.twap import TwapExecutor

    return TwapExecutor(**kwargs)


def _rl_policy(**kwargs: Any) -> Any:
    """A trained portfolio policy as a backtest strategy (``checkpoint``, ``config``, ``deterministic``,
    ``risk_degree``)."""
    from qrl.portfolio.strategy import RLPolicyStrategy

    return RLPolicyStrategy(**kwargs)


@hookimpl
def qcore_register_strategies(register: Any) -> None:
    register("rl_policy", _rl_policy)


@hookimpl
def qcore_addhooks(pluginmanager: Any) -> None:
    from qrl import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def qcore_register_executors(register: Any) -> None:
    register("twap", _twap)


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qrl.cli import rl

    cli.add_command(rl)


def _lazy(module: str, attr: str) -> Any:
    def factory(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    factory.__name__ = attr
    factory.__doc__ = f"{module}.{attr}"
    return factory


@hookimpl
def qrl_register_components(register: Any) -> None:
    """qrl's built-in environments, interpreters, rewards, baselines and algorithms."""
    register("env", "execution", _lazy("qrl.envs", "make_execution_env"))
    register("env", "portfolio", _lazy("qrl.envs", "make_portfolio_env"))
    register("state_interpreter", "recent_bars", _lazy("qrl.execution.interpreters", "RecentBarsState"))
    register("action_interpreter", "categorical", _lazy("qrl.execution.interpreters", "CategoricalAction"))
    register("action_interpreter", "continuous", _lazy("qrl.execution.interpreters", "ContinuousAction"))
    register("reward", "pa_penalty", _lazy("qrl.execution.reward", "PriceAdvantageReward"))
    register("baseline", "execution", _lazy("qrl.execution.baselines", "baselines"))
    register("baseline", "portfolio", _lazy("qrl.portfolio.env", "baselines"))
    for name in ("ppo", "dqn", "sac", "td3"):
        register("algorithm", name, _lazy("qrl.algorithms", f"build_{name}"))
