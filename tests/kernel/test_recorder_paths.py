"""The local recorder keeps every run inside its folder, whatever the names, and reads damaged run folders
without an internal error: ``list`` skips them with a warning, ``show``/``compare`` name them."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from qcore.cli import cli
from qcore.errors import ConfigError, DataError, RunError, UnknownComponentError
from qcore.recorders.common import MAX_COMPONENT_BYTES, safe_component, write_artifact
from qcore.recorders.local import LocalRecorder


def snapshot(folder: Path, skip: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (outside ``skip``) with its bytes (None for folders)."""
    out: dict[str, bytes | None] = {}
    for path in folder.rglob("*"):
        if path == skip or skip in path.parents:
            continue
        out[str(path)] = None if path.is_dir() else path.read_bytes()
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """``(runs root, outside folder with a sentinel file)``, both under ``tmp_path``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("keep me")
    root = tmp_path / "work" / "runs"
    root.mkdir(parents=True)
    return root, outside


def crafted_names(outside: Path) -> list[str]:
    return ["../escape", "../../outside/escape", f"{outside}/abs", str(outside), "a/b", "a\\b", "..", ".", "/",
            "x\x00y", "~", "CON", "nul.txt", "com1", " lead", "trail.", "trail ", ".hidden", "é/../../outside",
            "x" * 300, "../" * 80 + "deep", "%2E%2E", "%", "tab\there", "new\nline", "\ud800lone",
            "bytes\udcff"]  # fmt: skip


def test_crafted_experiment_names_stay_inside_and_are_listed(sandbox: tuple[Path, Path]) -> None:
    root, outside = sandbox
    before = snapshot(root.parents[1], root)
    rec = LocalRecorder(root)
    ids = {}
    for name in crafted_names(outside):
        run = rec.start_run(name, run_name="../../run-name")
        run.set_tags({"../tag": "/etc/passwd"})
        run.log_params({"../p": 1})
        run.log_artifact("../../outside/art", "text")
        run.end()
        assert run.root.parent.parent == root and run.root.resolve().is_relative_to(root.resolve()), name
        assert [r["run_id"] for r in rec.list_runs(name)] == [run.run_id], name
        shown = name.encode("utf-8", "backslashreplace").decode()  # lone surrogates are shown escaped
        assert rec.list_runs(name)[0]["experiment"] == shown and rec.get_run(run.run_id)["experiment"] == shown
        ids[name] = run.run_id
    assert snapshot(root.parents[1], root) == before  # nothing outside the runs folder appeared or changed
    assert (outside / "sentinel.txt").read_text() == "keep me" and sorted(os.listdir(outside)) == ["sentinel.txt"]
    assert {r["run_id"] for r in rec.list_runs()} == set(ids.values())
    assert all(len(p.name.encode()) <= MAX_COMPONENT_BYTES for p in root.iterdir())
    assert not [p for p in root.iterdir() if p.name.startswith(".") or p.name in ("CON", "nul.txt")]
    listed = CliRunner().invoke(cli, ["runs", "--uri", str(root), "list"])
    assert listed.exit_code == 0, listed.output
    assert all(run_id in listed.output for run_id in ids.values())


def test_safe_component_is_injective_and_keeps_plain_names() -> None:
    names = ["a/b", "a%2Fb", "a%252Fb", ".x", "%2Ex", "CON", "%43ON", "con", "..", "%2E%2E", "%2E.", "a b", "a  b",
             "x" * 300, "x" * 299 + "y", "x" * 300 + "/"]  # fmt: skip
    components = [safe_component(n, "experiment") for n in names]
    assert len(set(components)) == len(names)
    assert all("/" not in c and "\\" not in c and "\x00" not in c and c not in (".", "..") for c in components)
    for plain in ("demo", "alpha158_lgbm-v2.1", "my exp", "实验", "a+b=c,d@e"):
        assert safe_component(plain, "experiment") == plain
    with pytest.raises(ConfigError, match="experiment: experiment name is empty"):
        safe_component("", "experiment")
    with pytest.raises(ConfigError, match="experiment: experiment name must be a string, got int 3"):
        safe_component(3, "experiment")


def test_artifact_names_become_files_inside_the_artifact_folder(sandbox: tuple[Path, Path]) -> None:
    root, outside = sandbox
    folder = root / "artifacts"
    before = snapshot(root.parents[1], root)
    frame = pd.DataFrame({"score": [1.0]})
    written = set()
    for name in crafted_names(outside):
        for obj in ("text", b"bytes", {"k": 1}, frame):
            path = write_artifact(folder, name, obj)
            assert path.parent == folder and path.is_file(), (name, type(obj))
            written.add(path.name)
    assert snapshot(root.parents[1], root) == before
    assert len(written) == 3 * len(crafted_names(outside))  # text and bytes share a name; no two names collide
    with pytest.raises(ConfigError, match="artifact name is empty"):
        write_artifact(folder, "", "x")
    with pytest.raises(RunError, match=f"artifact 'm': {outside} is not a file"):
        write_artifact(folder, "m", outside)


def test_experiment_folder_linking_outside_is_refused(sandbox: tuple[Path, Path]) -> None:
    root, outside = sandbox
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunError, match=r"experiment 'linked' .* leads outside the runs folder"):
        LocalRecorder(root).start_run("linked")
    assert sorted(os.listdir(outside)) == ["sentinel.txt"]
    with pytest.raises(ConfigError, match="experiment name is empty"):
        LocalRecorder(root).start_run("")


def test_runs_of_folders_named_before_escaping_are_still_found(tmp_path: Path) -> None:
    legacy = tmp_path / "a:b" / "20200101T000000-abcdef"
    legacy.mkdir(parents=True)
    (legacy / "meta.json").write_text(json.dumps({"run_id": legacy.name, "experiment": "a:b", "status": "FINISHED"}))
    rec = LocalRecorder(tmp_path)
    new = rec.start_run("a:b")
    assert {r["run_id"] for r in rec.list_runs("a:b")} == {legacy.name, new.run_id}


def _damage(root: Path) -> dict[str, Path]:
    """A good run plus one run per kind of damage; returns {kind: run folder}."""
    rec = LocalRecorder(root)
    good = rec.start_run("exp", "good")
    good.log_metrics({"ic": float("nan"), "ir": 1.5})
    good.log_params({"model": {"name": "linear"}})
    good.end()
    runs = {"good": good.root}
    damage = {
        "garbled": lambda d: (d / "meta.json").write_text("{not json"),
        "missing": lambda d: (d / "meta.json").unlink(),
        "not-utf8": lambda d: (d / "meta.json").write_bytes(b'{"experiment": "\xff\xfe"}'),
        "a-list": lambda d: (d / "meta.json").write_text("[1, 2]"),
        "wrong-type": lambda d: (d / "meta.json").write_text(json.dumps({"experiment": 5, "start_time": 3})),
        "tags-list": lambda d: (d / "meta.json").write_text(json.dumps({"tags": ["a"]})),
        "meta-folder": lambda d: ((d / "meta.json").unlink(), (d / "meta.json").mkdir()),
        "metrics-text": lambda d: (d / "metrics.json").write_text(json.dumps({"ic": "high"})),
        "metrics-pair": lambda d: (d / "metrics.json").write_text(json.dumps({"ic": [[0, "x"]]})),
        "deep-json": lambda d: (d / "meta.json").write_text("[" * 100_000 + "]" * 100_000),
    }
    for kind, spoil in damage.items():
        run = rec.start_run("exp", kind)
        spoil(run.root)
        runs[kind] = run.root
    # damage that only show() reads: params and artifacts
    for kind, spoil in {"params-list": lambda d: (d / "params.json").write_text("[1]"),
                        "artifacts-file": lambda d: (d / "artifacts").write_text("x")}.items():  # fmt: skip
        run = rec.start_run("exp", kind)
        spoil(run.root)
        runs[kind] = run.root
    (root / "exp" / "20200101T000000-f11e00").write_text("a file where a run folder should be")
    (root / "stray.txt").write_text("a file where an experiment folder should be")
    return runs


LISTED_ANYWAY = ("good", "params-list", "artifacts-file")


def test_list_skips_damaged_run_folders_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runs = _damage(tmp_path)
    with caplog.at_level(logging.WARNING, logger="qcore.recorders.local"):
        listed = LocalRecorder(tmp_path).list_runs()
    assert sorted(r["run_name"] for r in listed) == sorted(LISTED_ANYWAY)
    text = caplog.text
    for kind, folder in runs.items():
        if kind not in LISTED_ANYWAY:
            assert str(folder) in text, kind
    assert "20200101T000000-f11e00: a file where a run folder should be" in text
    assert "stray.txt: a file where an experiment folder should be" in text
    good = next(r for r in listed if r["run_name"] == "good")
    assert good["metrics"]["ir"] == 1.5 and good["metrics"]["ic"] != good["metrics"]["ic"]  # NaN stays NaN
    caplog.clear()
    result = CliRunner().invoke(cli, ["runs", "--uri", str(tmp_path), "list"])
    assert result.exit_code == 0, result.output
    assert runs["good"].name in result.output and "ic=nan" in result.output
    assert str(runs["garbled"]) in caplog.text


@pytest.mark.parametrize("kind, reason", [
    ("garbled", "meta.json: run file is not valid JSON"),
    ("missing", ": run folder has no meta.json"),
    ("not-utf8", "meta.json: run file is not UTF-8 text"),
    ("a-list", "meta.json: run file holds a JSON list, expected an object"),
    ("wrong-type", "meta.json: 'experiment' must be a string, got int 5"),
    ("tags-list", "meta.json: 'tags' must be an object"),
    ("meta-folder", "meta.json: run file is a folder"),
    ("metrics-text", "metrics.json: metric 'ic' must be a list"),
    ("metrics-pair", "metrics.json: metric 'ic' has an entry [0, 'x']"),
    ("deep-json", "meta.json: run file nests JSON too deeply"),
    ("params-list", "params.json: run file holds a JSON list"),
    ("artifacts-file", "artifacts: cannot list the run's artifacts"),
])  # fmt: skip
def test_show_names_the_damaged_folder(tmp_path: Path, kind: str, reason: str) -> None:
    runs = _damage(tmp_path)
    folder = runs[kind]
    with pytest.raises(DataError) as caught:
        LocalRecorder(tmp_path).get_run(folder.name)
    assert str(caught.value).startswith(str(folder)) and reason in str(caught.value)


def test_cli_show_and_compare_of_damaged_runs_exit_with_a_data_error(tmp_path: Path) -> None:
    runs = _damage(tmp_path)
    for kind in ("garbled", "wrong-type", "metrics-text"):
        shown = CliRunner().invoke(cli, ["runs", "--uri", str(tmp_path), "show", runs[kind].name])
        assert shown.exit_code == 5 and str(runs[kind]) in shown.output, shown.output
    compared = CliRunner().invoke(cli, ["runs", "--uri", str(tmp_path), "compare", runs["good"].name,
                                        runs["not-utf8"].name])  # fmt: skip
    assert compared.exit_code == 5 and str(runs["not-utf8"]) in compared.output
    file_run = "20200101T000000-f11e00"
    with pytest.raises(DataError, match=f"run {file_run} is a file, not a run folder"):
        LocalRecorder(tmp_path).get_run(file_run)
    for bad_id in ("../exp", "..", "", "exp/" + runs["good"].name, ".hidden"):
        with pytest.raises(UnknownComponentError, match="unknown run"):
            LocalRecorder(tmp_path).get_run(bad_id)
    assert LocalRecorder(tmp_path).list_runs("../..") == []  # an escaped name, not a way out


def test_runs_folder_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.write_text("x")
    with pytest.raises(DataError, match=f"{path}: the runs folder is a file"):
        LocalRecorder(path).list_runs()
    with pytest.raises(RunError, match="cannot create the folder of experiment 'e'"):
        LocalRecorder(path).start_run("e")
    assert path.read_text() == "x"
