"""Server-side evaluation in a small pool of spawned worker processes, each request bounded in wall-clock time.

Python cannot stop a thread, so an expression evaluation that runs past the server's limit (``--max-seconds``) could
only be abandoned, never ended, if it ran in the server's own threads. Here it runs in a worker process: past the
limit (or when the client cancels, or the server stops) the worker is killed, its partial answer removed, and a
fresh worker takes its place, so the pool keeps its size and nothing leaks.

Each worker loads the kernel once (the server's plugin selection), opens the store with the server's provider and
then takes requests one at a time over a pipe: the expressions, the universe and dates, and the path of the Arrow IPC
file it writes its frame to. The server memory-maps that file, removes its name and streams it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa

from qcore.errors import QcoreError

logger = logging.getLogger("qflight.server")

#: How long a request may wait for a free worker besides ``max_seconds`` (a fresh worker loads the kernel first).
STARTUP_SECONDS = 120.0
#: How often a waiting request checks for cancellation (seconds).
POLL_SECONDS = 0.05


class TimeLimitError(QcoreError):
    """A request ran past the server's wall-clock limit; its worker was stopped."""


class RequestCancelled(QcoreError):
    """The client went away (or the server is stopping) while its request was evaluated; its worker was stopped."""


class WorkerError(QcoreError):
    """An error a worker reported: its message, as the worker's own error said it."""


@attrs.frozen
class WorkerSetup:
    """What a worker needs to open the same store as the server (picklable: it crosses a process spawn).

    :ivar selection: the kernel's :class:`~qcore.plugins.PluginSelection`.
    :ivar provider: the data provider's registered name (``qlib_bin``).
    :ivar provider_kwargs: its keyword arguments (``{"provider_uri": STORE}``).
    :ivar expr_cache: the expression cache's folder, or None.
    """

    selection: Any
    provider: str
    provider_kwargs: Mapping[str, Any]
    expr_cache: str | None = None


@attrs.frozen
class EvaluateTask:
    """One evaluation: column name → expression on ``instruments`` between ``start`` and ``end``."""

    expressions: Mapping[str, str]
    instruments: str | tuple[str, ...]
    start: Any
    end: Any
    freq: str = "day"
    missing_fields: str = "error"
    index: str = "datetime"


# -- the worker process -----------------------------------------------------------------------------------------


def _open(setup: WorkerSetup) -> tuple[Any, dict[str, Any], Any]:
    from qcore.kernel import Kernel

    kernel = Kernel.load(setup.selection, strict=False)
    provider = kernel.create("data_provider", setup.provider, **dict(setup.provider_kwargs))
    registry = kernel.registry("operator")
    operators = {name: registry.get(name) for name in registry.names(include_aliases=True)}
    cache = None
    if setup.expr_cache:
        from qcore.expr.cache import ExpressionCache

        cache = ExpressionCache(setup.expr_cache)
    return provider, operators, cache


def _run(opened: tuple[Any, dict[str, Any], Any], task: EvaluateTask, path: str) -> None:
    from qcore.expr.engine import ExpressionEngine
    from qflight.codec import frame_table

    provider, operators, cache = opened
    engine = ExpressionEngine(provider, operators, freq=task.freq, cache=cache, missing_fields=task.missing_fields)
    instruments = task.instruments if isinstance(task.instruments, str) else list(task.instruments)
    frame = engine.evaluate(dict(task.expressions), instruments, task.start, task.end, index=task.index)
    table = frame_table(frame)
    tmp = f"{path}.part"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)


def _failure(exc: BaseException) -> tuple[str, str, str]:
    import traceback

    if isinstance(exc, QcoreError):
        return ("error", "qcore", str(exc))
    return ("error", "internal", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def worker_main(conn: Any, setup: WorkerSetup) -> None:
    """A worker's life: open the store and say ``("ready",)`` (or send the error and end), then answer
    ``(task, path)`` messages with ``("ok",)`` or ``("error", kind, message)`` until the pipe closes (the server
    ended) or ``None`` arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server decides
    try:
        opened = _open(setup)
    except Exception as exc:
        with contextlib.suppress(EOFError, OSError):
            conn.send(_failure(exc))
        return
    try:
        conn.send(("ready",))
    except (EOFError, OSError):
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task, path = message
        try:
            _run(opened, task, path)
            reply: tuple[str, ...] = ("ok",)
        except Exception as exc:
            reply = _failure(exc)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


# -- the pool, in the server ------------------------------------------------------------------------------------


@attrs.define(eq=False)
class _Worker:
    process: Any
    conn: Any
    ready: bool = False


class EvaluationPool:
    """``size`` spawned worker processes; :meth:`evaluate` runs one task in a free one, bounded by ``max_seconds``.

    :param setup: how a worker opens the store.
    :param size: how many workers (the most evaluations that run at once; others wait for a free one).
    :param max_seconds: the longest one evaluation may run; past it its worker is killed and replaced.
    """

    def __init__(self, setup: WorkerSetup, size: int = 2, max_seconds: float = 300.0) -> None:
        import multiprocessing

        if size < 1:
            raise ValueError("an evaluation pool needs at least one worker")
        if not max_seconds > 0:
            raise ValueError("max_seconds must be positive")
        self.setup = setup
        self.size = int(size)
        self.max_seconds = float(max_seconds)
        self._context = multiprocessing.get_context("spawn")
        self._folder = Path(tempfile.mkdtemp(prefix="qflight-answers-"))
        weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)  # also at exit without close()
        self._names = itertools.count()
        self._ready = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False
        for _ in range(self.size):
            self._idle.append(self._spawn())

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(target=worker_main, args=(child, self.setup), name="qflight-worker",
                                        daemon=True)  # fmt: skip
        process.start()
        child.close()
        return _Worker(process, parent)

    def _acquire(self, cancelled: Callable[[], bool]) -> _Worker:
        deadline = time.monotonic() + self.max_seconds + STARTUP_SECONDS
        with self._ready:
            while not self._idle:
                if self._closed:
                    raise RequestCancelled("the data server is stopping")
                if cancelled():
                    raise RequestCancelled("the request was cancelled while it waited for a worker")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerError(f"all {self.size} evaluation workers stayed busy for "
                                         f"{self.max_seconds + STARTUP_SECONDS:g} s; try again later")  # fmt: skip
                self._ready.wait(min(left, POLL_SECONDS * 4))
            worker = self._idle.pop()
            self._busy.add(worker)
            return worker

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if not healthy:
            _stop(worker)
        with self._ready:
            self._busy.discard(worker)
            if self._closed:
                if healthy:
                    _stop(worker)
                return
            self._idle.append(worker if healthy else self._spawn())
            self._ready.notify()

    def evaluate(self, task: EvaluateTask, cancelled: Callable[[], bool] = lambda: False) -> pa.Table:
        """The evaluated frame's table (memory-mapped), computed by a worker within :attr:`max_seconds`.

        :param cancelled: polled while the worker runs; when it turns true the worker is stopped.
        :raises TimeLimitError: the evaluation ran past the limit (its worker was killed and replaced).
        :raises RequestCancelled: ``cancelled()`` turned true or the pool was closed.
        :raises WorkerError: the evaluation failed (the worker's message).
        """
        worker = self._acquire(cancelled)
        path = self._folder / f"{os.getpid()}-{next(self._names)}.arrow"
        healthy = False
        try:
            if not worker.ready:  # a fresh worker loads the kernel first: that time is not the request's
                self._reply(worker, self._wait(worker, STARTUP_SECONDS, cancelled, "started"))
                worker.ready = True
            worker.conn.send((task, str(path)))
            reply = self._wait(worker, self.max_seconds, cancelled, "")
            healthy = True
            self._reply(worker, reply)
            with pa.memory_map(str(path)) as source:
                return pa.ipc.open_file(source).read_all()
        finally:
            self._release(worker, healthy)
            with contextlib.suppress(OSError):  # the mapping keeps the data; the name goes now
                path.unlink()
            with contextlib.suppress(OSError):
                Path(f"{path}.part").unlink()

    def _wait(self, worker: _Worker, seconds: float, cancelled: Callable[[], bool], starting: str) -> tuple[str, ...]:
        """The worker's next message, within ``seconds``; raises when it runs late, the request is cancelled or the
        worker dies."""
        started = time.monotonic()
        while not worker.conn.poll(POLL_SECONDS):
            if time.monotonic() - started > seconds:
                if starting:
                    raise WorkerError(f"an evaluation worker did not start within {seconds:g} s")
                raise TimeLimitError(
                    f"the evaluation ran past the server's limit of {seconds:g} s per request (qcore serve "
                    "--max-seconds) and was stopped; ask for fewer expressions, instruments or dates")
            if self._closed or cancelled():
                raise RequestCancelled("the request was cancelled (by the client, or the server is stopping)")
            if not worker.process.is_alive():
                raise WorkerError(f"the evaluation worker ended unexpectedly (exit code {worker.process.exitcode})")
        try:
            return worker.conn.recv()
        except (EOFError, OSError):
            if self._closed:  # killed by close(): the server is stopping
                raise RequestCancelled("the server is stopping") from None
            raise WorkerError("the evaluation worker ended unexpectedly") from None

    @staticmethod
    def _reply(worker: _Worker, reply: tuple[str, ...]) -> None:
        """Raise the error a worker's reply holds (its traceback goes to the server log, not to the client)."""
        if reply[0] in ("ok", "ready"):
            return
        _, kind, text = reply
        if kind == "internal":
            logger.error("evaluation worker %s: %s", worker.process.pid, text)
            raise WorkerError(f"internal server error ({text.split(':', 1)[0]}); see the server log")
        raise WorkerError(text)

    def close(self) -> None:
        """Stop every worker: idle ones leave, busy ones are killed (their requests end with
        :class:`RequestCancelled` and reap them)."""
        with self._ready:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._ready.notify_all()
        for worker in busy:
            with contextlib.suppress(OSError, ValueError):
                worker.process.kill()
        for worker in idle:
            _stop(worker, gently=True)
        shutil.rmtree(self._folder, ignore_errors=True)


def _stop(worker: _Worker, gently: bool = False) -> None:
    """End a worker: ask it to leave (``gently``, an idle one), else kill it; reap it so no zombie is left."""
    try:
        if gently:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
            worker.process.join(2.0)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5.0)
    except ValueError:  # already closed
        return
    with contextlib.suppress(OSError):
        worker.conn.close()
    with contextlib.suppress(ValueError):
        worker.process.close()
