"""A third-party weight strategy (``tests/plugins/qweight_toy``, installed as its own distribution): listed with
its plugin, run from a workflow YAML and by ``qcore backtest``, point in time, and named by no qcore or qbacktest
file."""

from __future__ import annotations

import ast
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import qcore
from qcore.cli import cli
from qcore.recorders.local import LocalRecorder
from qcore.trading import Step, TradingInfra
from tests.expr.test_missing_fields import build_store

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "tests" / "plugins" / "qweight_toy" / "qweight_toy"
KWARGS = {"topk": 4, "momentum_window": 10, "volatility_window": 15, "market": "csi300"}

WORKFLOW = """\
experiment: inverse_volatility
seed: 0
data:
  provider: {{name: qlib_bin, kwargs: {{provider_uri: "{store}"}}}}
  market_rules: cn
  universe: csi300
dataset:
  features: alpha158
  segments:
    train: [2015-01-05, 2015-09-30]
    valid: [2015-10-08, 2015-12-31]
    test: [2016-01-04, 2016-03-22]
  learn_processors: [DropnaLabel]
model:
  name: linear
  kwargs: {{estimator: ridge, alpha: 1.0}}
backtest:
  strategy: {{name: inverse_volatility, kwargs: {{topk: 4, momentum_window: 10, volatility_window: 15,
                                                market: csi300}}}}
  account: 10000000
  benchmark: SH000300
  exchange: {{limit_threshold: 0.095, deal_price: close, open_cost: 0.0005, close_cost: 0.0015, min_cost: 5}}
recorder: {{name: local, kwargs: {{uri: "{runs}"}}}}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic 20-instrument × 300-day store of the missing-field tests."""
    return build_store(tmp_path_factory.mktemp("weight_toy"), "full", ())


@pytest.fixture(scope="module")
def kernel() -> qcore.Kernel:
    return qcore.load_kernel()


class Spy:
    """A weight strategy that records the weights of the one it wraps (by information date)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.risk_degree = inner.risk_degree
        self.order_generator = inner.order_generator
        self.weights: dict[pd.Timestamp, dict[str, float] | None] = {}

    def reset(self, infra: TradingInfra) -> None:
        self.infra = infra
        self.inner.reset(infra)

    def target_weights(self, step: Step) -> Any:
        weights = self.inner.target_weights(step)
        self.weights[self.infra.calendar.information_date(step)] = None if weights is None else dict(weights)
        return weights


def _backtest(kernel: qcore.Kernel, store: Path, **kwargs: Any) -> tuple[Spy, Any]:
    from qbacktest.backtest import run_backtest

    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    spy = Spy(kernel.create("strategy", "inverse_volatility", **(kwargs or KWARGS)))
    result = run_backtest(provider, spy, start="2015-06-01", end="2016-03-21", account=1e7, benchmark="SH000300",
                          exchange_kwargs={"limit_threshold": 0.095}, kernel=kernel)  # fmt: skip
    return spy, result


def test_listed_with_its_plugin(kernel: qcore.Kernel) -> None:
    assert kernel.registry("strategy").entry("inverse_volatility").plugin == "qweight_toy"
    result = CliRunner().invoke(cli, ["list", "strategy"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("inverse_volatility"))
    assert "[qweight_toy]" in line and "momentum" in line


def test_weights_are_inverse_volatility_of_the_top_momentum_names(kernel: qcore.Kernel, store: Path) -> None:
    spy, result = _backtest(kernel, store)
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    members = provider.universe("csi300")
    close = provider.load(["close"], sorted(members), None, None, "day")
    frame = pd.DataFrame(close["close"].astype(np.float64), index=close.dates, columns=close.instruments)
    momentum = frame / frame.shift(10) - 1
    volatility = (frame / frame.shift(1) - 1).rolling(15).std()
    decided = {d: w for d, w in spy.weights.items() if w}
    assert len(decided) > 150
    for date in list(decided)[::25]:
        alive = [s for s in frame.columns if any(span.start <= date <= span.end for span in members[s])]
        ranked = momentum.loc[date, alive].dropna().sort_values(ascending=False, kind="stable")
        top = list(ranked.index[:4])
        assert sorted(decided[date]) == sorted(top), date
        inverse = 1 / volatility.loc[date, top]
        expected = (inverse / inverse.sum()).to_dict()
        assert decided[date] == pytest.approx(expected, rel=2e-4), date
    # the backtest traded them: holdings are the latest targets, about risk_degree of the value
    last = result.report.index[-1]
    held = result.positions.xs(last, level="datetime")
    assert set(held.index) == set(decided[max(d for d in decided if d < last)])
    assert held["weight"].sum() == pytest.approx(0.95, abs=0.03)


def test_no_look_ahead(kernel: qcore.Kernel, store: Path, tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(store, changed)
    calendar = pd.DatetimeIndex(pd.read_csv(store / "calendars" / "day.txt", header=None)[0])
    cut = pd.Timestamp("2015-11-16")
    position = int(calendar.get_loc(cut))
    rng = np.random.default_rng(3)
    for path in changed.glob("features/*/close.day.bin"):
        values = np.fromfile(path, dtype="<f4")
        start = int(values[0])
        after = 1 + max(position + 1 - start, 0)  # the first stored value dated after the cut
        values[after:] *= rng.uniform(0.7, 1.3, len(values) - after).astype(np.float32)
        values.tofile(path)
    original, _ = _backtest(kernel, store)
    altered, _ = _backtest(kernel, changed)
    assert original.weights.keys() == altered.weights.keys()
    before = [d for d in original.weights if d <= cut]
    assert len(before) > 80 and any(original.weights[d] for d in before)
    for date in before:
        assert original.weights[date] == altered.weights[date], date
    assert any(original.weights[d] != altered.weights[d] for d in original.weights if d > cut)


def test_workflow_yaml_runs_end_to_end(store: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = tmp_path / "workflow.yaml"
    path.write_text(WORKFLOW.format(store=store, runs=runs))
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 0, result.output
    assert "Annualised excess return (with cost)" in result.output
    (run,) = LocalRecorder(runs).list_runs()
    artifacts = Path(LocalRecorder(runs).get_run(run["run_id"])["path"]) / "artifacts"
    report = pd.read_parquet(artifacts / "report_normal_1day.parquet")
    # the backtest trades the model's test window (the strategy reads no signal), with trades on many bars
    assert report.index[0] == pd.Timestamp("2016-01-04") and report.index[-1] == pd.Timestamp("2016-03-21")
    assert report["total_turnover"].iloc[-1] > 0 and (report["turnover"] > 0).sum() > 10
    positions = pd.read_parquet(artifacts / "positions_normal_1day.parquet")
    per_day = positions.groupby(level="datetime").size()
    assert per_day.max() <= 4 and per_day.iloc[-1] >= 3


def test_qcore_backtest_with_it(store: Path, tmp_path: Path) -> None:
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store))
    dates = provider.calendar("day")[-40:]
    names = sorted(provider.universe("csi300"))
    index = pd.MultiIndex.from_product([dates, names], names=["datetime", "instrument"])
    pd.DataFrame({"score": np.random.default_rng(0).normal(size=len(index))}, index=index).to_parquet(
        tmp_path / "score.parquet")  # fmt: skip
    config = tmp_path / "bt.yaml"
    config.write_text(textwrap.dedent("""\
        strategy:
          class: inverse_volatility
          kwargs: {topk: 3, momentum_window: 5, volatility_window: 10, order_generator: with_interact}
        backtest:
          account: 1000000
          benchmark: SH000300
          exchange_kwargs: {limit_threshold: 0.095, deal_price: close, open_cost: 0.0005, close_cost: 0.0015,
                            min_cost: 5}
        """))
    result = CliRunner().invoke(cli, ["backtest", "--provider-uri", str(store), "--score",
                                      str(tmp_path / "score.parquet"), "--config", str(config), "--out",
                                      str(tmp_path / "out"), "--no-html"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = pd.read_parquet(tmp_path / "out" / "report.parquet")
    assert report.index[0] == dates[0] and report.index[-1] == dates[-2]  # the scores' window
    fills = pd.read_parquet(tmp_path / "out" / "fills.parquet")
    traded = fills[fills["value"] > 0]
    assert len(traded) > 10 and set(traded["instrument"]) <= set(provider.universe("all"))


def test_bad_arguments_are_config_errors(kernel: qcore.Kernel) -> None:
    from qcore.errors import ConfigError

    with pytest.raises(ConfigError, match="topk must be an integer >= 1") as err:
        kernel.create("strategy", "inverse_volatility", topk=0)
    assert err.value.path == "strategy.kwargs.topk"
    with pytest.raises(ConfigError, match="volatility_window must be an integer >= 2"):
        kernel.create("strategy", "inverse_volatility", volatility_window=1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ("{topk: 0}", "backtest.strategy.kwargs.topk: topk must be an integer >= 1, got 0"),
    ("{top_k: 3}", "backtest.strategy.kwargs.top_k: unknown keyword argument 'top_k' for strategy "
                   "'inverse_volatility'; did you mean 'topk'?"),
    ("{order_generator: greedy}", "backtest.strategy.kwargs.order_generator: order_generator must be one of "
                                  "without_interact, with_interact, got 'greedy'"),
])  # fmt: skip
def test_bad_arguments_fail_validation_before_training(store: Path, tmp_path: Path, kwargs: str,
                                                       message: str) -> None:  # fmt: skip
    path = tmp_path / "workflow.yaml"
    text = WORKFLOW.format(store=store, runs=tmp_path / "runs")
    text = text.replace("{topk: 4, momentum_window: 10, volatility_window: 15,\n"
                        "                                                market: csi300}", kwargs)  # fmt: skip
    assert kwargs in text
    path.write_text(text)
    for command in ("validate", "run"):
        result = CliRunner().invoke(cli, [command, str(path)])
        assert result.exit_code not in (0, 70) and message in result.output, result.output
        assert "Traceback" not in result.output
    recorder = LocalRecorder(tmp_path / "runs")
    runs = recorder.list_runs()
    assert len(runs) <= 1  # a run `qcore run` started failed in its checks: nothing was trained or stored
    for run in runs:
        stored = recorder.get_run(run["run_id"])
        assert stored["status"] == "FAILED" and not stored["artifacts"], stored


def test_no_qcore_or_qbacktest_file_names_it_and_it_imports_no_plugin() -> None:
    for folder in (ROOT / "qcore", ROOT / "plugins" / "qbacktest"):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".py", ".toml", ".md", ".txt", ".cfg", ".yaml"):
                text = path.read_text(errors="replace")
                assert "inverse_volatility" not in text and "qweight_toy" not in text, path
    imported: set[str] = set()
    for path in TOY.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "collections", "typing", "numpy", "pandas", "qcore"}, imported
