"""REINFORCE (vanilla policy gradient) for discrete action spaces, built on tianshou 2's ``Reinforce``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def build_reinforce(obs_space: Any, act_space: Any, *, hidden_sizes: Sequence[int] = (32,), lr: float = 1e-3,
                    gamma: float = 0.99) -> Any:
    """An on-policy REINFORCE algorithm for ``obs_space`` and a discrete ``act_space``."""
    import gymnasium as gym
    from tianshou.algorithm import Reinforce
    from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.discrete import DiscreteActor

    if not isinstance(act_space, gym.spaces.Discrete):
        raise ValueError("toy_reinforce needs a discrete action space (use a categorical action interpreter)")
    actor = DiscreteActor(preprocess_net=Net(state_shape=obs_space.shape, hidden_sizes=hidden_sizes),
                          action_shape=int(act_space.n))
    policy = DiscreteActorPolicy(actor=actor, action_space=act_space, deterministic_eval=True)
    return Reinforce(policy=policy, optim=AdamOptimizerFactory(lr=lr), gamma=gamma, return_standardization=True)
