"""Simulators, interpreters, rewards, baselines, metrics, configs and checkpoints (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from qrl.data import planted_daily, planted_intraday
from qrl.execution.baselines import baselines as exec_baselines
from qrl.execution.baselines import evaluate
from qrl.execution.env import ExecutionEnv
from qrl.execution.reward import PriceAdvantageReward
from qrl.execution.simulator import ExecutionSimulator, Order
from qrl.portfolio.env import PortfolioEnv, baselines, weights_from_action
from qrl.portfolio.metrics import performance

from qcore.config import parse_yaml
from qcore.errors import ConfigError, QcoreError

DATA = "data: {planted: {}, splits: {train: 8, valid: 2, test: 2}}\n"


@pytest.fixture(scope="module")
def intraday():
    return planted_intraday(days=4, instruments=2, seed=1)


def test_simulator_lots_caps_and_limits(intraday) -> None:
    sim = ExecutionSimulator(intraday, Order(0, 0, -1, 10_050), n_steps=4, volume_cap=0.1)
    fill = sim.execute(1_234)
    assert fill.filled == 1_200 and sim.executed == 1_200  # rounded down to whole lots
    cap_sim = ExecutionSimulator(intraday, Order(0, 0, -1, 1e9), n_steps=4, volume_cap=0.01)
    capped = cap_sim.execute(1e9)
    assert 0 < capped.filled <= 0.01 * intraday.volume[0, 0, :60].sum()
    for _ in range(3):
        sim.execute(sim.remaining)
    assert sim.executed == 10_050  # the odd-lot remainder of a sell goes out at the end
    assert sim.metrics()["fill_rate"] == 1.0
    limit = intraday.limit.copy()
    prev = intraday.price[:, :, 0] / 1.1  # every bar at or above limit-up: nothing may be bought
    blocked = type(intraday)(intraday.days, intraday.instruments, intraday.price, intraday.volume, prev, limit)
    buy = ExecutionSimulator(blocked, Order(0, 0, 1, 1_000), n_steps=4)
    assert buy.execute(1_000).filled == 0
    sell = ExecutionSimulator(blocked, Order(0, 0, -1, 1_000), n_steps=4)
    assert sell.execute(1_000).filled == 1_000


def test_reward_sums_to_price_advantage(intraday) -> None:
    env = ExecutionEnv(intraday, amount=20_000, n_steps=4, reward=PriceAdvantageReward(penalty=0.0, scale=1.0))
    env.reset(seed=3)
    total, done = 0.0, False
    while not done:
        _, r, done, _, info = env.step(2)
        total += r
    assert total == pytest.approx(info["pa_bps"] * info["fill_rate"], rel=1e-9)
    assert env.observation_space.contains(env.state(env.sim))


def test_twap_vwap_baselines(intraday) -> None:
    env = ExecutionEnv(intraday, amount=20_000, n_steps=4)
    res = exec_baselines(env)
    assert res["twap"]["pa_bps"] == pytest.approx(0.0, abs=1e-6)  # TWAP is its own benchmark
    assert res["twap"]["fill_rate"] == res["vwap"]["fill_rate"] == 1.0
    assert res["twap"]["orders"] == 8
    late = evaluate(env, lambda obs: 0)  # wait, then sell everything at the last step: drift pays ~ +45 bps
    assert late["pa_bps"] > 20


def test_portfolio_rules_and_baselines() -> None:
    data = planted_daily(days=40, seed=2)
    env = PortfolioEnv(data, initial_cash=100_000, sequential=True)
    env.reset()
    env.rebalance(np.array([0.5, 0.5, 0.0, 0.0]))
    assert np.all(env.shares % 100 == 0) and env.shares[0] > 0 and env.cash >= 0
    assert env.total_cost > 0
    held = env.shares.copy()
    env.rebalance(np.array([0.0, 0.0, 0.0, 1.0]))  # T+1: today's purchases cannot be sold today
    assert np.array_equal(env.shares, held)
    w = weights_from_action(np.array([1, -1, -1, -1]), 3)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.99
    res = baselines(env)
    assert set(res) == {"buy_and_hold", "equal_weight", "random", "cash"}  # min variance needs the train split
    assert res["cash"]["cumulative_return"] == 0.0
    assert res["buy_and_hold"]["cumulative_return"] != res["equal_weight"]["cumulative_return"]
    stop = PortfolioEnv(data, turbulence_threshold=-1.0, sequential=True)  # always turbulent: stays in cash
    stop.reset()
    stop.advance(np.array([0.5, 0.5, 0.0, 0.0]))
    assert stop.shares.sum() == 0 and stop.value() == pytest.approx(stop.initial_cash)


def test_performance_metrics() -> None:
    m = performance(np.array([100.0, 110.0, 99.0, 121.0]))
    assert m["cumulative_return"] == pytest.approx(0.21)
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["sharpe"] > 0 and m["volatility"] > 0
    with pytest.raises(ValueError):
        performance(np.array([1.0]))


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("env: chess\ndata: {planted: {}}\n", "env", "env must be one of"),
        ("env: execution\n", "data", "needs exactly one of 'planted'"),
        (f"env: execution\n{DATA}algorithm: {{name: a3c}}\n", "algorithm.name", "unknown rl_algorithm"),
        (f"env: execution\n{DATA}algorithm: {{name: sacc}}\n", "algorithm.name", "did you mean 'sac'"),
        (f"env: execution\n{DATA}trainer: {{epochs: -1}}\n", "trainer.epochs", "invalid value"),
        (f"env: execution\n{DATA}trainer: {{epoch: 1}}\n", "trainer.epoch", "unknown key"),
    ],
)
def test_malformed_configs(text: str, path: str, message: str, kernel) -> None:
    from qrl.config import validate

    with pytest.raises(ConfigError, match=message) as info:
        validate(parse_yaml(text, source="bad.yaml"), kernel)
    assert info.value.path == path


def test_bad_env_kwargs_are_config_errors(kernel) -> None:
    from qrl.config import validate
    from qrl.workflow import env_factory, load_data

    text = ("env: execution\ndata: {planted: {days: 4}, splits: {train: 2, valid: 1, test: 1}}\n"
            "env_kwargs: {side: hold}\n")
    cfg = validate(parse_yaml(text), kernel)
    with pytest.raises(ConfigError, match="side must be"):
        env_factory(cfg, load_data(cfg, None).parts, kernel)
    bad_reward = text.replace("{side: hold}", "{reward: {name: pa_penalti}}")
    with pytest.raises(ConfigError, match="unknown rl_reward 'pa_penalti'; did you mean 'pa_penalty'") as info:
        env_factory(validate(parse_yaml(bad_reward), kernel), load_data(cfg, None).parts, kernel)
    assert info.value.path == "env_kwargs"


def test_checkpoint_from_another_env_is_rejected(tmp_path, intraday, kernel) -> None:
    from qrl import checkpoint
    from qrl.trainer import TrainSpec, build_algorithm

    exec_env = ExecutionEnv(intraday)
    alg = build_algorithm(TrainSpec(algorithm="ppo", hidden_sizes=(8,)), exec_env, kernel)
    path = checkpoint.save(tmp_path / "p.pt", alg, {**checkpoint.env_spec("execution", exec_env), "algorithm": "ppo"})
    port = PortfolioEnv(planted_daily(days=30))
    with pytest.raises(QcoreError, match=r"trained on env 'execution'.*cannot be loaded into env 'portfolio'"):
        checkpoint.check_compatible(checkpoint.read_meta(path), checkpoint.env_spec("portfolio", port), "ppo", path)
    with pytest.raises(QcoreError, match="holds a 'ppo' policy"):
        checkpoint.check_compatible(checkpoint.read_meta(path), checkpoint.env_spec("execution", exec_env), "dqn",
                                    path)
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(QcoreError, match="no sidecar"):
        checkpoint.read_meta(tmp_path / "x.pt")
    bigger = build_algorithm(TrainSpec(algorithm="ppo", hidden_sizes=(16,)), exec_env, kernel)
    with pytest.raises(QcoreError, match="does not fit"):
        checkpoint.load(path, bigger)


def test_rl_kinds_are_kernel_registries(kernel) -> None:
    kinds = {spec.name: spec for spec in kernel.kinds()}
    for name in ("rl_env", "rl_state_interpreter", "rl_action_interpreter", "rl_reward", "rl_baseline",
                 "rl_algorithm"):
        assert kinds[name].plugin == "qrl", name
    algorithms = kernel.registry("rl_algorithms")
    assert {"dqn", "ppo", "sac", "td3"} <= set(algorithms.names())
    assert {algorithms.entry(n).plugin for n in ("dqn", "ppo", "sac", "td3")} == {"qrl"}
    assert kernel.registry("rl_env").names() == ["execution", "portfolio", "stock_trading"]
    action = kernel.create("rl_action_interpreter", "categorical", n=3)
    assert type(action).__name__ == "CategoricalAction"


def test_plugin_module_imports_no_heavy_package() -> None:
    import subprocess
    import sys

    code = ("import sys, qrl.plugin\n"
            "from qcore.kernel import Kernel\n"
            "k = Kernel.load(use_env=False, selection=None)\n"
            "k.registry('rl_algorithm')\n"
            "print(sorted(m for m in ('torch', 'tianshou', 'gymnasium') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_algorithm_of_the_wrong_type_names_its_plugin(kernel) -> None:
    from qcore.errors import ComponentContractError

    def not_an_algorithm(**kwargs):
        return object()

    kernel.registry("rl_algorithm").add("fake", not_an_algorithm, plugin="someone")
    with pytest.raises(ComponentContractError, match=r"rl_algorithm 'fake' from plugin 'someone'.*Algorithm"):
        kernel.create("rl_algorithm", "fake", obs_space=None, act_space=None)
