"""``qcore analyze`` on a hand-written CSV and on Parquet files, with labels given or computed from the store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from qcore.cli import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"


def test_analyze_csv_with_labels_from_the_store(tmp_path: Path) -> None:
    score = pd.read_parquet(DATA / "score.parquet").reset_index()
    score["datetime"] = score["datetime"].dt.strftime("%Y-%m-%d")
    csv = tmp_path / "pred.csv"
    score.to_csv(csv, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["analyze", "--pred", str(csv), "--provider-uri", str(STORE), "--ic-decay", "3",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    ic = pd.read_parquet(out / "ic.parquet")
    golden = pd.read_parquet(DATA / "ic.parquet")
    assert abs(ic["IC"].mean() - golden["IC"].mean()) < 1e-6
    assert list(pd.read_parquet(out / "ic_decay.parquet").index) == [1, 2, 3]
    page = (out / "analysis.html").read_text()
    assert "qa-group-returns" in page and "qa-ic-decay" in page and "<script" not in page
    assert len(page) < 2_000_000


def test_analyze_parquet_with_label_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["analyze", "--pred", str(DATA / "score.parquet"), "--label",
                                       str(DATA / "label.parquet"), "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    groups = pd.read_parquet(out / "group_returns.parquet").cumsum()
    golden = pd.read_parquet(DATA / "group_return.parquet")
    assert abs(groups["long-short"].iloc[-1] - golden["long-short"].iloc[-1]) < 1e-6


def test_analyze_refuses_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,code,score\n2020-01-01,A,1\n")
    runner = CliRunner()
    both = runner.invoke(cli, ["analyze", "--pred", str(bad), "--out", str(tmp_path / "o")])
    assert both.exit_code not in (0, 70) and "exactly one of --label and --provider-uri" in both.output
    cols = runner.invoke(cli, ["analyze", "--pred", str(bad), "--label", str(bad), "--out", str(tmp_path / "o")])
    assert cols.exit_code not in (0, 70) and "needs datetime and instrument" in cols.output
    assert not (tmp_path / "o").exists()
