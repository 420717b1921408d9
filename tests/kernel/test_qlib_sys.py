"""Qlib's ``sys`` section: folders appended to ``sys.path`` while a run runs (a plugin's lazily imported module
kept beside the config is found), removed afterwards, failed run or not; bad folders refused at validate."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import qcore
from qcore.config import read_workflow
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.plugins import hookimpl
from qcore.registry import lazy
from tests.kernel.test_workflow import QLIB_YAML, STORE, TinyFeatures

MODULE = "h7_sys_helper_model"
HELPER = '''
import pandas as pd


class FirstFeature:
    """Scores each row by its first feature; ``fail`` makes fit raise."""

    def __init__(self, fail=False):
        self.fail = fail

    def fit(self, dataset):
        if self.fail:
            raise RuntimeError("planned failure")
        return self

    def predict(self, dataset, segment="test"):
        features, _ = dataset.xy(segment)
        return pd.Series(features.iloc[:, 0].to_numpy(dtype=float), index=features.index, name="score")

    def save(self, folder):
        from qcore.modelio import write_manifest

        write_manifest(folder, "first_feature", {"fail": self.fail})

    def restore(self, folder):
        pass
'''


class HelperModel:
    """A test plugin registering a model whose module lives beside the config (found through ``sys``)."""

    @hookimpl
    def qcore_register_models(self, register: Any) -> None:
        register("first_feature", lazy(f"{MODULE}:FirstFeature", description="first feature as score"))


@pytest.fixture
def kernel() -> Kernel:
    return Kernel.load(extra={"tiny": TinyFeatures(), "helper": HelperModel()}, use_env=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config folder with ``helpers/h7_sys_helper_model.py``; the module is forgotten after the test."""
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / f"{MODULE}.py").write_text(HELPER)
    yield tmp_path
    sys.modules.pop(MODULE, None)


def _workflow(folder: Path, sys_section: str, fail: bool = False) -> Path:
    path = folder / "workflow.yaml"
    path.write_text(textwrap.dedent(f"""\
        experiment: sys
        {sys_section}
        data:
          provider: {{name: qlib_bin, kwargs: {{provider_uri: {STORE}}}}}
          universe: csi_like
        dataset:
          features: tiny
          segments: {{train: [2018-01-02, 2018-09-28], test: [2019-01-02, 2019-04-23]}}
        model: {{name: first_feature, kwargs: {{fail: {str(fail).lower()}}}}}
        records: [signal]
        recorder: {{name: local, kwargs: {{uri: {folder / 'runs'}}}}}
        """))
    return path


def test_rel_path_is_importable_during_the_run_only(project: Path, kernel: Kernel) -> None:
    before = list(sys.path)
    result = qcore.run(_workflow(project, "sys: {rel_path: [helpers]}"), kernel=kernel)
    assert result.metrics["dataset.rows.test"] > 0
    assert sys.modules[MODULE].__file__ == str(project / "helpers" / f"{MODULE}.py")
    assert sys.path == before


def test_without_sys_the_module_is_not_found(project: Path, kernel: Kernel) -> None:
    with pytest.raises(Exception, match=MODULE):
        qcore.run(_workflow(project, ""), kernel=kernel)


def test_paths_are_removed_after_a_failed_run(project: Path, kernel: Kernel) -> None:
    before = list(sys.path)
    with pytest.raises(Exception, match="planned failure"):
        qcore.run(_workflow(project, f"sys: {{path: {project / 'helpers'}}}", fail=True), kernel=kernel)
    assert sys.path == before


def test_a_missing_folder_is_refused_with_its_line(project: Path, kernel: Kernel) -> None:
    path = _workflow(project, "sys: {rel_path: [helpers, nowhere]}")
    with pytest.raises(ConfigError, match="no such folder") as info:
        read_workflow(path).validate(kernel)
    assert info.value.path == "sys.rel_path.1" and info.value.line == 2


def test_qlib_yaml_sys_is_translated(tmp_path: Path, kernel: Kernel) -> None:
    """Qlib's TFT config starts with ``sys: {rel_path: .}``: the config's own folder."""
    path = tmp_path / "qlib.yaml"
    path.write_text("sys:\n    rel_path: .\n" + textwrap.dedent(QLIB_YAML).format(store=STORE))
    config = read_workflow(path).validate(kernel)
    assert config.sections["sys"].paths == (str(tmp_path.resolve()),)
    path.write_text("sys:\n    rel_path: [missing]\n" + textwrap.dedent(QLIB_YAML).format(store=STORE))
    with pytest.raises(ConfigError, match="no such folder") as info:
        read_workflow(path).validate(kernel)
    assert info.value.line == 2
