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
