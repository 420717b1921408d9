"""The sample-weight contract: ``reweighter:`` reaches a model's ``fit``; bad weights and models without the keyword
are refused with errors naming the reweighter or the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

import qcore
from qcore import hookimpl
from qcore.errors import ConfigError, DataError
from qcore.kernel import Kernel
from qcore.reweight import accepts_reweighter, fit_model, sample_weights
from tests.kernel.test_rolling_run import SpyModel
from tests.kernel.test_workflow import TinyFeatures, workflow


def _index(days: int = 3, names: tuple[str, ...] = ("A", "B")) -> pd.MultiIndex:
    dates = pd.date_range("2020-01-01", periods=days, freq="D")
    return pd.MultiIndex.from_product([dates, list(names)], names=["datetime", "instrument"])


class _Answer:
    def __init__(self, answer):
        self.answer = answer

    def reweight(self, index):
        return self.answer(index) if callable(self.answer) else self.answer


class _Weighted:
    def fit(self, dataset, reweighter=None):
        self.got = reweighter
        return self


class _Plain:
    def fit(self, dataset):
        self.fitted = True
        return self


def test_array_series_and_per_date_answers_are_aligned():
    index = _index()
    assert sample_weights(_Answer(np.arange(1, 7)), index).tolist() == [1, 2, 3, 4, 5, 6]
    shuffled = pd.Series(np.arange(1.0, 7.0), index=index)[::-1]
    assert sample_weights(_Answer(shuffled), index).tolist() == [1, 2, 3, 4, 5, 6]
    per_day = pd.Series([1.0, 2.0, 3.0], index=index.levels[0])
    assert sample_weights(_Answer(per_day), index).tolist() == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(("answer", "message"), [
    (np.ones(5), "5 weights for 6 rows"),
    (np.array([1, 1, np.nan, 1, 1, 1.0]), "1 of 6 weights are NaN or infinite"),
    (np.array([1, -2, 1, 1, 1, 1.0]), "1 of 6 weights are negative"),
    (np.zeros(6), "every weight is zero"),
    (pd.Series([1.0, 2.0], index=pd.date_range("2020-01-01", periods=2)), "no weight (missing or NaN) for 2 of 6"),
])
def test_bad_weights_are_refused_with_the_reweighter_named(answer, message):
    with pytest.raises(DataError, match="reweighter _Answer") as info:
        sample_weights(_Answer(answer), _index())
    assert message in str(info.value)


def test_fit_model_passes_the_reweighter_only_to_models_that_take_it():
    reweighter = _Answer(np.ones(6))
    model = fit_model(_Weighted(), object(), reweighter)
    assert model.got is reweighter
    assert fit_model(_Plain(), object()).fitted
    with pytest.raises(ConfigError, match="does not take sample weights"):
        fit_model(_Plain(), object(), reweighter)
    assert accepts_reweighter(_Weighted) and accepts_reweighter(_Weighted().fit)
    assert not accepts_reweighter(_Plain().fit)


# --- through a workflow --------------------------------------------------------------------------------------------


class LateDays:
    """Weight 0 before ``cutoff`` and 1 from it on (per date)."""

    def __init__(self, cutoff: str) -> None:
        self.cutoff = pd.Timestamp(cutoff)

    def reweight(self, index: pd.MultiIndex) -> pd.Series:
        days = pd.DatetimeIndex(index.get_level_values("datetime").unique())
        return pd.Series((days >= self.cutoff).astype(float), index=days)


class WeightedSpy(SpyModel):
    """SpyModel that records which training dates got a positive weight."""

    weighted: ClassVar[list[pd.Timestamp]] = []

    def fit(self, dataset: Any, reweighter: Any = None) -> None:
        super().fit(dataset)
        x, _ = dataset.xy("train")
        weights = sample_weights(reweighter, x.index) if reweighter is not None else np.ones(len(x))
        WeightedSpy.weighted = sorted(set(x.index.get_level_values("datetime")[weights > 0]))


class WeightPlugin(TinyFeatures):
    @hookimpl
    def qcore_register_models(self, register: Any) -> None:
        register("spy", SpyModel)
        register("weighted_spy", WeightedSpy)

    @hookimpl
    def qcore_register_reweighters(self, register: Any) -> None:
        register("late_days", LateDays)


@pytest.fixture
def weight_kernel() -> Kernel:
    SpyModel.fits.clear()
    SpyModel.fail_at = None
    return Kernel.load(extra={"tiny": WeightPlugin()}, use_env=False)


def test_a_workflow_reweighter_reaches_the_model(tmp_path: Path, weight_kernel: Kernel) -> None:
    config = workflow(tmp_path, model="weighted_spy", reweighter={"name": "late_days",
                                                                   "kwargs": {"cutoff": "2018-06-01"}})
    qcore.run(config, kernel=weight_kernel)
    assert WeightedSpy.weighted and min(WeightedSpy.weighted) >= pd.Timestamp("2018-06-01")


def test_a_model_without_sample_weights_is_refused_before_any_fit(tmp_path: Path, weight_kernel: Kernel) -> None:
    config = workflow(tmp_path, model="spy", reweighter={"name": "late_days", "kwargs": {"cutoff": "2018-06-01"}})
    with pytest.raises(ConfigError, match="does not take sample weights") as info:
        qcore.run(config, kernel=weight_kernel)
    assert info.value.path == "reweighter"
    assert SpyModel.fits == []


def test_a_reweighter_needs_a_model(tmp_path: Path, weight_kernel: Kernel) -> None:
    config = workflow(tmp_path, reweighter="late_days")
    del config["model"]
    with pytest.raises(ConfigError, match="needs a 'model' section"):
        qcore.run(config, kernel=weight_kernel)


def test_rolling_windows_train_with_the_reweighter(tmp_path: Path, weight_kernel: Kernel) -> None:
    config = workflow(tmp_path, model="weighted_spy", records=["signal"],
                      reweighter={"name": "late_days", "kwargs": {"cutoff": "2018-08-01"}})
    config["rolling"] = {"step": 40, "window": "expanding", "checkpoint": str(tmp_path / "ck")}
    qcore.run(config, kernel=weight_kernel)
    assert WeightedSpy.weighted and min(WeightedSpy.weighted) >= pd.Timestamp("2018-08-01")
