"""Execution backends: the kernel's contract for running independent tasks (rolling windows...) serially or in
parallel.

A backend is an ``execution_backend`` component (registered through ``qcore_register_execution_backends``) with one
method, :meth:`ExecutionBackend.run_unordered`: call a picklable module-level function on each item and yield
``(index, result)`` as each finishes. The kernel ships ``serial`` (in this process, in order) and ``processes``
(:class:`concurrent.futures.ProcessPoolExecutor`, spawned workers, at most ``max_workers`` items in flight so only
that many inputs are pickled at once); a Ray backend plugs in behind the same method. A task's exception is raised
by the iterator as it is; the caller keeps what finished before it (rolling checkpoints each window as it comes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["ExecutionBackend", "ProcessesBackend", "SerialBackend"]


@runtime_checkable
class ExecutionBackend(Protocol):
    """Runs independent tasks; see the module docstring."""

    def run_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``fn(item)`` for every item, yielded as ``(position in items, result)`` in the order they finish."""
        ...


class SerialBackend:
    """Every task in this process, one after the other, in order (the default)."""

    def run_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``fn(item)`` for each item in turn."""
        for i, item in enumerate(items):
            yield i, fn(item)


class ProcessesBackend:
    """Tasks in worker processes of this machine (``concurrent.futures``).

    :param max_workers: worker processes (default: the CPUs, at most 4).
    :param start_method: ``spawn`` (default: safe next to the threads a run already has) or ``forkserver``.
    """

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn") -> None:
        import os

        from qcore.errors import ConfigError

        if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                        or max_workers < 1):  # fmt: skip
            raise ConfigError(f"expected a positive integer, got {max_workers!r}", path="max_workers")
        if start_method not in ("spawn", "forkserver"):
            raise ConfigError(f"expected spawn or forkserver, got {start_method!r}", path="start_method")
        self.max_workers = max_workers or min(4, os.cpu_count() or 1)
        self.start_method = start_method

    def run_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Submit at most ``max_workers`` items at a time; yield each result as it finishes."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

        context = multiprocessing.get_context(self.start_method)
        pool = ProcessPoolExecutor(max_workers=self.max_workers, mp_context=context)
        pending: dict[Future[Any], int] = {}
        queue = iter(enumerate(items))
        try:
            while True:
                while len(pending) < self.max_workers:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    pending[pool.submit(fn, nxt[1])] = nxt[0]
                if not pending:
                    return
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in sorted(done, key=pending.__getitem__):
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
