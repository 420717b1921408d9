from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from qcore import __version__
from qcore.cli import ExitCode, cli

SIX = {"qdata_cn", "qops", "qmodel_zoo", "qbacktest", "qrl", "qrecorder_mlflow"}


def invoke(*args: str, cwd: Path | None = None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_version_lists_plugins() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == f"qcore {__version__}"
    for name in SIX:
        assert any(line.strip().startswith(f"{name} 0.1.0 (") for line in lines), name


def test_plugins_json_lists_six_plugins_and_builtins() -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert SIX | {"core", "qdata_toy"} <= set(rows)
    assert rows["core"]["builtin"] is True
    assert rows["qrecorder_mlflow"]["components"] == {"recorder": ["mlflow"]}
    assert rows["qrecorder_mlflow"]["hooks"] == ["qcore_register_recorders", "qcore_run_hints"]
    assert rows["qdata_toy"]["components"] == {"data_provider": ["toy"], "market_rules": ["toy"]}
    assert set(rows["qmodel_zoo"]) == {"name", "module", "distribution", "version", "builtin", "hooks", "components",
                                       "kinds"}


def test_plugins_text() -> None:
    result = invoke("plugins")
    assert result.exit_code == 0
    assert "qdata_toy 0.0.1 (qdata-toy)" in result.output
    assert "  data_provider: toy" in result.output


def test_list_kind_shows_owner() -> None:
    result = invoke("list", "data_providers")
    assert result.exit_code == 0
    assert any(line.startswith("toy") and "[qdata_toy]" in line for line in result.output.splitlines())
    rows = json.loads(invoke("list", "recorders", "--json").output)
    assert {"name": "local", "plugin": "core", "aliases": ["file"], "description": rows[0]["description"]} in rows


def test_list_unknown_kind() -> None:
    result = invoke("list", "modles")
    assert result.exit_code == ExitCode.CONFIG
    assert (
        result.output.startswith("Error: unknown component kind 'modles'; did you mean 'models'?")
        or "unknown component kind 'modles'" in result.output
    )


def test_block_plugin_with_p() -> None:
    rows = json.loads(invoke("-p", "no:qrl", "plugins", "--json").output)
    assert "qrl" not in {r["name"] for r in rows}


def test_no_autoload_with_explicit_list() -> None:
    rows = json.loads(invoke("--no-autoload", "-p", "qdata_toy", "plugins", "--json").output)
    assert {r["name"] for r in rows} == {"core", "qlib_workflow", "qdata_toy"}


def test_unknown_plugin_one_line_error() -> None:
    result = invoke("-p", "qdata_tyo", "plugins")
    assert result.exit_code == ExitCode.PLUGIN
    assert result.output.strip().splitlines() == [result.output.strip().splitlines()[0]]
    assert "Error: no installed plugin named 'qdata_tyo'; did you mean 'qdata_toy'?" in result.output


def toy_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(f"""
        experiment: cli-test
        data:
          provider: {{name: toy, kwargs: {{n_instruments: 6, n_days: 40}}}}
          market_rules: toy
          universe: even
        recorder: {{name: local, kwargs: {{uri: {tmp_path / "runs"}}}}}
        {extra}
    """).lstrip()
    )
    return path


def test_run_uses_third_party_components(tmp_path: Path) -> None:
    result = invoke("run", str(toy_config(tmp_path)))
    assert result.exit_code == 0, result.output
    assert re.search(r"^  data\.instruments\s+3$", result.output, re.M)
    assert "data.coverage.close" in result.output
    run_dirs = list((tmp_path / "runs" / "cli-test").iterdir())
    assert len(run_dirs) == 1
    summary = json.loads((run_dirs[0] / "artifacts" / "data_summary.json").read_text())
    assert summary["universe"] == "even" and summary["instruments"] == 3


def test_validate_ok_and_unknown_component(tmp_path: Path) -> None:
    ok = invoke("validate", str(toy_config(tmp_path)))
    assert ok.exit_code == 0 and "OK (3 components resolved)" in ok.output
    bad = invoke("validate", str(toy_config(tmp_path)), "--set", "data.provider.name=tyo")
    assert bad.exit_code == ExitCode.CONFIG
    line = bad.output.strip()
    assert "\n" not in line
    assert line.startswith(
        f"Error: {tmp_path / 'wf.yaml'}: data.provider: unknown data_provider 'tyo'; did you mean 'toy'? (available: "
    )
    assert "toy" in line.rpartition("(available: ")[2]


def test_invalid_config_key_one_line(tmp_path: Path) -> None:
    result = invoke("run", str(toy_config(tmp_path, "modle: {name: linear}")))
    assert result.exit_code == ExitCode.CONFIG
    assert len(result.output.strip().splitlines()) == 1
    assert "wf.yaml:7: modle: unknown key 'modle'" in result.output
    assert "Traceback" not in result.output


def test_run_blocking_the_provider_plugin_fails_cleanly(tmp_path: Path) -> None:
    result = invoke("run", str(toy_config(tmp_path)), "-p", "no:qdata_toy")
    assert result.exit_code == ExitCode.CONFIG
    assert "data.provider: unknown data_provider 'toy'" in result.output


def test_internal_errors_are_one_line_unless_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qcore.runner

    def explode(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(qcore.runner, "_data_step", explode)
    result = invoke("run", str(toy_config(tmp_path)))
    assert result.exit_code == ExitCode.INTERNAL
    assert result.output.strip() == (
        "Error: internal error: ZeroDivisionError: division by zero (run with --debug for the traceback)"
    )
    with pytest.raises(ZeroDivisionError):
        CliRunner().invoke(cli, ["--debug", "run", str(toy_config(tmp_path))], catch_exceptions=False)


def test_runs_list_show_compare(tmp_path: Path) -> None:
    config = toy_config(tmp_path)
    assert invoke("run", str(config)).exit_code == 0
    assert invoke("run", str(config), "--set", "data.universe=all").exit_code == 0
    uri = str(tmp_path / "runs")
    runs = json.loads(invoke("runs", "--uri", uri, "list", "--json").output)
    assert len(runs) == 2 and {r["status"] for r in runs} == {"FINISHED"}
    assert runs[0]["start_time"] > runs[1]["start_time"]  # newest first
    listing = invoke("runs", "--uri", uri, "list").output
    assert runs[0]["run_id"] in listing and "cli-test" in listing
    shown = invoke("runs", "--uri", uri, "show", runs[0]["run_id"]).output
    assert "data.universe = all" in shown and "data_summary.json" in shown
    table = json.loads(invoke("runs", "--uri", uri, "compare", runs[0]["run_id"], runs[1]["run_id"], "--json").output)
    assert table["params"] == {"data.universe": ["all", "even"]}
    assert table["metrics"]["data.instruments"] == [6.0, 3.0]
    missing = invoke("runs", "--uri", uri, "show", "nope")
    assert missing.exit_code == ExitCode.CONFIG and "unknown run 'nope'" in missing.output
