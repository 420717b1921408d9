"""A workflow whose backtest has no benchmark (``benchmark: null``): the statistics that need one are missing
(NaN in the report, null in ``risk.json``), and the run, its metrics and its HTML report still come out."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from qcore.cli import cli
from qcore.recorders.local import LocalRecorder
from tests.expr.test_missing_fields import build_store

WORKFLOW = """\
experiment: no_benchmark
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
model: {{name: linear, kwargs: {{estimator: ridge, alpha: 1.0}}}}
backtest:
  strategy: {{name: TopkDropout, kwargs: {{topk: 4, n_drop: 1}}}}
  account: 10000000
  benchmark: null
recorder: {{name: local, kwargs: {{uri: "{runs}"}}}}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("no_benchmark"), "full", ())


def test_a_backtest_without_benchmark_runs_and_reports(store: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    path = tmp_path / "workflow.yaml"
    path.write_text(WORKFLOW.format(store=store, runs=runs))
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 0, result.output
    (run,) = LocalRecorder(runs).list_runs()
    stored = LocalRecorder(runs).get_run(run["run_id"])
    artifacts = Path(stored["path"]) / "artifacts"
    risk = json.loads((artifacts / "risk.json").read_text())
    assert risk["return"]["sum"]["annualized_return"] is not None  # the strategy's own return is known
    html = (artifacts / "report.html").read_text()
    assert "<h2>Summary</h2>" in html
    values = [value for history in stored["metrics"].values() for _, value in history]  # [[step, value], ...]
    assert values and all(math.isfinite(value) for value in values)  # a missing statistic is left out, not NaN
