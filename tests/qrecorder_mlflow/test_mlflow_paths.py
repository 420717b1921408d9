"""The MLflow recorder keeps artifacts inside its artifact root whatever the experiment and artifact names, and
what MLflow refuses becomes a RunError instead of an internal error."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from qcore.cli import cli
from qcore.errors import RunError
from qcore.kernel import Kernel


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One sqlite store for the module (importing mlflow and creating the schema take seconds)."""
    base = tmp_path_factory.mktemp("mlflow")
    outside = base / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("keep me")
    recorder = Kernel.load(use_env=False).create("recorder", "mlflow", tracking_uri=f"sqlite:///{base / 'm.db'}",
                                                 artifact_root=base / "art")  # fmt: skip
    return {"base": base, "outside": outside, "recorder": recorder}


def files_outside(base: Path) -> list[str]:
    """Paths under ``base`` that are neither the artifact root's nor the database's."""
    return sorted(str(p.relative_to(base)) for p in base.rglob("*")
                  if not p.is_relative_to(base / "art") and not p.name.startswith("m.db") and p != base / "art")


def test_crafted_experiment_and_artifact_names_stay_in_the_artifact_root(place: dict) -> None:
    base, outside, recorder = place["base"], place["outside"], place["recorder"]
    names = ["../escape", "../../outside/x", f"{outside}/abs", "a/b", "..", ".", "x\x00y", "%2E%2E", ".hidden"]
    for name in names:
        run = recorder.start_run(name, "../run-name")
        stored = [run.log_artifact(artifact, obj) for artifact, obj in
                  (("../../outside/a", "text"), (f"{outside}/b", {"k": 1}), ("..", pd.DataFrame({"s": [1.0]})))]
        run.end()
        assert all("/outside/" not in s.split("/artifacts/")[1] for s in stored)
        assert [r["run_id"] for r in recorder.list_runs(name)] == [run.run_id], name
        info = recorder.get_run(run.run_id)
        assert info["experiment"] == name and len(info["artifacts"]) == 3
    assert files_outside(base) == ["outside", "outside/sentinel.txt"]
    assert (outside / "sentinel.txt").read_text() == "keep me"
    folders = sorted(p.name for p in (base / "art").iterdir())
    assert len(folders) == len(names) and not [f for f in folders if f.startswith(".") or "/" in f]


def test_what_mlflow_refuses_is_a_run_error(place: dict) -> None:
    recorder, outside = place["recorder"], place["outside"]
    run = recorder.start_run("refusals")
    with pytest.raises(RunError, match=r"mlflow refused to set the tags of run \w+: .*'\.\./t'"):
        run.set_tags({"../t": "v"})
    with pytest.raises(RunError, match=r"mlflow refused to log the params of run \w+: .*a\.\./\.\./b"):
        run.log_params({"a../../b": 1})
    with pytest.raises(RunError, match="mlflow refused to log the metrics"):
        run.log_metrics({"bad\x00name": 1.0})
    run.end()
    with pytest.raises(RunError, match=r"mlflow refused to create experiment 'xxx.*\.\.\.: .*500"):
        recorder.start_run("x" * 600)
    (place["base"] / "art" / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunError, match=r"experiment 'linked' .* leads outside"):
        recorder.start_run("linked")
    assert sorted(os.listdir(outside)) == ["sentinel.txt"]


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 10)
    result = CliRunner().invoke(cli, ["runs", "--recorder", "mlflow", "--uri", f"sqlite:///{bad}", "list"])
    assert result.exit_code == 1, result.output
    assert f"mlflow refused to open the tracking store sqlite:///{bad}" in result.output
    assert bad.read_bytes() == b"not a database at all" * 10


@pytest.mark.parametrize(("given", "expected"), [(None, True), ("false", False)])
def test_mlflow_telemetry_is_off_unless_the_user_asked_for_it(tmp_path: Path, given: str | None,
                                                              expected: bool) -> None:
    """MLflow 3 would send usage events to its servers; a run through the recorder sends nothing unless the user
    set ``MLFLOW_DISABLE_TELEMETRY`` themselves (in a fresh process: MLflow reads the switch when it starts)."""
    import subprocess
    import sys

    code = ("from qcore.kernel import Kernel\n"
            f"r = Kernel.load(use_env=False).create('recorder', 'mlflow', tracking_uri='sqlite:///{tmp_path}/m.db', "
            f"artifact_root='{tmp_path}/art')\n"
            "r.start_run('telemetry', 'run')\n"
            "from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY\n"
            "print(MLFLOW_DISABLE_TELEMETRY.get())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    if given is not None:
        env["MLFLOW_DISABLE_TELEMETRY"] = given
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(expected)
