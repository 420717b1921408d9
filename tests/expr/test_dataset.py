"""Datasets built from feature sets, processors with Qlib's semantics, and the time-series view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qcore.dataset import PanelDataset, build_dataset, make_processor
from qcore.errors import ConfigError, QcoreError
from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from qcore.types import FeatureSet
from tests.expr.test_engine import RandomMarket

FEATURES = FeatureSet(
    {"RET1": "$close/Ref($close, 1) - 1", "MA5": "Mean($close, 5)/$close", "VOL": "Log($volume + 1)"},
    {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"},
)


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


@pytest.fixture
def market() -> RandomMarket:
    return RandomMarket(n_days=120)


def segments(market: RandomMarket) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    d = market.dates
    return {"train": (d[0], d[59]), "valid": (d[60], d[89]), "test": (d[90], d[119])}


def processor(kernel: Kernel, name: str, **kwargs):
    return kernel.create("processor", name, **kwargs)


def test_segments_and_groups(market, kernel) -> None:
    engine = ExpressionEngine(market, kernel.registry("operator"))
    ds = build_dataset(engine, FEATURES, instruments="all", segments=segments(market))
    train = ds.prepare("train")
    assert list(train.columns) == [("feature", "RET1"), ("feature", "MA5"), ("feature", "VOL"), ("label", "LABEL0")]
    dates = train.index.get_level_values("datetime")
    assert dates.min() == market.dates[0] and dates.max() == market.dates[59]
    x, y = ds.xy("test")
    assert list(x.columns) == ["RET1", "MA5", "VOL"] and y.name == "LABEL0"
    assert y.isna().sum() > 0  # the last two test days have no label; infer data keeps them
    with pytest.raises(QcoreError, match="unknown segment 'tset'"):
        ds.prepare("tset")


def test_infer_and_learn_processors(market, kernel) -> None:
    engine = ExpressionEngine(market, kernel.registry("operator"))
    segs = segments(market)
    infer = [
        make_processor(kernel.registry("processor").get("ZScoreNorm"), {"fields_group": "feature"}, None, None),
        processor(kernel, "Fillna", fields_group="feature"),
    ]
    learn = [processor(kernel, "DropnaLabel"), processor(kernel, "CSRankNorm", fields_group="label")]
    ds = build_dataset(engine, FEATURES, instruments="all", segments=segs, infer_processors=infer,
                       learn_processors=learn)
    train = ds.prepare("train", "feature", "infer")
    np.testing.assert_allclose(train.mean().to_numpy(), 0.0, atol=0.05)
    assert not ds.prepare("test", "feature", "infer").isna().any().any()
    learn_train = ds.prepare("train", "__all", "learn")
    assert not learn_train["label"].isna().any().any()
    ranks = learn_train["label"]["LABEL0"].groupby(level="datetime")
    assert ranks.max().max() <= 0.5 * 3.46 + 1e-6 and ranks.min().min() >= -0.5 * 3.46
    raw = ds.prepare("train", "feature", "raw")
    assert raw.isna().any().any()


def test_fit_window_injected_and_learn_only_rejected(market, kernel) -> None:
    factory = kernel.registry("processor").get("ZScoreNorm")
    built = make_processor(factory, {"fields_group": "feature"}, "2020-01-01", "2020-03-01")
    assert (built.fit_start_time, built.fit_end_time) == ("2020-01-01", "2020-03-01")
    frame = pd.DataFrame(
        np.ones((2, 1)), columns=pd.MultiIndex.from_tuples([("feature", "a")]),
        index=pd.MultiIndex.from_product([[pd.Timestamp("2020-01-01")], ["A", "B"]], names=["datetime", "instrument"]),
    )
    with pytest.raises(ConfigError, match="DropnaLabel cannot be an infer processor"):
        PanelDataset(frame, {"train": ("2020-01-01", "2020-01-02")},
                     infer_processors=[processor(kernel, "DropnaLabel")])


def test_processor_semantics(kernel) -> None:
    index = pd.MultiIndex.from_product([pd.bdate_range("2020-01-01", periods=2), list("ABCD")],
                                       names=["datetime", "instrument"])
    values = np.array([[1.0, np.inf], [2.0, 1.0], [3.0, 3.0], [np.nan, 5.0],
                       [4.0, -np.inf], [8.0, 2.0], [0.0, 2.0], [4.0, 2.0]])
    frame = pd.DataFrame(values, index=index, columns=pd.MultiIndex.from_tuples([("feature", "x"), ("feature", "y")]))
    inf = processor(kernel, "ProcessInf")(frame)
    assert inf.iloc[0, 1] == pytest.approx(3.0) and inf.iloc[4, 1] == pytest.approx(2.0)
    fill = processor(kernel, "CSZFillna", fields_group="feature")(frame)
    assert fill.iloc[3, 0] == pytest.approx(2.0)
    z = processor(kernel, "CSZScoreNorm", fields_group="feature")(inf)
    day = inf.xs(index[4][0], level="datetime")["feature"]["x"]
    np.testing.assert_allclose(z.xs(index[4][0], level="datetime")["feature"]["x"],
                               (day - day.mean()) / day.std(), rtol=1e-6)
    robust = make_processor(kernel.registry("processor").get("RobustZScoreNorm"), {"fields_group": "feature"},
                            None, None)
    robust.fit(inf)
    out = robust(inf)["feature"]["x"].to_numpy()
    assert np.nanmax(np.abs(out)) <= 3.0
    kept = processor(kernel, "FilterCol", fields_group="feature", col_list=["y"])(frame)
    assert list(kept.columns) == [("feature", "y")]
    with pytest.raises(KeyError, match="no column z"):
        processor(kernel, "FilterCol", col_list=["z"])(frame)
    assert list(processor(kernel, "DropCol", col_list=["x"])(frame).columns) == [("feature", "y")]


def test_ts_view_windows(market, kernel) -> None:
    engine = ExpressionEngine(market, kernel.registry("operator"))
    ds = build_dataset(engine, FEATURES, instruments="all", segments=segments(market))
    view = ds.ts_view("test", step_len=10)
    frame = ds.prepare("test", "__all", "infer")
    assert len(view) == len(frame)
    features = ds.frame("infer")["feature"]
    i = 7
    date, inst = view.index[i]
    history = features.xs(inst, level="instrument").loc[:date].tail(10).to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(view[i], history)
    assert not view[i].flags.writeable or view[i].base is not None
    batch = view.batch([0, 3, i])
    np.testing.assert_array_equal(batch[2], view[i])
    assert batch.shape == (3, 10, 3)
    first = ds.ts_view("train", step_len=10)[0]
    assert np.isnan(first[:9]).all()


@pytest.mark.parametrize(("name", "kwargs"), [
    ("CSZScoreNorm", {"fields_group": "label"}),
    ("CSRankNorm", {"fields_group": "label"}),
    ("ZScoreNorm", {"fields_group": "label"}),
    ("MinMaxNorm", {"fields_group": "label"}),
    ("Fillna", {"fields_group": "label", "fill_value": 0.0}),
])
def test_processors_of_one_group_share_the_others_columns(kernel, name: str, kwargs: dict) -> None:
    """A processor of the label group gives new label arrays and leaves the input frame as it was; the feature
    columns of its output share the input's memory (no copy of a whole feature frame to change one column)."""
    rng = np.random.default_rng(0)
    index = pd.MultiIndex.from_product([pd.bdate_range("2020-01-01", periods=20), list("ABCDE")],
                                       names=["datetime", "instrument"])
    columns = pd.MultiIndex.from_tuples([("feature", "x"), ("feature", "y"), ("label", "LABEL0")])
    frame = pd.DataFrame(rng.standard_normal((100, 3)).astype(np.float32), index=index, columns=columns)
    frame.iloc[3, 2] = np.nan
    before = frame.copy()
    step = processor(kernel, name, **kwargs)
    step.fit(frame)
    out = step(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert not out[("label", "LABEL0")].equals(frame[("label", "LABEL0")])
    for column in (("feature", "x"), ("feature", "y")):
        assert np.shares_memory(out[column].to_numpy(), frame[column].to_numpy())
        pd.testing.assert_series_equal(out[column], frame[column])


def test_return_freed_memory_reports_whether_the_c_library_trims() -> None:
    import sys

    from qcore.memory import return_freed_memory

    assert return_freed_memory() is sys.platform.startswith("linux")
