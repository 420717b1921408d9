"""No environment looks ahead: changing any data after time t changes no observation at or before t.

Each property is checked with seeded random perturbations over several t, for every environment qrl ships
(portfolio, execution) and every execution timing, and for the whole portfolio data path (store → features →
train-split scaler → environment)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qrl.data import DailyData, IntradayData, load_daily, planted_daily, planted_intraday
from qrl.execution.env import ExecutionEnv
from qrl.portfolio.env import PortfolioEnv
from qrl.risk import TurbulenceSpec
from qrl.stock.env import StockTradingEnv

from qcore.config import parse_yaml
from tests.qbacktest.conftest import MemoryProvider

TIMINGS = ("next_close", "next_open", "same_close")


def _actions(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return rng.uniform(-1, 1, size=(n, width)).astype(np.float32)


def _portfolio_trace(data: DailyData, actions: np.ndarray, env_class: type = PortfolioEnv, **kwargs
                     ) -> list[tuple[int, np.ndarray]]:
    """``(row, observation)`` of every step of one episode played with ``actions``."""
    env = env_class(data, **kwargs)
    actions = actions[:, : env.action_space.shape[0]]
    obs, _ = env.reset(seed=3)
    out = [(env.t, obs)]
    for action in actions:
        obs, _, done, _, _ = env.step(action)
        out.append((env.t, obs))
        if done:
            break
    return out


def _changed_after(data: DailyData, t: int, rng: np.random.Generator) -> DailyData:
    """``data`` with every value dated after row ``t`` changed: prices, opens, features, limits, tradability."""
    shape = data.close[t + 1 :].shape
    close = data.close.copy()
    close[t + 1 :] *= rng.lognormal(0, 0.3, size=shape)
    opened = data.open.copy()
    opened[t + 1 :] = close[t + 1 :] * rng.lognormal(0, 0.05, size=shape)
    features = data.features.copy()
    features[t + 1 :] = rng.normal(0, 3, size=features[t + 1 :].shape)
    limit = data.limit.copy()
    limit[t + 1 :] = rng.choice([0.05, 0.1, np.nan], size=shape)
    tradable = data.tradable.copy()
    tradable[t + 1 :] &= rng.random(shape) > 0.3
    prev = data.prev_close.copy()
    prev[t + 2 :] = close[t + 1 : -1]  # the previous close of row t + 1 is row t's close: not after t
    changed = DailyData(data.dates, data.instruments, close, features, limit, data.feature_names, tradable=tradable,
                        prev_close=prev, open=opened, scaler=data.scaler)
    if data.turbulence is None:
        return changed
    return changed.with_turbulence(TurbulenceSpec(window=20))  # recomputed from the changed closes


def _same_until(a: list[tuple[int, np.ndarray]], b: list[tuple[int, np.ndarray]], t: int) -> int:
    compared = 0
    for (row_a, obs_a), (row_b, obs_b) in zip(a, b, strict=False):
        assert row_a == row_b
        if row_a <= t:
            assert np.array_equal(obs_a, obs_b), f"the observation at row {row_a} saw data after row {t}"
            compared += 1
    return compared


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_portfolio_env_observations_ignore_later_data(timing: str, seed: int) -> None:
    full = planted_daily(days=60, seed=seed)
    data = full.with_scaler(full.take(slice(0, 30)).fit_scaler())
    rng = np.random.default_rng(seed)
    actions = _actions(rng, 80, len(data.instruments) + 1)
    for t in sorted(rng.choice(np.arange(2, 57), size=4, replace=False)):
        kwargs = {"timing": timing, "sequential": True, "turbulence_threshold": 2.0}
        base = _portfolio_trace(data, actions, **kwargs)
        other = _portfolio_trace(_changed_after(data, int(t), rng), actions, **kwargs)
        assert _same_until(base, other, int(t)) == t + 1
        # episodes that start at random rows (the training environment) too
        kwargs = {"timing": timing, "episode_days": 30}
        base = _portfolio_trace(data, actions, **kwargs)
        other = _portfolio_trace(_changed_after(data, int(t), rng), actions, **kwargs)
        _same_until(base, other, int(t))


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_stock_trading_env_observations_ignore_later_data(timing: str, seed: int) -> None:
    """The share-count environment, with a turbulence series recomputed from the perturbed closes and a threshold
    that stops some days."""
    full = planted_daily(days=60, seed=seed).with_turbulence(TurbulenceSpec(window=20))
    data = full.with_scaler(full.take(slice(0, 30)).fit_scaler())
    threshold = float(np.quantile(data.turbulence[21:], 0.8))
    rng = np.random.default_rng(seed)
    actions = _actions(rng, 80, len(data.instruments))
    for t in sorted(rng.choice(np.arange(2, 57), size=4, replace=False)):
        kwargs = {"timing": timing, "sequential": True, "turbulence_threshold": threshold, "hmax": 3000,
                  "env_class": StockTradingEnv}
        base = _portfolio_trace(data, actions, **kwargs)
        other = _portfolio_trace(_changed_after(data, int(t), rng), actions, **kwargs)
        assert _same_until(base, other, int(t)) == t + 1
        kwargs = {"timing": timing, "episode_days": 30, "env_class": StockTradingEnv}
        _same_until(_portfolio_trace(data, actions, **kwargs),
                    _portfolio_trace(_changed_after(data, int(t), rng), actions, **kwargs), int(t))


def _store(days: int, seed: int) -> MemoryProvider:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=days)
    names = ["SH600000", "SH600001", "SH600002", "SH600003"]
    close = pd.DataFrame(10 * np.exp(np.cumsum(rng.normal(0.0005, 0.015, (days, 4)), axis=0)), index=dates,
                         columns=names)
    ones = pd.DataFrame(1.0, index=dates, columns=names)
    fields = {"close": close, "open": close * 0.999, "factor": ones, "volume": ones * 1e6}
    return MemoryProvider(fields, spans={names[3]: (dates[15], dates[-1])})  # lists on day 15


FEATURES = {"mom5": "$close/Ref($close, 5) - 1", "ma10": "$close/Mean($close, 10) - 1",
            "vol10": "Std($close/Ref($close, 1), 10)"}
CONFIG = """\
env: portfolio
data: {planted: {}, splits: {train: 40, valid: 15, test: 15}}
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_store_to_observation_path_ignores_later_data(seed: int, kernel) -> None:
    """Perturb the store after a date t of the valid or test span: nothing observed up to t moves (features are
    computed causally, scaled with the train split's scaler, prices are never filled backwards)."""
    from qrl.config import validate
    from qrl.workflow import split_data

    cfg = validate(parse_yaml(CONFIG), kernel)
    operators = kernel.registry("operator")
    provider = _store(70, seed)
    base = split_data(cfg, load_daily(provider, operators, None, "all", None, None, FEATURES))
    rng = np.random.default_rng(seed)
    actions = _actions(rng, 40, 5)
    for t in (41, 50, 58, 66):  # rows of the valid (40..54) and test (55..69) splits
        other_provider = _store(70, seed)
        for name, frame in other_provider.data.items():
            frame.iloc[t + 1 :] *= rng.lognormal(0, 0.3, size=frame.iloc[t + 1 :].shape)
            if name == "close":
                frame.iloc[t + 1 :] = frame.iloc[t + 1 :].mask(rng.random(frame.iloc[t + 1 :].shape) < 0.2)
        other = split_data(cfg, load_daily(other_provider, operators, None, "all", None, None, FEATURES))
        assert other.scaler == base.scaler
        for split, offset in (("train", 0), ("valid", 40), ("test", 55)):
            a = _portfolio_trace(base[split], actions, sequential=True)
            b = _portfolio_trace(other[split], actions, sequential=True)
            _same_until([(r + offset, o) for r, o in a], [(r + offset, o) for r, o in b], t)


def _execution_trace(data: IntradayData, actions: np.ndarray, timing: str) -> list[tuple[tuple[int, int], np.ndarray]]:
    """``((day, last observed bar), observation)`` of every step of every order, in order."""
    env = ExecutionEnv(data, amount=30_000, n_steps=4, sequential=True, timing=timing)
    out = []
    k = 0
    for _ in range(len(env.pairs)):
        obs, _ = env.reset()
        done = False
        while not done:
            assert env.sim is not None
            out.append(((env.sim.order.day, env.sim.observed - 1), obs))
            obs, _, done, _, _ = env.step(int(actions[k % len(actions)]))
            k += 1
    return out


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_execution_env_observations_ignore_later_bars(timing: str, seed: int) -> None:
    data = planted_intraday(days=4, instruments=2, seed=seed, bars=32)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 5, size=50)
    base = _execution_trace(data, actions, timing)
    for day, bar in ((0, 8), (1, 15), (2, 0), (3, 23)):  # bars 8, 15, 23 end what some step observes
        price, volume = data.price.copy(), data.volume.copy()
        price[day, :, bar + 1 :] *= rng.lognormal(0, 0.05, size=price[day, :, bar + 1 :].shape)
        price[day + 1 :] *= rng.lognormal(0, 0.05, size=price[day + 1 :].shape)
        volume[day, :, bar + 1 :] = rng.integers(0, 10, size=volume[day, :, bar + 1 :].shape) * 100
        volume[day + 1 :] *= rng.uniform(0, 3, size=volume[day + 1 :].shape)
        prev, limit = data.prev_close.copy(), data.limit.copy()
        prev[day + 1 :] *= 1.05
        limit[day + 1 :] = 0.02
        changed = IntradayData(data.days, data.instruments, price, volume, prev, limit)
        other = _execution_trace(changed, actions, timing)
        compared = 0
        for (when_a, obs_a), (when_b, obs_b) in zip(base, other, strict=True):
            assert when_a == when_b
            if when_a <= (day, bar):
                assert np.array_equal(obs_a, obs_b), f"the observation at {when_a} saw data after {(day, bar)}"
                compared += 1
        assert compared > 0
