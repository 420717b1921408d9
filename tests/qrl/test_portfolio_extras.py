"""The portfolio environment's pluggable rewards, lookback and covariance observations, the VIX-like market-volatility
series, and the maximum-Sharpe baseline (issue #20)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import attrs
import numpy as np
import pytest
import yaml
from qrl.baselines import daily_baselines, max_sharpe_numpy, max_sharpe_weights
from qrl.config import validate
from qrl.data import planted_daily
from qrl.envs import make_portfolio_env
from qrl.meta.processor import market_volatility
from qrl.portfolio.env import PortfolioEnv
from qrl.portfolio.rewards import DifferentialSharpe, DrawdownPenalty, StepOutcome
from qrl.trade.trader import trade
from qrl.workflow import load_data, train

from qcore.config import parse_yaml
from qcore.errors import ConfigError
from qcore.kernel import Kernel


@pytest.fixture(scope="module")
def kern() -> Kernel:
    return Kernel.load(use_env=False)


# -- rewards ---------------------------------------------------------------------------------------------------------

def test_rewards_come_from_the_registry(kern: Kernel) -> None:
    names = set(kern.registry("rl_portfolio_reward").names())
    assert {"log_growth", "differential_sharpe", "drawdown_penalty", "turnover_penalty"} <= names
    step = StepOutcome(100.0, 101.0, traded=50.0)
    assert kern.create("rl_portfolio_reward", "log_growth")(step) == pytest.approx(math.log(1.01))
    turnover = kern.create("rl_portfolio_reward", "turnover_penalty", penalty=0.1)
    assert turnover(step) == pytest.approx(math.log(1.01) - 0.1 * 0.5)


def test_differential_sharpe_follows_moody_and_saffell() -> None:
    reward, eta = DifferentialSharpe(eta=0.1), 0.1
    reward.reset(1.0)
    a = b = 0.0
    value = 100.0
    for r in (0.01, -0.02, 0.015, 0.003, -0.001):
        got = reward(StepOutcome(value, value * (1 + r)))
        var = b - a * a
        want = (b * (r - a) - 0.5 * a * (r * r - b)) / var ** 1.5 if var > 1e-12 else 0.0
        assert got == pytest.approx(want)
        a, b = a + eta * (r - a), b + eta * (r * r - b)
        value *= 1 + r
    with pytest.raises(ValueError, match="eta"):
        DifferentialSharpe(eta=1.5)


def test_drawdown_penalty_charges_only_new_drawdown() -> None:
    reward = DrawdownPenalty(penalty=2.0)
    reward.reset(100.0)
    assert reward(StepOutcome(100.0, 110.0)) == pytest.approx(math.log(1.1))
    assert reward(StepOutcome(110.0, 99.0)) == pytest.approx(math.log(0.9) - 2.0 * 0.1)
    assert reward(StepOutcome(99.0, 104.5)) == pytest.approx(math.log(104.5 / 99.0))   # recovering: no penalty


def test_env_rewards_its_steps_with_the_named_reward(kern: Kernel) -> None:
    data = planted_daily(days=30, seed=1)
    env = make_portfolio_env(data, kernel=kern, reward={"name": "turnover_penalty", "kwargs": {"penalty": 0.5}},
                             sequential=True, reward_scale=10.0)
    env.reset()
    action = np.array([1.0, -1.0, -1.0, -1.0], dtype=np.float32)
    _, r, *_ = env.step(action)
    step = env.last_step
    assert step.traded > 0 and r == pytest.approx(10.0 * (step.log_growth - 0.5 * step.traded / step.before))
    env.step(action)                                           # same target: little trading
    assert env.last_step.traded < step.traded
    with pytest.raises(Exception, match="sharpe_ratio"):
        make_portfolio_env(data, kernel=kern, reward="sharpe_ratio")


# -- observations ----------------------------------------------------------------------------------------------------

def test_lookback_and_covariance_observations_read_only_the_past() -> None:
    data = planted_daily(days=60, seed=3)
    env = PortfolioEnv(data, lookback=5, covariance=True, sequential=True)
    base = PortfolioEnv(data, sequential=True)
    n = env.n
    assert env.observation_space.shape[0] == base.observation_space.shape[0] + 5 * n + n * (n + 1) // 2
    t, shares = 40, np.zeros(n)
    obs = env.observation(t, 1e6, shares)
    k = base.observation_space.shape[0]
    np.testing.assert_allclose(obs[k:k + 5 * n], (data.returns()[36:41] * 10).reshape(-1), rtol=1e-5)
    cov = np.cov(data.returns()[21:41], rowvar=False)
    np.testing.assert_allclose(obs[k + 5 * n:], cov[np.triu_indices(n)] * 1e3, rtol=1e-4)
    early = env.observation(2, 1e6, shares)                    # before 5 rows exist: zeros in front
    np.testing.assert_array_equal(early[k:k + 2 * n], 0.0)
    changed = data.close.copy()
    changed[t + 1:] *= 1.7
    moved = PortfolioEnv(attrs.evolve(data, close=changed, prev_close=None), lookback=5, covariance=True)
    np.testing.assert_array_equal(moved.observation(t, 1e6, shares), obs)
    with pytest.raises(ValueError, match="lookback"):
        PortfolioEnv(data, lookback=-1)


def test_market_volatility_series_is_causal_and_observed() -> None:
    data = planted_daily(days=80, seed=4).with_market_volatility(10)
    vix = data.market_volatility
    market = np.r_[np.nan, np.mean(data.close[1:] / data.close[:-1] - 1, axis=1)]
    want = 100 * np.sqrt(252) * np.array([np.std(market[max(1, t - 9):t + 1], ddof=1) if t >= 2 else np.nan
                                          for t in range(80)])
    np.testing.assert_allclose(vix, want, rtol=1e-9)
    changed = data.close.copy()
    changed[50:] *= 1.2
    np.testing.assert_array_equal(market_volatility(changed, 10)[:50], vix[:50])
    env = PortfolioEnv(data.take(slice(20, 80)), sequential=True)
    plain = PortfolioEnv(planted_daily(days=80, seed=4).take(slice(20, 80)), sequential=True)
    assert env.observation_space.shape[0] == plain.observation_space.shape[0] + 1
    assert env.observation(5, 1e6, np.zeros(3))[-1] == pytest.approx(vix[25] / 100, rel=1e-6)


# -- maximum Sharpe --------------------------------------------------------------------------------------------------

def test_max_sharpe_numpy_equals_the_optimiser_from_the_registry(kern: Kernel) -> None:
    if "portfolio" not in kern.registry("portfolio_optimizer").names():
        pytest.skip("no portfolio optimiser plugin installed")
    rng = np.random.default_rng(0)
    for _ in range(3):
        r = rng.normal([0.001, 0.0005, -0.0002, 0.0008], [0.01, 0.02, 0.01, 0.015], size=(150, 4))
        mine = max_sharpe_numpy(r)
        opt = kern.create("portfolio_optimizer", "portfolio", method="max_sharpe", scale_return=False)
        theirs = np.asarray(opt(np.cov(r, rowvar=False), r.mean(axis=0)))
        np.testing.assert_allclose(mine, theirs, atol=2e-4)
        np.testing.assert_allclose(max_sharpe_weights(r, kern), theirs, atol=1e-6)
    assert not max_sharpe_numpy(-np.abs(rng.normal(0.001, 0.01, size=(50, 3)))).any()   # no positive mean: cash


def test_daily_baselines_include_max_sharpe_estimated_on_train(kern: Kernel) -> None:
    data = planted_daily(days=90, seed=0)
    env = PortfolioEnv(data.take(slice(60, 90)), sequential=True)
    out = daily_baselines(env, train=data.take(slice(0, 60)), kernel=kern)
    assert {"min_variance", "max_sharpe"} <= set(out)
    w = max_sharpe_numpy(data.take(slice(0, 60)).returns()[1:])
    assert w.argmax() == 0 and w[0] > 0.5 and w[2] == 0  # the planted +0.4 %/day asset; never the -0.3 % one
    assert out["max_sharpe"]["cumulative_return"] > out["equal_weight"]["cumulative_return"]


# -- configs ---------------------------------------------------------------------------------------------------------

CFG = {"env": "portfolio", "data": {"planted": {"days": 100, "seed": 0}, "splits": {"train": 60, "valid": 20,
                                                                                     "test": 20},
                                    "vix": {"window": 10}},
       "env_kwargs": {"reward": {"name": "differential_sharpe", "kwargs": {"eta": 0.05}}, "lookback": 3,
                      "covariance": True},
       "algorithm": {"name": "ppo", "hidden_sizes": [8]},
       "trainer": {"epochs": 1, "epoch_steps": 20, "collect_steps": 10, "n_envs": 1, "valid_episodes": 1,
                   "seed": 0}}


def test_vix_config_errors(kern: Kernel) -> None:
    for env, vix, match in (("stock_trading", True, "observed by the portfolio"), ("portfolio", {"window": 1},
                                                                                    "window must be")):
        doc = {**CFG, "env": env, "env_kwargs": {}, "data": {**CFG["data"], "vix": vix}}
        with pytest.raises(ConfigError, match=match):
            validate(parse_yaml(yaml.safe_dump(doc), "v.yaml"), kern)


@pytest.mark.slow  # trains
def test_reward_lookback_covariance_and_vix_train_and_trade(kern: Kernel, tmp_path: Path) -> None:
    cfg = validate(parse_yaml(yaml.safe_dump({**CFG, "output": {"dir": str(tmp_path / "r")}}), "c.yaml"), kern)
    split = load_data(cfg, kern)
    assert split["train"].market_volatility is not None
    res = train(cfg, kern, data=split)
    assert "max_sharpe" in res["metrics"] and "policy" in res["metrics"]
    meta = json.loads((tmp_path / "r" / "best.json").read_text())
    assert meta["observation_kwargs"] == {"lookback": 3, "covariance": True} and meta["vix"] == {"window": 10}
    out = trade(cfg, tmp_path / "r" / "best.pt", kern)            # the trader rebuilds the same observation
    assert out["summary"]["bars"] == 20


@pytest.mark.parametrize("name", ["rl_portfolio_risk.yaml", "rl_portfolio.yaml", "rl_execution.yaml"])
def test_rl_examples_validate(name: str, kern: Kernel) -> None:
    from qrl.config import load

    cfg = load(Path(__file__).parents[2] / "examples" / name, kern)
    if name == "rl_portfolio_risk.yaml":
        assert cfg.data["vix"] == {"window": 21} and cfg.env_kwargs["reward"]["name"] == "differential_sharpe"
        env = make_portfolio_env(planted_daily(days=40).with_market_volatility(21), kernel=kern,
                                 **{k: v for k, v in cfg.env_kwargs.items() if k != "episode_days"})
        assert isinstance(env.reward, DifferentialSharpe) and env.lookback == 10 and env.covariance


def test_min_variance_from_the_registry_equals_the_numpy_solver(kern: Kernel) -> None:
    from qrl.baselines import min_variance_from, min_variance_weights

    if "portfolio" not in kern.registry("portfolio_optimizer").names():
        pytest.skip("no portfolio optimiser plugin installed")
    r = np.random.default_rng(1).normal(0.0, [0.01, 0.02, 0.015, 0.03], size=(120, 4))
    np.testing.assert_allclose(min_variance_from(r, kern), min_variance_weights(r), atol=2e-4)
    np.testing.assert_allclose(min_variance_from(r, None), min_variance_weights(r))
