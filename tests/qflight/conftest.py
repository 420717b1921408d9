"""One ``qcore serve`` process per test session on 127.0.0.1 (port 0), serving the golden store with tokens; it is
stopped with SIGTERM (then by PID) at the end. :func:`start_server` starts more for the tests that need their own."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"
QCORE = Path(sys.executable).with_name("qcore")


@attrs.frozen
class Served:
    """A running server: its process, address and the two users' token files."""

    process: subprocess.Popen
    uri: str
    tokens: Path
    alice: Path
    bob: Path


def start_server(*args: str, timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
    """``qcore serve ARGS --port 0`` in a new process; returns it and the address it printed."""
    process = subprocess.Popen([str(QCORE), "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        stop_server(process)
        raise RuntimeError(f"qcore serve printed no address within {timeout} s")
    line = process.stdout.readline()
    if " at " not in line:
        stop_server(process)
        raise RuntimeError(f"qcore serve did not start: {line!r} {process.stderr.read()[-2000:]}")
    return process, line.split(" at ", 1)[1].split()[0]


def stop_server(process: subprocess.Popen) -> int | None:
    """SIGTERM, then SIGKILL by PID if it has not ended within 20 s; returns the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)
    return process.returncode


def write_token(path: Path, text: str) -> Path:
    """Write a token file readable by its owner only."""
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("qflight")
    alice_token, bob_token = secrets.token_hex(16), secrets.token_hex(16)
    tokens = write_token(folder / "tokens", f"# team tokens\nalice:{alice_token}\nbob:{bob_token}\n")
    alice = write_token(folder / "alice", f"alice:{alice_token}\n")
    bob = write_token(folder / "bob", f"{bob_token}\n")
    process, uri = start_server("--store", str(STORE), "--token-file", str(tokens), "--max-instruments", "500",
                                "--max-cells", "3000000", "--batch-cells", "20000")  # fmt: skip
    try:
        yield Served(process, uri, tokens, alice, bob)
    finally:
        stop_server(process)


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$QCORE_CACHE_DIR`` for the test."""
    monkeypatch.setenv("QCORE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
