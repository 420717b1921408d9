"""Execution backends: submit/map with resources and retries, put/get of shared arrays, shutdown, errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from qcore.backends import ExecutionBackend, ProcessesBackend, Resources, SerialBackend, TaskError
from qcore.errors import ConfigError, DataError, RunError
from qcore.shared_arrays import ArrayRef, read_array


def square(x: int) -> int:
    return x * x


def column_sum(col: int, panel: np.ndarray) -> tuple[float, bool, int]:
    """A shard's work on a shared panel: the column's sum, whether the panel is writable, the worker's pid."""
    return float(panel[:, col].sum()), bool(panel.flags.writeable), os.getpid()


def fail_once(item: tuple[int, str]) -> int:
    """Raise the first time (a marker file remembers), then succeed."""
    value, marker = item
    path = Path(marker)
    if not path.exists():
        path.write_text("x")
        raise ValueError(f"flaky {value}")
    return value * 10


def die_once(item: tuple[int, str]) -> int:
    """Kill the worker process the first time, then succeed."""
    value, marker = item
    path = Path(marker)
    if not path.exists():
        path.write_text("x")
        os._exit(3)
    return value + 1


def fails_on_one(x: int) -> int:
    if x == 1:
        raise ValueError(f"bad {x}")
    return x


def data_error(x: int) -> int:
    raise DataError(f"broken row {x}")


@pytest.fixture(scope="module")
def processes() -> ProcessesBackend:
    with ProcessesBackend(max_workers=2) as backend:
        yield backend


@pytest.fixture(params=["serial", "processes"])
def backend(request: pytest.FixtureRequest, processes: ProcessesBackend) -> ExecutionBackend:
    if request.param == "serial":
        return SerialBackend()
    return processes


def test_builtins_satisfy_the_contract() -> None:
    assert isinstance(SerialBackend(), ExecutionBackend)
    assert isinstance(ProcessesBackend(max_workers=1), ExecutionBackend)


def test_map_yields_every_result_once_and_submit_waits(backend: ExecutionBackend) -> None:
    results = dict(backend.map(square, range(7)))
    assert results == {i: i * i for i in range(7)}
    assert backend.submit(square, 12).result() == 144
    assert dict(backend.run_unordered(square, [3, 4])) == {0: 9, 1: 16}  # the first contract still works


def test_put_array_reaches_tasks_read_only_and_bitwise(backend: ExecutionBackend) -> None:
    rng = np.random.default_rng(0)
    panel = rng.standard_normal((500, 6))
    panel[3, 2] = np.nan
    ref = backend.put(panel)
    got = backend.get(ref)
    assert np.array_equal(got, panel, equal_nan=True) and not got.flags.writeable
    out = dict(backend.map(column_sum, range(6), args=(ref,)))
    for col, (total, writable, _) in out.items():
        assert not writable
        np.testing.assert_array_equal(total, float(panel[:, col].sum()))


def test_processes_share_arrays_through_files_not_pickles(processes: ProcessesBackend) -> None:
    panel = np.arange(2_000_000, dtype=np.float64).reshape(1000, 2000)  # 16 MB
    before = processes.bytes_sent
    ref = processes.put(panel)
    assert ref.path is not None and Path(ref.path).suffix == ".arrow"
    assert Path(ref.path).stat().st_size >= panel.nbytes
    results = dict(processes.map(column_sum, [0, 1999], args=(ref,)))
    assert results[1][0] == float(panel[:, 1999].sum()) and results[0][1] is False
    sent = processes.bytes_sent - before
    assert 0 < sent < 2_000, f"{sent} bytes crossed the pipes for a 16 MB panel"
    assert len(pickle.dumps(ref)) < 500


def test_arrow_file_maps_zero_copy(tmp_path: Path) -> None:
    from qcore.shared_arrays import write_array

    values = np.arange(12, dtype=np.int32).reshape(3, 4)
    ref = write_array(values, tmp_path / "x.arrow", "x")
    mapped = read_array(ref)
    assert mapped.dtype == np.int32 and mapped.shape == (3, 4) and np.array_equal(mapped, values)
    assert ref.nbytes == 48


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), [1.0, 2.0], np.array([True])])
def test_put_refuses_what_it_cannot_share(backend: ExecutionBackend, bad: object) -> None:
    with pytest.raises(RunError, match="put"):
        backend.put(bad)


def test_a_task_raising_once_is_retried(backend: ExecutionBackend, tmp_path: Path) -> None:
    items = [(i, str(tmp_path / f"m{i}")) for i in range(3)]
    assert dict(backend.map(fail_once, items, retries=1)) == {0: 0, 1: 10, 2: 20}
    assert backend.submit(fail_once, (5, str(tmp_path / "s")), retries=1).result() == 50


def test_a_dying_worker_is_retried_with_an_unchanged_result(processes: ProcessesBackend, tmp_path: Path) -> None:
    items = [(i, str(tmp_path / f"d{i}")) for i in range(4)]
    assert dict(processes.map(die_once, items, retries=1)) == {i: i + 1 for i in range(4)}
    assert dict(processes.map(square, [2])) == {0: 4}  # the pool was started again


def test_failure_after_retries_names_the_task(backend: ExecutionBackend) -> None:
    with pytest.raises(TaskError, match=r"task 1 \(shard-b\) failed after 3 attempts: ValueError: bad 1") as info:
        dict(backend.map(fails_on_one, [0, 1], retries=2, labels=["shard-a", "shard-b"]))
    assert isinstance(info.value.__cause__, ValueError) and info.value.index == 1
    with pytest.raises(DataError, match="broken row 4") as kept:  # a qcore error keeps its type (and exit code)
        dict(backend.map(data_error, [4]))
    assert any("task 0" in note for note in kept.value.__notes__)


def test_resources_are_checked_and_reserve_slots(processes: ProcessesBackend) -> None:
    assert Resources.parse({"num_cpus": 2, "memory": 10}) == Resources(2.0, 0.0, 10)
    with pytest.raises(ConfigError, match="num_gpus"):
        processes.map(square, [1], resources={"num_gpus": 1})
    with pytest.raises(ConfigError, match="3 CPUs; this backend has 2 workers"):
        processes.map(square, [1], resources={"num_cpus": 3})
    with pytest.raises(ConfigError, match="unknown resource 'gpus'"):
        Resources.parse({"gpus": 1})
    with pytest.raises(ConfigError, match="retries"):
        SerialBackend().map(square, [1], retries=-1)
    pids = {pid for _, (_, _, pid) in processes.map(column_sum, range(4), args=(processes.put(np.ones((2, 4))),),
                                                   resources={"num_cpus": 2})}  # fmt: skip
    assert len(pids) >= 1 and dict(processes.map(square, [3], resources=Resources(num_cpus=2))) == {0: 9}


def test_shutdown_deletes_shared_files_and_closes() -> None:
    backend = ProcessesBackend(max_workers=1)
    ref = backend.put(np.zeros(10))
    assert ref.path is not None and Path(ref.path).exists()
    backend.shutdown()
    assert not Path(ref.path).exists()
    with pytest.raises(RunError, match="shut down"):
        backend.submit(square, 2)
    serial = SerialBackend()
    sref = serial.put(np.zeros(3))
    serial.shutdown()
    with pytest.raises(RunError, match="not held"):
        serial.get(sref)
    with pytest.raises(RunError, match="another process"):
        read_array(ArrayRef("k", (1,), "<f8"))
