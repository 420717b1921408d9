"""Vectorised environments for training: tianshou's ``DummyVectorEnv`` (one process), ``SubprocVectorEnv`` (one
worker process per environment) or ``RayVectorEnv`` (one Ray actor per environment), picked by
``trainer.vector_env``.

What crosses a process boundary: with ``subprocess`` under the ``fork`` start method (Linux's default) the workers
inherit the factory and its data without pickling; under ``spawn``/``forkserver`` tianshou cloudpickles the factory
(kernel and the train/valid data included) once per environment. With ``ray`` tianshou builds each environment in
the driver and ships it to its actor, so each actor receives its own pickled copy of the split's data.
Ray is imported only when ``ray`` is asked for: tianshou's ``tianshou.env`` imports Ray whenever it is installed
(half a second and a few hundred MB), so :func:`import_tianshou_env` imports it with Ray hidden unless asked.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qcore.errors import OptionalDependencyError, RunError

#: The values of ``trainer.vector_env``.
VECTOR_ENVS = ("dummy", "subprocess", "ray")
#: The keys of ``trainer.ray``.
RAY_KEYS = ("address",)
RAY_INSTALL = "pip install 'ray>=2.60,<3' (or pip install -e plugins/qray)"


def ray_installed() -> bool:
    """Whether ``ray`` can be imported (checked without importing it)."""
    return importlib.util.find_spec("ray") is not None


@dataclass
class RayConnection:
    """A driver connection made for training; :meth:`close` disconnects only what :func:`connect_ray` opened (a
    cluster started by someone else keeps running; a local instance started here stops with the driver)."""

    opened: bool

    def close(self) -> None:
        """Disconnect when this connection was opened here."""
        if self.opened:
            import ray

            ray.shutdown()


def connect_ray(address: str | None) -> RayConnection:
    """Connect this process to Ray unless it already is: ``auto`` (a running cluster, e.g. ``qcore cluster up``),
    ``local`` (a fresh local instance), ``host:port`` or ``ray://host:port``; ``None`` is Ray's own default
    (``RAY_ADDRESS`` when set, else a local instance)."""
    if not ray_installed():
        raise OptionalDependencyError("trainer.vector_env 'ray'", "ray", RAY_INSTALL)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a Ray instance qcore starts reports nothing
    import ray

    if ray.is_initialized():
        return RayConnection(opened=False)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RunError(f"cannot connect to Ray at {address or 'its default address'!r} (trainer.ray.address): "
                       f"{exc}") from None
    return RayConnection(opened=True)


def import_tianshou_env(with_ray: bool) -> None:
    """Import ``tianshou.env`` (and with it ``tianshou.data``...) without importing Ray unless ``with_ray``; when
    Ray is wanted later, tianshou's Ray worker is handed the module."""
    if not with_ray and "tianshou.env" not in sys.modules and "ray" not in sys.modules:
        sys.modules["ray"] = None  # type: ignore[assignment]  # makes tianshou's optional ``import ray`` fail
        try:
            import tianshou.env  # noqa: F401
        finally:
            del sys.modules["ray"]
    import tianshou.env.worker.ray as worker

    if with_ray and getattr(worker, "ray", None) is None:
        import ray

        worker.ray = ray  # type: ignore[attr-defined]


def make_vector_env(kind: str, make_env: Callable[[str], Any], split: str, n: int) -> Any:
    """``n`` environments ``make_env(split)`` in tianshou's vector env of ``kind`` (one of :data:`VECTOR_ENVS`);
    for ``ray`` the caller has connected first (:func:`connect_ray`)."""
    from tianshou.env import DummyVectorEnv, SubprocVectorEnv

    fns = [_Factory(make_env, split) for _ in range(n)]
    if kind == "dummy":
        return DummyVectorEnv(fns)
    if kind == "subprocess":
        return SubprocVectorEnv(fns)
    if kind == "ray":
        from tianshou.env import RayVectorEnv

        return RayVectorEnv(fns)
    raise ValueError(f"vector_env must be one of {', '.join(VECTOR_ENVS)}, got {kind!r}")


@dataclass(frozen=True)
class _Factory:
    """``make_env(split)`` as a picklable callable (no lambda capturing a loop variable)."""

    make_env: Callable[[str], Any]
    split: str

    def __call__(self) -> Any:
        return self.make_env(self.split)
