"""The mlflow plugin points at its runs after ``qcore run`` (the kernel names no recorder), and takes the uniform
``uri`` location argument ``qcore runs --uri`` passes to every recorder."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcore.config import config_from_mapping
from qcore.context import RunResult
from qcore.errors import ConfigError
from qcore.kernel import Kernel

DATA = {"data": {"provider": "toy"}}


@pytest.fixture(scope="module")
def every_plugin() -> Kernel:
    return Kernel.load(use_env=False)


def test_hint_names_the_tracking_store_of_an_mlflow_run(every_plugin: Kernel, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    result = RunResult("abc", {}, {})
    for kwargs, uri in (({"tracking_uri": "sqlite:///x.db"}, "sqlite:///x.db"), ({"uri": "http://h:5000"},
                        "http://h:5000")):  # fmt: skip
        config = config_from_mapping({**DATA, "recorder": {"name": "mlflow", "kwargs": kwargs}}, kernel=every_plugin)
        assert f"browse runs: mlflow ui --backend-store-uri {uri}" in every_plugin.run_hints(config, result)
    monkeypatch.chdir(tmp_path)
    config = config_from_mapping({**DATA, "recorder": "mlflow"}, kernel=every_plugin)
    expected = f"browse runs: mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert expected in every_plugin.run_hints(config, result)
    local = config_from_mapping(DATA, kernel=every_plugin)
    assert not [line for line in every_plugin.run_hints(local, result) if "mlflow" in line]


def test_uri_is_the_tracking_uri(every_plugin: Kernel, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert every_plugin.create("recorder", "mlflow", uri=uri).tracking_uri == uri
    assert every_plugin.create("recorder", "mlflow", uri=uri, tracking_uri=uri).tracking_uri == uri
    with pytest.raises(ConfigError, match="name two stores: give one of them"):
        every_plugin.create("recorder", "mlflow", uri=uri, tracking_uri="sqlite:///other.db")
