"""Recorder calls on a worker thread: order kept, deferred start, errors raised, and the runner around them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import qcore
from qcore import hookimpl
from qcore.kernel import Kernel
from qcore.recorders.local import LocalRecorder
from qcore.tracking import BackgroundRun


class ListRun:
    """A run that notes every call, with the thread it ran on."""

    run_id = "r1"

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def _note(self, name: str, value: Any) -> None:
        self.threads.add(threading.current_thread().name)
        if name == self.fail_on:
            raise RuntimeError(f"{name} refused")
        self.calls.append((name, value))

    def log_params(self, params: Any) -> None:
        self._note("params", params)

    def log_metrics(self, metrics: Any, step: int | None = None) -> None:
        self._note("metrics", (metrics, step))

    def set_tags(self, tags: Any) -> None:
        self._note("tags", tags)

    def log_artifact(self, name: str, obj: Any) -> str:
        self._note("artifact", name)
        return f"store/{name}"

    def end(self, status: str = "FINISHED") -> None:
        self._note("end", status)


def test_calls_run_in_order_on_a_worker_and_inputs_are_copied() -> None:
    real = ListRun()
    run = BackgroundRun(lambda: real)
    metrics = {"a": 1.0}
    run.log_params({"p": 1})
    run.log_metrics(metrics, step=3)
    metrics["a"] = 2.0  # the queued call logs what was passed at call time
    run.set_tags({"t": "x"})
    path = run.log_artifact_later("pred", object())
    run.end()
    assert path.result() == "store/pred"
    assert real.calls == [("params", {"p": 1}), ("metrics", ({"a": 1.0}, 3)), ("tags", {"t": "x"}),
                          ("artifact", "pred"), ("end", "FINISHED")]  # fmt: skip
    assert real.threads and all(name.startswith("qcore-recorder") for name in real.threads)
    assert run.run_id == "r1"


def test_worker_waits_for_start_and_anything_needing_the_run_starts_it() -> None:
    opened = threading.Event()

    def open_run() -> ListRun:
        opened.set()
        return ListRun()

    run = BackgroundRun(open_run, start=False)
    run.log_metrics({"a": 1.0})
    assert not opened.wait(0.2) and not run.started
    assert run.log_artifact("x", 1) == "store/x"  # a blocking call starts the worker itself
    assert opened.is_set() and run.started
    run.end()

    lazy = BackgroundRun(lambda: ListRun(), start=False)
    lazy.end()  # end starts it, so every queued call is performed
    assert lazy.run.calls == [("end", "FINISHED")]


def test_a_failed_call_is_raised_by_a_later_call_and_by_end() -> None:
    real = ListRun(fail_on="params")
    run = BackgroundRun(lambda: real)
    run.log_params({"p": 1})
    run.log_artifact_later("x", 1).exception()  # the worker has got past the failed call
    with pytest.raises(RuntimeError, match="params refused"):
        run.log_metrics({"a": 1.0})
    with pytest.raises(RuntimeError, match="params refused"):
        run.end("FAILED")
    assert real.calls[-1] == ("end", "FAILED")  # the run is still closed in its store
    with pytest.raises(RuntimeError, match="has ended"):
        run.log_metrics({"a": 1.0})

    failed_open = BackgroundRun(lambda: (_ for _ in ()).throw(ConnectionError("no tracking server")))
    with pytest.raises(ConnectionError, match="no tracking server"):
        failed_open.run_id  # noqa: B018
    with pytest.raises(ConnectionError, match="no tracking server"):
        failed_open.log_metrics({"a": 1.0})
    with pytest.raises(ConnectionError, match="no tracking server"):
        failed_open.end()


def test_runner_records_through_the_worker_and_reports_artifact_paths(tmp_path: Path) -> None:
    config = {
        "experiment": "exp",
        "data": {"provider": {"name": "toy", "kwargs": {"n_instruments": 3, "n_days": 20}}},
        "recorder": {"name": "local", "kwargs": {"uri": str(tmp_path)}},
    }
    result = qcore.run(config, kernel=Kernel.load(use_env=False))
    stored = LocalRecorder(tmp_path).get_run(result.run_id)
    assert stored["status"] == "FINISHED" and stored["artifacts"] == ["data_summary.json"]
    assert Path(result.artifacts["data_summary"]).is_file()
    assert result.metrics["data.instruments"] == 3.0


class BrokenRecorderPlugin:
    """Registers a recorder whose runs cannot be opened."""

    @hookimpl
    def qcore_register_recorders(self, register: Any) -> None:
        class Broken:
            def start_run(self, experiment: str, run_name: str | None = None) -> Any:
                raise ConnectionError("tracking store unreachable")

            def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
                raise ConnectionError("tracking store unreachable")

            def get_run(self, run_id: str) -> dict[str, Any]:
                raise ConnectionError("tracking store unreachable")

        register("broken", Broken)


def test_runner_raises_the_recorder_error_when_the_run_cannot_be_opened(tmp_path: Path) -> None:
    config = {
        "experiment": "exp",
        "data": {"provider": {"name": "toy", "kwargs": {"n_instruments": 3, "n_days": 20}}},
        "recorder": {"name": "broken"},
    }
    kernel = Kernel.load(extra={"broken": BrokenRecorderPlugin()}, use_env=False)
    with pytest.raises(ConnectionError, match="tracking store unreachable"):
        qcore.run(config, kernel=kernel)
