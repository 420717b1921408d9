"""Parity with Qlib's backtest on the golden store (tests/data/golden/backtest, written by pyqlib 0.9.7)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qbacktest.backtest import BacktestResult, run_backtest
from qbacktest.strategies import OrderReplay, TopkDropout

from qcore.cli import cli

from .conftest import GOLDEN_BACKTEST, GOLDEN_MARKET

RTOL, ATOL = 1e-6, 1e-12

BT_YAML = """
port_analysis_config:
  strategy:
    class: TopkDropoutStrategy
    module_path: qlib.contrib.strategy.signal_strategy
    kwargs:
      signal: <PRED>
      topk: 20
      n_drop: 4
  executor:
    class: SimulatorExecutor
    module_path: qlib.backtest.executor
    kwargs: {time_per_step: day, generate_portfolio_metrics: true}
  backtest:
    start_time: 2018-10-17
    end_time: 2019-04-22
    account: 100000000
    benchmark: SH000300
    exchange_kwargs:
      freq: day
      limit_threshold: 0.095
      deal_price: close
      open_cost: 0.0005
      close_cost: 0.0015
      min_cost: 5
      trade_unit: 100
"""


def golden_run(provider, kernel, scores, config) -> BacktestResult:
    bt = config["backtest"]
    strat = bt["strategy"]
    strategy = TopkDropout(signal=scores, topk=strat["topk"], n_drop=strat["n_drop"],
                           risk_degree=strat["risk_degree"], method_sell=strat["method_sell"],
                           method_buy=strat["method_buy"], hold_thresh=strat["hold_thresh"],
                           only_tradable=strat["only_tradable"],
                           forbid_all_trade_at_limit=strat["forbid_all_trade_at_limit"])  # fmt: skip
    exchange = {k: v for k, v in bt["exchange_kwargs"].items()}
    return run_backtest(provider, strategy, start=bt["start_time"], end=bt["end_time"], account=bt["account"],
                        benchmark=bt["benchmark"], exchange_kwargs=exchange, kernel=kernel)  # fmt: skip


@pytest.fixture(scope="module")
def result(golden_provider, session_kernel, golden_scores, golden_config) -> BacktestResult:
    return golden_run(golden_provider, session_kernel, golden_scores, golden_config)


def assert_report_matches(report: pd.DataFrame) -> None:
    golden = pd.read_parquet(GOLDEN_BACKTEST / "report.parquet")
    assert list(report.columns) == list(golden.columns)
    assert report.index.as_unit("ns").equals(golden.index.as_unit("ns"))
    np.testing.assert_allclose(report.to_numpy(), golden.to_numpy(), rtol=RTOL, atol=ATOL)


def test_daily_report_matches_qlib(result: BacktestResult) -> None:
    assert_report_matches(result.report)
    assert len(result.report) == 127  # last calendar day is not a bar; the first bar has no signal
    assert result.report["turnover"].iloc[0] == 0.0 and result.report["account"].iloc[0] == 1e8


def test_positions_match_qlib(result: BacktestResult) -> None:
    golden = json.loads((GOLDEN_BACKTEST / "positions.json").read_text())
    positions = result.positions
    report = result.report
    dates = positions.index.get_level_values("datetime")
    for day, snapshot in golden.items():
        when = pd.Timestamp(day)
        mine = positions[dates == when].droplevel("datetime")
        assert sorted(mine.index) == sorted(snapshot["positions"]), day
        for inst, held in snapshot["positions"].items():
            for key in ("amount", "price", "weight", "count_day"):
                assert mine.loc[inst, key] == pytest.approx(held[key], rel=RTOL, abs=ATOL), (day, inst, key)
        assert report.loc[when, "cash"] == pytest.approx(snapshot["cash"], rel=RTOL)
        assert report.loc[when, "account"] == pytest.approx(snapshot["now_account_value"], rel=RTOL)


def test_risk_matches_qlib(result: BacktestResult) -> None:
    golden = json.loads((GOLDEN_BACKTEST / "risk.json").read_text())
    risk = result.risk()
    for series, modes in golden.items():
        for mode, stats in modes.items():
            for key, value in stats.items():
                assert risk[series][mode][key] == pytest.approx(value, rel=RTOL, abs=ATOL), (series, mode, key)
        assert set(risk[series]) == {"sum", "product", "compounded"}
    assert "N=238" in risk["conventions"]["sum"] and "N=252" in risk["conventions"]["compounded"]


def test_indicators_match_qlib(result: BacktestResult) -> None:
    golden = pd.read_parquet(GOLDEN_BACKTEST / "indicators.parquet")
    mine = result.indicators
    assert list(mine.columns) == list(golden.columns)
    np.testing.assert_allclose(mine.to_numpy(dtype=float), golden.to_numpy(dtype=float), rtol=RTOL, atol=1e-9)


def test_qlib_behaviours_the_data_carries(result: BacktestResult) -> None:
    positions = result.positions
    per_day = positions.groupby(level="datetime").size()
    assert per_day.max() > 20  # issue #809: failed planned sells do not stop the buys
    # SH600009 delists while held: never sold, kept at its last close
    held = positions.xs("SH600009", level="instrument")
    assert held.index[-1] == result.report.index[-1]
    assert held["price"].iloc[-12:].nunique() == 1
    assert result.report["turnover"].mean() < 2 * 4 / 20 * 0.95


def test_replaying_the_fills_reproduces_the_report(result, golden_provider, session_kernel) -> None:
    fills = result.fills
    orders = fills[["datetime", "instrument", "amount", "direction"]]
    replay = OrderReplay(file=orders)
    again = run_backtest(golden_provider, replay, start="2018-10-17", end="2019-04-22", account=1e8,
                         exchange_kwargs=dict(limit_threshold=0.095, deal_price="close", open_cost=0.0005,
                                              close_cost=0.0015, min_cost=5), kernel=session_kernel)  # fmt: skip
    assert_report_matches(again.report)


def test_cli_writes_the_golden_report(tmp_path) -> None:
    config = tmp_path / "bt.yaml"
    config.write_text(BT_YAML)
    out = tmp_path / "out"
    args = ["backtest", "--provider-uri", str(GOLDEN_MARKET), "--score", str(GOLDEN_BACKTEST / "score.parquet"),
            "--config", str(config), "--out", str(out), "--label", "Ref($close, -2)/Ref($close, -1) - 1"]
    run = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "127 bars" in run.output
    for name in ("report.parquet", "positions.parquet", "risk.json", "report.html", "ic.parquet"):
        assert (out / name).exists(), name
    assert_report_matches(pd.read_parquet(out / "report.parquet"))
    risk = json.loads((out / "risk.json").read_text())
    golden = json.loads((GOLDEN_BACKTEST / "risk.json").read_text())
    assert risk["excess_return_with_cost"]["sum"] == pytest.approx(golden["excess_return_with_cost"]["sum"], rel=RTOL)
    ic = pd.read_parquet(out / "ic.parquet")
    golden_ic = pd.read_parquet(GOLDEN_BACKTEST / "ic.parquet")
    np.testing.assert_allclose(ic.loc[golden_ic.index].to_numpy(), golden_ic.to_numpy(), atol=1e-6)
