"""Every example workflow is valid: keys, component names, and the kwargs each component is built with."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcore.checks import check_components
from qcore.config import load_config
from qcore.dataset import make_processor
from qcore.kernel import Kernel

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("workflow_*_alpha*.yaml"))


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"workflow_lightgbm_alpha158.yaml", "workflow_lightgbm_alpha360.yaml", "workflow_lstm_alpha360.yaml",
            "workflow_double_ensemble_alpha158.yaml", "workflow_linear_alpha158.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_builds(path: Path, kernel: Kernel) -> None:
    config = load_config(path, kernel=kernel)
    check_components(config, kernel)
    assert config.dataset is not None and config.model is not None and "backtest" in config.sections
    features = kernel.create("feature_set", config.dataset.features.name, **config.dataset.features.kwargs)
    assert len(features.features) in (158, 360)
    for spec in (*config.dataset.infer_processors, *config.dataset.learn_processors):
        make_processor(kernel.registry("processor").get(spec.name), spec.kwargs, "2015-01-05", "2020-12-31")
    model = kernel.create("model", config.model.name, **config.model.kwargs)
    assert hasattr(model, "fit") and hasattr(model, "predict")
    strategy = kernel.registry("strategy").get(config.sections["backtest"].strategy.name)
    assert strategy is not None
    assert [r.name for r in config.records] == ["signal", "sig_analysis", "analysis", "port_analysis"]
