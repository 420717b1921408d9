"""LightGBM's constructed datasets cached across runs: same model, keyed by data and binning, never trusted blindly."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qmodel_zoo._lgb_cache import LgbDatasetCache, dataset_params

from qcore.dataset import build_dataset, make_processor
from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from qcore.types import FeatureSet

FEATURES = FeatureSet(
    features={
        "ROC5": "$close/Ref($close, 5) - 1",
        "VRATIO": "Mean($volume, 5)/Mean($volume, 20)",
        "STD20": "Std($close/Ref($close, 1) - 1, 20)",
        "KMID": "($close - $open)/$open",
    },
    labels={"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"},
)
BASE = {"num_leaves": 7, "learning_rate": 0.1, "num_boost_round": 40, "num_threads": 1, "subsample": 0.8,
        "subsample_freq": 1, "colsample_bytree": 0.9}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    synth = pytest.importorskip("qdata_cn.synth")
    path = tmp_path_factory.mktemp("synth")
    synth.synthesize(path, instruments=40, days=220, seed=5)
    return path


def make_dataset(store: Path, features: FeatureSet = FEATURES):
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    dates = provider.calendar()
    segments = {"train": (dates[25], dates[139]), "valid": (dates[140], dates[179]), "test": (dates[180], dates[-3])}

    def processor(name, **kwargs):
        return make_processor(kernel.registry("processor").get(name), kwargs, *segments["train"])

    return build_dataset(engine, features, instruments="all", segments=segments,
                         learn_processors=[processor("DropnaLabel"), processor("CSZScoreNorm", fields_group="label")])


@pytest.fixture(scope="module")
def dataset(store):
    return make_dataset(store)


def fit(dataset, **kwargs):
    model = Kernel.load(use_env=False).create("model", "lightgbm", **{**BASE, **kwargs})
    return model.fit(dataset)


def cache_root() -> Path:
    return LgbDatasetCache().root


def test_new_model_parameters_reuse_the_dataset_and_give_the_same_model(dataset) -> None:
    uncached = fit(dataset, dataset_cache=False)
    assert uncached.dataset_cache_ == "off" and not cache_root().exists()
    cold = fit(dataset)
    assert cold.dataset_cache_ == "miss" and len(LgbDatasetCache().entries()) == 1
    warm = fit(dataset)
    assert warm.dataset_cache_ == "hit"
    expected = uncached.predict(dataset, "test")
    pd.testing.assert_series_equal(cold.predict(dataset, "test"), expected, rtol=0, atol=0)
    pd.testing.assert_series_equal(warm.predict(dataset, "test"), expected, rtol=0, atol=0)
    assert warm.feature_names_ == uncached.feature_names_ and warm.best_iteration_ == uncached.best_iteration_
    assert warm.model.model_to_string() == uncached.model.model_to_string()
    # boosting parameters: still a hit, and the same model as training without the cache
    other = {"learning_rate": 0.3, "num_leaves": 15, "colsample_bytree": 0.7}
    retuned = fit(dataset, **other)
    assert retuned.dataset_cache_ == "hit" and len(LgbDatasetCache().entries()) == 1
    fresh = fit(dataset, dataset_cache=False, **other)
    pd.testing.assert_series_equal(retuned.predict(dataset, "test"), fresh.predict(dataset, "test"), rtol=0, atol=0)
    assert not retuned.predict(dataset, "test").equals(expected)


@pytest.mark.parametrize("binning", [{"max_bin": 63}, {"min_data_in_bin": 10}, {"bin_construct_sample_cnt": 500},
                                     {"min_data_in_leaf": 50}, {"seed": 3}, {"feature_pre_filter": False}])
def test_binning_parameters_key_the_entry(dataset, binning) -> None:
    assert fit(dataset).dataset_cache_ in ("miss", "hit")
    changed = fit(dataset, **binning)
    assert changed.dataset_cache_ == "miss"
    fresh = fit(dataset, dataset_cache=False, **binning)
    pd.testing.assert_series_equal(changed.predict(dataset, "test"), fresh.predict(dataset, "test"), rtol=0, atol=0)


def test_aliases_are_one_parameter_and_boosting_ones_are_left_out() -> None:
    assert dataset_params({"max_bins": 63, "learning_rate": 0.1, "subsample": 0.5}) == {"max_bin": 63}
    assert dataset_params({"colsample_bytree": 0.5, "num_leaves": 3, "min_child_samples": 7}) == {
        "min_data_in_leaf": 7}
    cache = LgbDatasetCache()
    assert cache.key("f", {"max_bin": 63}, ["train"]) == cache.key("f", {"max_bins": 63, "eta": 0.5}, ["train"])
    assert cache.key("f", {"max_bin": 63}, ["train"]) != cache.key("f", {"max_bin": 64}, ["train"])
    assert cache.key("f", {}, ["train"]) != cache.key("g", {}, ["train"])
    assert cache.key("f", {}, ["train"]) != cache.key("f", {}, ["train", "valid"])


def test_data_and_dataset_config_key_the_entry(store, dataset, tmp_path) -> None:
    same = make_dataset(store)
    assert same.fingerprint == dataset.fingerprint
    fewer = FeatureSet(features={k: v for k, v in FEATURES.features.items() if k != "KMID"}, labels=FEATURES.labels)
    assert make_dataset(store, fewer).fingerprint != dataset.fingerprint
    copy = tmp_path / "store"
    import shutil

    shutil.copytree(store, copy)
    before = make_dataset(copy).fingerprint
    assert make_dataset(copy).fingerprint == before
    (copy / "features" / sorted(p.name for p in (copy / "features").iterdir())[0] / "close.day.bin").touch()
    assert make_dataset(copy).fingerprint != before  # the data version changed


def test_corrupt_entry_is_ignored_with_a_warning_and_rebuilt(dataset, caplog) -> None:
    expected = fit(dataset, dataset_cache=False).predict(dataset, "test")
    fit(dataset)
    ((_, _, folder),) = LgbDatasetCache().entries()
    blob = bytearray((folder / "train.bin").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size, one byte flipped: only the digest can tell
    (folder / "train.bin").write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING):
        rebuilt = fit(dataset)
    assert rebuilt.dataset_cache_ == "miss" and "unusable" in caplog.text
    pd.testing.assert_series_equal(rebuilt.predict(dataset, "test"), expected, rtol=0, atol=0)
    assert fit(dataset).dataset_cache_ == "hit"
    (folder / "meta.json").write_text("{not json")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert fit(dataset).dataset_cache_ == "miss"
    assert "unusable" in caplog.text
    json.loads((folder / "meta.json").read_text())  # rewritten whole


def test_the_cache_is_bounded_and_can_be_turned_off(dataset, monkeypatch) -> None:
    fit(dataset)
    ((_, size, first),) = LgbDatasetCache().entries()
    monkeypatch.setenv("QCORE_LGB_DATASET_CACHE_MAX_MB", str(1.5 * size / 2**20))
    fit(dataset, max_bin=31)
    remaining = [folder for _, _, folder in LgbDatasetCache().entries()]
    assert len(remaining) == 1 and remaining[0] != first  # the least recently used one went
    monkeypatch.setenv("QCORE_LGB_DATASET_CACHE_MAX_MB", str(0.5 * size / 2**20))
    assert fit(dataset, max_bin=15).dataset_cache_ == "miss"
    assert [f for _, _, f in LgbDatasetCache().entries()] == remaining  # too large for the bound: not stored
    monkeypatch.delenv("QCORE_LGB_DATASET_CACHE_MAX_MB")
    stale = LgbDatasetCache().root / ".tmp-crashed-writer"
    stale.mkdir()
    os.utime(stale, (0, 0))
    fit(dataset, max_bin=7)
    assert not stale.exists()  # a crashed writer's leftovers go at the next write
    monkeypatch.setenv("QCORE_LGB_DATASET_CACHE", "0")
    assert fit(dataset, max_bin=31).dataset_cache_ == "off"
    assert not list(LgbDatasetCache().root.glob(".tmp-*"))


def test_a_dataset_without_fingerprint_is_not_cached(dataset) -> None:
    class Plain:
        segments = dataset.segments

        def xy(self, segment, data_key=None):
            return dataset.xy(segment, data_key)

    model = fit(Plain())
    assert model.dataset_cache_ == "off" and not cache_root().exists()
    np.testing.assert_array_equal(model.predict(dataset, "test"), fit(dataset).predict(dataset, "test"))


def test_dataset_cache_argument_is_checked() -> None:
    from qcore.errors import ConfigError

    with pytest.raises(ConfigError, match="dataset_cache"):
        Kernel.load(use_env=False).create("model", "lightgbm", dataset_cache="yes")


def test_learn_frame_is_computed_on_demand_and_released_after_lightgbm_copied_it(store) -> None:
    fresh = make_dataset(store)
    assert fresh._learn is None  # a model that finds its datasets in the cache never pays for it
    learn = fresh.frame("learn").copy()
    assert learn["label"].notna().all().all() and len(learn) < len(fresh.frame("raw"))
    fit(fresh, dataset_cache=False)
    assert fresh._learn is None  # released once the training matrices were copied out
    pd.testing.assert_frame_equal(fresh.frame("learn"), learn)  # and the same again when asked for
    with pytest.raises(Exception, match="only the learn frame"):
        fresh.release("raw")
