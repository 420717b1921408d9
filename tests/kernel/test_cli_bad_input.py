"""Bad arguments to the kernel's commands (``qcore expr``, ``qcore features``): each is a one-line error naming the
option, file and line or expression position, with a usage (2), config (3) or data (5) exit code, raised before
any evaluation; nothing is written, and nothing outside the output folder changes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from qcore.cli import ExitCode, cli


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli_bad") / "store"
    result = CliRunner().invoke(
        cli, ["data", "synth", "--out", str(folder), "--instruments", "8", "--days", "120", "--seed", "0"]
    )
    assert result.exit_code == 0, result.output
    return folder


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` with a digest of its bytes (and every folder, as ``dir``)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != ExitCode.INTERNAL, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def expr(store: Path, out: Path, *args: str) -> Result:
    return run("expr", "--provider-uri", str(store), "--out", str(out), *args)


def error_line(result: Result) -> str:
    """The ``Error: ...`` line of the output."""
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def refused_untouched(store: Path, work: Path, code: int, *args: str, command: str = "expr") -> str:
    """Run ``command`` with ``args`` writing into ``work/out.parquet``: it exits with ``code``, writes nothing and
    changes neither the store nor the work folder. Returns the error line."""
    before = snapshot(store, work)
    out = work / "out.parquet"
    if command == "expr":
        result = expr(store, out, *args)
    else:
        result = run(command, *args[:1], "--provider-uri", str(store), "--out", str(out), *args[1:])
    assert result.exit_code == code, result.output
    assert not out.exists()
    assert snapshot(store, work) == before
    return error_line(result)


# -- --field --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "culprit", "first", "second"),
    [
        (["$close", "$close"], "$close", 1, 2),
        (["Mean($close, 5)", "$open", "Mean($close, 5)"], "Mean($close, 5)", 1, 3),
        (["$open", "Ref($close,1)", "$high", "Ref($close,1)", "Ref($close,1)"], "Ref($close,1)", 2, 4),
    ],
)
def test_the_same_field_twice_is_refused(store, tmp_path, fields, culprit, first, second) -> None:
    args = [a for f in fields for a in ("--field", f)]
    line = refused_untouched(store, tmp_path, ExitCode.USAGE, *args)
    assert "'--field'" in line and f"{culprit!r} is given twice (occurrences {first} and {second})" in line


def test_fields_differing_in_spelling_are_two_columns(store, tmp_path) -> None:
    out = tmp_path / "out.parquet"
    result = expr(store, out, "--field", "Mean($close,5)", "--field", "Mean($close, 5)")
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["Mean($close,5)", "Mean($close, 5)"]
    pd.testing.assert_series_equal(frame.iloc[:, 0], frame.iloc[:, 1], check_names=False)


# -- --start / --end ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["expr", "features"])
@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("--start", "garbage", "not a date"),
        ("--start", "2015-13-45", "month must be in 1..12"),
        ("--end", "2015-02-30", "day is out of range"),
        ("--start", "", "empty date"),
        ("--end", "99999999999", "not a date"),
        ("--start", "yesterday", "not a date"),
        ("--start", "2015-01-05T09:30+08:00", "time-zone-aware"),
        ("--end", "01/02/2015", "not a date"),
        ("--start", "\udcff", "not a date"),
        ("--end", "10000-01-01", "not a date"),
    ],
)
def test_invalid_dates_name_the_option(store, tmp_path, command, option, value, why) -> None:
    if command == "expr":
        line = refused_untouched(store, tmp_path, ExitCode.CONFIG, option, value, "--field", "$close")
    else:
        line = refused_untouched(store, tmp_path, ExitCode.CONFIG, "alpha158", option, value, command="features")
    assert line.startswith(f"Error: {option}: expected a date") and why in line


@pytest.mark.parametrize(("start", "end"), [("2015-05-01", "2015-02-01"), ("2015-03-02", "2015-03-01")])
def test_start_after_end(store, tmp_path, start, end) -> None:
    line = refused_untouched(store, tmp_path, ExitCode.CONFIG, "--start", start, "--end", end, "--field", "$close")
    assert line == f"Error: --start {start} is after --end {end}"


@pytest.mark.parametrize(
    ("args", "asked"),
    [
        (("--start", "2030-01-01"), "2030-01-01 .. the end"),
        (("--end", "2001-01-01"), "the beginning .. 2001-01-01"),
        (("--start", "2015-02-21", "--end", "2015-02-22"), "2015-02-21 .. 2015-02-22"),  # a weekend
    ],
)
def test_a_range_without_trading_days_names_the_calendar(store, tmp_path, args, asked) -> None:
    line = refused_untouched(store, tmp_path, ExitCode.FAILED, *args, "--field", "$close")
    assert f"no trading day in {asked}: the day calendar" in line
    assert "calendar runs from 2015-01-05 to 2015-06-29" in line


# -- --fields-file ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"a," + b"$close+" * 20_000 + b"$close\n", 1, "field larger than field limit"),
        (b'name,expression\nb,"' + b"1+" * 70_000 + b'1"\n', 2, "field larger than field limit"),
        (b"name,expression\na,$close\nb,$open\xff\n", 3, "not UTF-8 text: byte 0xff"),
        (b"\xff\xfea\x00,\x00$\x00c\x00", 1, "not UTF-8 text: byte 0xff"),  # UTF-16
        (b"a,$close\nb\n", 2, "expected 'name,expression'"),
        (b"a,$close\n,$open\n", 2, "expected 'name,expression'"),
        (b"a,\n", 1, "expected 'name,expression'"),
        (b"a,$close\na,$open\n", 2, "duplicate name 'a'"),
        (b"instrument,$close\n", 1, "name 'instrument' is taken by the output's index"),
        (b"x,$close\ndatetime,$open\n", 2, "name 'datetime' is taken by the output's index"),
        (b"", None, "no expression in file"),
        (b"name,expression\n", None, "no expression in file"),
        (b"# nothing but a comment\n\n", None, "no expression in file"),
    ],
)
def test_malformed_fields_files_name_file_and_line(store, tmp_path, content, line, message) -> None:
    fields = tmp_path / "fields.csv"
    fields.write_bytes(content)
    error = refused_untouched(store, tmp_path, ExitCode.CONFIG, "--fields-file", str(fields))
    where = f"{fields}:{line}: " if line else f"{fields}: "
    assert error.startswith(f"Error: {where}") and message in error


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"a,$clo\x00se\n", "unexpected character '\\x00'"),
        (b"a,Ref(2, 5)\n", "Ref argument 'x' must be a series"),
        (b"a,'abc'\n", "a string literal ('abc') is not an expression"),
    ],
)
def test_bad_expressions_in_a_fields_file(store, tmp_path, content, fragment) -> None:
    fields = tmp_path / "fields.csv"
    fields.write_bytes(content)
    refused_untouched(store, tmp_path, ExitCode.CONFIG, "--fields-file", str(fields))
    result = expr(store, tmp_path / "out.parquet", "--fields-file", str(fields))
    assert fragment in result.output and "^" in result.output


def test_fields_file_with_a_byte_order_mark_and_crlf(store, tmp_path) -> None:
    fields = tmp_path / "fields.csv"
    fields.write_bytes(b"\xef\xbb\xbfname,expression\r\nma,\"Mean($close, 5)\"\r\nret,$close/Ref($close,1)-1\r\n")
    out = tmp_path / "out.parquet"
    result = expr(store, out, "--fields-file", str(fields))
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out).columns) == ["ma", "ret"]


# -- --out ----------------------------------------------------------------------------------------------------------


def test_out_under_a_file_is_refused_before_evaluating(store, tmp_path) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("keep me")
    for out in (blocker / "x.parquet", blocker / "deeper" / "x.parquet"):
        before = snapshot(store, tmp_path)
        result = expr(store, out, "--field", "$close")
        assert result.exit_code == ExitCode.USAGE
        line = error_line(result)
        assert "'--out'" in line and f"{blocker} is not a folder" in line
        assert snapshot(store, tmp_path) == before


def test_out_onto_a_folder_is_refused(store, tmp_path) -> None:
    before = snapshot(store, tmp_path)
    result = expr(store, tmp_path, "--field", "$close")
    assert result.exit_code == ExitCode.USAGE and "'--out'" in error_line(result)
    assert snapshot(store, tmp_path) == before


@pytest.mark.parametrize("inside", ["calendars/day.txt", "features/new.parquet", "instruments/all.txt", "x.parquet"])
def test_out_inside_the_store_being_read_is_refused(store, tmp_path, inside) -> None:
    before = snapshot(store, tmp_path)
    result = expr(store, store / inside, "--field", "$close")
    assert result.exit_code == ExitCode.USAGE
    assert "'--out'" in error_line(result) and "is inside the store being read" in error_line(result)
    assert snapshot(store, tmp_path) == before


@pytest.mark.parametrize("content", [b"name,close\nx,1\n", b"# notes\n", b"\x89PNG\r\n"])
def test_out_never_replaces_a_file_that_is_not_parquet(store, tmp_path, content) -> None:
    precious = tmp_path / "results.csv"
    precious.write_bytes(content)
    before = snapshot(store, tmp_path)
    result = expr(store, precious, "--field", "$close")
    assert result.exit_code == ExitCode.USAGE
    assert f"{precious} exists and is not a Parquet or Arrow file" in error_line(result)
    assert snapshot(store, tmp_path) == before


def test_out_replaces_an_older_parquet_result(store, tmp_path) -> None:
    out = tmp_path / "out.parquet"
    assert expr(store, out, "--field", "$close").exit_code == 0
    result = expr(store, out, "--field", "$open", "--field", "$high")
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out).columns) == ["$open", "$high"]


def test_out_into_missing_folders_creates_only_them(store, tmp_path) -> None:
    out = tmp_path / "a" / "b" / "out.parquet"
    result = expr(store, out, "--field", "$close")
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/out.parquet"]


def test_a_failed_evaluation_creates_no_output_folder(store, tmp_path) -> None:
    out = tmp_path / "new" / "out.parquet"
    result = expr(store, out, "--field", "Mean($close, 5", "--start", "2015-02-01")
    assert result.exit_code == ExitCode.CONFIG
    assert list(tmp_path.iterdir()) == []


# -- --instruments, --provider, --provider-uri, --freq ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        ("NOPE", ExitCode.USAGE, "'NOPE' is neither a market nor a symbol of the store"),
        ("sh600074", ExitCode.USAGE, "did you mean 'SH600074'?"),
        ("csi30", ExitCode.USAGE, "did you mean 'csi300'?"),
        (",", ExitCode.USAGE, "',' names no instrument"),
        (" , ,", ExitCode.USAGE, "names no instrument"),
        ("", ExitCode.USAGE, "give a market name or symbols"),
        ("SH600074,nope", ExitCode.FAILED, "unknown instruments: nope"),
        ("sh600074,SH600184", ExitCode.FAILED, "sh600074 (did you mean 'SH600074'?)"),
    ],
)
def test_unknown_instruments(store, tmp_path, value, code, message) -> None:
    line = refused_untouched(store, tmp_path, code, "--instruments", value, "--field", "$close")
    assert message in line
    if code == ExitCode.USAGE:
        assert "'--instruments'" in line


def test_one_symbol_is_a_list_of_one(store, tmp_path) -> None:
    out = tmp_path / "out.parquet"
    result = expr(store, out, "--instruments", "SH600074", "--field", "$close")
    assert result.exit_code == 0, result.output
    assert set(pd.read_parquet(out).index.get_level_values("instrument")) == {"SH600074"}


def test_provider_uri_that_is_no_store(store, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for uri, fragment in ((empty, "calendars/day.txt"), (a_file, str(a_file)), (tmp_path / "missing", "missing")):
        before = snapshot(tmp_path)
        result = run("expr", "--provider-uri", str(uri), "--field", "$close", "--out", str(tmp_path / "o.parquet"))
        assert result.exit_code == ExitCode.DATA, result.output
        assert fragment in error_line(result)
        assert snapshot(tmp_path) == before


def test_frequency_the_store_lacks(store, tmp_path) -> None:
    line = refused_untouched(store, tmp_path, ExitCode.DATA, "--freq", "1min", "--field", "$close")
    assert "calendar file for freq '1min' not found (available freqs: day)" in line


def test_provider_that_takes_no_uri(store, tmp_path) -> None:
    line = refused_untouched(store, tmp_path, ExitCode.USAGE, "--provider", "toy", "--field", "$close")
    assert "'--provider'" in line and "data provider 'toy' takes no provider_uri" in line


def test_unknown_provider(store, tmp_path) -> None:
    line = refused_untouched(store, tmp_path, ExitCode.CONFIG, "--provider", "qlib_bni", "--field", "$close")
    assert "unknown data_provider 'qlib_bni'; did you mean 'qlib_bin'?" in line


# -- expressions on the command line ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("Ref(2, 5)", "Ref argument 'x' must be a series"),
        ("Corr(1, $close, 5)", "Corr argument 'x' must be a series"),
        ("'abc'", "string literal"),
        ('"x"', "string literal"),
        ("(" * 5000 + "$close" + ")" * 5000, "nested too deeply"),
        ("Maen($close, 5)", "did you mean 'Mean'"),
        ("", "empty expression"),
        ("Mean($close, 1" + "0" * 400 + ")", "is out of range"),
    ],
)
def test_bad_expressions_point_at_the_culprit(store, tmp_path, expression, fragment) -> None:
    before = snapshot(store, tmp_path)
    result = expr(store, tmp_path / "out.parquet", "--field", "$open", "--field", expression)
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert fragment in result.output and "at position" in result.output and "^" in result.output
    assert snapshot(store, tmp_path) == before


@pytest.mark.parametrize(
    "args",
    [
        ["expr", "--provider-uri", "{store}", "--field", "$close\x00", "--out", "{work}/x.parquet"],
        ["expr", "--provider-uri", "{store}", "--field", "$close", "--out", "{work}/x\x00.parquet"],
        ["expr", "--provider-uri", "{store}\x00", "--field", "$close", "--out", "{work}/x.parquet"],
        ["expr", "--provider-uri", "{store}", "--fields-file", "{work}/\x00f.csv", "--out", "{work}/x.parquet"],
        ["features", "alpha158", "--provider-uri", "{store}", "--out", "{work}/x.parquet", "--start", "2015\x00"],
        ["validate", "{work}/c\x00.yaml"],
        ["data", "check", "{store}\x00"],
        ["list", "models\x00"],
    ],
)
def test_nul_in_any_argument_is_a_usage_error(store, tmp_path, args) -> None:
    filled = [a.format(store=store, work=tmp_path) for a in args]
    culprit = next(i for i, a in enumerate(filled, start=1) if "\x00" in a)
    before = snapshot(store, tmp_path)
    result = run(*filled)
    assert result.exit_code == ExitCode.USAGE
    assert error_line(result).startswith(f"Error: argument {culprit} (") and "contains a NUL character" in result.output
    assert snapshot(store, tmp_path) == before


def test_huge_window_evaluates_as_the_whole_history(store, tmp_path) -> None:
    out = tmp_path / "out.parquet"
    result = expr(store, out, "--field", "Mean($close, 99999999999999999999)", "--field", "Mean($close, 0)")
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    pd.testing.assert_series_equal(frame.iloc[:, 0], frame.iloc[:, 1], check_names=False, rtol=1e-5)


# -- features ------------------------------------------------------------------------------------------------------


def test_features_refuses_bad_arguments_before_evaluating(store, tmp_path) -> None:
    line = refused_untouched(store, tmp_path, ExitCode.CONFIG, "alpha185", command="features")
    assert "unknown feature_set 'alpha185'" in line
    line = refused_untouched(store, tmp_path, ExitCode.FAILED, "alpha158", "--start", "2030-01-01", command="features")
    assert "calendar runs from 2015-01-05 to 2015-06-29" in line
    blocker = tmp_path / "f"
    blocker.write_text("")
    result = run("features", "alpha158", "--provider-uri", str(store), "--out", str(blocker / "x.parquet"))
    assert result.exit_code == ExitCode.USAGE and "'--out'" in error_line(result)
