"""``trainer.vector_env``: the same training in worker processes as in one process, Ray imported only when asked,
and the setting's errors (the Ray run itself is in ``tests/qray/test_ray_rl.py``)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from qrl.data import planted_intraday
from qrl.envs import make_execution_env
from qrl.execution.baselines import evaluate
from qrl.trainer import TrainSpec, policy_fn, train

from qcore.config import parse_yaml
from qcore.errors import ConfigError, OptionalDependencyError
from qcore.kernel import Kernel

DATA = "data: {planted: {}, splits: {train: 8, valid: 2, test: 2}}\n"


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def exec_factory(kernel: Kernel) -> Any:
    """``make(split)`` over planted minute bars: train days 0-5, valid 6-7, test 8-9."""
    full = planted_intraday(days=10, instruments=2, seed=0)
    parts = {"train": full.take(slice(0, 6)), "valid": full.take(slice(6, 8)), "test": full.take(slice(8, 10))}
    return lambda split: make_execution_env(parts[split], kernel=kernel, sequential=split != "train")


def short_spec(vector_env: str, **extra: Any) -> TrainSpec:
    """A PPO run of a second or two: 2 environments, 1 epoch of 200 steps."""
    return TrainSpec(algorithm="ppo", epochs=1, epoch_steps=200, collect_steps=100, n_envs=2, valid_episodes=2,
                     hidden_sizes=(16,), seed=3, vector_env=vector_env, **extra)


def assert_same_training(a: Any, b: Any, make: Any) -> None:
    """Bitwise-equal networks, validation reward, step count and test-split evaluation."""
    assert a.best_reward == b.best_reward and a.env_steps == b.env_steps
    sa, sb = a.algorithm.state_dict(), b.algorithm.state_dict()
    assert list(sa) == list(sb)
    for key, value in sa.items():
        if hasattr(value, "shape"):
            assert np.array_equal(value.numpy(), sb[key].numpy()), key
    env = make("test")
    assert evaluate(env, policy_fn(a.algorithm)) == evaluate(env, policy_fn(b.algorithm))


@pytest.fixture(scope="module")
def dummy_run(kernel: Kernel) -> Any:
    return train(exec_factory(kernel), "execution", short_spec("dummy"), kernel=kernel)


def test_subprocess_envs_train_exactly_like_dummy(kernel: Kernel, dummy_run: Any) -> None:
    make = exec_factory(kernel)
    sub = train(make, "execution", short_spec("subprocess"), kernel=kernel)
    assert sub.env_steps >= 200
    assert_same_training(dummy_run, sub, make)


def test_dummy_training_never_imports_ray() -> None:
    code = ("import sys\n"
            "from qcore.kernel import Kernel\n"
            "from qrl.data import planted_intraday\n"
            "from qrl.envs import make_execution_env\n"
            "from qrl.trainer import TrainSpec, train\n"
            "k = Kernel.load(use_env=False)\n"
            "d = planted_intraday(days=4, instruments=1, seed=0)\n"
            "make = lambda split: make_execution_env(d, kernel=k, sequential=split != 'train')\n"
            "spec = TrainSpec(epochs=1, epoch_steps=20, collect_steps=20, n_envs=1, valid_episodes=1, "
            "hidden_sizes=(4,))\n"
            "train(make, 'execution', spec, kernel=k)\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    ("trainer", "path", "message"),
    [
        ("{vector_env: threads}", "trainer.vector_env", "must be one of dummy, subprocess, ray, got 'threads'"),
        ("{vector_env: 3}", "trainer.vector_env", "must be one of"),
        ("{vector_env: subprocess, ray: {address: auto}}", "trainer.ray", "for vector_env: ray"),
        ("{vector_env: ray, ray: {adress: auto}}", "trainer.ray.adress", "unknown key"),
        ("{vector_env: ray, ray: {address: 5}}", "trainer.ray.address", "auto, local"),
    ],
)
def test_bad_vector_env_settings_name_key_and_line(trainer: str, path: str, message: str, kernel: Kernel) -> None:
    from qrl.config import validate

    text = f"env: execution\n{DATA}algorithm: {{name: ppo}}\ntrainer: {trainer}\n"
    with pytest.raises(ConfigError, match=message) as info:
        validate(parse_yaml(text, source="rl.yaml"), kernel)
    assert info.value.path == path and info.value.line == 4 and "rl.yaml" in str(info.value)


def test_good_settings_reach_the_train_spec(kernel: Kernel) -> None:
    from qrl.config import validate

    text = f"env: execution\n{DATA}trainer: {{vector_env: subprocess, n_envs: 3}}\n"
    spec = validate(parse_yaml(text, source="rl.yaml"), kernel).spec
    assert (spec.vector_env, spec.n_envs, dict(spec.ray)) == ("subprocess", 3, {})
    assert validate(parse_yaml(f"env: execution\n{DATA}", source="rl.yaml"), kernel).spec.vector_env == "dummy"


def test_missing_ray_is_a_clear_error_with_the_install_hint(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    import qrl.vector
    from qrl.config import validate

    monkeypatch.setattr(qrl.vector, "ray_installed", lambda: False)
    text = f"env: execution\n{DATA}trainer: {{vector_env: ray}}\n"
    with pytest.raises(ConfigError, match=r"not installed; install it with: pip install 'ray") as info:
        validate(parse_yaml(text, source="rl.yaml"), kernel)
    assert info.value.path == "trainer.vector_env"
    with pytest.raises(OptionalDependencyError, match=r"pip install 'ray"):
        train(exec_factory(kernel), "execution", short_spec("ray"), kernel=kernel)


def test_unknown_vector_env_in_python_is_refused_before_training(kernel: Kernel) -> None:
    with pytest.raises(ValueError, match="vector_env must be one of"):
        train(exec_factory(kernel), "execution", short_spec("threads"), kernel=kernel)
