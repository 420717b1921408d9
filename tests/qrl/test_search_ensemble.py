"""``qcore rl search`` (seeded random / grid over config overrides, ranked on validation) and ``qcore rl ensemble``
(FinRL's rolling ensemble picking the agent per window by validation Sharpe) — issue #20."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from qrl.ensemble import windows
from qrl.search import parse_space, trials

from qcore.cli import cli
from qcore.errors import ConfigError

BASE = {"env": "portfolio", "data": {"planted": {"days": 100, "seed": 0}, "splits": {"train": 60, "valid": 20,
                                                                                      "test": 20}},
        "algorithm": {"name": "a2c", "hidden_sizes": [8], "kwargs": {"lr": 0.001}},
        "trainer": {"epochs": 1, "epoch_steps": 20, "collect_steps": 10, "n_envs": 1, "valid_episodes": 1,
                    "seed": 0}}


def test_space_and_trials() -> None:
    space = parse_space(["algorithm.kwargs.lr=1e-3,3e-4", "trainer.seed=[0, 1, 2]"])
    assert space == {"algorithm.kwargs.lr": [0.001, 0.0003], "trainer.seed": [0, 1, 2]}
    grid = trials(space)
    assert len(grid) == 6 and grid[0] == {"algorithm.kwargs.lr": 0.001, "trainer.seed": 0}
    drawn = trials(space, random=3, seed=5)
    assert len(drawn) == 3 and drawn == trials(space, random=3, seed=5) and all(d in grid for d in drawn)
    assert len({json.dumps(d) for d in drawn}) == 3
    assert trials(space, random=10) == grid
    for bad in (["lr"], ["a=1", "a=2"], []):
        with pytest.raises(ConfigError):
            parse_space(bad)


def test_windows_roll_without_overlap() -> None:
    w = windows(100, 50, 15, 15)
    assert [(t.stop, v.start, v.stop, x.start, x.stop) for t, v, x in w] == [(50, 50, 65, 65, 80), (65, 65, 80, 80, 95),
                                                                           (80, 80, 95, 95, 100)]
    with pytest.raises(ConfigError, match="hold no window"):
        windows(60, 50, 15, 15)


@pytest.mark.slow  # trains two trials
def test_search_ranks_on_validation_and_writes_search_json(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**BASE, "output": {"dir": str(tmp_path / "s")}}))
    res = CliRunner().invoke(cli, ["rl", "search", str(path), "--param", "algorithm.kwargs.lr=0.01,0.0001",
                                   "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert [t["params"] for t in out["trials"]] == [{"algorithm.kwargs.lr": 0.01}, {"algorithm.kwargs.lr": 0.0001}]
    assert out["best"]["trial"] == int(np.argmax([t["valid"] for t in out["trials"]]))
    assert "test" not in out["trials"][0] and "policy" in out["best"]["test"]
    meta = json.loads((tmp_path / "s" / "trial1" / "best.json").read_text())
    assert meta["algorithm_kwargs"] == {"lr": 0.0001}
    assert json.loads((tmp_path / "s" / "search.json").read_text())["best"]["trial"] == out["best"]["trial"]


@pytest.mark.slow  # trains two agents in two windows
def test_rolling_ensemble_picks_by_validation_sharpe(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**BASE, "output": {"dir": str(tmp_path / "e")}}))
    res = CliRunner().invoke(cli, ["rl", "ensemble", str(path), "--agents", "a2c,ppo", "--train-days", "60",
                                   "--valid-days", "15", "--trade-days", "12"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "e" / "ensemble.json").read_text())
    assert len(out["windows"]) == 2 and "compounded over the trade windows" in res.output
    compounded = 1.0
    for w in out["windows"]:
        assert w["chosen"] == max(w["valid_sharpe"], key=w["valid_sharpe"].get)
        assert w["trade"]["ensemble"] == w["trade"][w["chosen"]]
        compounded *= 1 + w["trade"]["ensemble"]
    assert out["cumulative_return"]["ensemble"] == pytest.approx(compounded - 1)
    assert {"buy_and_hold", "max_sharpe", "cash"} <= set(out["cumulative_return"])
    w0, w1 = (w["dates"] for w in out["windows"])
    assert w0["train"][0] == w1["train"][0] and w1["train"][1] > w0["train"][1]      # expanding train windows
    assert w1["train"][1] < w1["valid"][0] < w1["test"][0]
    bad = CliRunner().invoke(cli, ["rl", "ensemble", str(path), "--agents", "nope", "--train-days", "60",
                                   "--valid-days", "15", "--trade-days", "12"])
    assert bad.exit_code not in (0, 70) and "nope" in bad.output
