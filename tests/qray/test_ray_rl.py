"""RL rollouts on the session's Ray cluster (``trainer.vector_env: ray``): one Ray actor per environment trains the
same network, bit for bit, as the in-process environments, and a connection that was already open stays open."""

from __future__ import annotations

from typing import Any

import pytest
from qrl.trainer import train

from qcore.kernel import Kernel
from tests.qrl.test_vector_env import assert_same_training, exec_factory, short_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def test_ray_actors_train_exactly_like_dummy(ray_session: Any, kernel: Kernel) -> None:
    make = exec_factory(kernel)
    dummy = train(make, "execution", short_spec("dummy"), kernel=kernel)
    on_ray = train(make, "execution", short_spec("ray", ray={"address": "auto"}), kernel=kernel)
    assert on_ray.env_steps >= 200
    assert_same_training(dummy, on_ray, make)
    assert ray_session.is_initialized(), "a driver connection opened before training must survive it"
