"""The execution-backend contract (:mod:`qcore.backends`) on Ray.

``address``: ``auto`` (a running cluster found from this machine: ``qcore cluster up``, ``ray start``), ``local``
(start a private one in this process, ``num_cpus`` of them), or ``ray://host:port`` / ``host:port``. Each task is a
Ray task with its own ``num_cpus``/``num_gpus``/``memory`` and ``max_retries`` (a crashed worker or a raised
exception runs it again); ``put`` is ``ray.put`` (one copy per node in the shared-memory object store, a zero-copy
read-only view in every task handed the reference as a top-level argument). A process that finds Ray already
connected uses that connection and leaves it up on :meth:`RayBackend.shutdown`; one it connected itself it ends.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from qcore.backends import Resources, Task, check_retries, task_failure, task_label
from qcore.errors import ConfigError, OptionalDependencyError, RunError

__all__ = ["RayBackend", "import_ray"]

_ADDRESS = re.compile(r"^(auto|local|ray://[\w.\-]+:\d+|[\w.\-]+:\d+)$")
INSTALL_HINT = "pip install 'ray>=2.60,<3' (or pip install -e plugins/qray)"


#: Ray reports usage statistics to its makers from a cluster it starts unless told not to; qcore sends nothing, so
#: Ray is told before it is imported (a user who sets the variable keeps theirs).
USAGE_STATS_SWITCH = "RAY_USAGE_STATS_ENABLED"


def import_ray() -> Any:
    """The ``ray`` module (usage statistics off unless the user turned them on), or an
    :class:`OptionalDependencyError` with the pip command."""
    os.environ.setdefault(USAGE_STATS_SWITCH, "0")
    try:
        import ray
    except ImportError:
        raise OptionalDependencyError("the ray execution backend", "ray", INSTALL_HINT) from None
    return ray


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Refuse at once an address nothing listens on (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except OSError as exc:
        raise RunError(f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}); start one with "
                       "'qcore cluster up' or give backend.kwargs.address") from None  # fmt: skip


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Worker side: Ray has already turned top-level object references into their (read-only) values."""
    return fn(*args)


class RayBackend:
    """Tasks on Ray; see the module docstring.

    :param address: ``auto``, ``local`` or ``[ray://]host:port``.
    :param num_cpus: CPUs of a ``local`` cluster (default: Ray's, all of them).
    :param object_store_memory: bytes of a ``local`` cluster's object store.
    :param namespace: the Ray namespace to join.
    """

    def __init__(self, address: str = "auto", num_cpus: int | None = None, object_store_memory: int | None = None,
                 namespace: str | None = None) -> None:  # fmt: skip
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise ConfigError(f"expected auto, local or ray://host:port, got {address!r}", path="address")
        for name, value in (("num_cpus", num_cpus), ("object_store_memory", object_store_memory)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"expected a positive integer, got {value!r}", path=name)
        if address != "local" and (num_cpus is not None or object_store_memory is not None):
            raise ConfigError("num_cpus and object_store_memory size a local cluster; the cluster at "
                              f"{address!r} has its own", path="num_cpus")  # fmt: skip
        self.address, self.num_cpus, self.object_store_memory, self.namespace = (
            address, num_cpus, object_store_memory, namespace)
        self._ray: Any = None
        self._owned = False

    def _connect(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}  # fmt: skip
            if self.address == "local":
                kwargs.update(num_cpus=self.num_cpus, object_store_memory=self.object_store_memory)
            elif self.address != "auto":
                _check_reachable(self.address)
            try:
                ray.init(address=self.address, namespace=self.namespace, **kwargs)
            except (ConnectionError, TimeoutError) as exc:
                raise RunError(f"cannot reach a Ray cluster at {self.address!r} ({exc}); start one with "
                               "'qcore cluster up' or give backend.kwargs.address") from None  # fmt: skip
            self._owned = True
        self._ray = ray
        return ray

    def _remote(self, resources: Resources | Mapping[str, Any] | None, retries: int) -> Any:
        ray = self._connect()
        res = Resources.parse(resources)
        options: dict[str, Any] = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus, "max_retries": retries,
                                   "retry_exceptions": retries > 0}  # fmt: skip
        if res.memory is not None:
            options["memory"] = res.memory
        return ray.remote(_call).options(**options)

    def _failure(self, exc: BaseException, index: int, label: str, attempts: int) -> BaseException:
        cause = getattr(exc, "cause", None)
        return task_failure(cause if isinstance(cause, BaseException) else exc, index, label, attempts)

    def put(self, array: Any) -> Any:
        """``ray.put`` of a numeric numpy array (read-only in tasks)."""
        from qcore.shared_arrays import check_shareable

        return self._connect().put(check_shareable(array))

    def get(self, ref: Any) -> Any:
        """``ray.get`` of a reference from :meth:`put`."""
        return self._connect().get(ref)

    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources | Mapping[str, Any] | None = None,
               retries: int = 0) -> Task:  # fmt: skip
        """One Ray task (Ray retries it; :meth:`Task.result` reports the last failure with the task)."""
        retries = check_retries(retries)
        remote = self._remote(resources, retries)
        label = getattr(fn, "__name__", repr(fn))

        def wait(ref: Any) -> Any:
            try:
                return self._ray.get(ref)
            except Exception as exc:
                error = self._failure(exc, 0, label, retries + 1)
                raise error from error.__cause__

        return Task(lambda: remote.remote(fn, *args), wait, 0, label)

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, args: Sequence[Any] = (),
            resources: Resources | Mapping[str, Any] | None = None, retries: int = 0,
            labels: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:  # fmt: skip
        """Every item as a Ray task at once (Ray schedules them by their resources); results as they finish."""
        retries = check_retries(retries)
        remote = self._remote(resources, retries)
        return self._map(remote, fn, list(items), tuple(args), retries, labels)

    def _map(self, remote: Any, fn: Callable[..., Any], items: list[Any], args: tuple[Any, ...], retries: int,
             labels: Sequence[str] | None) -> Iterator[tuple[int, Any]]:  # fmt: skip
        ray = self._ray
        pending = {remote.remote(fn, item, *args): i for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:
                        error = self._failure(exc, i, task_label(items[i], labels, i), retries + 1)
                        raise error from error.__cause__
                    yield i, result
        finally:
            for ref in pending:
                ray.cancel(ref)

    def run_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``map(fn, items)``."""
        return self.map(fn, items)

    def shutdown(self) -> None:
        """Disconnect from Ray when this backend connected (a cluster it found connected stays up)."""
        if self._ray is not None and self._owned:
            self._ray.shutdown()
        self._ray, self._owned = None, False

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
