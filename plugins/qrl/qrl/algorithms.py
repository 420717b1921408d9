"""tianshou 2.x algorithms built for an environment's spaces: PPO and A2C (discrete or continuous), DQN (discrete),
SAC, TD3 and DDPG (continuous) -- FinRL's five (A2C, DDPG, PPO, SAC, TD3) plus DQN."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _gaussian(loc_scale: Any) -> Any:
    import torch

    loc, scale = loc_scale
    return torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)


def _actor_critic(obs_space: Any, act_space: Any, hidden_sizes: Sequence[int]) -> tuple[Any, Any]:
    """A stochastic policy (categorical for discrete actions, Gaussian for continuous ones) and a state-value critic,
    the networks of the on-policy actor-critic algorithms (PPO, A2C)."""
    import gymnasium as gym
    import torch
    from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy, ProbabilisticActorPolicy
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
    from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

    obs_shape = obs_space.shape
    if isinstance(act_space, gym.spaces.Discrete):
        actor = DiscreteActor(preprocess_net=Net(state_shape=obs_shape, hidden_sizes=hidden_sizes),
                              action_shape=int(act_space.n))
        critic = DiscreteCritic(preprocess_net=Net(state_shape=obs_shape, hidden_sizes=hidden_sizes))
        return DiscreteActorPolicy(actor=actor, action_space=act_space, deterministic_eval=True), critic
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_shape, hidden_sizes=hidden_sizes), action_shape=act_space.shape,
        unbounded=True,
    )
    torch.nn.init.constant_(actor.sigma_param, -0.5)
    critic = ContinuousCritic(preprocess_net=Net(state_shape=obs_shape, hidden_sizes=hidden_sizes))
    policy = ProbabilisticActorPolicy(actor=actor, dist_fn=_gaussian, action_space=act_space,
                                      deterministic_eval=True, action_bound_method="clip")
    return policy, critic


def build_ppo(obs_space: Any, act_space: Any, *, hidden_sizes: Sequence[int] = (64, 64), lr: float = 3e-4,
              **kwargs: Any) -> Any:
    """PPO with a categorical actor (discrete actions) or a Gaussian actor (continuous actions)."""
    from tianshou.algorithm import PPO
    from tianshou.algorithm.optim import AdamOptimizerFactory

    policy, critic = _actor_critic(obs_space, act_space, hidden_sizes)
    return PPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=lr), **kwargs)


def build_a2c(obs_space: Any, act_space: Any, *, hidden_sizes: Sequence[int] = (64, 64), lr: float = 7e-4,
              max_grad_norm: float | None = 0.5, **kwargs: Any) -> Any:
    """Synchronous advantage actor-critic (A2C) with the same networks as PPO: one gradient step per batch, no
    clipped surrogate (FinRL's default agent)."""
    from tianshou.algorithm import A2C
    from tianshou.algorithm.optim import AdamOptimizerFactory

    policy, critic = _actor_critic(obs_space, act_space, hidden_sizes)
    return A2C(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=lr), max_grad_norm=max_grad_norm, **kwargs)


def build_dqn(obs_space: Any, act_space: Any, *, hidden_sizes: Sequence[int] = (64, 64), lr: float = 1e-3,
              eps_training: float = 0.1, target_update_freq: int = 50, **kwargs: Any) -> Any:
    """Double DQN for discrete actions, epsilon-greedy in training and greedy in evaluation."""
    import gymnasium as gym
    from tianshou.algorithm import DQN
    from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.utils.net.common import Net

    if not isinstance(act_space, gym.spaces.Discrete):
        raise ValueError("dqn needs a discrete action space (use a categorical action interpreter)")
    net = Net(state_shape=obs_space.shape, action_shape=int(act_space.n), hidden_sizes=hidden_sizes)
    policy = DiscreteQLearningPolicy(model=net, action_space=act_space, eps_training=eps_training, eps_inference=0.0)
    return DQN(policy=policy, optim=AdamOptimizerFactory(lr=lr), target_update_freq=target_update_freq, **kwargs)


def _critics(obs_space: Any, act_space: Any, hidden_sizes: Sequence[int]) -> tuple[Any, Any]:
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousCritic

    def one() -> Any:
        net = Net(state_shape=obs_space.shape, action_shape=act_space.shape, hidden_sizes=hidden_sizes, concat=True)
        return ContinuousCritic(preprocess_net=net)

    return one(), one()


def build_sac(obs_space: Any, act_space: Any, *, hidden_sizes: Sequence[int] = (64, 64), lr: float = 1e-3,
              alpha: float = 0.05, **kwargs: Any) -> Any:
    """SAC with twin critics for continuous actions."""
    import gymnasium as gym
    from tianshou.algorithm import SAC
    from tianshou.algorithm.modelfree.sac import SACPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic

    if not isinstance(act_space, gym.spaces.Box):
        raise ValueError("sac needs a continuous (Box) action space")
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_space.shape, hidden_sizes=hidden_sizes), action_shape=act_space.shape,
        unbounded=True, conditioned_sigma=True,
    )
    c1, c2 = _critics(obs_space, act_space, hidden_sizes)
    policy = SACPolicy(actor=actor, action_space=act_space)
    opt = AdamOptimizerFactory(lr=lr)
    return SAC(policy=policy, policy_optim=opt, critic=c1, critic_optim=opt, critic2=c2, critic2_optim=opt,
               alpha=alpha, **kwargs)


def _deterministic_policy(name: str, obs_space: Any, act_space: Any, hidden_sizes: Sequence[int],
                          exploration_sigma: float) -> Any:
    """The deterministic actor with Gaussian exploration noise that TD3 and DDPG share."""
    import gymnasium as gym
    from tianshou.algorithm.modelfree.ddpg import ContinuousDeterministicPolicy
    from tianshou.exploration import GaussianNoise
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorDeterministic

    if not isinstance(act_space, gym.spaces.Box):
        raise ValueError(f"{name} needs a continuous (Box) action space")
    actor = ContinuousActorDeterministic(
        preprocess_net=Net(state_shape=obs_space.shape, hidden_sizes=hidden_sizes), action_shape=act_space.shape,
    )
    return ContinuousDeterministicPolicy(
        actor=actor, action_space=act_space, exploration_noise=GaussianNoise(sigma=exploration_sigma)
    )


def build_td3(obs_space: Any, act_space: Any, *, hidden_sizes: Sequence[int] = (64, 64), lr: float = 1e-3,
              exploration_sigma: float = 0.2, **kwargs: Any) -> Any:
    """TD3 for continuous actions with Gaussian exploration noise."""
    from tianshou.algorithm import TD3
    from tianshou.algorithm.optim import AdamOptimizerFactory

    policy = _deterministic_policy("td3", obs_space, act_space, hidden_sizes, exploration_sigma)
    c1, c2 = _critics(obs_space, act_space, hidden_sizes)
    opt = AdamOptimizerFactory(lr=lr)
    return TD3(policy=policy, policy_optim=opt, critic=c1, critic_optim=opt, critic2=c2, critic2_optim=opt, **kwargs)


def build_ddpg(obs_space: Any, act_space: Any, *, hidden_sizes: Sequence[int] = (64, 64), lr: float = 1e-3,
               exploration_sigma: float = 0.2, **kwargs: Any) -> Any:
    """DDPG for continuous actions: one critic, a deterministic actor and Gaussian exploration noise."""
    from tianshou.algorithm import DDPG
    from tianshou.algorithm.optim import AdamOptimizerFactory

    policy = _deterministic_policy("ddpg", obs_space, act_space, hidden_sizes, exploration_sigma)
    critic, _ = _critics(obs_space, act_space, hidden_sizes)
    opt = AdamOptimizerFactory(lr=lr)
    return DDPG(policy=policy, policy_optim=opt, critic=critic, critic_optim=opt, **kwargs)
