"""One local Ray (2 CPUs, no dashboard, auth mode set explicitly) for the whole test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # loopback only; Ray 2.60 would otherwise write ~/.ray/auth_token
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    yield ray
    ray.shutdown()
