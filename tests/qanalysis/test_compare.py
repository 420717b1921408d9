"""``qcore runs compare A B --html OUT``: two real local runs' tables and curves in one self-contained page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from qanalysis.compare import comparison_sections

from qcore.cli import cli
from qcore.reporting import ComparedRun, artifact_folder, compared_runs

CURVES = ("cmp-equity", "cmp-excess", "cmp-drawdown", "cmp-ic", "cmp-rank-ic")


def _compare(runs: Path, ids: list[str], *extra: str) -> Any:
    return CliRunner().invoke(cli, ["runs", "--uri", str(runs), "compare", *ids, *extra])


def _svg(page: str, chart_id: str) -> str:
    match = re.search(rf"<svg id='{chart_id}'[^>]*>(.*?)</svg>", page, re.S)
    assert match, f"{chart_id} missing"
    return match.group(1)


def _hover_values(svg: str, label: str) -> list[float]:
    """The values of one run's line, from its points' hover titles."""
    return [float(v) for v in re.findall(rf"<title>{re.escape(label)} \S+: ([-0-9.e+]+)</title>", svg)]


def test_compare_html_draws_both_runs(two_runs: tuple[Path, list[Any]], tmp_path: Path) -> None:
    runs, results = two_runs
    ids = [r.run_id for r in results]
    out = tmp_path / "pages" / "compare.html"
    result = _compare(runs, ids, "--html", str(out))
    assert result.exit_code == 0, result.output
    assert f"comparison page: {out}" in result.output and "backtest.strategy.kwargs.topk" in result.output
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and not re.search(r"(src|href)=[\"']https?:", page)
    assert all(run_id in page for run_id in ids)
    labels = [f"A {ids[0]}", f"B {ids[1]}"]
    for chart in CURVES:
        svg = _svg(page, chart)
        assert svg.count("<polyline") == 2, chart  # one line a run
        assert all(len(_hover_values(svg, label)) > 10 for label in labels), chart
    # the curves are the runs' own numbers: the last point of each equity line is its compounded net return
    for label, run in zip(labels, results):
        report = pd.read_parquet(run.artifacts["report_normal_1day"])
        expected = float((1 + report["return"] - report["cost"]).prod() - 1)
        assert _hover_values(_svg(page, "cmp-equity"), label)[-1] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    # the runs traded differently (topk 5 vs 8), so their excess curves differ; their signal is the same model's
    excess = [_hover_values(_svg(page, "cmp-excess"), label) for label in labels]
    assert excess[0] != excess[1]
    assert _hover_values(_svg(page, "cmp-ic"), labels[0]) == _hover_values(_svg(page, "cmp-ic"), labels[1])
    metrics = re.search(r"<table id='cmp-metrics'>(.*?)</table>", page, re.S).group(1)
    assert "backtest.excess_cost.information_ratio" in metrics and "analysis.IC" in metrics
    params = re.search(r"<table id='cmp-params'>(.*?)</table>", page, re.S).group(1)
    assert re.search(r"kwargs.topk</th><td>5</td><td>8</td>", params)


def test_compare_json_stays_json_with_html(two_runs: tuple[Path, list[Any]], tmp_path: Path) -> None:
    runs, results = two_runs
    out = tmp_path / "c.html"
    result = _compare(runs, [r.run_id for r in results], "--json", "--html", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == [r.run_id for r in results]
    assert out.is_file()


def test_compare_refuses_bad_html_path_and_unknown_run(two_runs: tuple[Path, list[Any]], tmp_path: Path) -> None:
    runs, results = two_runs
    ids = [r.run_id for r in results]
    folder = _compare(runs, ids, "--html", str(tmp_path))
    assert folder.exit_code not in (0, 70) and "'--html'" in folder.output and "is a directory" in folder.output
    blocked = tmp_path / "file"
    blocked.write_text("x")
    under_file = _compare(runs, ids, "--html", str(blocked / "c.html"))
    assert under_file.exit_code not in (0, 70) and "is not a folder" in under_file.output
    unknown = _compare(runs, [ids[0], "nope"], "--html", str(tmp_path / "u.html"))
    assert unknown.exit_code not in (0, 70) and "nope" in unknown.output
    assert not (tmp_path / "u.html").exists()


def test_a_run_without_backtest_is_named_not_drawn(two_runs: tuple[Path, list[Any]]) -> None:
    runs, results = two_runs
    a, b = compared_runs([_info(runs, r.run_id) for r in results])
    b_signal_only = ComparedRun(b.run_id, b.label, b.info, {k: v for k, v in b.artifacts.items()
                                                             if not k.startswith("report_")})  # fmt: skip
    sections = {s.anchor: s.html for s in comparison_sections([a, b_signal_only])}
    assert set(sections) == {"compare-equity", "compare-excess", "compare-drawdown", "compare-ic", "compare-rank-ic"}
    equity = sections["compare-equity"]
    assert equity.count("<polyline") == 1 and f"{b.label}: no backtest report" in equity
    assert "no per-date IC" not in sections["compare-ic"] and sections["compare-ic"].count("<polyline") == 2
    assert comparison_sections([ComparedRun("x", "A x")]) == []  # nothing stored locally: nothing to draw


def _info(runs: Path, run_id: str) -> dict[str, Any]:
    from qcore.recorders.local import LocalRecorder

    return LocalRecorder(runs).get_run(run_id)


def test_artifact_folder_of_local_mlflow_and_remote_runs(tmp_path: Path) -> None:
    local = tmp_path / "run"
    (local / "artifacts").mkdir(parents=True)
    assert artifact_folder({"path": str(local)}) == local / "artifacts"
    mlflow_root = tmp_path / "mlruns" / "1" / "abc" / "artifacts"
    mlflow_root.mkdir(parents=True)
    assert artifact_folder({"path": mlflow_root.as_uri()}) == mlflow_root
    assert artifact_folder({"path": "s3://bucket/1/abc/artifacts"}) is None
    assert artifact_folder({"path": str(tmp_path / "gone")}) is None
    (mlflow_root / "ic.parquet").write_bytes(b"x")
    run = compared_runs([{"run_id": "f" * 32, "path": mlflow_root.as_uri(), "artifacts": ["ic.parquet", "lost.json"]}])
    assert run[0].label == "A ffffffff" and dict(run[0].artifacts) == {"ic.parquet": mlflow_root / "ic.parquet"}
