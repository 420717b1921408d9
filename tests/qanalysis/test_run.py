"""The analysis record in real runs: the IC it shares with ``sig_analysis``, the report's size, the printed hint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from click.testing import CliRunner
from qanalysis.signal import calc_ic

from qcore.cli import cli

from .conftest import small_workflow


def test_analysis_and_sig_analysis_share_the_ic(two_runs: tuple[Path, list[Any]]) -> None:
    _, results = two_runs
    art = results[0].artifacts
    shared = pd.read_parquet(art["ic"])
    pd.testing.assert_frame_equal(pd.read_parquet(art["analysis_ic"]), shared)
    assert results[0].metrics["analysis.IC"] == results[0].metrics["signal.IC"]
    assert results[0].metrics["analysis.Rank_ICIR"] == results[0].metrics["signal.Rank_ICIR"]
    # and the analysis' own computation gives the same numbers (NaN on the same dates)
    own = calc_ic(pd.read_parquet(art["pred"])["score"], pd.read_parquet(art["label"]).iloc[:, 0])
    pd.testing.assert_frame_equal(own, shared, check_freq=False, rtol=1e-12)


def test_report_with_the_analysis_stays_small(two_runs: tuple[Path, list[Any]]) -> None:
    _, results = two_runs
    page = Path(results[0].artifacts["report.html"]).read_text(encoding="utf-8")
    assert "id='qa-groups'" in page and "id='qa-cum-status'" in page and "id='qa-holdings'" in page
    assert len(page.encode()) < 1_000_000


def test_run_without_backtest_prints_where_the_analysis_page_is(tmp_path: Path) -> None:
    config = small_workflow(tmp_path / "runs", 5, 1)
    del config["backtest"]
    path = tmp_path / "wf.json"  # JSON is YAML
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("Analysis report: "))
    page = Path(line.removeprefix("Analysis report: ").strip())
    assert page.name == "analysis.html" and "id='qa-ic-decay'" in page.read_text(encoding="utf-8")
