"""Hostile and careless config files: YAML bombs, recursive aliases, duplicate keys, unreadable bytes.

Every one ends in a one-line :class:`ConfigError` naming the file (and line, where there is one), never an
internal error, and quickly: the loader bounds alias expansion instead of expanding it.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from qcore.cli import ExitCode, cli
from qcore.config import MAX_ALIASES, MAX_NODES, load_config, parse_yaml, read_yaml
from qcore.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TAIL = "data: {provider: {name: toy, kwargs: {n_instruments: 4, n_days: 30}}}\n"


def validate(path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", str(path), *args])
    return result.exit_code, result.output.strip()


def write(tmp_path: Path, text: str | bytes, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic nested-anchor bomb: ``width ** levels`` strings from a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n" + TAIL


def one_line(output: str) -> str:
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output and "internal error" not in output
    return lines[0]


# ---------------------------------------------------------------------------------------------------------------
# Alias expansion
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("levels", "width"), [(9, 9), (6, 20), (20, 2), (4, 400)])
def test_alias_bombs_are_refused_fast(tmp_path: Path, levels: int, width: int) -> None:
    text = billion_laughs(levels, width)
    assert len(text) < 10_000 and width**levels > MAX_NODES
    path = write(tmp_path, text)
    before = snapshot(tmp_path)
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert re.search(r"expands to more than \d+ values through its aliases|more than \d+ aliases", message)
    assert snapshot(tmp_path) == before


def test_bomb_through_the_cli_is_one_line_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, billion_laughs())
    started = time.perf_counter()
    code, output = validate(path)
    assert time.perf_counter() - started < 5.0
    assert code == ExitCode.CONFIG
    line = one_line(output)
    match = re.match(rf"Error: {re.escape(str(path))}:(\d+): (l\d+): expands to more than", line)
    assert match, line
    assert f"{match.group(2)}: &{match.group(2)}" in path.read_text().splitlines()[int(match.group(1)) - 1]


def test_many_aliases_are_refused(tmp_path: Path) -> None:
    text = "a: &a 1\nitems: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n" + TAIL
    with pytest.raises(ConfigError, match=rf"wf.yaml:2: more than {MAX_ALIASES} aliases"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: &a [1, *a]\n", 1),
        ("a: &a {x: 1, y: *a}\n", 1),
        ("a: &a\n  b:\n    c: [*a]\n", 3),
        ("base: &base\n  <<: *base\n  x: 1\n", 2),
        ("a: &a\n  - &b [*a]\n", 2),
    ],
    ids=["list", "mapping", "nested", "merge-key", "inner-anchor"],
)
def test_recursive_aliases_are_refused(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text + TAIL)
    with pytest.raises(ConfigError, match=rf"wf.yaml:{line}: recursive alias \*\w+"):
        load_config(path)
    code, output = validate(path)
    assert code == ExitCode.CONFIG
    assert "recursive alias" in one_line(output)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    for text in ("x: " + "[" * 5000 + "]" * 5000 + "\n", "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"):
        with pytest.raises(ConfigError, match=r"wf.yaml:1: nested more than \d+ levels deep"):
            load_config(write(tmp_path, text + TAIL))


def test_ordinary_anchors_still_work(tmp_path: Path) -> None:
    text = textwrap.dedent("""
        shared: &shared {n_instruments: 4, n_days: 30}
        data:
          provider: {name: toy, kwargs: {<<: *shared, n_days: 40}}
          universe: even
        recorder: {name: local, kwargs: {uri: runs}}
    """)
    doc = parse_yaml(text)
    assert doc.data["data"]["provider"]["kwargs"] == {"n_instruments": 4, "n_days": 40}
    with pytest.raises(ConfigError, match=r"wf.yaml:2: shared: unknown key 'shared'"):
        load_config(write(tmp_path, text))


# ---------------------------------------------------------------------------------------------------------------
# Duplicate keys
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "line", "first"),
    [
        ("experiment: a\nexperiment: b\n", "experiment", 2, 1),
        ("seed: 1\nmodel: {name: linear, name: lightgbm}\n", "model.name", 2, 2),
        ("x:\n  y:\n    - {p: 1}\n    - {p: 1,\n       p: 2}\n", "x.y.1.p", 5, 4),
    ],
    ids=["top", "flow", "in-list"],
)
def test_duplicate_keys_name_both_lines(tmp_path: Path, text: str, path: str, line: int, first: int) -> None:
    file = write(tmp_path, text + TAIL)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(info.value) == (f"{file}:{line}: {path}: duplicate key {path.rpartition('.')[2]!r} (also on line "
                               f"{first}; YAML would keep only the last)")  # fmt: skip


def test_duplicate_keys_in_a_qlib_config(tmp_path: Path) -> None:
    text = textwrap.dedent("""
        qlib_init:
            provider_uri: /nowhere
            region: cn
        task:
            model:
                class: LGBModel
                kwargs: {num_leaves: 8}
            model:
                class: LinearModel
    """).lstrip()
    code, output = validate(write(tmp_path, text))
    assert code == ExitCode.CONFIG
    assert one_line(output).endswith("wf.yaml:8: task.model: duplicate key 'model' (also on line 5; YAML would keep "
                                     "only the last)")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# What a file holds: encodings, binary junk, folders, nothing, not a mapping
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("experiment: café\n".encode("latin-1") + TAIL.encode(), r":1: not UTF-8 text: byte 0xe9 cannot be decoded"),
        (TAIL.encode() + "experiment: naïve\n".encode("cp1252"), r":2: not UTF-8 text: byte 0xef cannot be decoded"),
        (bytes(range(256)) * 4, r": not UTF-8 text: byte 0x80|unacceptable character"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(64), r":1: invalid YAML: unacceptable character 0x00(00|7f)"),
        (TAIL.encode() + b"experiment: a\x00b\n", r":2: invalid YAML: unacceptable character 0x0000"),
        (b"", r": the config file is empty"),
        (b"# only a comment\n\n", r": the config file is empty"),
        (b"- data\n- model\n", r":1: the top level must be a mapping of keys, got a list"),
        (b"just text\n", r":1: the top level must be a mapping of keys, got a string"),
        (b"~\n", r":1: the top level must be a mapping of keys, got nothing \(null\)"),
        (b"data: [\n", r":2: invalid YAML: "),
        (TAIL.encode() + b"seed: !!int abc\n", r":2: cannot read 'abc' as int"),
        (TAIL.encode() + b"seed: !!python/object/apply:os.system [echo hi]\n",
         r":2: invalid YAML: could not determine"),
        (TAIL.encode() + b"seed: " + b"9" * 5000 + b"\n", r":2: cannot read .* as int"),
        (TAIL.encode() + b"---\nseed: 1\n", r":2: invalid YAML: but found another document"),
    ],
    ids=["latin1", "cp1252", "binary", "elf", "nul", "empty", "comments", "list", "scalar", "null", "syntax",
         "bad-int", "python-tag", "huge-int", "two-documents"],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, raw: bytes, message: str) -> None:
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
    assert re.search(message, str(info.value)), str(info.value)
    code, output = validate(path)
    assert code == ExitCode.CONFIG
    assert one_line(output).startswith(f"Error: {path}")


def test_a_folder_and_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": is a folder, not a config file"):
        read_yaml(tmp_path)
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found"):
        read_yaml(tmp_path / "nope.yaml")
    code, output = validate(tmp_path)
    assert code not in (0, ExitCode.INTERNAL) and "is a directory" in output


def test_a_huge_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, TAIL + "# " + "x" * (5 * 1024 * 1024) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"wf.yaml: config file is larger than 4 MiB"):
        load_config(path)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_unicode_with_a_bom_is_read(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, ("experiment: 日本\n" + TAIL).encode(encoding))
    assert load_config(path).experiment == "日本"


def test_values_from_the_environment_and_set_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "experiment: ${EXP}\n" + TAIL)
    monkeypatch.setenv("EXP", "&a [*a]")
    assert load_config(path).experiment == "&a [*a]"  # not YAML that can be built: kept as text, then validated
    bomb = "[&a [lol, lol, lol, lol, lol, lol, lol, lol, lol], " + ", ".join(
        f"&{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(9)) + "]"
    monkeypatch.setenv("EXP", bomb)
    started = time.perf_counter()
    assert load_config(path).experiment == bomb  # refused as YAML: the text itself, a valid experiment name
    assert time.perf_counter() - started < 2.0
    monkeypatch.setenv("EXP", "ok")
    for value in ("2020-02-30", "!!int abc", "&a [*a]", "[" * 2000, bomb):
        with pytest.raises(ConfigError, match=r"wf.yaml: data\.start: expected a date such as 2020-01-31"):
            load_config(path, [f"data.start={value}"])


# ---------------------------------------------------------------------------------------------------------------
# The configs people write still load
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("workflow_*.yaml")), ids=lambda p: p.name)
def test_example_workflows_load(path: Path) -> None:
    config = load_config(path)
    assert config.source == str(path) and config.data.provider.name


def test_a_qlib_config_with_anchors_loads(tmp_path: Path) -> None:
    text = textwrap.dedent("""
        qlib_init: {provider_uri: /nowhere, region: cn}
        market: &market csi300
        benchmark: &benchmark SH000300
        data_handler_config: &data_handler_config
            start_time: 2008-01-01
            end_time: 2020-08-01
            fit_start_time: 2008-01-01
            fit_end_time: 2014-12-31
            instruments: *market
        port_analysis_config: &port_analysis_config
            strategy:
                class: TopkDropoutStrategy
                module_path: qlib.contrib.strategy
                kwargs: {signal: <PRED>, topk: 50, n_drop: 5}
            backtest:
                start_time: 2017-01-01
                end_time: 2020-08-01
                account: 1e8
                benchmark: *benchmark
                exchange_kwargs: {limit_threshold: 0.095, deal_price: close, open_cost: 0.0005, close_cost: 0.0015,
                                  min_cost: 5}
        task:
            model:
                class: LGBModel
                module_path: qlib.contrib.model.gbdt
                kwargs: {loss: mse, learning_rate: 2e-1, num_leaves: 210}
            dataset:
                class: DatasetH
                module_path: qlib.data.dataset
                kwargs:
                    handler: {class: Alpha158, module_path: qlib.contrib.data.handler, kwargs: *data_handler_config}
                    segments:
                        train: [2008-01-01, 2014-12-31]
                        valid: [2015-01-01, 2016-12-31]
                        test: [2017-01-01, 2020-08-01]
            record:
                - {class: SignalRecord, module_path: qlib.workflow.record_temp, kwargs: {}}
                - class: PortAnaRecord
                  module_path: qlib.workflow.record_temp
                  kwargs: {config: *port_analysis_config}
    """)
    config = load_config(write(tmp_path, text))
    assert config.data.universe == "csi300"
    assert config.sections["backtest"].account == 1e8
    assert config.model is not None and config.model.kwargs["learning_rate"] == 0.2
    assert str(config.dataset.segments["test"][1].date()) == "2020-08-01"


def test_yaml_exponent_numbers_are_numbers() -> None:
    data = parse_yaml("a: 1e8\nb: -5e-4\nc: 1.5e3\nd: 1e\ne: '1e8'\n").data
    assert data == {"a": 1e8, "b": -5e-4, "c": 1500.0, "d": "1e", "e": "1e8"}
    assert isinstance(data["a"], float)


def test_nothing_is_written_by_validate(tmp_path: Path) -> None:
    path = write(tmp_path, billion_laughs())
    before = snapshot(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        validate(path)
        validate(write(tmp_path, b"\xff\xfe\x00junk", "junk.yaml"))
    finally:
        os.chdir(cwd)
    after = snapshot(tmp_path)
    after.pop("junk.yaml")
    assert after == before
