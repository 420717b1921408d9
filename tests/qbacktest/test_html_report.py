"""The HTML report: self-contained, and its charts render in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from qbacktest.html_report import render_html, write_html
from qbacktest.risk import risk_report

CHARTS = ("chart-equity", "chart-drawdown", "chart-monthly", "chart-turnover", "chart-ic")


def sample() -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2020-11-02", periods=120)
    ret = rng.normal(0.001, 0.01, len(dates))
    report = pd.DataFrame({"account": 1e8 * np.cumprod(1 + ret), "return": ret, "total_turnover": 0.0,
                           "turnover": rng.uniform(0.2, 0.4, len(dates)), "total_cost": 0.0,
                           "cost": rng.uniform(0, 5e-4, len(dates)), "value": 0.0, "cash": 0.0,
                           "bench": rng.normal(0.0005, 0.01, len(dates))}, index=dates)  # fmt: skip
    report.index.name = "datetime"
    ic = pd.DataFrame({"IC": rng.normal(0.05, 0.1, len(dates)), "RankIC": rng.normal(0.05, 0.1, len(dates))},
                      index=dates)  # fmt: skip
    return report, risk_report(report), ic


def test_report_is_self_contained_with_every_chart() -> None:
    report, risk, ic = sample()
    text = render_html(report, risk, ic=ic, meta={"strategy": "TopkDropout"})
    for chart in CHARTS:
        assert f'id="{chart}"' in text
    assert "<script" not in text and not re.search(r"(src|href)=[\"']https?:", text)
    assert "N=238" in text and "N=252" in text
    assert text.count('class="cell"') == 12 * 2  # 2020 and 2021 rows of the monthly heatmap
    no_label = render_html(report, risk)
    assert 'id="chart-ic"' not in no_label and "id='no-ic'" in no_label


@pytest.mark.skipif(shutil.which("chromium") is None and not os.environ.get("CI"),
                    reason="chromium is not on PATH (apt-get install -y chromium); the browser check is skipped")
def test_charts_render_in_headless_chromium(tmp_path) -> None:
    report, risk, ic = sample()
    page = tmp_path / "report.html"
    write_html(page, report, risk, ic=ic)
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--dump-dom", page.as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    for chart in CHARTS:
        match = re.search(rf'<svg[^>]*id="{chart}"[^>]*>(.*?)</svg>', dom, re.S)
        assert match, f"{chart} missing from the rendered DOM"
        assert re.search(r"<(polyline|path|rect)\b", match.group(1)), f"{chart} has no marks"
    assert dom.count("<polyline") >= 4
