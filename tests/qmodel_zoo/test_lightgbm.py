"""LightGBM: Qlib's LGBModel arguments, early stopping on valid, determinism, text-model save/load."""

from __future__ import annotations

import pandas as pd
import pytest

from qcore.errors import ConfigError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, WithoutValid, assert_roundtrip, mean_test_ic

QLIB_KWARGS = {  # examples/benchmarks/LightGBM/workflow_config_lightgbm_Alpha158.yaml, scaled to the small data
    "loss": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.2, "subsample": 0.8789, "lambda_l1": 20.5,
    "lambda_l2": 58.0, "max_depth": 4, "num_leaves": 15, "num_threads": 1,
}


@pytest.fixture(scope="module")
def fitted(planted):
    kernel = Kernel.load(use_env=False)
    return kernel.create("model", "LGBModel", num_boost_round=300, early_stopping_rounds=10, **QLIB_KWARGS).fit(planted)


def test_learns_and_early_stops_on_valid(fitted, planted) -> None:
    assert mean_test_ic(fitted, planted) > IC_BAR
    rounds = len(fitted.evals_result_["valid"]["l2"])
    assert fitted.best_iteration_ < rounds < 300  # stopped early, predicting from the best round
    valid = fitted.evals_result_["valid"]["l2"]
    assert min(valid) == valid[fitted.best_iteration_ - 1] < valid[0]
    importance = fitted.feature_importance()
    assert set(importance.index[:2]) == {"A", "B"}  # C and D carry nothing on the same day


def test_roundtrip_through_text_model(fitted, planted, tmp_path, kernel: Kernel) -> None:
    loaded = assert_roundtrip(fitted, planted, tmp_path, kernel, "lightgbm")
    assert (tmp_path / "model.txt").read_text().startswith("tree")
    assert loaded.feature_names_ == ["A", "B", "C", "D"]


def test_seeded_runs_reproduce_and_train_without_valid(kernel: Kernel, planted) -> None:
    kwargs = {**QLIB_KWARGS, "num_boost_round": 40, "seed": 7, "bagging_freq": 1}
    first = kernel.create("model", "lightgbm", **kwargs).fit(planted).predict(planted)
    second = kernel.create("model", "lightgbm", **kwargs).fit(planted).predict(planted)
    pd.testing.assert_series_equal(first, second, rtol=0, atol=0)
    no_valid = WithoutValid(planted)
    model = kernel.create("model", "lightgbm", **kwargs).fit(no_valid)
    assert model.best_iteration_ == 40 and set(model.evals_result_) == {"train"}


def test_bad_arguments(kernel: Kernel, planted) -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'num_leavs' for the lightgbm model; did you mean"):
        kernel.create("model", "lightgbm", num_leavs=31)
    with pytest.raises(ConfigError, match="loss must be one of mse, binary"):
        kernel.create("model", "lightgbm", loss="huber")
    with pytest.raises(ConfigError, match="num_boost_round must be >= 1"):
        kernel.create("model", "lgb", num_boost_round=0)
    with pytest.raises(QcoreError, match="not fitted"):
        kernel.create("model", "lightgbm").predict(planted)
