"""Tracking a run on a worker thread, so that a slow recorder overlaps the workflow instead of delaying it.

Opening an MLflow run on a fresh sqlite database costs seconds (importing mlflow and SQLAlchemy, migrating the
schema) that the data and model steps need not wait for. :class:`BackgroundRun` opens the run and then performs
every recorder call, in the order they were made, on one worker thread; the caller only queues them. A failed
call is raised by the next call on the run (or by :meth:`BackgroundRun.end`), so an unusable recorder still stops
the workflow, one step later at most.

The worker is pure Python and so holds the interpreter lock while it works: next to steps that are themselves
Python-heavy or hop in and out of native code many times a second (the expression engine's worker threads), it
would slow them down more than it saves. So the worker waits for :meth:`BackgroundRun.start`, which the runner
calls once the main thread settles into long native calls (model training); anything that needs the real run
(:attr:`BackgroundRun.run_id`, :meth:`BackgroundRun.log_artifact`, :meth:`BackgroundRun.end`) starts it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qcore.protocols import Run


class BackgroundRun:
    """A :class:`~qcore.protocols.Run` whose calls happen in order on a worker thread.

    :param open_run: opens the real run (creating the recorder if needed); called on the worker thread.
    :param start: let the worker begin at once rather than at :meth:`start`.
    """

    def __init__(self, open_run: Callable[[], Run], *, start: bool = True) -> None:
        self._go = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qcore-recorder")
        self._opened: Future[Run] = self._pool.submit(self._open_when_started, open_run)
        self._pending: list[Future[Any]] = [self._opened]
        self._closed = False
        if start:
            self.start()

    def _open_when_started(self, open_run: Callable[[], Run]) -> Run:
        self._go.wait()
        return open_run()

    def start(self) -> None:
        """Let the worker open the run and perform the calls queued so far (and later ones as they come)."""
        self._go.set()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called (directly or by a call that needs the real run)."""
        return self._go.is_set()

    @property
    def run(self) -> Run:
        """The real run, once opened (starts the worker and waits for it)."""
        self.start()
        return self._opened.result()

    @property
    def run_id(self) -> str:
        """The real run's id (waits until the run is open)."""
        return self.run.run_id

    def _raise_failure(self) -> None:
        """Raise the error of the first finished call that failed, if any; forget the calls that succeeded."""
        for future in self._pending:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        self._pending = [self._opened] + [f for f in self._pending[1:] if not f.done()]

    def _submit(self, call: Callable[[Run], Any], *, check: bool = True) -> Future[Any]:
        """Queue ``call(real run)`` after every earlier call (first raising an earlier failure, with ``check``)."""
        if self._closed:
            raise RuntimeError("the run has ended")
        if check:
            self._raise_failure()
        future = self._pool.submit(lambda: call(self._opened.result()))
        self._pending.append(future)
        return future

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue :meth:`Run.log_params` (on a copy of ``params``)."""
        params = dict(params)
        self._submit(lambda run: run.log_params(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queue :meth:`Run.log_metrics` (on a copy of ``metrics``)."""
        metrics = dict(metrics)
        self._submit(lambda run: run.log_metrics(metrics, step))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Queue :meth:`Run.set_tags` (on a copy of ``tags``)."""
        tags = dict(tags)
        self._submit(lambda run: run.set_tags(tags))

    def log_artifact_later(self, name: str, obj: Any) -> Future[Path | str]:
        """Queue :meth:`Run.log_artifact`; the future holds where it was stored. ``obj`` must not change
        until then (the workflow's steps hand their artifacts over and do not touch them again)."""
        return self._submit(lambda run: run.log_artifact(name, obj))

    def log_artifact(self, name: str, obj: Any) -> Path | str:
        """:meth:`Run.log_artifact`, waiting for it (and every earlier call) to finish."""
        future = self.log_artifact_later(name, obj)
        self.start()
        return future.result()

    def end(self, status: str = "FINISHED") -> None:
        """Queue :meth:`Run.end` (even after a failed call, so the store still closes the run), wait for every
        call, stop the worker; raise the first failed call's error, if any."""
        if self._closed:
            return
        self._submit(lambda run: run.end(status), check=False)
        self._closed = True
        self.start()
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
