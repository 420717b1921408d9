"""BT.yaml in Qlib's port_analysis_config shape and the ``qcore backtest`` command's errors."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner
from qbacktest.config import load_backtest_config

from qcore.cli import cli
from qcore.errors import ConfigError

from .conftest import GOLDEN_BACKTEST, GOLDEN_MARKET
from .test_golden_parity import BT_YAML


def test_qlib_port_analysis_config_is_accepted() -> None:
    spec = load_backtest_config(BT_YAML)
    assert spec.strategy.name == "TopkDropoutStrategy" and "signal" not in spec.strategy.kwargs
    assert spec.strategy.kwargs == {"topk": 20, "n_drop": 4}
    assert spec.executor.name == "SimulatorExecutor" and spec.start == pd.Timestamp("2018-10-17")
    assert spec.exchange_kwargs["limit_threshold"] == 0.095 and spec.market_rules is None


def test_native_mode_lists_become_tuples_and_rules_default_to_cn() -> None:
    spec = load_backtest_config({"strategy": {"class": "TopkDropout", "kwargs": {"topk": 5, "n_drop": 1}},
                                 "backtest": {"benchmark": None}})  # fmt: skip
    assert spec.market_rules.name == "cn" and spec.exchange_kwargs is None and spec.benchmark is None
    spec = load_backtest_config({"strategy": "TopkDropout", "backtest": {"exchange_kwargs": {
        "deal_price": ["$open", "$close"], "volume_threshold": {"all": ["cum", "0.1*$volume"]}}}})
    assert spec.exchange_kwargs["deal_price"] == ("$open", "$close")
    assert spec.exchange_kwargs["volume_threshold"] == {"all": ("cum", "0.1*$volume")}


def test_config_errors_name_the_key_and_line(tmp_path) -> None:
    path = tmp_path / "bt.yaml"
    path.write_text("strategy:\n  class: TopkDropout\nbacktest:\n  start_time: 2020-01-01\n  acount: 1\n")
    with pytest.raises(ConfigError, match=r"bt.yaml:3: backtest: unknown key\(s\) acount"):
        load_backtest_config(path)
    with pytest.raises(ConfigError, match="missing 'strategy'"):
        load_backtest_config({"backtest": {}})


def _invoke(tmp_path, config: str, score=GOLDEN_BACKTEST / "score.parquet"):
    path = tmp_path / "bt.yaml"
    path.write_text(config)
    args = ["backtest", "--provider-uri", str(GOLDEN_MARKET), "--score", str(score), "--config", str(path),
            "--out", str(tmp_path / "out"), "--no-html"]
    return CliRunner().invoke(cli, args)


def test_cli_errors_are_one_line(tmp_path) -> None:
    run = _invoke(tmp_path, "strategy:\n  class: TopKDrop\n  kwargs: {topk: 5, n_drop: 1}\n")
    assert run.exit_code == 3 and "unknown strategy 'TopKDrop'" in run.output and "Traceback" not in run.output
    bad = pd.read_parquet(GOLDEN_BACKTEST / "score.parquet").reset_index()
    bad.loc[0, "datetime"] = pd.Timestamp("2030-01-01")
    bad.set_index(["datetime", "instrument"]).to_parquet(tmp_path / "late.parquet")
    run = _invoke(tmp_path, "strategy:\n  class: TopkDropout\n  kwargs: {topk: 5, n_drop: 1}\n",
                  score=tmp_path / "late.parquet")  # fmt: skip
    assert run.exit_code == 5 and "outside the store's calendar" in run.output


def test_cli_native_market_rules_mode(tmp_path) -> None:
    run = _invoke(tmp_path, "strategy:\n  class: topk_dropout\n  kwargs: {topk: 10, n_drop: 2}\n"
                            "backtest:\n  account: 1000000\n  market_rules: cn\n")  # fmt: skip
    assert run.exit_code == 0, run.output
    report = pd.read_parquet(tmp_path / "out" / "report.parquet")
    assert len(report) == 127 and report["total_cost"].iloc[-1] > 0
    assert not (tmp_path / "out" / "report.html").exists()
