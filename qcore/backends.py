"""Execution backends: the kernel's contract for running independent tasks (rolling windows, expression shards,
sweep trials) in this process, in local worker processes, or on a cluster.

A backend is an ``execution_backend`` component (registered through ``qcore_register_execution_backends``), chosen
by ``backend:`` in a workflow (``rolling.backend`` for a rolling run's windows) or ``--backend`` on the command line.
It offers (:class:`ExecutionBackend`):

- :meth:`~ExecutionBackend.submit` one call, :meth:`~ExecutionBackend.map` a picklable module-level function over
  items (results yielded as ``(index, result)`` as they finish), each with per-task :class:`Resources` and a number
  of ``retries`` (a task that raises, or whose worker dies, runs again);
- :meth:`~ExecutionBackend.put` a large read-only numeric array once, getting a small reference: a reference passed
  as a top-level argument of a task (an item of ``map``, one of its ``args``) arrives in the task as the read-only
  array; :meth:`~ExecutionBackend.get` reads it back;
- :meth:`~ExecutionBackend.shutdown` (also on leaving a ``with`` block).

The kernel ships ``serial`` (in this process, in order) and ``processes`` (spawned local workers; a put array is an
Arrow IPC file every worker memory-maps, :mod:`qcore.shared_arrays`, so only its path crosses a pipe). A task that
still fails after its retries raises :class:`TaskError` naming the task (a qcore error keeps its type and gains a
note naming the task). ``run_unordered(fn, items)`` is ``map(fn, items)``, kept for callers of the first contract.
"""

from __future__ import annotations

import itertools
import pickle
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from qcore.errors import ConfigError, QcoreError, RunError
from qcore.shared_arrays import ArrayRef, check_shareable

__all__ = ["ArrayRef", "ExecutionBackend", "ProcessesBackend", "Resources", "SerialBackend", "Task", "TaskError"]


class TaskError(RunError, RuntimeError):
    """A task failed (after its retries); the message names its position and label, the cause is chained."""

    def __init__(self, message: str, *, index: int | None = None, label: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.label = label

    def __reduce__(self) -> Any:
        return (_task_error, (str(self), self.index, self.label))


def _task_error(message: str, index: int | None, label: str | None) -> TaskError:
    return TaskError(message, index=index, label=label)


def _positive_number(value: Any, path: str, *, zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"expected a {'non-negative' if zero else 'positive'} number, got {value!r}", path=path)
    return float(value)


@attrs.frozen
class Resources:
    """What one task reserves: CPUs and GPUs (fractions allowed, as Ray does) and memory in bytes.

    ``serial`` runs one task at a time whatever it asks for; ``processes`` reserves ``num_cpus`` of its
    ``max_workers`` slots per task (and has no GPUs); Ray schedules on all three.
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None

    @classmethod
    def parse(cls, value: Resources | Mapping[str, Any] | None, path: str = "resources") -> Resources:
        """``value`` as resources: None (one CPU), a :class:`Resources`, or a mapping of its fields (checked)."""
        if value is None:
            return cls()
        if isinstance(value, Resources):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping (num_cpus, num_gpus, memory), got {value!r}", path=path)
        unknown = sorted(set(value) - {"num_cpus", "num_gpus", "memory"})
        if unknown:
            raise ConfigError(f"unknown resource {unknown[0]!r} (num_cpus, num_gpus, memory)", path=path)
        memory = value.get("memory")
        if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or memory <= 0):
            raise ConfigError(f"expected a positive number of bytes, got {memory!r}", path=f"{path}.memory")
        return cls(_positive_number(value.get("num_cpus", 1.0), f"{path}.num_cpus", zero=True),
                   _positive_number(value.get("num_gpus", 0.0), f"{path}.num_gpus", zero=True), memory)  # fmt: skip


def check_retries(value: Any) -> int:
    """``value`` as a number of retries (0 to 100), or a :class:`ConfigError` at ``retries``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ConfigError(f"expected a number of retries from 0 to 100, got {value!r}", path="retries")
    return value


def task_label(item: Any, labels: Sequence[str] | None, index: int) -> str:
    """How errors name the task at ``index``: its label when given, else its item's (shortened) repr."""
    if labels is not None:
        return str(labels[index])
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def task_failure(exc: BaseException, index: int, label: str, attempts: int) -> BaseException:
    """What a task that failed ``attempts`` times raises: a qcore error as it is (with a note naming the task),
    anything else as a :class:`TaskError` naming it, the cause chained."""
    where = f"task {index} ({label}) failed after {attempts} attempt{'s' if attempts > 1 else ''}"
    if isinstance(exc, QcoreError):
        exc.add_note(where)
        return exc
    error = TaskError(f"{where}: {type(exc).__name__}: {exc}", index=index, label=label)
    error.__cause__ = exc
    return error


@runtime_checkable
class ExecutionBackend(Protocol):
    """Runs independent tasks; see the module docstring."""

    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources | Mapping[str, Any] | None = None,
               retries: int = 0) -> Task:  # fmt: skip
        """Start ``fn(*args)``; the returned task's ``result()`` waits for it (raising what it raised)."""
        ...

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, args: Sequence[Any] = (),
            resources: Resources | Mapping[str, Any] | None = None, retries: int = 0,
            labels: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:  # fmt: skip
        """``fn(item, *args)`` for every item, yielded as ``(position, result)`` in the order they finish;
        ``labels`` name the items in errors (shards, windows)."""
        ...

    def put(self, array: Any) -> Any:
        """Hold a numeric numpy array for tasks; the returned reference is small and picklable."""
        ...

    def get(self, ref: Any) -> Any:
        """The read-only array behind a reference from :meth:`put`."""
        ...

    def shutdown(self) -> None:
        """Stop workers and free what :meth:`put` holds; the backend may not be used afterwards."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...


class Task:
    """A submitted call: :meth:`result` waits for it, running it again (``retries`` times) when it fails."""

    def __init__(self, start: Callable[[], Any], wait: Callable[[Any], Any], retries: int, label: str) -> None:
        self._start, self._wait, self._retries, self._label = start, wait, retries, label
        self._handle = start()

    def result(self) -> Any:
        """The call's result, or what it raised after its last attempt (see :func:`task_failure`)."""
        attempt = 1
        while True:
            try:
                return self._wait(self._handle)
            except Exception as exc:
                if attempt > self._retries:
                    error = task_failure(exc, 0, self._label, attempt)
                    raise error from error.__cause__
                attempt += 1
                self._handle = self._start()


class _BackendBase:
    """Context manager and ``run_unordered`` shared by the kernel's backends."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()  # type: ignore[attr-defined]

    def run_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``map(fn, items)`` (the first contract's name)."""
        return self.map(fn, items)  # type: ignore[attr-defined]


def _resolve(value: Any, lookup: Callable[[ArrayRef], Any]) -> Any:
    return lookup(value) if isinstance(value, ArrayRef) else value


class SerialBackend(_BackendBase):
    """Every task in this process, one after the other, in order (the default). ``put`` keeps a read-only copy."""

    def __init__(self) -> None:
        self._arrays: dict[str, Any] = {}
        self._keys = itertools.count()

    def put(self, array: Any) -> ArrayRef:
        """A read-only copy of ``array`` held by this backend."""
        import numpy as np

        values = np.array(check_shareable(array), copy=True)
        values.flags.writeable = False
        key = f"a{next(self._keys)}"
        self._arrays[key] = values
        return ArrayRef(key, tuple(values.shape), values.dtype.str)

    def get(self, ref: ArrayRef) -> Any:
        """The array behind ``ref``."""
        try:
            return self._arrays[ref.key]
        except KeyError:
            raise RunError(f"array {ref.key!r} is not held by this backend (shut down, or another's)") from None

    def _call(self, fn: Callable[..., Any], args: Sequence[Any]) -> Any:
        return fn(*(_resolve(a, self.get) for a in args))

    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources | Mapping[str, Any] | None = None,
               retries: int = 0) -> Task:  # fmt: skip
        """Run ``fn(*args)`` now; the task holds its outcome."""
        Resources.parse(resources)

        def start() -> tuple[bool, Any]:
            try:
                return True, self._call(fn, args)
            except Exception as exc:
                return False, exc

        def wait(handle: tuple[bool, Any]) -> Any:
            if handle[0]:
                return handle[1]
            raise handle[1]

        return Task(start, wait, check_retries(retries), getattr(fn, "__name__", repr(fn)))

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, args: Sequence[Any] = (),
            resources: Resources | Mapping[str, Any] | None = None, retries: int = 0,
            labels: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:  # fmt: skip
        """``fn(item, *args)`` for each item in turn."""
        Resources.parse(resources)
        retries = check_retries(retries)
        return self._map(fn, list(items), args, retries, labels)

    def _map(self, fn: Callable[..., Any], items: list[Any], args: Sequence[Any], retries: int,
             labels: Sequence[str] | None) -> Iterator[tuple[int, Any]]:  # fmt: skip
        for i, item in enumerate(items):
            for attempt in range(1, retries + 2):
                try:
                    result = self._call(fn, (item, *args))
                    break
                except Exception as exc:
                    if attempt > retries:
                        error = task_failure(exc, i, task_label(item, labels, i), attempt)
                        raise error from error.__cause__
            yield i, result

    def shutdown(self) -> None:
        """Drop the arrays it holds."""
        self._arrays.clear()


def _invoke(payload: bytes) -> Any:
    """Worker side of :class:`ProcessesBackend`: unpickle ``(fn, args)``, map put arrays, call."""
    from qcore.shared_arrays import read_array

    fn, args = pickle.loads(payload)
    return fn(*(_resolve(a, read_array) for a in args))


class ProcessesBackend(_BackendBase):
    """Tasks in worker processes of this machine (``concurrent.futures``, spawned workers).

    Each task's function and arguments are pickled by the backend (:attr:`bytes_sent` counts them); arrays given
    to :meth:`put` are written once as Arrow IPC files under a private temporary folder and memory-mapped by the
    workers, so a task handed a reference receives the data without it crossing a pipe. A worker that dies (a
    crash, ``os._exit``) breaks the pool: it is started again and the tasks that were in flight run again one at a
    time, so that only the one that kills its worker counts an attempt.

    :param max_workers: worker processes (default: the CPUs, at most 4); a task reserves ``num_cpus`` of them.
    :param start_method: ``spawn`` (default: safe next to the threads a run already has) or ``forkserver``.
    """

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn") -> None:
        import os

        if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                        or max_workers < 1):  # fmt: skip
            raise ConfigError(f"expected a positive integer, got {max_workers!r}", path="max_workers")
        if start_method not in ("spawn", "forkserver"):
            raise ConfigError(f"expected spawn or forkserver, got {start_method!r}", path="start_method")
        self.max_workers = max_workers or min(4, os.cpu_count() or 1)
        self.start_method = start_method
        #: Bytes of pickled calls sent to workers so far (what crossed the pipes, arrays excluded).
        self.bytes_sent = 0
        self._pool: Any = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._keys = itertools.count()
        self._closed = False

    # -- pool ------------------------------------------------------------------------------------------------

    def _executor(self) -> Any:
        if self._closed:
            raise RunError("the processes backend was shut down")
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context(self.start_method)
            self._pool = ProcessPoolExecutor(max_workers=self.max_workers, mp_context=context)
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _send(self, fn: Callable[..., Any], args: Sequence[Any]) -> Any:
        payload = pickle.dumps((fn, tuple(args)), protocol=pickle.HIGHEST_PROTOCOL)
        self.bytes_sent += len(payload)
        return self._executor().submit(_invoke, payload)

    def _slots(self, resources: Resources | Mapping[str, Any] | None) -> float:
        res = Resources.parse(resources)
        if res.num_gpus:
            raise ConfigError("the processes backend schedules no GPUs; use a cluster backend (ray)",
                              path="resources.num_gpus")  # fmt: skip
        if res.num_cpus > self.max_workers:
            raise ConfigError(f"a task asks for {res.num_cpus:g} CPUs; this backend has {self.max_workers} workers",
                              path="resources.num_cpus")  # fmt: skip
        return max(res.num_cpus, 1e-9)

    # -- contract --------------------------------------------------------------------------------------------

    def put(self, array: Any) -> ArrayRef:
        """Write ``array`` once as an Arrow IPC file the workers memory-map."""
        from qcore.shared_arrays import write_array

        if self._closed:
            raise RunError("the processes backend was shut down")
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="qcore-shared-")
        key = f"a{next(self._keys)}"
        return write_array(array, Path(self._folder.name) / f"{key}.arrow", key)

    def get(self, ref: ArrayRef) -> Any:
        """The array behind ``ref``, memory-mapped read-only."""
        from qcore.shared_arrays import read_array

        return read_array(ref)

    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources | Mapping[str, Any] | None = None,
               retries: int = 0) -> Task:  # fmt: skip
        """Send ``fn(*args)`` to a worker (queued when all are busy)."""
        self._slots(resources)

        def wait(future: Any) -> Any:
            from concurrent.futures.process import BrokenProcessPool

            try:
                return future.result()
            except BrokenProcessPool:
                self._restart()
                raise

        return Task(lambda: self._send(fn, args), wait, check_retries(retries), getattr(fn, "__name__", repr(fn)))

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *, args: Sequence[Any] = (),
            resources: Resources | Mapping[str, Any] | None = None, retries: int = 0,
            labels: Sequence[str] | None = None) -> Iterator[tuple[int, Any]]:  # fmt: skip
        """Keep at most ``max_workers / num_cpus`` tasks in flight; yield each result as it finishes."""
        slots = self._slots(resources)
        return self._map(fn, list(items), tuple(args), slots, check_retries(retries), labels)

    def _map(self, fn: Callable[..., Any], items: list[Any], args: tuple[Any, ...], slots: float, retries: int,
             labels: Sequence[str] | None) -> Iterator[tuple[int, Any]]:  # fmt: skip
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        limit = max(1, int(self.max_workers // slots + 1e-9))
        pending: dict[Any, int] = {}
        attempts = [0] * len(items)
        queue = list(range(len(items)))[::-1]  # popped from the end: in order
        alone: set[int] = set()  # in flight when a worker died: run again one at a time to find the culprit

        def may_start() -> bool:
            if not queue or len(pending) >= limit or any(i in alone for i in pending.values()):
                return False
            return queue[-1] not in alone or not pending

        def start(i: int) -> None:
            attempts[i] += 1
            pending[self._send(fn, (items[i], *args))] = i

        def failed(i: int, exc: BaseException) -> None:
            if attempts[i] > retries:
                raise task_failure(exc, i, task_label(items[i], labels, i), attempts[i])
            queue.append(i)

        try:
            while queue or pending:
                while may_start():
                    start(queue.pop())
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                died: list[int] = []
                for future in sorted(done, key=pending.__getitem__):
                    i = pending.pop(future)
                    exc = future.exception()
                    if exc is None:
                        alone.discard(i)
                        yield i, future.result()
                    elif isinstance(exc, BrokenProcessPool):
                        died.append(i)
                    else:
                        failed(i, exc)
                if died:  # the pool is gone with every task in flight; only a task that ran alone is the culprit
                    died += pending.values()
                    pending.clear()
                    self._restart()
                    if len(died) == 1:
                        failed(died[0], RunError("its worker process died"))
                    else:
                        for i in sorted(died, reverse=True):
                            attempts[i] -= 1
                            alone.add(i)
                            queue.append(i)
        finally:
            for future in pending:
                future.cancel()

    def shutdown(self) -> None:
        """Stop the workers and delete the shared files."""
        from qcore.shared_arrays import forget

        self._closed = True
        self._restart()
        if self._folder is not None:
            for path in Path(self._folder.name).glob("*.arrow"):
                forget(str(path))
            self._folder.cleanup()
            self._folder = None
