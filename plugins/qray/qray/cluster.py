"""``qcore cluster up|status|down``: one local Ray head on 127.0.0.1, started once and stopped by its PID.

``up`` runs ``ray start --head --block`` in its own session (auth mode set explicitly, no dashboard, no usage
stats, a private temp folder) and waits until its port answers; the PID, address and folder go to a state file.
``down`` sends SIGTERM to that PID only (never ``ray stop``, which ends every Ray process of the user) and waits;
``status`` says whether it runs. Ray's session files live in a private folder under the system temp folder,
removed by ``down``. Backends reach it with ``address: 127.0.0.1:PORT`` or ``auto``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from qcore.errors import RunError

DEFAULT_STATE = Path.home() / ".qcore" / "ray-cluster.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process is not alive
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read the cluster state file {path}: {exc}") from None


def start_head(state: Path, port: int, num_cpus: int, auth: str, timeout: float = 120.0) -> dict[str, Any]:
    """Start the head (refused when the state file names a live one) and wait until it answers on ``port``."""
    from qray.backend import import_ray

    import_ray()
    old = _read_state(state)
    if old is not None and _alive(int(old["pid"])):
        raise RunError(f"a Ray head started by qcore runs already (pid {old['pid']}, {old['address']}); "
                       "'qcore cluster down' first")  # fmt: skip
    if _answers(port):
        raise RunError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    state.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f"qray{port}-"))  # short: Ray's socket paths must fit 107 bytes
    cmd = [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--head", "--block",
           f"--port={port}", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}", "--include-dashboard=false",
           "--disable-usage-stats", f"--temp-dir={temp}"]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": auth}
    log = (state.parent / f"ray-{port}.log").open("ab")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    info = {"pid": proc.pid, "address": f"127.0.0.1:{port}", "port": port, "temp_dir": str(temp),
            "log": log.name, "auth": auth}  # fmt: skip
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(info))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            state.unlink(missing_ok=True)
            raise RunError(f"the Ray head exited with code {proc.returncode}; see {log.name}")
        if _answers(port):
            return info
        time.sleep(0.25)
    stop_head(state)
    raise RunError(f"the Ray head did not answer on port {port} within {timeout:g} s; see {log.name}")


def stop_head(state: Path, timeout: float = 30.0) -> int | None:
    """SIGTERM the head this state file names (then SIGKILL its session after ``timeout``); its PID, or None."""
    info = _read_state(state)
    if info is None:
        return None
    pid = int(info["pid"])
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    state.unlink(missing_ok=True)
    if info.get("temp_dir"):
        shutil.rmtree(info["temp_dir"], ignore_errors=True)
    return pid


def head_status(state: Path) -> dict[str, Any] | None:
    """The state file's head with ``running`` (its PID lives) and ``answers`` (its port accepts connections)."""
    info = _read_state(state)
    if info is None:
        return None
    return {**info, "running": _alive(int(info["pid"])), "answers": _answers(int(info["port"]))}


_STATE_OPTION = click.option("--state", "state_path", type=click.Path(dir_okay=False), default=str(DEFAULT_STATE),
                             show_default=True, help="Where the head's PID and address are kept.")  # fmt: skip


@click.group("cluster")
def cluster_group() -> None:
    """A local Ray head on 127.0.0.1 for the ray backend (up, status, down)."""


@cluster_group.command("up")
@_STATE_OPTION
@click.option("--port", default=6390, show_default=True, type=click.IntRange(1024, 65535))
@click.option("--num-cpus", default=os.cpu_count() or 1, show_default=True, type=click.IntRange(1, 4096))
@click.option("--auth", type=click.Choice(["disabled", "token"]), default="disabled", show_default=True,
              help="Ray's auth mode (RAY_AUTH_MODE), set explicitly; the head listens on 127.0.0.1 only.")
def up_command(state_path: str, port: int, num_cpus: int, auth: str) -> None:
    """Start the head and wait until it answers."""
    info = start_head(Path(state_path), port, num_cpus, auth)
    click.echo(f"Ray head up: pid {info['pid']}, address {info['address']} (backend: {{name: ray, kwargs: "
               f"{{address: '{info['address']}'}}}}); stop it with 'qcore cluster down'")


@cluster_group.command("status")
@_STATE_OPTION
def status_command(state_path: str) -> None:
    """Whether the head qcore started runs and answers."""
    info = head_status(Path(state_path))
    if info is None:
        click.echo("no Ray head started by qcore")
        return
    state = "running" if info["running"] and info["answers"] else "running, not answering" if info["running"] \
        else "not running (stale state)"
    click.echo(f"Ray head pid {info['pid']} at {info['address']}: {state}")


@cluster_group.command("down")
@_STATE_OPTION
def down_command(state_path: str) -> None:
    """Stop the head qcore started (by its PID) and forget it."""
    pid = stop_head(Path(state_path))
    click.echo("no Ray head started by qcore" if pid is None else f"Ray head pid {pid} stopped")
