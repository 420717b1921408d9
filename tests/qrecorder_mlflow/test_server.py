"""The MLflow recorder logs to a real ``mlflow server`` over HTTP (on 127.0.0.1) and reads the run back."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from qcore.kernel import Kernel

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    cmd = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
           "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"]
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_HOST": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_run_logged_over_http_and_read_back(server: str) -> None:
    recorder = Kernel.load(use_env=False).create("recorder", "mlflow", tracking_uri=server)
    run = recorder.start_run("http-exp", "over-http")
    run.log_params({"model": {"name": "lightgbm"}})
    run.log_metrics({"IC": 0.04}, step=0)
    run.set_tags({"qcore.version": "test"})
    run.log_artifact("pred", pd.DataFrame({"score": [0.1, 0.2]}))
    run.end()
    stored = recorder.get_run(run.run_id)
    assert stored["status"] == "FINISHED" and stored["experiment"] == "http-exp"
    assert stored["params"] == {"model.name": "lightgbm"}
    assert stored["metrics"] == {"IC": [[0, 0.04]]}
    assert stored["artifacts"] == ["pred.parquet"]
    assert [r["run_id"] for r in recorder.list_runs("http-exp")] == [run.run_id]
