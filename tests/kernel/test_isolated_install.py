"""Installing one plugin pulls only its own dependencies.

Builds a fresh virtual environment holding only the kernel, ``qdata_cn`` and ``qops`` (resolved from their own
``pyproject.toml`` files), then checks that no heavy library came with them and that the CLI works there.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mlflow", "lightgbm", "tianshou", "cvxpy", "ray")

pytestmark = [pytest.mark.isolation, pytest.mark.slow]


@pytest.fixture(scope="module")
def minimal_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("minimal") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        str(ROOT),
        str(ROOT / "plugins/qdata_cn"),
        str(ROOT / "plugins/qops"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_no_heavy_dependency_installed(minimal_env: Path) -> None:
    probe = (
        "import importlib.util, json, sys\n"
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"
    )
    found = json.loads(
        subprocess.run([str(minimal_env), "-c", probe, *HEAVY], capture_output=True, text=True, check=True).stdout
    )
    assert found == dict.fromkeys(HEAVY, False)


def _cli(python: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the qcore CLI in ``python``'s environment and report the heavy modules it imported on stderr."""
    code = (
        "import sys\n"
        "from qcore.cli import cli\n"
        "try:\n"
        f"    cli.main({args!r}, standalone_mode=False)\n"
        "finally:\n"
        f"    print('HEAVY=' + ','.join(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}), file=sys.stderr)\n"
    )
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True)


def test_cli_lists_only_installed_plugins_and_imports_nothing_heavy(minimal_env: Path) -> None:
    done = _cli(minimal_env, ["plugins", "--json"])
    assert done.returncode == 0, done.stderr[-3000:]
    names = {row["name"] for row in json.loads(done.stdout)}
    assert names == {"core", "qlib_workflow", "qdata_cn", "qops"}
    assert done.stderr.rstrip().endswith("HEAVY=")


def test_expression_query_in_minimal_env(minimal_env: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    store = ROOT / "tests" / "data" / "golden_market"
    args = ["expr", "--provider-uri", str(store), "--field", "Mean($close, 5)", "--field", "Corr($close, $volume, 10)",
            "--instruments", "csi_like", "--out", str(out)]
    done = _cli(minimal_env, args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.rstrip().endswith("HEAVY=")
    check = "import pandas as pd, sys; f = pd.read_parquet(sys.argv[1]); print(f.shape[1], f.notna().sum().min() > 0)"
    shape = subprocess.run([str(minimal_env), "-c", check, str(out)], capture_output=True, text=True, check=True)
    assert shape.stdout.split() == ["2", "True"]
