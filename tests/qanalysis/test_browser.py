"""A real run's HTML report with the analysis sections, and the comparison page, rendered in headless Chromium:
every chart has marks, every table has values, and the page logs nothing to the console."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from qcore.cli import cli

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"),
    reason="chromium is not on PATH (apt-get install -y chromium); the browser check is skipped",
)

#: The analysis sections' charts in a run's report (a backtest's report: the position ones too).
ANALYSIS_CHARTS = ("qa-group-returns", "qa-ic", "qa-ic-hist", "qa-ic-qq", "qa-ic-decay", "qa-autocorr", "qa-turnover",
                   "qa-coverage", "qa-cum-status", "qa-rank-label", "qa-rolling", "qa-holdings")  # fmt: skip
ANALYSIS_TABLES = ("qa-ic-summary", "qa-monthly-ic", "qa-monthly-risk", "qa-costs")
#: Chromium's log line of a page's console message (``--enable-logging=stderr``).
CONSOLE = re.compile(r":CONSOLE[:(]")


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM Chromium builds from ``page`` and the console messages it logged."""
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout, [line for line in done.stderr.splitlines() if CONSOLE.search(line)]


def marks(dom: str, chart_id: str) -> int:
    """Drawn marks (lines with points, bars, dots) of the ``<svg>`` with ``chart_id`` in a rendered DOM."""
    match = re.search(rf"<svg[^>]*id=\"{chart_id}\"[^>]*>(.*?)</svg>", dom, re.S)
    assert match, f"{chart_id} missing from the rendered DOM"
    lines = re.findall(r"<polyline[^>]*points=\"([^\"]*)\"", match.group(1))
    return sum(len(points.split()) for points in lines) + len(re.findall(r"<(rect|circle)\b", match.group(1)))


def test_the_console_check_sees_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('qa-broken')</script></body></html>")
    _, console = render(page, tmp_path / "profile")
    assert any("qa-broken" in line for line in console)


def test_run_report_shows_the_analysis_in_a_browser(two_runs: tuple[Path, list[Any]], tmp_path: Path) -> None:
    _, results = two_runs
    dom, console = render(Path(results[0].artifacts["report.html"]), tmp_path / "profile")
    assert console == []
    for chart in ("chart-equity", "chart-ic", *ANALYSIS_CHARTS):
        assert marks(dom, chart) >= 2, f"{chart} has no data"
    for table in ANALYSIS_TABLES:
        match = re.search(rf"<table id=\"{table}\">(.*?)</table>", dom, re.S)
        assert match and re.search(r"<td[^>]*>-?\d", match.group(1)), f"{table} has no values"


def test_comparison_page_in_a_browser(two_runs: tuple[Path, list[Any]], tmp_path: Path) -> None:
    runs, results = two_runs
    out = tmp_path / "compare.html"
    result = CliRunner().invoke(cli, ["runs", "--uri", str(runs), "compare", *[r.run_id for r in results],
                                      "--html", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    dom, console = render(out, tmp_path / "profile")
    assert console == []
    for chart in ("cmp-equity", "cmp-excess", "cmp-drawdown", "cmp-ic", "cmp-rank-ic"):
        svg = re.search(rf"<svg[^>]*id=\"{chart}\"[^>]*>(.*?)</svg>", dom, re.S).group(1)
        assert len(re.findall(r"<polyline[^>]*points=\"[^\"]+\"", svg)) == 2, f"{chart}: a line per run expected"
