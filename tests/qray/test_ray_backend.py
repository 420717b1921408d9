"""The ray execution backend: the contract on a real local Ray, bitwise-equal rolling predictions, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import qcore
from qcore.backends import ExecutionBackend, TaskError
from qcore.errors import ConfigError, DataError, OptionalDependencyError
from tests.kernel.test_backends import column_sum, data_error, die_once, fail_once, fails_on_one, square
from tests.kernel.test_rolling_run import kernel, rolling_config  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow  # a local Ray takes about 5 s to start

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def backend(ray_session: Any) -> Any:
    from qray.backend import RayBackend

    with RayBackend(address="auto") as b:
        yield b


def test_the_contract_on_ray(backend: Any, tmp_path: Path) -> None:
    assert isinstance(backend, ExecutionBackend)
    assert dict(backend.map(square, range(5))) == {i: i * i for i in range(5)}
    assert backend.submit(square, 9, resources={"num_cpus": 0.5}).result() == 81
    panel = np.random.default_rng(1).standard_normal((300, 7))
    ref = backend.put(panel)
    assert np.array_equal(backend.get(ref), panel)
    out = dict(backend.map(column_sum, range(7), args=(ref,), resources={"num_cpus": 1}))
    assert all(not writable for _, writable, _ in out.values())  # a zero-copy, read-only view in the task
    assert [out[c][0] for c in range(7)] == [float(panel[:, c].sum()) for c in range(7)]


def test_retries_on_ray_leave_results_unchanged(backend: Any, tmp_path: Path) -> None:
    items = [(i, str(tmp_path / f"m{i}")) for i in range(3)]
    assert dict(backend.map(fail_once, items, retries=1)) == {0: 0, 1: 10, 2: 20}
    dead = [(i, str(tmp_path / f"d{i}")) for i in range(2)]
    assert dict(backend.map(die_once, dead, retries=1)) == {0: 1, 1: 2}


def test_failures_on_ray_name_the_task(backend: Any) -> None:
    with pytest.raises(TaskError, match=r"task 1 \(shard-b\) failed after 2 attempts: ValueError: bad 1"):
        dict(backend.map(fails_on_one, [0, 1], retries=1, labels=["shard-a", "shard-b"]))
    with pytest.raises(DataError, match="broken row 3"):
        dict(backend.map(data_error, [3]))


def test_rolling_on_ray_gives_the_serial_predictions_bit_for_bit(ray_session: Any, tmp_path: Path,
                                                                 kernel: Any) -> None:  # noqa: F811
    config = rolling_config(tmp_path, step="1M")
    config["model"] = {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 1.0}}
    config["backend"] = {"name": "ray", "kwargs": {"address": "auto"}}  # the workflow's backend runs the windows
    serial = {**config, "backend": "serial", "rolling": {**config["rolling"], "checkpoint": str(tmp_path / "ck-s")}}
    on_ray = qcore.run(config, kernel=kernel)
    assert on_ray.metrics["rolling.windows_trained"] == 4.0
    expected = pd.read_parquet(qcore.run(serial, kernel=kernel).artifacts["pred"])
    pd.testing.assert_frame_equal(pd.read_parquet(on_ray.artifacts["pred"]), expected, check_exact=True)


def test_bad_settings_are_config_errors() -> None:
    from qray.backend import RayBackend

    with pytest.raises(ConfigError, match="auto, local or ray://"):
        RayBackend(address="http://x")
    with pytest.raises(ConfigError, match="size a local cluster"):
        RayBackend(address="auto", num_cpus=2)


def test_missing_ray_gives_the_pip_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from qray.backend import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(OptionalDependencyError, match="pip install"):
        import_ray()


@pytest.mark.parametrize(("given", "expected"), [(None, "0"), ("1", "1")])
def test_ray_usage_statistics_are_off_unless_the_user_turned_them_on(monkeypatch: pytest.MonkeyPatch,
                                                                      given: str | None, expected: str) -> None:
    from qray.backend import USAGE_STATS_SWITCH, import_ray

    if given is None:
        monkeypatch.delenv(USAGE_STATS_SWITCH, raising=False)
    else:
        monkeypatch.setenv(USAGE_STATS_SWITCH, given)
    import_ray()
    assert os.environ[USAGE_STATS_SWITCH] == expected


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT)  # fmt: skip


def test_an_unreachable_address_is_a_clear_error() -> None:
    out = _python("from qray.backend import RayBackend\n"
                  "from qcore.errors import RunError\n"
                  "try:\n    dict(RayBackend(address='127.0.0.1:1').map(abs, [1]))\n"
                  "except RunError as e:\n    print('ERR', e)\n")  # fmt: skip
    assert "ERR cannot reach a Ray cluster at '127.0.0.1:1'" in out.stdout, out.stderr[-2000:]


def test_the_kernel_and_plugins_never_import_ray() -> None:
    out = _python("import sys\nfrom qcore.api import load_kernel\nk = load_kernel()\n"
                  "assert 'ray' in k.registry('execution_backend').names()\n"
                  "print('ray' in sys.modules)")  # fmt: skip
    assert out.stdout.strip().splitlines()[-1:] == ["False"], out.stderr[-2000:]


def test_cli_cluster_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    qcore_bin = [sys.executable, "-m", "qcore.cli"]
    env = {**os.environ}
    up = subprocess.run([*qcore_bin, "cluster", "up", "--state", str(state), "--port", "6391", "--num-cpus", "1"],
                        capture_output=True, text=True, env=env, timeout=180)  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "address 127.0.0.1:6391" in up.stdout
        status = subprocess.run([*qcore_bin, "cluster", "status", "--state", str(state)], capture_output=True,
                                text=True, env=env, timeout=60)  # fmt: skip
        assert "running" in status.stdout and "not" not in status.stdout, status.stdout + status.stderr
        again = subprocess.run([*qcore_bin, "cluster", "up", "--state", str(state), "--port", "6391"],
                               capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert again.returncode != 0 and "runs already" in again.stderr
    finally:
        down = subprocess.run([*qcore_bin, "cluster", "down", "--state", str(state)], capture_output=True,
                              text=True, env=env, timeout=120)  # fmt: skip
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert not state.exists()
