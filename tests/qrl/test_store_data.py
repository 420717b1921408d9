"""The RL environments read a real Qlib-format store: the synthetic market's 1-minute and daily bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from qrl.data import load_intraday
from qrl.execution.baselines import baselines as exec_baselines
from qrl.execution.env import ExecutionEnv

from qcore.cli import cli
from qcore.kernel import Kernel


@pytest.fixture(scope="module")
def minute_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("minute") / "store"
    result = CliRunner().invoke(cli, ["data", "synth", "--out", str(root), "--instruments", "4", "--days", "6",
                                      "--seed", "3", "--freq", "1min"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root


def test_intraday_bars_from_the_synthetic_store(minute_store: Path) -> None:
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(minute_store))
    rules = kernel.create("market_rules", "cn")
    data = load_intraday(provider, rules, "all")
    days, instruments = len(provider.calendar("day")), len(provider.universe("all"))
    assert data.price.shape == (days, instruments, 240) and data.volume.shape == data.price.shape
    orders = data.orders()
    assert orders, "no complete trading day in the synthetic store"
    d, i = orders[0]
    raw_close = provider.load(["close", "factor"], [data.instruments[i]], data.days[d], data.days[d])
    daily_raw = float(raw_close["close"][0, 0] / raw_close["factor"][0, 0])
    assert np.isfinite(data.price[d, i]).all() and abs(data.price[d, i, -1] / daily_raw - 1) < 0.02
    env = ExecutionEnv(data, amount=8_000, n_steps=8)  # 10 lots a step: TWAP is exact
    result = exec_baselines(env)
    assert result["twap"]["pa_bps"] == pytest.approx(0.0, abs=1e-6)
    assert result["twap"]["fill_rate"] == pytest.approx(1.0)
