"""Hooks of the RL plugin: one per component kind it declares (added to the kernel through ``qcore_addhooks``).

Another plugin implements one of them to add an environment, an interpreter, a reward, baselines or an algorithm by
name; the kernel keeps them in ordinary registries (``qcore list rl_algorithm``), owned and checked like every
other kind. Factories receive keyword arguments only and should import their heavy packages when called
(:func:`qcore.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qcore import hookspec

if TYPE_CHECKING:
    from qcore import Registrar


@hookspec
def qrl_register_envs(register: Registrar) -> None:
    """Register environments: a factory ``(data, *, kernel, **env_kwargs) -> gymnasium.Env``.

    :param register: ``register(name, factory, aliases=(), description="", override=False)``.
    """


@hookspec
def qrl_register_state_interpreters(register: Registrar) -> None:
    """Register state interpreters of the execution environment (simulator state -> observation).

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qrl_register_action_interpreters(register: Registrar) -> None:
    """Register action interpreters of the execution environment (policy action -> order amount).

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qrl_register_rewards(register: Registrar) -> None:
    """Register rewards of the execution environment.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qrl_register_portfolio_rewards(register: Registrar) -> None:
    """Register rewards of the portfolio environment: a factory ``(**kwargs)`` returning an object with
    ``reset(value)`` and ``__call__(StepOutcome) -> float`` (:class:`qrl.portfolio.rewards.PortfolioReward`).

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qrl_register_baselines(register: Registrar) -> None:
    """Register baselines by environment name: ``baselines(env, *, train) -> {name: metrics}`` on a sequential
    evaluation env; ``train`` is the training split's data (for baselines estimated on it, never on the evaluated
    rows).

    :param register: ``register(env_name, function, ...)``.
    """


@hookspec
def qrl_register_algorithms(register: Registrar) -> None:
    """Register RL algorithms: a factory ``(obs_space, act_space, *, hidden_sizes, **kwargs)`` returning a
    ``tianshou.algorithm.Algorithm`` (an on-policy one is trained with tianshou's on-policy trainer).

    :param register: ``register(name, factory, ...)``.
    """
