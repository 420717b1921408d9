"""Sample weights in LightGBM, the linear models and DoubleEnsemble: a zero weight is the row's absence, uniform
weights are no weights, the LightGBM dataset cache never carries weights, and a plugin's reweighter reaches the
model from a workflow YAML (ours and Qlib's ``task.reweighter``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import yaml
from qmodel_zoo.double_ensemble import DEnsembleModel
from qmodel_zoo.gbdt import LGBModel
from qmodel_zoo.linear import LinearModel

import qcore
from qcore import hookimpl
from qcore.errors import DataError
from qcore.kernel import Kernel
from tests.kernel.test_workflow import STORE, TinyFeatures, workflow
from tests.qmodel_zoo.test_lgb_dataset_cache import make_dataset

LGB = {"num_leaves": 7, "learning_rate": 0.1, "num_boost_round": 30, "num_threads": 1, "subsample": 0.8,
       "subsample_freq": 1, "colsample_bytree": 0.9, "min_data_in_leaf": 20}  # fmt: skip


class DayWeights:
    """Weight per date: ``inside`` on ``[start, end]``, ``outside`` elsewhere."""

    def __init__(self, start: str = "1900-01-01", end: str = "1900-01-01", inside: float = 0.0,
                 outside: float = 1.0) -> None:  # fmt: skip
        self.start, self.end = pd.Timestamp(start), pd.Timestamp(end)
        self.inside, self.outside = inside, outside
        self.calls: list[int] = []

    def reweight(self, index: pd.MultiIndex) -> pd.Series:
        self.calls.append(len(index))
        days = pd.DatetimeIndex(index.get_level_values("datetime").unique())
        inside = (days >= self.start) & (days <= self.end)
        return pd.Series(np.where(inside, self.inside, self.outside), index=days)


class Without:
    """A dataset whose ``train`` segment lacks the dates ``[start, end]``."""

    def __init__(self, dataset: Any, start: str, end: str) -> None:
        self.dataset, self.start, self.end = dataset, pd.Timestamp(start), pd.Timestamp(end)
        self.segments = dataset.segments

    def xy(self, segment: str, data_key: str | None = None) -> Any:
        x, y = self.dataset.xy(segment, data_key)
        if segment != "train":
            return x, y
        dates = x.index.get_level_values("datetime")
        keep = ~((dates >= self.start) & (dates <= self.end))
        return x[keep], (None if y is None else y[keep])


def _span(planted) -> tuple[str, str]:
    """The middle third of the planted train segment."""
    train = planted.segments["train"]
    days = pd.bdate_range(train.start, train.end)
    return str(days[len(days) // 3].date()), str(days[2 * len(days) // 3].date())


def _same(a: pd.Series, b: pd.Series, atol: float = 0.0) -> None:
    pd.testing.assert_series_equal(a, b, rtol=0, atol=atol)


# --- LightGBM ---------------------------------------------------------------------------------------------------


def test_lightgbm_zero_weights_on_a_span_equal_training_without_it(planted) -> None:
    start, end = _span(planted)
    weighted = LGBModel(**LGB, dataset_cache=False).fit(planted, reweighter=DayWeights(start, end, 0.0))
    dropped = LGBModel(**LGB, dataset_cache=False).fit(Without(planted, start, end))
    plain = LGBModel(**LGB, dataset_cache=False).fit(planted)
    _same(weighted.predict(planted), dropped.predict(planted))
    assert not np.allclose(weighted.predict(planted), plain.predict(planted))


@pytest.mark.parametrize("level", [1.0, 3.5])
def test_lightgbm_uniform_weights_equal_no_weights(planted, level: float) -> None:
    reweighter = DayWeights(outside=level)
    weighted = LGBModel(**LGB, dataset_cache=False).fit(planted, reweighter=reweighter)
    plain = LGBModel(**LGB, dataset_cache=False).fit(planted)
    _same(weighted.predict(planted), plain.predict(planted))
    assert len(reweighter.calls) == 2  # train and valid are both weighted (Qlib's LGBModel)


def test_lightgbm_weights_change_the_model(planted) -> None:
    start, end = _span(planted)
    heavy = LGBModel(**LGB, dataset_cache=False).fit(planted, reweighter=DayWeights(start, end, 5.0))
    plain = LGBModel(**LGB, dataset_cache=False).fit(planted)
    assert not np.allclose(heavy.predict(planted), plain.predict(planted))


def test_a_cached_lightgbm_dataset_never_carries_weights(tmp_path: Path, monkeypatch) -> None:
    synth = pytest.importorskip("qdata_cn.synth")
    synth.synthesize(tmp_path / "store", instruments=30, days=200, seed=3)
    dataset = make_dataset(tmp_path / "store")
    assert dataset.fingerprint
    dates = dataset.xy("train")[0].index.get_level_values("datetime").unique()
    weights = DayWeights(str(dates[0].date()), str(dates[len(dates) // 2].date()), 0.0)
    first = LGBModel(**LGB)
    first.fit(dataset)
    assert first.dataset_cache_ == "miss"
    weighted = LGBModel(**LGB)
    weighted.fit(dataset, reweighter=weights)
    assert weighted.dataset_cache_ == "off"  # the cache entry of the unweighted run is not used
    again = LGBModel(**LGB)
    again.fit(dataset)
    assert again.dataset_cache_ == "hit"  # ... and the weighted run stored nothing over it
    _same(again.predict(dataset), first.predict(dataset))
    assert not np.allclose(weighted.predict(dataset), first.predict(dataset))
    monkeypatch.setenv("QCORE_LGB_DATASET_CACHE", "0")
    uncached = LGBModel(**LGB).fit(dataset, reweighter=weights)
    _same(uncached.predict(dataset), weighted.predict(dataset))


def test_lightgbm_refuses_weights_that_leave_nothing(planted) -> None:
    train = planted.segments["train"]
    with pytest.raises(DataError, match="every weight is zero"):
        LGBModel(**LGB, dataset_cache=False).fit(planted, reweighter=DayWeights(str(train.start), str(train.end)))


# --- linear models -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("estimator", "alpha"), [("ols", 0.0), ("ridge", 50.0), ("lasso", 0.01), ("nnls", 0.0)])
def test_linear_zero_weights_equal_dropping_and_uniform_equal_none(planted, estimator: str, alpha: float) -> None:
    start, end = _span(planted)
    kwargs = {"estimator": estimator, "alpha": alpha, "tol": 1e-12}
    weighted = LinearModel(**kwargs).fit(planted, reweighter=DayWeights(start, end, 0.0))
    dropped = LinearModel(**kwargs).fit(Without(planted, start, end))
    np.testing.assert_allclose(weighted.coef_, dropped.coef_, rtol=1e-9, atol=1e-12)
    assert weighted.intercept_ == pytest.approx(dropped.intercept_, rel=1e-9, abs=1e-12)
    uniform = LinearModel(**kwargs).fit(planted, reweighter=DayWeights(outside=7.0))
    plain = LinearModel(**kwargs).fit(planted)
    np.testing.assert_allclose(uniform.coef_, plain.coef_, rtol=1e-9, atol=1e-12)
    assert not np.allclose(weighted.coef_, plain.coef_, rtol=1e-6, atol=0)


def test_weighted_least_squares_matches_the_normal_equations(planted) -> None:
    reweighter = DayWeights(*_span(planted), inside=4.0)
    model = LinearModel("ols").fit(planted, reweighter=reweighter)
    x, y = planted.xy("train")
    w = reweighter.reweight(x.index).reindex(x.index.get_level_values("datetime")).to_numpy()
    design = np.column_stack([np.ones(len(x)), x.to_numpy(np.float64)])
    beta = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (w * y.to_numpy(np.float64)))
    np.testing.assert_allclose(model.coef_.to_numpy(), beta[1:], rtol=1e-8)
    assert model.intercept_ == pytest.approx(beta[0], rel=1e-8, abs=1e-12)


# --- DoubleEnsemble ----------------------------------------------------------------------------------------------


def test_double_ensemble_zero_and_uniform_weights(planted) -> None:
    start, end = _span(planted)
    kwargs = {"num_models": 2, "epochs": 15, "num_threads": 1, "num_leaves": 7, "bins_fs": 2,
              "sample_ratios": [0.8, 0.6]}  # fmt: skip
    weighted = DEnsembleModel(**kwargs).fit(planted, reweighter=DayWeights(start, end, 0.0))
    dropped = DEnsembleModel(**kwargs).fit(Without(planted, start, end))
    _same(weighted.predict(planted), dropped.predict(planted))
    uniform = DEnsembleModel(**kwargs).fit(planted, reweighter=DayWeights(outside=2.0))
    plain = DEnsembleModel(**kwargs).fit(planted)
    _same(uniform.predict(planted), plain.predict(planted))
    assert not np.allclose(weighted.predict(planted), plain.predict(planted))


# --- from a workflow ---------------------------------------------------------------------------------------------


class SpyWeights(DayWeights):
    """A plugin's reweighter that remembers every instance's calls."""

    instances: ClassVar[list[SpyWeights]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        SpyWeights.instances.append(self)


class ReweightPlugin(TinyFeatures):
    @hookimpl
    def qcore_register_reweighters(self, register: Any) -> None:
        register("spy_days", SpyWeights)


@pytest.fixture
def reweight_kernel() -> Kernel:
    SpyWeights.instances.clear()
    return Kernel.load(extra={"tiny": ReweightPlugin()}, use_env=False)


def _lightgbm_workflow(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return workflow(tmp_path, model={"name": "lightgbm", "kwargs": {**LGB, "dataset_cache": False}}, **extra)


def _pred(result: Any, tmp_path: Path) -> pd.Series:
    from qcore.recorders.local import LocalRecorder

    stored = LocalRecorder(tmp_path / "runs").get_run(result.run_id)
    return pd.read_parquet(Path(stored["path"]) / "artifacts" / "pred.parquet")["score"]


def test_a_plugin_reweighter_reaches_lightgbm_from_a_workflow_yaml(tmp_path: Path, reweight_kernel: Kernel) -> None:
    spec = {"name": "spy_days", "kwargs": {"start": "2018-01-01", "end": "2018-05-31", "inside": 0.0}}
    path = tmp_path / "weighted.yaml"
    path.write_text(yaml.safe_dump(_lightgbm_workflow(tmp_path, reweighter=spec)))
    weighted = _pred(qcore.run(path, kernel=reweight_kernel), tmp_path)
    assert len(SpyWeights.instances) == 1 and len(SpyWeights.instances[0].calls) == 2
    plain = _pred(qcore.run(_lightgbm_workflow(tmp_path), kernel=reweight_kernel), tmp_path)
    assert not np.allclose(weighted, plain)
    uniform_spec = {"name": "spy_days", "kwargs": {"outside": 2.0}}
    uniform = _pred(qcore.run(_lightgbm_workflow(tmp_path, reweighter=uniform_spec), kernel=reweight_kernel),
                    tmp_path)  # fmt: skip
    _same(uniform, plain)


def test_qlib_task_reweighter_is_translated(tmp_path: Path, reweight_kernel: Kernel) -> None:
    qlib_yaml = {
        "qlib_init": {"provider_uri": str(STORE), "region": "cn"},
        "market": "csi_like",
        "task": {
            "model": {"class": "LGBModel", "module_path": "qlib.contrib.model.gbdt",
                      "kwargs": {**LGB, "dataset_cache": False}},
            "dataset": {"class": "DatasetH", "module_path": "qlib.data.dataset", "kwargs": {
                "handler": {"class": "tiny", "kwargs": {"instruments": "csi_like"}},
                "segments": {"train": ["2018-01-02", "2018-09-28"], "valid": ["2018-10-08", "2018-12-28"],
                             "test": ["2019-01-02", "2019-04-23"]}}},
            "reweighter": {"class": "spy_days", "kwargs": {"start": "2018-01-01", "end": "2018-05-31",
                                                           "inside": 0.0}},
            "record": [{"class": "SignalRecord", "module_path": "qlib.workflow.record_temp"}],
        },
    }
    path = tmp_path / "qlib.yaml"
    path.write_text(yaml.safe_dump(qlib_yaml))
    from qcore.config import read_workflow

    config = read_workflow(path).validate(reweight_kernel)
    assert config.reweighter is not None and config.reweighter.name == "spy_days"
    assert dict(config.reweighter.kwargs) == {"start": "2018-01-01", "end": "2018-05-31", "inside": 0.0}
