"""What every benchmark script shares: where the checkout is, where cached stores live, where Qlib's environment is.

Nothing here depends on one machine's absolute paths: cached stores go under the checkout's ``.bench/`` folder
(git-ignored), and Qlib's baseline environment is ``$QLIB_ENV`` (or the folder of ``$QLIB_PYTHON``), else
``.bench/qlib-baseline`` in the checkout, built with ``../shared/tools/qlib-baseline-env.sh .bench/qlib-baseline``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
BASELINE_SCRIPT = ROOT.parent / "shared" / "tools" / "qlib-baseline-env.sh"


def default_qlib_env() -> Path:
    """Qlib's baseline environment: ``$QLIB_ENV``, the environment of ``$QLIB_PYTHON``, or ``.bench/qlib-baseline``."""
    if os.environ.get("QLIB_ENV"):
        return Path(os.environ["QLIB_ENV"])
    if os.environ.get("QLIB_PYTHON"):
        return Path(os.environ["QLIB_PYTHON"]).parent.parent
    return BENCH_DIR / "qlib-baseline"


def default_qlib_python() -> str:
    """The Python of Qlib's baseline environment (see :func:`default_qlib_env`)."""
    return os.environ.get("QLIB_PYTHON") or str(default_qlib_env() / "bin" / "python")


def baseline_hint(env: Path) -> str:
    """How to build Qlib's baseline environment at ``env``."""
    return f"build it with {BASELINE_SCRIPT} {env}"


def store_path(instruments: int, days: int, seed: int) -> Path:
    """Where the cached synthetic store of this size and seed lives."""
    return BENCH_DIR / "stores" / f"synth_{instruments}x{days}_s{seed}"


def ensure_store(path: Path, instruments: int, days: int, seed: int) -> Path:
    """The benchmark store at ``path``, built when missing (``qcore data synth`` if available, else in-process)."""
    if (path / "calendars" / "day.txt").exists():
        return path
    exe = shutil.which("qcore") or str(Path(sys.executable).with_name("qcore"))
    cmd = [exe, "data", "synth", "--out", str(path), "--instruments", str(instruments), "--days", str(days),
           "--seed", str(seed)]  # fmt: skip
    if path.exists():
        cmd.append("--overwrite")
    print(f"building the synthetic store {path} ...", file=sys.stderr)
    if Path(exe).exists() and subprocess.run(cmd, capture_output=True).returncode == 0:
        return path
    from qdata_cn.synth import synthesize

    synthesize(path, instruments=instruments, days=days, seed=seed, overwrite=path.exists())
    return path
