from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from qcore.config import ComponentSpec, config_from_mapping, load_config
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


GOOD = """
experiment: demo
seed: 3
plugins: [qdata_toy, "no:qrl"]
data:
  provider:
    name: toy
    kwargs: {n_instruments: 4}
  market_rules: toy
  universe: even
  start: 2021-01-10
  end: 2021-02-01
  fields: [$close, Volume]
recorder: {name: local, kwargs: {uri: runs}}
"""


def test_valid_config_becomes_frozen_objects(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.experiment == "demo" and cfg.seed == 3
    assert cfg.plugins == PluginSelection(("qdata_toy",), ("qrl",), None)
    assert cfg.data.provider == ComponentSpec("toy", {"n_instruments": 4})
    assert cfg.data.market_rules == ComponentSpec("toy")
    assert cfg.data.start == pd.Timestamp("2021-01-10")
    assert cfg.data.fields == ("close", "volume")
    assert cfg.recorder.kwargs["uri"] == "runs"
    with pytest.raises(TypeError):
        cfg.data.provider.kwargs["n_instruments"] = 5  # type: ignore[index]
    assert cfg.components() == [
        ("data.provider", "data_provider", "toy"),
        ("data.market_rules", "market_rules", "toy"),
        ("recorder", "recorder", "local"),
    ]


def test_unknown_key_gives_path_line_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  universe: even", "  univrse: even"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:9: data.univrse: unknown key 'univrse'; did you mean 'universe'? "
        "(allowed: provider, market_rules, universe, freq, start, end, fields, missing_fields)"
    )
    assert info.value.line == 9 and info.value.path == "data.univrse"


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"wf.yaml:1: experimnt: unknown key 'experimnt'; did you mean 'experiment'"):
        load_config(write(tmp_path, GOOD.replace("experiment: demo", "experimnt: demo")))


def test_missing_required_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing required key 'data'"):
        load_config(write(tmp_path, "experiment: x\n"))


def test_wrong_types_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":2: seed: expected an integer, got 'three'"):
        load_config(write(tmp_path, GOOD.replace("seed: 3", "seed: three")))
    with pytest.raises(ConfigError, match=r"data.provider.kwargs: expected a mapping of keyword arguments"):
        load_config(write(tmp_path, GOOD.replace("kwargs: {n_instruments: 4}", "kwargs: [1, 2]")))
    with pytest.raises(ConfigError, match=r"data.start: expected a date"):
        load_config(write(tmp_path, GOOD.replace("start: 2021-01-10", "start: yesterday-ish")))
    with pytest.raises(ConfigError, match=r"data.end: end 2020-01-01 is before start 2021-01-10"):
        load_config(write(tmp_path, GOOD.replace("end: 2021-02-01", "end: 2020-01-01")))


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"wf.yaml:4: invalid YAML: expected ',' or ']'"):
        load_config(write(tmp_path, "data:\n  provider: toy\n  bad: [unclosed\nnext: 1\n"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config("nope.yaml")


def test_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    cfg = load_config(path, ["data.provider.kwargs.n_instruments=6", "seed=11", "data.fields.0=open"])
    assert cfg.data.provider.kwargs["n_instruments"] == 6 and cfg.seed == 11
    assert cfg.data.fields == ("open", "volume")
    with pytest.raises(ConfigError, match="unknown key 'sede'"):
        load_config(path, ["sede=1"])
    with pytest.raises(ConfigError, match=r"must look like key\.path=value"):
        load_config(path, ["seed"])
    with pytest.raises(ConfigError, match="'7' is not an index of a list of 2 items"):
        load_config(path, ["data.fields.7=open"])


def test_environment_interpolation(tmp_path: Path) -> None:
    text = GOOD.replace("seed: 3", "seed: ${SEED}").replace(
        "recorder: {name: local, kwargs: {uri: runs}}",
        "recorder:\n  name: local\n  kwargs:\n    uri: ${RUNS:-fallback}/x",
    )
    cfg = load_config(write(tmp_path, text), environ={"SEED": "42"})
    assert cfg.seed == 42 and cfg.recorder.kwargs["uri"] == "fallback/x"
    with pytest.raises(ConfigError, match=r":2: seed: environment variable 'SEED' is not set"):
        load_config(write(tmp_path, text), environ={})


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def test_shorthand_component_and_defaults(kernel: Kernel) -> None:
    cfg = config_from_mapping({"data": {"provider": "toy"}}, kernel=kernel)
    assert cfg.data.provider == ComponentSpec("toy")
    assert cfg.recorder == ComponentSpec("local") and cfg.data.universe == "all" and cfg.experiment == "default"


def test_plugins_section_mapping_form(kernel: Kernel) -> None:
    cfg = config_from_mapping(
        {"plugins": {"enable": ["a"], "disable": ["b"], "autoload": False}, "data": {"provider": "toy"}}, kernel=kernel
    )
    assert cfg.plugins == PluginSelection(("a",), ("b",), False)
    with pytest.raises(ConfigError, match=r"plugins\.autoload: expected true or false"):
        config_from_mapping({"plugins": {"autoload": "maybe"}, "data": {"provider": "toy"}})
