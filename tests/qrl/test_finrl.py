"""FinRL-Meta parity (issue #20): A2C and DDPG, several seeds, the share-count stock-trading environment under the
market's rules, gymnasium registration, turbulence with a training-span threshold, and the daily baselines."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env
from qrl.baselines import daily_baselines, min_variance_weights
from qrl.config import validate
from qrl.data import planted_daily, planted_intraday
from qrl.portfolio.env import PortfolioEnv
from qrl.risk import TurbulenceSpec, turbulence
from qrl.seeds import format_summary, summarise
from qrl.stock.env import StockTradingEnv
from qrl.trainer import TrainSpec, build_algorithm, policy_fn, train
from qrl.workflow import load_data

from qcore.config import parse_yaml
from qcore.errors import ConfigError
from qcore.types import CostSchedule, StampDuty

STOCK = """\
env: stock_trading
data:
  planted: {days: 120, seed: 0}
  splits: {train: 70, valid: 25, test: 25}
  turbulence: {window: 20, quantile: 0.9}
env_kwargs: {hmax: 2000, episode_days: 20}
algorithm: {name: a2c, hidden_sizes: [8]}
trainer: {epochs: 1, epoch_steps: 60, collect_steps: 30, n_envs: 1, valid_episodes: 1, seed: 0}
"""


def _stock(days: int = 30, **kwargs) -> StockTradingEnv:
    data = planted_daily(days=days, seed=1)
    return StockTradingEnv(data, sequential=True, **kwargs)


# -- agents ----------------------------------------------------------------------------------------------------------

def test_a2c_and_ddpg_come_from_the_registry(kernel) -> None:
    from tianshou.algorithm import A2C, DDPG

    env = _stock()
    discrete = gym.spaces.Discrete(4)
    assert isinstance(build_algorithm(TrainSpec("a2c", hidden_sizes=(8,)), env, kernel), A2C)
    assert isinstance(kernel.create("rl_algorithm", "a2c", obs_space=env.observation_space, act_space=discrete,
                                    hidden_sizes=(8,)), A2C)
    assert isinstance(build_algorithm(TrainSpec("ddpg", hidden_sizes=(8,)), env, kernel), DDPG)
    with pytest.raises(ValueError, match="ddpg needs a continuous"):
        kernel.create("rl_algorithm", "ddpg", obs_space=env.observation_space, act_space=discrete, hidden_sizes=(8,))


@pytest.mark.parametrize("algorithm", ["a2c", "ddpg"])
def test_a2c_and_ddpg_train_and_checkpoint(algorithm: str, kernel, tmp_path: Path) -> None:
    data = planted_daily(days=60, seed=0)
    data = data.with_scaler(data.take(slice(0, 40)).fit_scaler())
    parts = {"train": data.take(slice(0, 40)), "valid": data.take(slice(40, 60))}

    def make(split: str) -> StockTradingEnv:
        return StockTradingEnv(parts[split], episode_days=None if split == "valid" else 10, sequential=split != "train")

    spec = TrainSpec(algorithm=algorithm, hidden_sizes=(8,), epochs=1, epoch_steps=60, collect_steps=20, n_envs=1,
                     valid_episodes=1, warmup_steps=20, batch_size=16, seed=3)
    res = train(make, "stock_trading", spec, out_dir=tmp_path, kernel=kernel)
    assert res.env_steps >= 60
    meta = json.loads((tmp_path / "last.json").read_text())
    assert meta["algorithm"] == algorithm and meta["action"] == {"type": "box", "shape": [3]}
    action = np.asarray(policy_fn(res.algorithm)(make("valid").reset()[0]))
    assert action.shape == (3,) and np.all(np.abs(action) <= 1.0 + 1e-6)


def test_seed_summary_counts_wins_per_baseline() -> None:
    runs = [
        {"policy": {"cumulative_return": 0.10, "sharpe": 1.0}, "cash": {"cumulative_return": 0.0, "sharpe": 0.0},
         "equal_weight": {"cumulative_return": 0.05, "sharpe": 2.0}},
        {"policy": {"cumulative_return": 0.02, "sharpe": 3.0}, "cash": {"cumulative_return": 0.0, "sharpe": 0.0},
         "equal_weight": {"cumulative_return": 0.05, "sharpe": 2.0}},
    ]
    s = summarise("stock_trading", runs)
    assert s["metric"] == "cumulative_return" and s["seeds"] == 2
    assert s["mean"]["policy"]["cumulative_return"] == pytest.approx(0.06)
    assert s["std"]["policy"]["cumulative_return"] == pytest.approx(0.04)
    assert s["beats"] == {"cash": 2, "equal_weight": 1}
    assert summarise("execution", [{"policy": {"pa_bps": 3.0}, "twap": {"pa_bps": 4.0}}])["beats"] == {"twap": 0}
    lines = format_summary(s)
    assert "0.06 ± 0.04" in lines[1] and "1/2 seeds" in lines[-1]


@pytest.mark.slow
def test_cli_seeds_trains_each_seed_and_summarises(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qcore.cli import cli

    cfg = yaml.safe_load(STOCK)
    cfg["output"] = {"dir": str(tmp_path / "out")}
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(cli, ["rl", "train", str(path), "--seeds", "2", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert [r["seed"] for r in out["runs"]] == [0, 1]
    assert (tmp_path / "out" / "seed0" / "best.pt").exists() and (tmp_path / "out" / "seed1" / "best.pt").exists()
    summary = out["summary"]
    assert set(summary["beats"]) == {"buy_and_hold", "equal_weight", "min_variance", "max_sharpe", "random", "cash"}
    values = [r["metrics"]["policy"]["cumulative_return"] for r in out["runs"]]
    assert summary["mean"]["policy"]["cumulative_return"] == pytest.approx(np.mean(values))
    assert summary["beats"]["cash"] == sum(v > 0 for v in values)
    sidecar = json.loads((tmp_path / "out" / "seed1" / "best.json").read_text())
    assert sidecar["turbulence"]["window"] == 20 and sidecar["turbulence"]["threshold"] > 0
    res = CliRunner().invoke(cli, ["rl", "train", str(path), "--seeds", "0"])
    assert res.exit_code != 0 and "--seeds" in res.output


# -- the stock-trading environment -----------------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ["qrl/StockTrading-v0", "qrl/Portfolio-v0", "qrl/Execution-v0"])
def test_registered_with_gymnasium_and_pass_its_checker(env_id: str) -> None:
    data = planted_intraday(days=3, instruments=2, bars=32) if "Execution" in env_id else planted_daily(days=40)
    kwargs = {"amount": 20_000, "n_steps": 4} if "Execution" in env_id else {}
    env = gym.make(f"qrl.registration:{env_id}", data=data, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_state_is_cash_prices_holdings_indicators() -> None:
    env = _stock(normalize_obs=False)
    obs, _ = env.reset()
    n, f = 3, 2
    assert obs.shape == (1 + n + n + n * f + n,)
    assert obs[0] == pytest.approx(1_000_000.0)
    np.testing.assert_allclose(obs[1:4], env.data.close[0], rtol=1e-6)
    assert np.all(obs[4:7] == 0)
    env.step(np.array([1.0, 0.0, 0.0]))
    obs = env._obs()
    assert obs[4] == env.shares[0] > 0 and obs[0] == pytest.approx(env.cash)


def test_share_actions_obey_hmax_lots_and_costs() -> None:
    env = _stock(hmax=1050, buy_cost_pct=0.001, sell_cost_pct=0.002)
    env.reset()
    env.step(np.array([1.0, 0.37, -1.0]))  # 1050 -> 1000 shares, 388 -> 300, nothing to sell
    assert env.shares.tolist() == [1000.0, 300.0, 0.0]
    row = env.t  # next_close: traded at the next row's close
    spent = 1000 * env.data.close[row, 0] + 300 * env.data.close[row, 1]
    assert env.cash == pytest.approx(1_000_000 - spent * 1.001)
    env.step(np.array([-0.5, 0.0, 0.0]))
    assert env.shares[0] == 500.0
    assert env.total_cost == pytest.approx(spent * 0.001 + 500 * env.data.close[env.t, 0] * 0.002)


def test_t_plus_one_price_limits_and_stamp_duty_from_the_market_rules() -> None:
    duty = CostSchedule(commission=0.0, stamp_duty=(StampDuty(since="2000-01-01", rate=0.001),))
    env = _stock(costs=duty, timing="same_close")
    env.reset()
    env.step(np.array([1.0, 0.0, 0.0]))
    bought = env.shares[0]
    env.trade(np.array([-bought, 0.0, 0.0]), env.t - 1, env.t - 1)  # same row as the purchase: T+1 locks it
    assert env.shares[0] == bought
    before = env.cash
    env.step(np.array([-1.0, 0.0, 0.0]))  # next row: sellable, stamp duty charged
    proceeds = 1000 * env.data.close[env.t - 1, 0]
    assert env.cash - before == pytest.approx(proceeds * (1 - 0.001))
    limited = _stock(timing="same_close")
    limited.reset()
    limited.data.limit[0, 0] = 0.0  # the close sits at the limit: limit-up, no buying
    limited.data.prev_close[0, 0] = limited.data.close[0, 0]
    limited.step(np.array([1.0, 1.0, 0.0]))
    assert limited.shares[0] == 0 and limited.shares[1] > 0


def test_reward_is_scaled_asset_change_and_turbulence_sells_everything() -> None:
    env = _stock(reward_scaling=1e-3)
    env.reset()
    before = env.value()
    _, reward, _, _, _ = env.step(np.array([1.0, 1.0, 1.0]))
    assert reward == pytest.approx((env.value() - before) * 1e-3)
    held = env.shares.copy()
    env.turbulence_threshold = -1.0  # always turbulent: sells all it may, buys nothing
    env.step(np.array([1.0, 1.0, 1.0]))
    assert held.sum() > 0 and env.shares.sum() == 0


def test_bad_stock_kwargs_are_config_errors(kernel) -> None:
    from qrl.workflow import env_factory

    cfg = validate(parse_yaml(STOCK.replace("hmax: 2000", "hmax: 10"), source="rl.yaml"), kernel)
    data = load_data(cfg, kernel)
    with pytest.raises(ConfigError, match="hmax must be"):
        env_factory(cfg, {"train": data["train"]}, kernel)


# -- turbulence ------------------------------------------------------------------------------------------------------

def test_turbulence_is_the_mahalanobis_distance_against_the_trailing_window() -> None:
    rng = np.random.default_rng(0)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, (80, 3)), axis=0))
    turb = turbulence(close, window=30)
    rets = close[1:] / close[:-1] - 1  # rets[k] is row k + 1's return
    t = 60
    hist = rets[t - 31 : t - 1]
    d = rets[t - 1] - hist.mean(axis=0)
    assert turb[t] == pytest.approx(d @ np.linalg.pinv(np.cov(hist, rowvar=False)) @ d)
    assert np.all(turb[:31] == 0) and np.all(turb[31:] > 0)
    changed = close.copy()
    changed[t + 1 :] *= rng.lognormal(0, 0.2, changed[t + 1 :].shape)
    assert np.array_equal(turbulence(changed, window=30)[: t + 1], turb[: t + 1])  # causal
    assert not turbulence(close).any()  # FinRL's 252-day window: 80 rows never have one


def test_threshold_is_a_train_quantile_recorded_with_the_checkpoint(kernel) -> None:
    cfg = validate(parse_yaml(STOCK, source="rl.yaml"), kernel)
    data = load_data(cfg, kernel)
    spec = data.turbulence
    train_turb = data["train"].turbulence
    assert spec.threshold == pytest.approx(np.quantile(train_turb[21:], 0.9))
    assert data["test"].turbulence is not None and data["test"].turbulence[0] > 0  # history kept across the split
    assert TurbulenceSpec.from_dict(spec.to_dict()) == spec
    bad = STOCK.replace("{window: 20, quantile: 0.9}", "{window: 20, quantile: 1.5}")
    with pytest.raises(ConfigError, match="quantile"):
        validate(parse_yaml(bad, source="rl.yaml"), kernel)
    with pytest.raises(ConfigError, match="train split has no day"):
        load_data(validate(parse_yaml(STOCK.replace("window: 20", "window: 100"), source="rl.yaml"), kernel), kernel)


def test_environments_observe_turbulence_and_stop_on_the_decision_row() -> None:
    data = planted_daily(days=60, seed=2).with_turbulence(TurbulenceSpec(window=20))
    for env in (PortfolioEnv(data, sequential=True), StockTradingEnv(data, sequential=True)):
        obs, _ = env.reset()
        assert obs.shape[0] == env.observation_space.shape[0]
        env.t = 40
        assert env._obs()[-1] == pytest.approx(np.log1p(data.turbulence[40]))
    env = PortfolioEnv(data, sequential=True, turbulence_threshold=float(data.turbulence[40]) - 1e-9)
    env.reset()
    env.t = 40  # decided on row 40 (turbulent), executed on row 41
    env.advance(np.r_[np.full(3, 1 / 3), 0.0])
    assert env.shares.sum() == 0


# -- baselines -------------------------------------------------------------------------------------------------------

def test_min_variance_weights() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(0, 1, (20_000, 2)) * np.array([1.0, 2.0])
    np.testing.assert_allclose(min_variance_weights(r), [0.8, 0.2], atol=0.01)
    r3 = np.c_[r, r[:, 0] * 3]  # a third, riskier copy of the first gets no weight
    w = min_variance_weights(r3)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0) and w[2] < 0.01


def test_daily_baselines_estimate_on_train_only() -> None:
    data = planted_daily(days=80, seed=0)
    train_part, test_part = data.take(slice(0, 40)), data.take(slice(40, 80))
    env = StockTradingEnv(test_part, sequential=True)
    res = daily_baselines(env, train=train_part)
    assert set(res) == {"buy_and_hold", "equal_weight", "min_variance", "max_sharpe", "random", "cash"}
    assert res["cash"]["cumulative_return"] == 0.0
    other = daily_baselines(env, train=planted_daily(days=80, seed=9).take(slice(0, 40)))
    assert other["min_variance"] != res["min_variance"]  # the estimate comes from the train rows
    assert other["equal_weight"] == res["equal_weight"]
    assert daily_baselines(env, train=train_part, seed=1)["random"] != res["random"]
