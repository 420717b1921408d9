"""A third-party RL algorithm (``tests/plugins/qrl_toy_algo``, its own distribution) joins qrl's ``rl_algorithm``
kind through the kernel: listed, validated from a YAML, trained and evaluated, with no qcore or qrl change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from qcore.cli import cli
from qcore.config import parse_yaml
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((EXAMPLES / "rl_execution.yaml").read_text())
    cfg["algorithm"] = {"name": "toy_reinforce", "kwargs": {"lr": 0.003}, "hidden_sizes": [16]}
    cfg["trainer"] = {"epochs": 1, "epoch_steps": 80, "collect_steps": 40, "n_envs": 2, "valid_episodes": 2, "seed": 0}
    cfg["output"] = {"dir": str(tmp_path / "out"), "recorder_uri": str(tmp_path / "runs"), "experiment": "toy"}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_listed_with_its_owner() -> None:
    res = CliRunner().invoke(cli, ["list", "rl_algorithm", "--json"])
    assert res.exit_code == 0, res.output
    rows = {row["name"]: row for row in json.loads(res.output)}
    assert rows["toy_reinforce"]["plugin"] == "qrl_toy_algo"
    assert rows["ppo"]["plugin"] == "qrl"
    res = CliRunner().invoke(cli, ["list"])
    line = next(ln for ln in res.output.splitlines() if ln.startswith("rl_algorithm "))
    assert line.split()[1] == str(len(rows)) and "[qrl]" in line


def test_validates_only_where_it_is_installed(tmp_path: Path) -> None:
    from qrl.config import load, validate

    path = _config(tmp_path)
    assert load(path, Kernel.load(use_env=False)).spec.algorithm == "toy_reinforce"
    without = Kernel.load(PluginSelection(disable=("qrl_toy_algo",)), use_env=False)
    with pytest.raises(ConfigError, match="unknown rl_algorithm 'toy_reinforce'") as info:
        validate(parse_yaml(path.read_text(), source=str(path)), without)
    line = 1 + path.read_text().splitlines().index("  name: toy_reinforce")
    assert info.value.path == "algorithm.name" and info.value.line == line


def test_trains_and_evaluates_from_yaml(tmp_path: Path) -> None:
    path = _config(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["rl", "train", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert set(out["metrics"]) == {"twap", "vwap", "policy"}
    assert out["env_steps"] >= 80
    assert 0.0 < out["metrics"]["policy"]["fill_rate"] <= 1.0
    last = Path(out["checkpoints"]["last"])
    assert json.loads(last.with_suffix(".json").read_text())["algorithm"] == "toy_reinforce"
    res = runner.invoke(cli, ["rl", "eval", str(path), "--checkpoint", str(last), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "pa_bps" in json.loads(res.output[res.output.index("{"):])["metrics"]["policy"]
    res = runner.invoke(cli, ["-p", "no:qrl_toy_algo", "rl", "train", str(path)])
    assert res.exit_code == 3 and "unknown rl_algorithm 'toy_reinforce'" in res.output
