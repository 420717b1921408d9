"""Small CPU training runs that prove learning, reproducibility, resume and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from qrl.data import planted_daily, planted_intraday
from qrl.envs import make_execution_env, make_portfolio_env
from qrl.execution.baselines import evaluate
from qrl.portfolio.env import baselines, policy_metrics
from qrl.trainer import TrainSpec, policy_fn, train

from qcore.kernel import Kernel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def _exec_factory(kernel: Kernel):
    """``make(split)`` over planted minute bars: train days 0-7, valid 8-9, test 10-11."""
    full = planted_intraday(days=12, instruments=3, seed=0)
    parts = {"train": full.take(slice(0, 8)), "valid": full.take(slice(8, 10)), "test": full.take(slice(10, 12))}
    return lambda split: make_execution_env(parts[split], kernel=kernel, sequential=split != "train")


def _portfolio_factory():
    """``make(split)`` over planted daily bars: train rows 0-79, valid 80-99, test 100-139, train-split scaler."""
    data = planted_daily(days=140, seed=0)
    data = data.with_scaler(data.take(slice(0, 80)).fit_scaler())
    parts = {"train": data.take(slice(0, 80)), "valid": data.take(slice(80, 100)), "test": data.take(slice(100, None))}
    return lambda split: make_portfolio_env(parts[split], episode_days=20 if split == "train" else None,
                                            sequential=split != "train")


@pytest.mark.parametrize(("algorithm", "collect", "margin"), [("ppo", 200, 15.0), ("dqn", 100, 5.0)])
def test_execution_policy_beats_twap(algorithm: str, collect: int, margin: float, tmp_path, kernel) -> None:
    make = _exec_factory(kernel)
    spec = TrainSpec(algorithm=algorithm, epochs=3, epoch_steps=400, collect_steps=collect, valid_episodes=6,
                     warmup_steps=200, seed=0)
    res = train(make, "execution", spec, out_dir=tmp_path, kernel=kernel)
    env = make("test")
    twap = evaluate(env, "twap")
    got = evaluate(env, policy_fn(res.algorithm))
    assert got["fill_rate"] == 1.0
    assert got["pa_bps"] - twap["pa_bps"] > margin, (got, twap)
    assert (tmp_path / "last.pt").exists() and json.loads((tmp_path / "last.json").read_text())["epoch"] == 3


@pytest.mark.parametrize(("algorithm", "kwargs"), [("sac", {}), ("ppo", {"lr": 1e-3})])
def test_portfolio_policy_beats_baselines(algorithm: str, kwargs: dict, kernel) -> None:
    make = _portfolio_factory()
    spec = TrainSpec(algorithm=algorithm, algorithm_kwargs=kwargs, epochs=3, epoch_steps=400,
                     collect_steps=100 if algorithm == "sac" else 200, valid_episodes=1, warmup_steps=200, seed=0)
    res = train(make, "portfolio", spec, kernel=kernel)
    env = make("test")
    base = baselines(env)
    got = policy_metrics(env, policy_fn(res.algorithm))
    best_base = max(b["cumulative_return"] for b in base.values())
    assert got["cumulative_return"] > best_base + 0.01, (got, base)


def test_seeded_runs_reproduce_and_resume(tmp_path, kernel) -> None:
    make = _exec_factory(kernel)
    spec = TrainSpec(algorithm="ppo", epochs=1, epoch_steps=100, collect_steps=100, valid_episodes=2,
                     hidden_sizes=(16,), seed=7)
    a = train(make, "execution", spec, out_dir=tmp_path / "a", kernel=kernel)
    b = train(make, "execution", spec, out_dir=tmp_path / "b", kernel=kernel)
    for (ka, va), (kb, vb) in zip(a.algorithm.state_dict().items(), b.algorithm.state_dict().items(), strict=True):
        assert ka == kb
        if hasattr(va, "shape"):
            assert np.array_equal(va.numpy(), vb.numpy())
    spec.epochs = 2
    c = train(make, "execution", spec, out_dir=tmp_path / "c", resume=tmp_path / "a" / "last.pt", kernel=kernel)
    assert c.epochs == 2  # continued from epoch 1
    assert json.loads((tmp_path / "c" / "last.json").read_text())["env_step"] > 100


def test_cli_train_and_eval(tmp_path) -> None:
    from click.testing import CliRunner

    from qcore.cli import cli

    cfg = yaml.safe_load((EXAMPLES / "rl_execution.yaml").read_text())
    cfg["trainer"] = {"epochs": 1, "epoch_steps": 100, "collect_steps": 100, "valid_episodes": 2, "seed": 0}
    cfg["algorithm"]["hidden_sizes"] = [16]
    cfg["output"] = {"dir": str(tmp_path / "out"), "recorder_uri": str(tmp_path / "runs"), "experiment": "t"}
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(cli, ["rl", "train", str(path), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert set(out["metrics"]) == {"twap", "vwap", "policy"}
    ckpt = out["checkpoints"]["last"]
    res = runner.invoke(cli, ["rl", "eval", str(path), "--checkpoint", ckpt, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "pa_bps" in json.loads(res.output[res.output.index("{"):])["metrics"]["policy"]
    port = yaml.safe_load((EXAMPLES / "rl_portfolio.yaml").read_text())
    port["output"] = cfg["output"]
    other = tmp_path / "port.yaml"
    other.write_text(yaml.safe_dump(port))
    res = runner.invoke(cli, ["rl", "eval", str(other), "--checkpoint", ckpt])
    assert res.exit_code != 0 and "trained on env 'execution'" in res.output
