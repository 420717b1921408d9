"""``qcore expr`` and ``qcore features`` write Parquet files of evaluated expressions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from qcore.cli import ExitCode, cli

STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_expr_fields_and_names_file(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    result = run("expr", "--provider-uri", str(STORE), "--instruments", "SH600000,SZ000001", "--start", "2018-03-01",
                 "--end", "2018-03-30", "--field", "$close", "--field", "Mean($close, 5)", "--out", str(out))
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["$close", "Mean($close, 5)"]
    assert frame.index.names == ["instrument", "datetime"]
    assert set(frame.index.get_level_values(0)) == {"SH600000", "SZ000001"}
    names = tmp_path / "fields.csv"
    names.write_text("name,expression\nma5,\"Mean($close, 5)\"\nret,$close/Ref($close,1)-1\n")
    result = run("expr", "--provider-uri", str(STORE), "--fields-file", str(names), "--out", str(out))
    assert result.exit_code == 0, result.output
    named = pd.read_parquet(out)
    assert list(named.columns) == ["ma5", "ret"]
    pd.testing.assert_series_equal(named["ma5"].loc[frame.index], frame["Mean($close, 5)"], check_names=False)


def test_expr_writes_arrow_ipc_by_suffix_or_option(tmp_path: Path) -> None:
    import pyarrow.ipc as ipc

    args = ("expr", "--provider-uri", str(STORE), "--instruments", "SH600000", "--field", "Mean($close, 5)")
    parquet = tmp_path / "x.parquet"
    assert run(*args, "--out", str(parquet)).exit_code == 0
    expected = pd.read_parquet(parquet)
    for out, extra in [(tmp_path / "x.arrow", ()), (tmp_path / "y.bin", ("--format", "arrow"))]:
        result = run(*args, "--out", str(out), *extra)
        assert result.exit_code == 0, result.output
        with ipc.open_file(str(out)) as reader:
            pd.testing.assert_frame_equal(reader.read_pandas(), expected)


def test_expr_errors(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    bad = run("expr", "--provider-uri", str(STORE), "--field", "Mean($close 5)", "--out", str(out))
    assert bad.exit_code == ExitCode.CONFIG
    assert "expected ',' or ')' after argument 1 of Mean" in bad.output and "^" in bad.output
    assert not out.exists()
    names = tmp_path / "f.csv"
    names.write_text("a,$close\nb\n")
    bad = run("expr", "--provider-uri", str(STORE), "--fields-file", str(names), "--out", str(out))
    assert bad.exit_code == ExitCode.CONFIG and "f.csv:2: expected 'name,expression'" in bad.output
    both = run("expr", "--provider-uri", str(STORE), "--out", str(out))
    assert both.exit_code == 2 and "--field" in both.output
