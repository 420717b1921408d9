"""End to end on a small synthetic Qlib bin store: expressions → processors → dataset → models → load_model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qmodel_zoo.analysis import calc_ic

from qcore.dataset import build_dataset, make_processor
from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from qcore.modelio import load_model
from qcore.types import FeatureSet

FEATURES = FeatureSet(
    features={
        "ROC5": "$close/Ref($close, 5) - 1",  # the synthetic market plants a short-term reversal on this
        "VRATIO": "Mean($volume, 5)/Mean($volume, 20)",
        "STD20": "Std($close/Ref($close, 1) - 1, 20)",
        "KMID": "($close - $open)/$open",
    },
    labels={"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"},
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    synth = pytest.importorskip("qdata_cn.synth")
    store = tmp_path_factory.mktemp("synth")
    synth.synthesize(store, instruments=50, days=260, seed=3)
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    dates = provider.calendar()
    segments = {"train": (dates[30], dates[159]), "valid": (dates[160], dates[209]), "test": (dates[210], dates[-3])}
    fit = segments["train"]

    def processor(name, **kwargs):
        return make_processor(kernel.registry("processor").get(name), kwargs, *fit)

    return build_dataset(
        engine, FEATURES, instruments="all", segments=segments,
        infer_processors=[processor("RobustZScoreNorm", fields_group="feature", clip_outlier=True),
                          processor("Fillna", fields_group="feature")],
        learn_processors=[processor("DropnaLabel"), processor("CSRankNorm", fields_group="label")],
    )


@pytest.mark.parametrize(("name", "kwargs"), [
    ("linear", {}),
    ("lightgbm", {"num_leaves": 7, "learning_rate": 0.05, "num_boost_round": 60, "num_threads": 1}),
    ("gru", {"d_feat": None, "step_len": 5, "hidden_size": 8, "n_epochs": 2, "batch_size": 512, "seed": 0,
             "GPU": None}),
])
def test_model_on_the_store(dataset, tmp_path, name: str, kwargs: dict) -> None:
    kernel = Kernel.load(use_env=False)
    model = kernel.create("model", name, **kwargs).fit(dataset)
    pred = model.predict(dataset, "test")
    features, label = dataset.xy("test")
    assert pred.index.equals(features.index) and np.isfinite(pred).all()
    assert calc_ic(pred, label)["IC"].notna().all()
    model.save(tmp_path)
    pd.testing.assert_series_equal(load_model(tmp_path, kernel).predict(dataset, "test"), pred, rtol=0, atol=0)


def test_linear_finds_the_planted_reversal(dataset) -> None:
    model = Kernel.load(use_env=False).create("model", "linear").fit(dataset)
    assert model.coef_["ROC5"] < 0
