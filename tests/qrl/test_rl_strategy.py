"""A trained portfolio policy run as the ``rl_policy`` weight strategy in the backtest, on a store with a planted
trend (the protocol-level checks without a backtest are in ``test_rl_policy_contract.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qbacktest.backtest import run_backtest
from qbacktest.report import REPORT_COLUMNS
from qbacktest.strategies.weight import TargetWeight
from qrl.data import load_daily, planted_daily
from qrl.envs import make_portfolio_env
from qrl.trainer import TrainSpec, train

from qcore.errors import ConfigError
from qcore.kernel import Kernel
from tests.qbacktest.conftest import MemoryProvider

NAMES = ("SH600000", "SH600001", "SH600002")
FEATURES = {"mom5": "$close/Ref($close, 5) - 1", "ret1": "$close/Ref($close, 1) - 1"}
EXCHANGE = {"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005, "close_cost": 0.0015,
            "min_cost": 5, "trade_unit": 100}
TRAIN_DAYS, VALID_DAYS = 60, 20  # the backtest runs on the rows after both


def _provider(names=NAMES) -> MemoryProvider:
    planted = planted_daily(days=120, seed=0)  # drifts +0.4 % / 0 / -0.3 % a day
    dates = pd.bdate_range("2021-01-04", periods=len(planted.dates))
    close = pd.DataFrame(planted.close, index=dates, columns=list(names))
    ones = pd.DataFrame(1.0, index=dates, columns=list(names))
    fields = {"close": close, "open": close, "vwap": close, "high": close * 1.01, "low": close * 0.99,
              "volume": ones * 1e8, "factor": ones, "change": close / close.shift(1) - 1}
    return MemoryProvider(fields)


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kernel):
    provider = _provider()
    data = load_daily(provider, kernel.registry("operator"), None, list(NAMES), None, None, FEATURES)
    scaler = data.take(slice(0, TRAIN_DAYS)).fit_scaler()
    parts = {"train": data.take(slice(0, TRAIN_DAYS)), "valid": data.take(slice(TRAIN_DAYS, TRAIN_DAYS + VALID_DAYS))}

    def make(split: str):
        return make_portfolio_env(parts[split].with_scaler(scaler), episode_days=20 if split == "train" else None,
                                  sequential=split != "train")

    spec = TrainSpec(algorithm="sac", epochs=2, epoch_steps=300, collect_steps=100, valid_episodes=1,
                     hidden_sizes=(32, 32), warmup_steps=200, seed=0)
    out = tmp_path_factory.mktemp("rl_policy")
    meta = {"instruments": list(NAMES), "feature_names": list(FEATURES), "features": FEATURES,
            "scaler": scaler.to_dict(), "timing": "next_close"}
    res = train(make, "portfolio", spec, out_dir=out, extra_meta=meta, kernel=kernel)
    return provider, res.checkpoints["best"]


def _run(provider, strategy):
    dates = provider.calendar()
    return run_backtest(provider, strategy, start=dates[TRAIN_DAYS + VALID_DAYS], end=dates[-2], account=1e7,
                        benchmark=None, exchange_kwargs=EXCHANGE)


def test_policy_backtest_follows_its_weights(trained, kernel) -> None:
    provider, ckpt = trained
    strategy = kernel.create("strategy", "rl_policy", checkpoint=str(ckpt))
    res = _run(provider, strategy)
    dates = provider.calendar()
    bars = dates[TRAIN_DAYS + VALID_DAYS : -1]
    assert list(res.report.columns) == list(REPORT_COLUMNS)
    assert len(res.report) == len(bars) and (res.report.index == bars).all()
    # the policy picks the trending asset and the holdings follow its targets
    targets = pd.DataFrame(strategy.targets).T
    assert len(targets) == len(bars)
    assert (targets.idxmax(axis=1) == NAMES[0]).mean() > 0.8, targets
    weights = res.positions["weight"].unstack("instrument").reindex(columns=list(NAMES)).fillna(0.0)
    assert weights[NAMES[0]].iloc[1:].mean() > 0.6, weights
    # a bar's holdings are the previous bar's targets × risk degree (cash weight included in the account value)
    last = targets.iloc[-2] * 0.95
    assert np.allclose(weights.iloc[-1].to_numpy(), last.to_numpy(), atol=0.05), (weights.iloc[-1], last)
    # beats equal weight over the same bars
    equal = pd.Series(1 / 3, index=pd.MultiIndex.from_product([dates, list(NAMES)], names=["datetime", "instrument"]))
    base = _run(provider, TargetWeight(signal=equal))
    growth = (1 + res.report["return"] - res.report["cost"]).prod()
    base_growth = (1 + base.report["return"] - base.report["cost"]).prod()
    assert growth > base_growth + 0.02, (growth, base_growth)


def test_store_without_the_trained_instruments_is_config_error(trained, kernel) -> None:
    _, ckpt = trained
    other = _provider(("SZ000001", "SZ000002", "SZ000003"))
    with pytest.raises(ConfigError, match="lacks"):
        _run(other, kernel.create("strategy", "rl_policy", checkpoint=str(ckpt)))
