"""Nested execution from the command line and workflows (issue 15): a BT.yaml in Qlib's spelling through
``qcore backtest``, ``examples/workflow_nested.yaml`` through ``qcore validate``, and the errors of a store without
minute bars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from qcore.cli import cli

from .nested_market import build_store, scores

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "workflow_nested.yaml"

#: Qlib's nested example in Qlib's own spelling (port_analysis_config), the scores replacing <PRED>.
BT_YAML = """\
port_analysis_config:
  strategy:
    class: TopkDropoutStrategy
    module_path: qlib.contrib.strategy.signal_strategy
    kwargs: {signal: <PRED>, topk: 4, n_drop: 2}
  executor:
    class: NestedExecutor
    module_path: qlib.backtest.executor
    kwargs:
      time_per_step: day
      generate_portfolio_metrics: true
      inner_strategy:
        class: SBBStrategyEMA
        module_path: qlib.contrib.strategy.rule_strategy
        kwargs: {instruments: csi300, freq: 1min}
      inner_executor:
        class: NestedExecutor
        module_path: qlib.backtest.executor
        kwargs:
          time_per_step: 30min
          generate_portfolio_metrics: true
          inner_strategy: {class: TWAPStrategy, module_path: qlib.contrib.strategy.rule_strategy}
          inner_executor:
            class: SimulatorExecutor
            module_path: qlib.backtest.executor
            kwargs: {time_per_step: 5min, generate_portfolio_metrics: true}
  backtest:
    account: 100000000
    benchmark: SH000300
    exchange_kwargs: {freq: 1min, limit_threshold: 0.095, deal_price: close, open_cost: 0.0005, close_cost: 0.0015,
                      min_cost: 5}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("workflow") / "store", instruments=8, days=6)


def _backtest(tmp_path: Path, store: Path, config: str, session_kernel) -> object:
    provider = session_kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    scores(provider).to_frame().to_parquet(tmp_path / "score.parquet")
    (tmp_path / "bt.yaml").write_text(config)
    args = ["backtest", "--provider-uri", str(store), "--score", str(tmp_path / "score.parquet"), "--config",
            str(tmp_path / "bt.yaml"), "--out", str(tmp_path / "out")]
    return CliRunner().invoke(cli, args)


def test_qcore_backtest_runs_qlibs_nested_config(tmp_path: Path, store: Path, session_kernel) -> None:
    run = _backtest(tmp_path, store, BT_YAML, session_kernel)
    assert run.exit_code == 0, run.output
    out = tmp_path / "out"
    for freq in ("1day", "30min", "5min"):
        for name in ("report", "positions", "indicators", "orders"):
            assert (out / f"{name}_{freq}.parquet").exists(), (name, freq)
    day = pd.read_parquet(out / "report_1day.parquet")
    half = pd.read_parquet(out / "report_30min.parquet")
    assert day["total_cost"].iloc[-1] == pytest.approx(half["total_cost"].iloc[-1], rel=1e-12)
    html = (out / "report.html").read_text()
    assert all(f'id="chart-execution-{freq}"' in html for freq in ("1day", "30min", "5min"))


def test_a_store_without_minute_bars_is_refused_before_the_run(tmp_path: Path, store: Path, session_kernel) -> None:
    daily = tmp_path / "daily"
    import shutil

    shutil.copytree(store, daily)
    for path in daily.glob("**/*1min*"):
        path.unlink()
    run = _backtest(tmp_path, daily, BT_YAML, session_kernel)
    assert run.exit_code != 0 and run.exit_code != 70
    assert "1min" in run.output and "Traceback" not in run.output and len(run.output.strip().splitlines()) == 1


def test_a_bad_inner_argument_names_its_key(tmp_path: Path, store: Path, session_kernel) -> None:
    run = _backtest(tmp_path, store, BT_YAML.replace("time_per_step: 5min", "time_per_step: 5x"), session_kernel)
    assert run.exit_code == 3
    assert "executor.kwargs.inner_executor.kwargs.inner_executor.kwargs.time_per_step" in run.output


def test_the_nested_example_validates(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    from qdata_cn.synth import SynthParams, generate, write_market

    store = tmp_path_factory.mktemp("example") / "store"
    write_market(generate(SynthParams(instruments=6, days=250, seed=0)), store, intraday=True)
    monkeypatch.setenv("QCORE_NESTED_DATA", str(store))
    run = CliRunner().invoke(cli, ["validate", str(EXAMPLE)])
    assert run.exit_code == 0, run.output
    assert "OK" in run.output


@pytest.mark.slow
def test_the_nested_example_runs_end_to_end(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """``qcore run examples/workflow_nested.yaml``: every level's report; the 30-minute running cost total ends
    each day at the day's."""
    from qdata_cn.synth import SynthParams, generate, write_market

    root = tmp_path_factory.mktemp("example_run")
    store = root / "store"
    write_market(generate(SynthParams(instruments=6, days=250, seed=0)), store, intraday=True)
    monkeypatch.setenv("QCORE_NESTED_DATA", str(store))
    monkeypatch.chdir(root)
    run = CliRunner().invoke(cli, ["run", str(EXAMPLE), "--set", f"recorder.kwargs.uri={root / 'runs'}"])
    assert run.exit_code == 0, run.output
    artifacts = {p.name: p for p in (root / "runs").rglob("*.parquet")}
    for freq in ("1day", "30min", "5min"):
        assert f"report_normal_{freq}.parquet" in artifacts, sorted(artifacts)
    day = pd.read_parquet(artifacts["report_normal_1day.parquet"])
    half_hour = pd.read_parquet(artifacts["report_normal_30min.parquet"])
    assert day["total_cost"].iloc[-1] > 0
    # the running total of costs at each day's last 30-minute bar is the day's (one account for every level)
    last_bar = half_hour["total_cost"].groupby(pd.DatetimeIndex(half_hour.index).normalize()).last()
    carried = last_bar.reindex(day.index.normalize()).ffill().fillna(0.0)  # a day without inner bars: no new cost
    pd.testing.assert_series_equal(carried.set_axis(day.index), day["total_cost"],
                                   check_names=False, rtol=1e-9)
