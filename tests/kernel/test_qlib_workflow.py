"""The built-in ``qlib_workflow`` plugin: Qlib ``qrun`` YAMLs translated behind ``qcore_translate_config``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qcore.builtin import qlib_workflow
from qcore.checks import check_names
from qcore.config import load_config, read_workflow
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection
from qcore.yamldoc import Document, parse_yaml

QLIB = textwrap.dedent("""
    qlib_init: {provider_uri: /nowhere, region: cn}
    market: &market csi300
    task:
        model: {class: LGBModel, module_path: qlib.contrib.model.gbdt, kwargs: {loss: mse}}
        dataset:
            class: DatasetH
            kwargs:
                handler: {class: Alpha158, kwargs: {instruments: *market}}
                segments: {train: [2020-01-01, 2020-06-30], test: [2020-07-01, 2020-09-30]}
""").lstrip()


@pytest.fixture(scope="module")
def every_plugin() -> Kernel:
    return Kernel.load(use_env=False)


def test_is_a_builtin_plugin_implementing_the_translation_hook(every_plugin: Kernel) -> None:
    info = {i.name: i for i in every_plugin.plugins()}["qlib_workflow"]
    assert info.builtin and info.module == "qcore.builtin.qlib_workflow"
    assert "qcore_translate_config" in info.hooks


def test_a_qcore_workflow_is_left_to_other_plugins(every_plugin: Kernel) -> None:
    doc = parse_yaml("data: {provider: {name: qlib_bin}}\ntask_note: 1\n", "w.yaml")
    assert qlib_workflow.qcore_translate_config(doc) is None
    assert every_plugin.translate_config(doc) is None
    assert qlib_workflow.qcore_translate_config(Document(["a", "list"])) is None


def test_a_qlib_workflow_is_translated_with_its_origins(every_plugin: Kernel) -> None:
    doc = parse_yaml(QLIB, "qlib.yaml")
    out = every_plugin.translate_config(doc)
    assert isinstance(out, Document) and out.source == "qlib.yaml" and out.lines == doc.lines
    assert out.data["data"] == {"provider": {"name": "LocalProvider", "kwargs": {"provider_uri": "/nowhere"}},
                                "market_rules": "cn", "universe": "csi300"}  # fmt: skip
    assert out.data["model"] == {"name": "LGBModel", "kwargs": {"loss": "mse"}}
    assert out.data["dataset"]["features"] == {"name": "Alpha158", "kwargs": {}}
    assert [p["name"] for p in out.data["dataset"]["learn_processors"]] == ["DropnaLabel", "CSZScoreNorm"]
    assert out.locate("model.kwargs.loss") == ("task.model.kwargs.loss", 4)
    assert out.locate("data.universe") == ("task.dataset.kwargs.handler.kwargs.instruments", 8)


def test_qlib_names_resolve_through_the_registries(every_plugin: Kernel, tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, QLIB), kernel=every_plugin)
    check_names(config, every_plugin)
    assert every_plugin.registry("data_provider").entry(config.data.provider.name).name == "qlib_bin"
    assert every_plugin.registry("market_rules").entry(config.data.market_rules.name).name == "cn"


def test_a_qlib_region_without_market_rules_is_refused_at_its_key(every_plugin: Kernel, tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, QLIB.replace("region: cn", "region: tw")), kernel=every_plugin)
    with pytest.raises(ConfigError) as info:
        check_names(config, every_plugin)
    assert info.value.path == "qlib_init.region" and info.value.line == 1 and "'tw'" in info.value.message
    with pytest.raises(ConfigError, match=r"unsupported region 'jp' \(Qlib's regions: cn, us, tw\)"):
        load_config(_write(tmp_path, QLIB.replace("region: cn", "region: jp")), kernel=every_plugin)


def test_without_the_plugin_a_qlib_workflow_is_not_translated(tmp_path: Path) -> None:
    kernel = Kernel.load(PluginSelection.parse(["no:qlib_workflow"]), use_env=False)
    assert "qlib_workflow" not in kernel.plugin_names()
    assert kernel.translate_config(read_workflow(_write(tmp_path, QLIB)).document) is None
    with pytest.raises(ConfigError, match="unknown key 'qlib_init'"):
        load_config(_write(tmp_path, QLIB), kernel=kernel)


def test_the_translation_reads_only_the_document_layer() -> None:
    code = ("import sys, qcore.builtin.qlib_workflow\n"
            "print(','.join(sorted(m for m in sys.modules if m.startswith('qcore'))))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(done.stdout.strip().split(","))
    assert "qcore.yamldoc" in modules and "qcore.builtin.qlib_workflow" in modules
    assert not modules & {"qcore.config", "qcore.kernel", "qcore.runner", "qcore.cli"}, modules


def _write(folder: Path, text: str) -> Path:
    path = folder / "qlib.yaml"
    path.write_text(text, encoding="utf-8")
    return path


LOADER = textwrap.dedent("""
    qlib_init: {provider_uri: /nowhere, region: cn}
    task:
        model: {class: LGBModel}
        dataset:
            class: DatasetH
            kwargs:
                handler:
                    class: DataHandlerLP
                    kwargs:
                        instruments: csi300
                        data_loader:
                            class: QlibDataLoader
                            kwargs:
                                config:
                                    feature: [["$close/Ref($close, 1)", "Mean($volume, 5)"], [RET, VMA5]]
                                    label: [["Ref($close, -2)/Ref($close, -1) - 1"], [LABEL0]]
                                freq: day
                        learn_processors: [DropnaLabel, {class: CSZScoreNorm, kwargs: {fields_group: label}}]
                segments: {pretrain: [2019-01-01, 2019-12-31], train: [2020-01-01, 2020-06-30],
                           test: [2020-07-01, 2020-09-30]}
""").lstrip()


def test_a_data_loader_handler_becomes_the_loader_feature_set(every_plugin: Kernel, tmp_path: Path) -> None:
    out = every_plugin.translate_config(parse_yaml(LOADER, "loader.yaml"))
    features = out.data["dataset"]["features"]
    assert features["name"] == "QlibDataLoader" and features["kwargs"]["freq"] == "day"
    # bare class names are processors without arguments, as Qlib reads them
    assert out.data["dataset"]["learn_processors"] == [{"name": "DropnaLabel", "kwargs": {}},
                                                       {"name": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}]
    assert out.locate("dataset.learn_processors.0.name")[0] == "task.dataset.kwargs.handler.kwargs.learn_processors.0"
    config = load_config(_write(tmp_path, LOADER), kernel=every_plugin)
    assert list(config.dataset.segments) == ["pretrain", "train", "test"]
    check_names(config, every_plugin)
    fs = every_plugin.create("feature_set", "QlibDataLoader", **features["kwargs"])
    assert dict(fs.features) == {"RET": "$close/Ref($close, 1)", "VMA5": "Mean($volume, 5)"}
    assert dict(fs.labels) == {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}
    # a bare list of expressions names each column by itself
    bare = every_plugin.create("feature_set", "qlib_data_loader", config={"feature": ["$close", "$open"]})
    assert dict(bare.features) == {"$close": "$close", "$open": "$open"} and not bare.labels


@pytest.mark.parametrize(("config", "message", "path"), [
    ({"feature": [["$close"], ["A", "B"]]}, "1 expressions but 2 names", "config.feature"),
    ({"feature": [["$close", "$open"], ["A", "A"]]}, "column name 'A' is given twice", "config.feature"),
    ({"feature": ["$close"], "extra": ["$open"]}, "unsupported column group 'extra'", "config.extra"),
    ({"label": ["$close"]}, "expected config: {feature", "config"),
    ({"feature": [["$close"], ["X"]], "label": [["$open"], ["X"]]}, "'X' names both a feature and a label",
     "config.label"),
])
def test_bad_loader_configs_are_refused_at_their_key(every_plugin: Kernel, config, message: str, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        every_plugin.create("feature_set", "QlibDataLoader", config=config)
    assert message in info.value.message and info.value.path == path
    with pytest.raises(ConfigError, match="freq '1min' is not supported"):
        every_plugin.create("feature_set", "QlibDataLoader", config={"feature": ["$close"]}, freq="1min")
    with pytest.raises(ConfigError, match="option 'filter_pipe' is not supported"):
        every_plugin.create("feature_set", "QlibDataLoader", config={"feature": ["$close"]}, filter_pipe=[])


@pytest.mark.parametrize(("old", "new", "message", "path"), [
    ("class: DataHandlerLP", "class: Alpha158", "Alpha158 builds its own columns and takes no data_loader",
     "task.dataset.kwargs.handler.kwargs.data_loader"),
    ("class: QlibDataLoader", "class: NestedDataLoader", "unsupported data_loader class 'NestedDataLoader'",
     "task.dataset.kwargs.handler.kwargs.data_loader.class"),
    ("instruments: csi300", "instruments: csi300\n                    inst_processors: [{class: Resample}]",
     "inst_processor 'Resample' is not supported: inst_processors are Python callbacks",
     "task.dataset.kwargs.handler.kwargs.inst_processors.0.class"),
    ("instruments: csi300", "instruments: csi300\n                    label: [$close]",
     "takes its label from the data_loader", "task.dataset.kwargs.handler.kwargs.label"),
    ("provider_uri: /nowhere", "provider_uri: {1min: /b}", "a provider_uri per frequency needs a 'day' folder",
     "qlib_init.provider_uri"),
    ("qlib_init:", "sys: {rel_path: no_such_h7_folder}\nqlib_init:", "no such folder", "sys.rel_path"),
])
def test_unsupported_loader_options_are_refused_with_the_reason(every_plugin: Kernel, tmp_path: Path, old: str,
                                                                new: str, message: str, path: str) -> None:
    assert old in LOADER
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, LOADER.replace(old, new, 1)), kernel=every_plugin)
    assert message in info.value.message and info.value.path == path and info.value.line is not None
    without_loader = QLIB.replace("class: Alpha158", "class: DataHandlerLP").replace("instruments: *market", "")
    with pytest.raises(ConfigError, match="DataHandlerLP needs a data_loader"):
        load_config(_write(tmp_path, without_loader), kernel=every_plugin)


@pytest.mark.parametrize(("dataset_kwargs", "model_kwargs", "step_len", "origin"), [
    ("step_len: 20", "{}", 20, ("task.dataset.kwargs.step_len", 8)),
    ("", "{}", 30, ("task.dataset.class", 5)),  # Qlib's TSDatasetH default
    ("step_len: 20", "{step_len: 5}", 5, ("task.model.kwargs.step_len", 3)),  # the model's own wins
])
def test_ts_dataset_step_len_reaches_the_model(every_plugin: Kernel, dataset_kwargs: str, model_kwargs: str,
                                               step_len: int, origin: tuple[str, int]) -> None:
    text = textwrap.dedent(f"""
        qlib_init: {{provider_uri: /nowhere, region: cn}}
        task:
            model: {{class: GRU, module_path: qlib.contrib.model.pytorch_gru_ts, kwargs: {model_kwargs}}}
            dataset:
                class: TSDatasetH
                kwargs:
                    handler: {{class: Alpha158, kwargs: {{instruments: csi300}}}}
                    {dataset_kwargs}
                    segments: {{train: [2020-01-01, 2020-06-30], test: [2020-07-01, 2020-09-30]}}
    """).lstrip()
    out = every_plugin.translate_config(parse_yaml(text, "qlib.yaml"))
    assert out.data["model"]["kwargs"]["step_len"] == step_len
    assert out.locate("model.kwargs.step_len") == origin
    plain = every_plugin.translate_config(parse_yaml(text.replace("TSDatasetH", "DatasetH").replace(
        dataset_kwargs, "") if model_kwargs == "{}" else QLIB, "qlib.yaml"))
    assert "step_len" not in plain.data["model"]["kwargs"]
