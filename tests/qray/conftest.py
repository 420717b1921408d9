"""One real local Ray cluster for the whole test session: a head on 127.0.0.1 with 2 CPUs started as its own
process (``qcore cluster up``'s code), token authentication configured explicitly (a fresh secret in this process's
environment, inherited by the head and its workers), stopped by its PID at the end of the session."""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _auth_changed() -> None:
    """Ray reads its auth settings when it is imported: an already imported Ray reads them again."""
    if "ray" in sys.modules:
        from ray._private.authentication_test_utils import reset_auth_token_state

        reset_auth_token_state()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The head's state (``pid``, ``address``...); the test process is connected to it as a driver."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed")
    saved = {key: os.environ.get(key) for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    _auth_changed()
    import ray
    from qray.cluster import head_status, start_head, stop_head

    state = Path(tmp_path_factory.mktemp("ray")) / "head.json"
    info = start_head(state, _free_port(), num_cpus=2, auth="token")
    try:
        ray.init(address=info["address"], include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield {**info, "state": state}
    finally:
        ray.shutdown()
        pid = stop_head(state)
        assert pid == info["pid"]
        assert head_status(state) is None
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _auth_changed()


@pytest.fixture(scope="session")
def ray_session(ray_head: dict[str, Any]) -> Any:
    """The ``ray`` module, connected to the session's head."""
    import ray

    return ray
