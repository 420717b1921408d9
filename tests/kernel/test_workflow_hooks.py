"""Plugins shape a workflow through the kernel's hooks only: config sections they own, default records, the rows and
hints ``qcore run`` prints, foreign config formats, and the run state records hand each other.

The probe plugin (``tests/kernel/workflow_probe.py``) is loaded in-process, by module path; the kernel knows
nothing of it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import qcore
from qcore.checks import check_components, check_names
from qcore.cli import ExitCode, cli
from qcore.config import config_from_mapping, load_config
from qcore.context import RunState
from qcore.errors import ComponentContractError, ConfigError
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection

from . import workflow_probe

PROBE = "tests.kernel.workflow_probe"
STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"


@pytest.fixture(scope="module")
def probe_kernel() -> Kernel:
    """Every installed plugin and the probe."""
    return Kernel.load(PluginSelection.parse([PROBE]), use_env=False)


@pytest.fixture(scope="module")
def bare_kernel() -> Kernel:
    """The built-in plugins and the probe only."""
    return Kernel.load(PluginSelection((PROBE,), (), False), use_env=False)


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


TOY = """
plugins: [tests.kernel.workflow_probe]
data:
  provider: {name: toy, kwargs: {n_instruments: 4, n_days: 30}}
probe:
  level: 3
records: [probe_record]
recorder: {name: local, kwargs: {uri: RUNS}}
"""


# ---------------------------------------------------------------------------------------------------------------
# Plugin-owned config sections
# ---------------------------------------------------------------------------------------------------------------


def test_a_plugin_section_is_parsed_into_config_sections_and_its_components_are_listed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, TOY))  # the kernel comes from the document's own plugins: key
    assert config.sections["probe"] == workflow_probe.Probe(3, qcore.config.ComponentSpec("probe_record"))
    assert ("probe.record", "record", "probe_record") in config.components()
    assert config.components().index(("probe.record", "record", "probe_record")) < config.components().index(
        ("records.0", "record", "probe_record"))


def test_a_plugin_section_reports_its_errors_at_the_key_and_line(tmp_path: Path, probe_kernel: Kernel) -> None:
    path = write(tmp_path, TOY.replace("level: 3", "level: 12"))
    with pytest.raises(ConfigError) as info:
        load_config(path, kernel=probe_kernel)
    assert str(info.value).startswith(f"{path}:{line_of(path, 'level:')}: probe.level: expected an integer in 0..9")
    path = write(tmp_path, TOY.replace("level: 3", "level: 3\n  colour: red"))
    with pytest.raises(ConfigError, match=rf":{line_of(path, 'colour')}: probe.colour: unknown key 'colour'"):
        load_config(path, kernel=probe_kernel)


def test_names_a_section_holds_are_checked_like_the_kernels_own(tmp_path: Path, probe_kernel: Kernel) -> None:
    path = write(tmp_path, TOY.replace("level: 3", "level: 3\n  record: sig_analysys"))
    config = load_config(path, kernel=probe_kernel)
    with pytest.raises(ConfigError) as info:
        check_names(config, probe_kernel)
    assert str(info.value).startswith(f"{path}:{line_of(path, 'record: sig')}: probe.record: unknown record "
                                      "'sig_analysys'; did you mean 'sig_analysis'")  # fmt: skip


def test_a_section_without_its_plugin_is_an_unknown_key_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, TOY.replace("plugins: [tests.kernel.workflow_probe]", "plugins: [qdata_toy]"))
    with pytest.raises(ConfigError, match=r"wf.yaml:4: probe: unknown key 'probe' \(allowed: experiment, seed, "):
        load_config(path)
    path = write(tmp_path, TOY.replace("probe:", "prob:"))
    with pytest.raises(ConfigError, match=r"wf.yaml:4: prob: unknown key 'prob'; did you mean 'probe'\?"):
        load_config(path)
    path = write(tmp_path, TOY.replace("probe:", "backtst:"))
    with pytest.raises(ConfigError, match=r"wf.yaml:4: backtst: unknown key 'backtst'; did you mean 'backtest'\?"):
        load_config(path)
    path = write(tmp_path, TOY.replace("probe:", "experimnt: x\nprobe:"))
    with pytest.raises(ConfigError, match=r"experimnt: unknown key 'experimnt'; did you mean 'experiment'\?"):
        load_config(path)


def test_sections_are_listed_as_a_kind(probe_kernel: Kernel) -> None:
    rows = {row["kind"]: row for row in json.loads(CliRunner().invoke(cli, ["list", "--json"]).output)}
    assert rows["config_section"]["count"] >= 1 and rows["config_section"]["plugin"] == "core"
    listed = CliRunner().invoke(cli, ["-p", PROBE, "list", "config_section"]).output.splitlines()
    assert any(line.startswith("backtest") and "[qbacktest]" in line for line in listed)
    assert any(line.startswith("probe") and f"[{PROBE}]" in line for line in listed)
    assert probe_kernel.registry("sections").entry("probe").plugin == PROBE


# ---------------------------------------------------------------------------------------------------------------
# Default records
# ---------------------------------------------------------------------------------------------------------------

MODEL = {"dataset": {"features": "alpha158", "segments": {"train": ["2018-01-02", "2018-09-28"]}}, "model": "linear"}


def test_default_records_come_from_plugins_in_order_each_once(bare_kernel: Kernel, kernel: Kernel) -> None:
    data = {"data": {"provider": "toy"}}
    assert config_from_mapping({**data, **MODEL}, kernel=bare_kernel).records == (qcore.config.ComponentSpec(
        "signal"),)  # the built-in plugin's, alone
    names = [r.name for r in config_from_mapping({**data, **MODEL, "probe": {"level": 1}}, kernel=bare_kernel).records]
    assert names == ["signal", "probe_record"]  # built-ins first; the probe's "signal" is not run twice
    every = [r.name for r in config_from_mapping({**data, **MODEL, "backtest": {"strategy": "TopkDropout"}},
                                                 kernel=kernel).records]  # fmt: skip
    # the analysis after sig_analysis (it reuses its IC), the backtest last: its report shows both
    assert every == ["signal", "sig_analysis", "analysis", "port_analysis"]
    assert config_from_mapping({**data, "probe": {"level": 1}}, kernel=bare_kernel).records[1].name == "probe_record"
    assert config_from_mapping({**data, **MODEL, "records": []}, kernel=kernel).records == ()
    assert config_from_mapping(data, kernel=kernel).records == ()


# ---------------------------------------------------------------------------------------------------------------
# What `qcore run` prints, and what records hand each other
# ---------------------------------------------------------------------------------------------------------------


def test_run_prints_plugin_rows_and_hints(tmp_path: Path) -> None:
    path = write(tmp_path, TOY.replace("RUNS", str(tmp_path / "runs")))
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("run ") and lines[0].endswith("finished (default)")
    rows = [line for line in lines if line.startswith("  ")]
    assert rows[0].split() == ["Probe", "level", "3.0"]  # plugin rows first, the kernel's own after them
    assert any(line.split()[0] == "data.instruments" for line in rows[1:])
    run_dir = next(p for p in (tmp_path / "runs" / "default").iterdir())
    assert f"probe: {run_dir / 'artifacts' / 'probe.json'}" in lines
    assert f"run folder: {run_dir} (qcore runs --uri {tmp_path / 'runs'} show {run_dir.name})" in lines
    without = CliRunner().invoke(cli, ["run", str(path), "--set", "records=[]"])
    assert without.exit_code == 0 and "Probe level" not in without.output and "probe:" not in without.output


def test_records_share_named_state_and_a_misspelled_field_fails() -> None:
    state = RunState()
    state.ic = "ic"
    state.extra["mine"] = 1
    with pytest.raises(AttributeError):
        state.predd = 1  # type: ignore[attr-defined]
    assert state.pred is None and state.ic == "ic"


def test_run_api_validates_with_the_kernel_it_runs_with(tmp_path: Path, probe_kernel: Kernel) -> None:
    config = {"data": {"provider": {"name": "toy", "kwargs": {"n_instruments": 3, "n_days": 20}}},
              "probe": {"level": 7}, "records": ["probe_record"],
              "recorder": {"name": "local", "kwargs": {"uri": str(tmp_path / "runs")}}}  # fmt: skip
    result = qcore.run(config, kernel=probe_kernel)
    assert result.metrics["probe.level"] == 7.0
    assert json.loads(Path(result.artifacts["probe"]).read_text()) == {"level": 7}


# ---------------------------------------------------------------------------------------------------------------
# Foreign formats
# ---------------------------------------------------------------------------------------------------------------


def test_a_plugin_translates_a_foreign_format_and_errors_name_its_keys(tmp_path: Path, probe_kernel: Kernel) -> None:
    path = write(tmp_path, "probe_format:\n  store_kwargs: {n_instruments: 3}\n  level: 5\n")
    config = load_config(path, kernel=probe_kernel)
    assert config.sections["probe"].level == 5 and config.data.provider.kwargs["n_instruments"] == 3
    path = write(tmp_path, "probe_format:\n  store_kwargs: {n_instruments: 3}\n  level: 50\n")
    with pytest.raises(ConfigError, match=r"wf.yaml:3: probe_format.level: expected an integer in 0..9"):
        load_config(path, kernel=probe_kernel)
    with pytest.raises(ConfigError, match="unknown key 'probe_format'"):  # nobody translates it without the probe
        load_config(path, kernel=Kernel.load(PluginSelection(autoload=False), use_env=False))


# ---------------------------------------------------------------------------------------------------------------
# Contracts of records and processors, recorders' location, the default data provider
# ---------------------------------------------------------------------------------------------------------------


class Broken:
    """A record and a processor that fall short of their contracts."""

    @qcore.hookimpl
    def qcore_register_records(self, register) -> None:
        register("no_generate", lambda: object())

    @qcore.hookimpl
    def qcore_register_processors(self, register) -> None:
        class Half:
            def __call__(self, frame):
                return frame

        register("half", Half)


def test_records_and_processors_are_checked_against_their_protocols(tmp_path: Path) -> None:
    kernel = Kernel.load(extra={"broken": Broken()}, use_env=False)
    with pytest.raises(ComponentContractError, match=r"record 'no_generate' from plugin 'broken' .* missing generate"):
        kernel.create("record", "no_generate")
    config = config_from_mapping(
        {"data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(STORE)}}},
         "dataset": {"features": "alpha158", "segments": {"train": ["2018-01-02", "2018-09-28"]},
                     "learn_processors": ["half"]}}, kernel=kernel)  # fmt: skip
    with pytest.raises(ComponentContractError, match=r"processor 'half' from plugin 'broken' .* missing fit, "
                                                     r"is_for_infer"):  # fmt: skip
        check_components(config, kernel, store=False)


def test_runs_take_a_uniform_uri_and_a_recorder_without_one_is_a_usage_error(tmp_path: Path) -> None:
    listed = CliRunner().invoke(cli, ["runs", "--uri", str(tmp_path / "none"), "list"])
    assert listed.exit_code == 0 and listed.output.strip() == "no runs"
    refused = CliRunner().invoke(cli, ["-p", PROBE, "runs", "--recorder", "nowhere", "--uri", "x", "list"])
    assert refused.exit_code == ExitCode.USAGE
    assert "Invalid value for '--uri': recorder 'nowhere' takes no uri (it takes: verbose)" in refused.output


def test_expr_opens_the_default_provider_a_plugin_marks(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    args = ["expr", "--provider-uri", str(STORE), "--field", "$close", "--out", str(out)]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    blocked = CliRunner().invoke(cli, ["-p", "no:qdata_cn", *args])
    assert blocked.exit_code == ExitCode.USAGE
    assert "no loaded plugin names a default data provider for a store location" in blocked.output
