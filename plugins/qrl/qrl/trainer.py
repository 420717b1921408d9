"""Training with tianshou 2.x: vectorised envs, on-/off-policy trainers, checkpoints with resume, early stopping
and metrics logged to a qcore recorder run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qrl import checkpoint

if TYPE_CHECKING:
    from qcore.kernel import Kernel


@dataclass
class TrainSpec:
    """Hyper-parameters of one training run (the ``algorithm`` and ``trainer`` sections of a config)."""

    algorithm: str = "ppo"
    algorithm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    hidden_sizes: Sequence[int] = (64, 64)
    epochs: int = 5
    epoch_steps: int = 1000
    collect_steps: int = 200
    n_envs: int = 4
    valid_episodes: int = 8
    batch_size: int = 64
    repeat: int = 4
    buffer_size: int = 20000
    updates_per_step: float = 0.25
    warmup_steps: int = 0
    seed: int = 0
    stop_reward: float | None = None
    threads: int = 1
    #: Where the environments step: ``dummy`` (in this process), ``subprocess`` (a worker process each) or ``ray``
    #: (a Ray actor each); see :mod:`qrl.vector`.
    vector_env: str = "dummy"
    #: ``{address: auto | local | host:port | ray://host:port}`` for ``vector_env: ray``.
    ray: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What a run produced: the trained algorithm, its best validation reward and the checkpoint paths."""

    algorithm: Any
    best_reward: float
    epochs: int
    env_steps: int
    stopped_early: bool
    checkpoints: dict[str, Path]


def build_algorithm(spec: TrainSpec, env: Any, kernel: Kernel) -> Any:
    """The tianshou algorithm ``spec.algorithm`` for ``env``'s spaces, built from ``kernel``'s ``rl_algorithm``
    registry (qrl's own or another plugin's), checked to be a ``tianshou.algorithm.Algorithm``."""
    import torch

    torch.manual_seed(spec.seed)
    return kernel.create("rl_algorithm", spec.algorithm, obs_space=env.observation_space,
                         act_space=env.action_space, hidden_sizes=tuple(spec.hidden_sizes),
                         **dict(spec.algorithm_kwargs))


def is_on_policy(algorithm: Any) -> bool:
    """Whether ``algorithm`` trains on-policy (tianshou's ``OnPolicyAlgorithm``: PPO, A2C...)."""
    from tianshou.algorithm.algorithm_base import OnPolicyAlgorithm

    return isinstance(algorithm, OnPolicyAlgorithm)


def _logger(run: Any | None, spec: TrainSpec, saver: Callable[[int, int, int], None], restored: tuple[int, int, int]
            ) -> Any:
    from tianshou.utils.logger.logger_base import LazyLogger

    class RecorderLogger(LazyLogger):
        """Forwards numeric scalars to a qcore run and drives checkpointing."""

        def __init__(self) -> None:
            super().__init__()
            self.training_interval = spec.epoch_steps
            self.update_interval = spec.epoch_steps

        def write(self, step_type: str, step: int, data: dict[str, Any]) -> None:
            if run is None:
                return
            scope = step_type.split("/")[0]
            flat: dict[str, float] = {}

            def walk(prefix: str, value: Any) -> None:
                if isinstance(value, Mapping):
                    for k, v in value.items():
                        walk(f"{prefix}.{k}", v)
                elif isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
                    if np.isfinite(value):
                        flat[prefix] = float(value)

            walk(scope, data)
            if flat:
                run.log_metrics(flat, step=int(step))

        def save_data(self, epoch: int, env_step: int, update_step: int, save_checkpoint_fn: Any = None) -> None:
            saver(epoch, env_step, update_step)

        def restore_data(self) -> tuple[int, int, int]:
            return restored

    return RecorderLogger()


#: The splits a training run may read; the test split is not among them.
TRAINING_SPLITS = ("train", "valid")


def train(
    make_env: Callable[[str], Any],
    env_name: str,
    spec: TrainSpec,
    *,
    out_dir: str | Path | None = None,
    run: Any | None = None,
    resume: str | Path | None = None,
    kernel: Kernel,
    extra_meta: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``spec.algorithm`` (from ``kernel``'s ``rl_algorithm`` registry) on ``spec.n_envs`` copies of
    ``make_env("train")``, validating on ``make_env("valid")`` (a sequential environment over the validation split).

    ``make_env`` is only ever asked for the splits of :data:`TRAINING_SPLITS`: give it no test data. Checkpoints
    ``last.pt`` (every epoch) and ``best.pt`` (best mean validation reward, tianshou's "test" step run on the
    validation split) go to ``out_dir``; ``resume`` continues from a ``last.pt`` (networks, optimisers and counters).
    Training stops early when the mean validation reward reaches ``spec.stop_reward``.
    """
    import torch

    from qrl import vector

    if spec.vector_env not in vector.VECTOR_ENVS:
        raise ValueError(f"vector_env must be one of {', '.join(vector.VECTOR_ENVS)}, got {spec.vector_env!r}")
    vector.import_tianshou_env(with_ray=spec.vector_env == "ray")
    torch.set_num_threads(spec.threads)
    np.random.seed(spec.seed)
    probe = make_env("train")
    expected = checkpoint.env_spec(env_name, probe)
    algorithm = build_algorithm(spec, probe, kernel)
    on_policy = is_on_policy(algorithm)
    restored = (0, 0, 0)
    if resume is not None:
        meta = checkpoint.read_meta(resume)
        checkpoint.check_compatible(meta, expected, spec.algorithm, resume)
        checkpoint.load(resume, algorithm)
        restored = (int(meta.get("epoch", 0)), int(meta.get("env_step", 0)), int(meta.get("update_step", 0)))
    out = Path(out_dir) if out_dir is not None else None
    meta_base = {**expected, "algorithm": spec.algorithm, "hidden_sizes": list(spec.hidden_sizes),
                 "algorithm_kwargs": dict(spec.algorithm_kwargs), "selected_on": "valid", **dict(extra_meta or {})}
    paths: dict[str, Path] = {}

    epochs_done = [restored[0]]

    def save_last(epoch: int, env_step: int, update_step: int) -> None:
        epochs_done[0] = epoch
        if out is not None:
            meta = {**meta_base, "epoch": epoch, "env_step": env_step, "update_step": update_step}
            paths["last"] = checkpoint.save(out / "last.pt", algorithm, meta)

    def save_best(alg: Any) -> None:
        if out is not None:
            paths["best"] = checkpoint.save(out / "best.pt", alg, meta_base)

    connection = vector.connect_ray(spec.ray.get("address")) if spec.vector_env == "ray" else None
    envs: list[Any] = []
    try:
        envs.append(vector.make_vector_env(spec.vector_env, make_env, "train", spec.n_envs))
        envs.append(vector.make_vector_env(spec.vector_env, make_env, "valid", 1))
        stats = _run(algorithm, on_policy, envs[0], envs[1], spec, run, save_last, save_best, restored, resume)
    finally:
        for venv in envs:
            venv.close()
        if connection is not None:
            connection.close()
    best = float(stats.best_reward)
    stopped = bool(spec.stop_reward is not None and best >= spec.stop_reward)
    if run is not None:
        run.log_metrics({"train.best_valid_reward": best, "train.env_steps": float(stats.train_step)})
    return TrainResult(algorithm, best, epochs_done[0], int(stats.train_step), stopped, paths)


def _run(algorithm: Any, on_policy: bool, train_envs: Any, valid_envs: Any, spec: TrainSpec, run: Any | None,
         save_last: Callable[[int, int, int], None], save_best: Callable[[Any], None], restored: tuple[int, int, int],
         resume: str | Path | None) -> Any:
    """tianshou's training loop over the given vector envs; its statistics."""
    from tianshou.data import Collector, ReplayBuffer, VectorReplayBuffer
    from tianshou.trainer import OffPolicyTrainerParams, OnPolicyTrainerParams

    train_envs.seed([spec.seed + i for i in range(spec.n_envs)])
    valid_envs.seed(spec.seed + 10_000)
    buffer = VectorReplayBuffer(max(spec.buffer_size, spec.collect_steps), spec.n_envs)
    train_collector = Collector(algorithm, train_envs, buffer, exploration_noise=True)
    valid_collector = Collector(algorithm, valid_envs, ReplayBuffer(1))
    train_collector.reset()
    valid_collector.reset()
    if spec.warmup_steps and not on_policy and resume is None:
        train_collector.collect(n_step=spec.warmup_steps, random=True)
    stop = None if spec.stop_reward is None else (lambda r: r >= spec.stop_reward)
    common = {
        "training_collector": train_collector, "test_collector": valid_collector, "max_epochs": spec.epochs,
        "epoch_num_steps": spec.epoch_steps, "collection_step_num_env_steps": spec.collect_steps,
        "test_step_num_episodes": spec.valid_episodes, "batch_size": spec.batch_size, "stop_fn": stop,
        "save_best_fn": save_best, "logger": _logger(run, spec, save_last, restored),
        "resume_from_log": resume is not None, "verbose": False, "show_progress": False,
    }
    if on_policy:
        params: Any = OnPolicyTrainerParams(**common, update_step_num_repetitions=spec.repeat)
    else:
        params = OffPolicyTrainerParams(**common, update_step_num_gradient_steps_per_sample=spec.updates_per_step)
    return algorithm.run_training(params)


def policy_fn(algorithm: Any) -> Callable[[np.ndarray], Any]:
    """A deterministic ``obs -> action`` function of a trained algorithm's policy (in eval mode, no gradients)."""
    import torch

    policy = algorithm.policy
    policy.eval()

    def act(obs: np.ndarray) -> Any:
        with torch.no_grad():
            return policy.compute_action(obs)

    return act
