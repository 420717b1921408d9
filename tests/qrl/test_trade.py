"""FinRL's train / test / trade phases (issue #20): the replay broker, paper trading bar by bar without look-ahead,
``qcore rl test`` / ``trade`` / ``backtest``."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from qrl.config import validate
from qrl.data import planted_daily
from qrl.trade.broker import Broker, ReplayBroker
from qrl.trade.trader import PolicyTrader, trade
from qrl.workflow import train

from qcore.cli import cli
from qcore.config import parse_yaml
from qcore.errors import ConfigError
from qcore.kernel import Kernel

CONFIG = {"env": "portfolio", "data": {"planted": {"days": 90, "seed": 0}, "splits": {"train": 50, "valid": 20,
                                                                                      "test": 20}},
          "algorithm": {"name": "ppo", "hidden_sizes": [8]},
          "trainer": {"epochs": 1, "epoch_steps": 20, "collect_steps": 10, "n_envs": 1, "valid_episodes": 1,
                      "seed": 0}}


@pytest.fixture(scope="module")
def kern() -> Kernel:
    return Kernel.load(use_env=False)


@pytest.fixture(scope="module")
def trained(kern: Kernel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("trade")
    doc = {**CONFIG, "output": {"dir": str(root / "run")}}
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc))
    train(validate(parse_yaml(path.read_text(), str(path)), kern), kern)
    return path, root / "run" / "best.pt"


# -- the broker ------------------------------------------------------------------------------------------------------

def test_replay_broker_reveals_one_bar_at_a_time_and_fills_at_the_next_close() -> None:
    data = planted_daily(days=12, seed=2)
    tradable = np.asarray(data.tradable).copy()
    tradable[6, 1] = False
    data = attrs.evolve(data, tradable=tradable)
    broker = ReplayBroker(data, 3, 8, initial_cash=100_000.0, lot_size=100, buy_cost=0.001, sell_cost=0.002,
                          min_cost=1.0)
    assert isinstance(broker, Broker)
    assert broker.now() == data.dates[3] and len(broker.history().dates) == 4
    broker.submit({"A000": 1050.0, "A001": 250.0})
    fills, rejected = broker.advance()
    assert broker.now() == data.dates[4] and len(broker.history().dates) == 5 and not rejected
    price = data.close[4]
    assert [(f.instrument, f.shares, f.price) for f in fills] == [("A001", 200.0, price[1]), ("A000", 1000.0,
                                                                                             price[0])]
    spent = sum(f.shares * f.price + max(f.shares * f.price * 0.001, 1.0) for f in fills)
    assert broker.cash() == pytest.approx(100_000.0 - spent)
    assert broker.holdings() == {"A000": 1000.0, "A001": 200.0}
    broker.submit({"A001": -200.0, "A000": 99_000.0})       # sells first; the buy is cut to the cash
    fills, rejected = broker.advance()
    assert fills[0].shares == -200.0 and fills[1].shares > 0 and broker.cash() >= 0
    broker.submit({"A001": 100.0})
    fills, rejected = broker.advance()                      # row 6: A001 not tradable
    assert not fills and rejected[0].reason == "not tradable"
    while broker.advance() is not None:
        pass
    assert broker.now() == data.dates[8] and len(broker.history().dates) == 9   # never past the end row


@pytest.mark.slow  # trains a checkpoint once per module
def test_trading_decisions_never_read_unrevealed_bars(trained: tuple[Path, Path], kern: Kernel) -> None:
    _, ckpt = trained
    data = planted_daily(days=90, seed=0)
    changed = data.close.copy()
    changed[76:] *= 1.5
    other = attrs.evolve(data, close=changed, features=np.where(np.arange(90)[:, None, None] >= 76,
                                                                 data.features * 3, data.features))
    orders = []
    for d in (data, other):
        trader, broker = PolicyTrader(ckpt, kern), ReplayBroker(d, 70, 89)
        seq = []
        while True:
            o, _ = trader.decide(broker)
            seq.append(o)
            broker.submit(o)
            if broker.advance() is None:
                break
        orders.append(seq)
    assert orders[0][:6] == orders[1][:6]       # decisions on rows 70..75 see nothing of rows >= 76
    assert orders[0][6:] != orders[1][6:]


@pytest.mark.slow  # trains a checkpoint once per module
def test_trade_replays_the_test_split_and_writes_its_files(trained: tuple[Path, Path], kern: Kernel,
                                                           tmp_path: Path) -> None:
    path, ckpt = trained
    res = CliRunner().invoke(cli, ["rl", "trade", str(path), "--checkpoint", str(ckpt), "--out",
                                   str(tmp_path / "t"), "--cash", "500000"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "traded 20 bars" in res.output
    equity = pd.read_csv(tmp_path / "t" / "equity.csv")
    trades = pd.read_csv(tmp_path / "t" / "trades.csv")
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert len(equity) == 20 and equity["value"].iloc[0] == 500_000
    assert summary["fills"] == (trades["status"] == "filled").sum() > 0
    assert summary["dataset"]["kind"] == "planted" and summary["test"] == json.loads(
        ckpt.with_suffix(".json").read_text())["splits"]["test"]
    assert summary["final_value"] == pytest.approx(equity["value"].iloc[-1])
    cfg = validate(parse_yaml(path.read_text(), str(path)), kern)
    again = trade(cfg, ckpt, kern, initial_cash=500_000)
    assert again["summary"]["final_value"] == summary["final_value"]     # deterministic


@pytest.mark.slow  # trains a checkpoint once per module
def test_rl_test_is_finrls_name_for_eval(trained: tuple[Path, Path]) -> None:
    path, ckpt = trained
    a = CliRunner().invoke(cli, ["rl", "test", str(path), "--checkpoint", str(ckpt), "--json"])
    b = CliRunner().invoke(cli, ["rl", "eval", str(path), "--checkpoint", str(ckpt), "--json"])
    assert a.exit_code == 0, a.output
    assert json.loads(a.output) == json.loads(b.output) and "policy" in json.loads(a.output)["metrics"]
    assert json.loads(a.output)["dataset"]["kind"] == "planted"


@pytest.mark.slow  # trains a checkpoint once per module
def test_trade_refuses_other_envs_and_seen_rows(trained: tuple[Path, Path], kern: Kernel, tmp_path: Path) -> None:
    _, ckpt = trained
    doc = {**CONFIG, "data": {**CONFIG["data"], "splits": {"train": 30, "valid": 20, "test": 40}}}
    cfg = validate(parse_yaml(yaml.safe_dump(doc), "x.yaml"), kern)
    with pytest.raises(ConfigError, match="overlaps the valid split"):
        trade(cfg, ckpt, kern)
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    (tmp_path / "x.pt").write_bytes(ckpt.read_bytes())
    (tmp_path / "x.json").write_text(json.dumps({**meta, "env": "execution"}))
    with pytest.raises(ConfigError, match="trades portfolio checkpoints"):
        PolicyTrader(tmp_path / "x.pt", kern)


@pytest.mark.slow  # runs `qcore backtest` in a child process
def test_rl_backtest_writes_the_html_report(kern: Kernel, tmp_path: Path) -> None:
    from tests.qrl.test_data_processors import write_binance

    store = tmp_path / "store"
    res = CliRunner().invoke(cli, ["rl", "data", "import", str(write_binance(tmp_path / "src", n=90)), "--format",
                                   "binance", "--to", str(store)])
    assert res.exit_code == 0, res.output
    doc = {**CONFIG, "data": {"provider_uri": str(store), "market_rules": "none", "features": "finrl",
                              "splits": {"train": 50, "valid": 20, "test": 20}}, "output": {"dir": str(tmp_path / "r")}}
    train(validate(parse_yaml(yaml.safe_dump(doc), "b.yaml"), kern), kern)
    ckpt = tmp_path / "r" / "best.pt"
    res = CliRunner().invoke(cli, ["rl", "backtest", str(ckpt), "--provider-uri", str(store), "--out",
                                   str(tmp_path / "bt")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bt" / "report.html").stat().st_size > 10_000
    report = pd.read_parquet(tmp_path / "bt" / "report.parquet")
    assert str(report.index[0].date()) == json.loads(ckpt.with_suffix(".json").read_text())["splits"]["test"][0]
    res = CliRunner().invoke(cli, ["rl", "backtest", str(ckpt), "--provider-uri", str(store), "--out",
                                   str(tmp_path / "bt2"), "--start", "2023-01-10", "--end", "2023-03-01"])
    assert res.exit_code not in (0, 70) and "overlaps the checkpoint's train split" in res.output
