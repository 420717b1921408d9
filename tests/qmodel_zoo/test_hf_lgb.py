"""HFLGBModel (Qlib's high-frequency LightGBM): alpha-sign classes as the target, the signal test, finetune,
save/load without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qmodel_zoo.hf_lgb import alpha, alpha_classes, signal_metrics

from qcore.dataset import PanelDataset
from qcore.errors import ConfigError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, WithoutValid, assert_roundtrip, mean_test_ic
from tests.qmodel_zoo.planted import planted_frame, split

FAST = {"num_leaves": 7, "learning_rate": 0.1, "num_boost_round": 200, "early_stopping_rounds": 10, "num_threads": 1}


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


@pytest.fixture(scope="module")
def fitted(kernel: Kernel, planted: PanelDataset):
    return kernel.create("model", "HFLGBModel", **FAST).fit(planted)


def _index(dates: int, names: int) -> pd.MultiIndex:
    return pd.MultiIndex.from_product([pd.bdate_range("2021-01-04", periods=dates),
                                       [f"S{i:02d}" for i in range(names)]], names=["datetime", "instrument"])


def test_alpha_and_classes() -> None:
    label = pd.Series([1.0, 2.0, 6.0, -1.0, -1.0, 2.0], index=_index(2, 3))
    np.testing.assert_allclose(alpha(label), [-2, -1, 3, -1, -1, 2])
    np.testing.assert_array_equal(alpha_classes(label), [0, 0, 1, 0, 0, 1])
    tie = pd.Series([1.0, 1.0], index=_index(1, 2))
    np.testing.assert_array_equal(alpha_classes(tie), [1, 1])  # alpha 0 is class 1, as Qlib's mapping


def test_learns_the_planted_signal(fitted, planted: PanelDataset) -> None:
    assert mean_test_ic(fitted, planted) > IC_BAR
    assert set(fitted.evals_result_) == {"train", "valid"}
    assert fitted.best_iteration_ < len(fitted.evals_result_["valid"]) < FAST["num_boost_round"]


def test_a_per_day_shift_of_the_label_changes_nothing(kernel: Kernel, planted: PanelDataset, fitted) -> None:
    """The target is the sign of the label's cross-sectional alpha: adding a constant per day leaves it unchanged."""
    frame = planted_frame(n_instruments=120, n_days=90, seed=0)  # the conftest's planted market
    dates = frame.index.get_level_values("datetime")
    frame[("label", "LABEL0")] += (dates.dayofyear.to_numpy() % 7 - 3).astype(np.float32)
    shifted = PanelDataset(frame, split(dates.unique()))
    other = kernel.create("model", "HFLGBModel", **FAST).fit(shifted)
    pd.testing.assert_series_equal(other.predict(planted), fitted.predict(planted))


def test_binary_loss_gives_probabilities(kernel: Kernel, planted: PanelDataset) -> None:
    model = kernel.create("model", "HFLGBModel", loss="binary", **FAST).fit(planted)
    pred = model.predict(planted)
    assert pred.between(0, 1).all() and mean_test_ic(model, planted) > IC_BAR


def test_signal_metrics_by_hand() -> None:
    index = _index(2, 50)
    label = pd.Series(np.tile(np.arange(50, dtype=float), 2), index=index)
    perfect = signal_metrics(label.copy(), label, threshold=0.2)
    assert perfect["up_precision"] == perfect["down_precision"] == 1.0 and perfect["bars"] == 2
    # down group: alphas 0..9 minus the mean 24.5; up group: rows 40..49
    assert perfect["down_alpha"] == pytest.approx(4.5 - 24.5) and perfect["up_alpha"] == pytest.approx(44.5 - 24.5)
    reversed_ = signal_metrics(-label, label, threshold=0.2)
    assert reversed_["up_precision"] == reversed_["down_precision"] == 0.0
    with pytest.warns(UserWarning, match="2 bar"):
        few = signal_metrics(label, label, threshold=0.1)  # 5 rows per group < 10: every bar left out
    assert few["bars"] == 0 and np.isnan(few["up_precision"])
    with pytest.raises(ConfigError, match="threshold"):
        signal_metrics(label, label, threshold=0.7)


def test_hf_signal_test_on_the_planted_signal(fitted, planted: PanelDataset) -> None:
    result = fitted.hf_signal_test(planted, threshold=0.2)
    assert result["up_precision"] > 0.55 and result["down_precision"] > 0.55
    assert result["up_alpha"] > 0 > result["down_alpha"] and result["bars"] > 0


def test_finetune_grows_more_rounds_from_the_best(fitted, kernel: Kernel, planted: PanelDataset, tmp_path) -> None:
    model = kernel.create("model", "HFLGBModel", **FAST).fit(planted)
    best = model.best_iteration_
    model.finetune(planted, num_boost_round=5)
    assert model.model.current_iteration() == best + 5
    assert not model.predict(planted).equals(fitted.predict(planted))


def test_save_and_load(fitted, planted: PanelDataset, kernel: Kernel, tmp_path: Path) -> None:
    loaded = assert_roundtrip(fitted, planted, tmp_path, kernel, "hf_lightgbm")
    assert loaded.best_iteration_ == fitted.best_iteration_ and not list(tmp_path.glob("*.pkl"))


def test_errors(kernel: Kernel, planted: PanelDataset) -> None:
    with pytest.raises(QcoreError, match="needs a valid segment"):
        kernel.create("model", "HFLGBModel", **FAST).fit(WithoutValid(planted))
    with pytest.raises(ConfigError, match="num_leavs") as info:
        kernel.create("model", "HFLGBModel", num_leavs=3)
    assert info.value.path == "num_leavs"
    with pytest.raises(ConfigError, match="loss must be one of"):
        kernel.create("model", "HFLGBModel", loss="huber")
