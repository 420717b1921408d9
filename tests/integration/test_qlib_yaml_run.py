"""A Qlib ``qrun`` YAML runs unchanged (but for the data path) through ``qcore run``: Alpha158 → LightGBM →
signal, IC analysis and a TopkDropout backtest, recorded locally."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from qcore.cli import cli
from qcore.recorders.local import LocalRecorder
from tests.kernel.test_workflow import QLIB_YAML, STORE


def test_qlib_workflow_yaml_end_to_end(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "workflow_config_lightgbm_Alpha158.yaml"
    path.write_text(textwrap.dedent(QLIB_YAML).format(store=STORE))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        cli,
        ["run", str(path), "--set", "model.kwargs.num_boost_round=30", "--set", "recorder.name=local",
         "--set", f"recorder.kwargs.uri={runs}"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for label in ("IC", "Rank IC", "Annualised excess return (with cost)", "Max drawdown (with cost)"):
        assert label in result.output
    (run,) = LocalRecorder(runs).list_runs()
    stored = LocalRecorder(runs).get_run(run["run_id"])
    art = Path(stored["path"]) / "artifacts"
    assert {"pred.parquet", "label.parquet", "ic.parquet", "report_normal_1day.parquet", "risk.json",
            "report.html"} <= set(stored["artifacts"])
    report = pd.read_parquet(art / "report_normal_1day.parquet")
    assert list(report.columns) == ["account", "return", "total_turnover", "turnover", "total_cost", "cost", "value",
                                    "cash", "bench"]
    assert report.index[0] >= pd.Timestamp("2019-01-02") and report.index[-1] <= pd.Timestamp("2019-04-22")
    risk = json.loads((art / "risk.json").read_text())
    assert set(risk["excess_return_with_cost"]["sum"]) >= {"annualized_return", "information_ratio", "max_drawdown"}
    assert "<svg" in (art / "report.html").read_text()
