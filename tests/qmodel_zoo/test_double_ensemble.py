"""DoubleEnsemble: the SR and FS steps, the whole model on the planted signal, determinism, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qmodel_zoo import _de_steps as steps

from qcore.errors import ConfigError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, assert_roundtrip, mean_test_ic

SMALL = {"num_models": 3, "epochs": 25, "sub_weights": [1, 0.5, 0.5], "num_leaves": 8, "learning_rate": 0.1,
         "num_threads": 1, "bins_fs": 3, "sample_ratios": [0.9, 0.7, 0.5]}


def test_sample_weights_favour_hard_samples() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    loss_values = rng.random(n)
    l_start, l_end = np.full(n, 0.5), np.full(n, 0.5)
    weights = steps.sample_weights(l_start, l_end, loss_values, k_th=1, alpha1=1.0, alpha2=0.0, bins=10, decay=0.5)
    # h1 ranks the negative loss: the worst-fitted samples have the lowest h, hence the largest weight
    order = np.argsort(loss_values)
    assert weights[order[-1]] > weights[order[0]]
    assert len(np.unique(weights)) == 10
    h = np.argsort(np.argsort(-loss_values)) + 1.0
    assert np.all(np.diff(weights[np.argsort(h)]) <= 1e-12)  # weights fall as h rises


def test_feature_selection_keeps_useful_features() -> None:
    scores = np.array([5.0, 4.0, 0.1, 0.0, -0.1, 0.05])
    rng = np.random.default_rng(0)
    kept = steps.select_features(scores, bins=2, sample_ratios=[1.0, 0.5], rng=rng)
    assert {0, 1} <= set(kept.tolist()) and len(kept) == 4 and list(kept) == sorted(kept)


def test_learns_reproduces_and_roundtrips(kernel: Kernel, planted, tmp_path) -> None:
    model = kernel.create("model", "DEnsembleModel", **SMALL).fit(planted)
    assert len(model.ensemble) == 3 and model.sub_features[0] == ["A", "B", "C", "D"]
    assert all(set(f) <= {"A", "B", "C", "D"} for f in model.sub_features)
    assert mean_test_ic(model, planted) > IC_BAR
    again = kernel.create("model", "double_ensemble", **SMALL).fit(planted)
    assert again.sub_features == model.sub_features
    pd.testing.assert_series_equal(again.predict(planted), model.predict(planted), rtol=0, atol=0)
    assert_roundtrip(model, planted, tmp_path, kernel, "double_ensemble")
    assert sorted(p.name for p in tmp_path.glob("sub_*.txt")) == ["sub_0.txt", "sub_1.txt", "sub_2.txt"]
    assert model.feature_importance().index[0] in ("A", "B")


def test_bad_arguments(kernel: Kernel) -> None:
    with pytest.raises(ConfigError, match="sample_ratios needs bins_fs=5 values, got 2"):
        kernel.create("model", "double_ensemble", sample_ratios=[0.5, 0.5])
    with pytest.raises(ConfigError, match="sub_weights needs num_models=6 values"):
        kernel.create("model", "double_ensemble", sub_weights=[1, 1])
    with pytest.raises(ConfigError, match="base_model must be one of gbm"):
        kernel.create("model", "double_ensemble", base_model="mlp")
    with pytest.raises(ConfigError, match="unknown parameter 'epoch'"):
        kernel.create("model", "double_ensemble", epoch=10)
