"""XGBModel and CatBoostModel (plugin qmodel_xgb_cat): training on a planted signal, early stopping, sample weights
through the kernel's Reweighter contract, argument checks, feature importance, save/load without pickle, and a Qlib
YAML through ``qcore run``."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

pytest.importorskip("xgboost")
pytest.importorskip("catboost")

from qcore.cli import cli
from qcore.dataset import PanelDataset
from qcore.errors import ConfigError, DataError
from qcore.kernel import Kernel
from qcore.modelio import load_model, read_manifest
from qcore.plugins import PluginSelection
from qcore.recorders.local import LocalRecorder
from tests.kernel.test_workflow import QLIB_YAML, STORE
from tests.qmodel_zoo.helpers import IC_BAR, mean_test_ic
from tests.qmodel_zoo.planted import planted_frame, split

#: small, fast settings of each model (one thread: the machine is shared).
FAST: dict[str, dict[str, Any]] = {
    "xgboost": {"eta": 0.1, "max_depth": 3, "nthread": 1, "num_boost_round": 300, "early_stopping_rounds": 10},
    "catboost": {"learning_rate": 0.1, "max_depth": 3, "thread_count": 1, "num_boost_round": 300,
                 "early_stopping_rounds": 10},
}
MODELS = tuple(FAST)


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(PluginSelection(enable=("qmodel_xgb_cat",), autoload=False), use_env=False)


@pytest.fixture(scope="module")
def planted() -> PanelDataset:
    frame = planted_frame(n_instruments=100, n_days=80, seed=1)
    return PanelDataset(frame, split(frame.index.get_level_values("datetime").unique()))


@pytest.fixture(scope="module")
def flipped() -> PanelDataset:
    """The planted market with the label's sign flipped on the first half of the training dates."""
    frame = planted_frame(n_instruments=100, n_days=80, seed=2)
    dates = frame.index.get_level_values("datetime")
    segments = split(dates.unique())
    train_dates = dates.unique()[(dates.unique() >= segments["train"][0]) & (dates.unique() <= segments["train"][1])]
    bad = dates <= train_dates[len(train_dates) // 2 - 1]
    frame.loc[bad, ("label", "LABEL0")] *= -1
    return PanelDataset(frame, segments)


@pytest.fixture(scope="module")
def fitted(kernel: Kernel, planted: PanelDataset) -> dict[str, Any]:
    return {name: kernel.create("model", name, **FAST[name]).fit(planted) for name in MODELS}


class HalfDates:
    """A reweighter (the kernel's contract): weight 1 on the first (``first=True``) or second half of the
    training dates, 0 on the rest; answers one weight per date."""

    def __init__(self, first: bool) -> None:
        self.first = first

    def reweight(self, index: pd.MultiIndex) -> pd.Series:
        dates = index.get_level_values("datetime").unique().sort_values()
        early = dates <= dates[len(dates) // 2 - 1]
        return pd.Series(np.where(early == self.first, 1.0, 0.0), index=dates)


class Negative:
    def reweight(self, index: pd.MultiIndex) -> np.ndarray:
        return -np.ones(len(index))


@pytest.mark.parametrize("name", MODELS)
def test_learns_the_planted_signal_and_stops_early(fitted: dict[str, Any], planted: PanelDataset, name: str) -> None:
    model = fitted[name]
    assert mean_test_ic(model, planted) > IC_BAR
    assert set(model.evals_result_) == {"train", "valid"}
    grown = len(model.evals_result_["valid"])
    assert grown < FAST[name]["num_boost_round"]  # early stopping on valid, not the round limit
    valid = np.asarray(model.evals_result_["valid"])
    if name == "xgboost":
        assert model.best_iteration_ == int(np.argmin(valid)) + 1 and grown == model.best_iteration_ + 10
    else:
        assert model.model.tree_count_ == int(np.argmin(valid)) + 1  # use_best_model keeps the best round


def test_xgboost_can_predict_with_every_round_as_qlib(kernel: Kernel, planted: PanelDataset,
                                                      fitted: dict[str, Any]) -> None:
    """``use_best_model: false`` is Qlib's XGBModel: predictions from every round grown, not the best one."""
    model = kernel.create("model", "xgboost", **FAST["xgboost"], use_best_model=False).fit(planted)
    grown = len(model.evals_result_["valid"])
    assert model.best_iteration_ == grown == fitted["xgboost"].best_iteration_ + 10
    assert not model.predict(planted).equals(fitted["xgboost"].predict(planted))
    assert model.init_params["use_best_model"] is False


@pytest.mark.parametrize("name", MODELS)
def test_without_a_valid_segment_every_round_is_grown(kernel: Kernel, planted: PanelDataset, name: str) -> None:
    class TrainTest:
        segments = ("train", "test")

        def xy(self, segment: str, data_key: str | None = None) -> Any:
            return planted.xy(segment, data_key)

    kwargs = {**FAST[name], "num_boost_round": 15}
    model = kernel.create("model", name, **kwargs).fit(TrainTest())
    assert set(model.evals_result_) == {"train"} and len(model.evals_result_["train"]) == 15


@pytest.mark.parametrize("name", MODELS)
def test_sample_weights_through_the_reweighter(kernel: Kernel, flipped: PanelDataset, name: str) -> None:
    """Weight only on the dates whose label has the true sign: the model learns the signal; only on the flipped
    dates: it learns the opposite. So the weights reach the booster row by row."""
    good = kernel.create("model", name, **FAST[name]).fit(flipped, reweighter=HalfDates(first=False))
    bad = kernel.create("model", name, **FAST[name]).fit(flipped, reweighter=HalfDates(first=True))
    assert mean_test_ic(good, flipped) > IC_BAR
    assert mean_test_ic(bad, flipped) < -IC_BAR


@pytest.mark.parametrize("name", MODELS)
def test_bad_weights_are_refused(kernel: Kernel, planted: PanelDataset, name: str) -> None:
    model = kernel.create("model", name, **FAST[name])
    with pytest.raises(DataError, match="negative"):
        model.fit(planted, reweighter=Negative())


@pytest.mark.parametrize("name", MODELS)
def test_save_and_load_without_pickle(fitted: dict[str, Any], planted: PanelDataset, kernel: Kernel, tmp_path: Path,
                                      name: str) -> None:
    model = fitted[name]
    model.save(tmp_path)
    native = {"xgboost": "xgboost.ubj", "catboost": "catboost.cbm"}[name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.json", "state.json", native])
    assert read_manifest(tmp_path)["model"] == name
    loaded = load_model(tmp_path, kernel)
    pd.testing.assert_series_equal(loaded.predict(planted, "test"), model.predict(planted, "test"), rtol=0, atol=0)
    assert loaded.evals_result_ == model.evals_result_


@pytest.mark.parametrize("name", MODELS)
def test_feature_importance_ranks_the_planted_fields(fitted: dict[str, Any], name: str) -> None:
    importance = fitted[name].feature_importance()
    assert sorted(importance.index) == ["A", "B", "C", "D"]
    assert importance.index[0] == "A" and importance["D"] < importance["B"]  # label = 0.3 A - 0.2 B + 0.15 C(t-1)


@pytest.mark.parametrize("name", MODELS)
def test_predicting_before_fit_is_an_error(kernel: Kernel, planted: PanelDataset, name: str) -> None:
    with pytest.raises(Exception, match="not fitted"):
        kernel.create("model", name, **FAST[name]).predict(planted)


@pytest.mark.parametrize(("name", "kwargs", "message", "path"), [
    ("xgboost", {"max_dpeth": 3}, "unknown parameter 'max_dpeth'.*did you mean 'max_depth'", "max_dpeth"),
    ("xgboost", {"eta": -1}, "XGBoost refuses eta=-1", "eta"),
    ("xgboost", {"max_depth": "five"}, "XGBoost refuses max_depth='five'", "max_depth"),
    ("xgboost", {"eval_metric": "rmsee"}, "XGBoost refuses eval_metric='rmsee'", "eval_metric"),
    ("xgboost", {"num_boost_round": 0}, "num_boost_round must be a whole number >= 1", "num_boost_round"),
    ("catboost", {"lerning_rate": 0.1}, "unknown parameter 'lerning_rate'.*did you mean 'learning_rate'",
     "lerning_rate"),
    ("catboost", {"loss": "MAE"}, "loss must be one of RMSE, Logloss", "loss"),
    ("catboost", {"iterations": 100}, "'iterations' is set by the model's num_boost_round", "iterations"),
    ("catboost", {"max_depth": 17}, "CatBoost refuses max_depth=17 .*: Maximum tree depth is 16", "max_depth"),
    ("catboost", {"subsample": 1.5, "bootstrap_type": "Bernoulli"}, "CatBoost refuses subsample=1.5", "subsample"),
    ("catboost", {"early_stopping_rounds": -3}, "early_stopping_rounds must be a whole number",
     "early_stopping_rounds"),
])
def test_arguments_are_checked_when_the_model_is_built(kernel: Kernel, name: str, kwargs: dict, message: str,
                                                       path: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        kernel.create("model", name, **kwargs)
    assert info.value.path == path


def test_qlib_benchmark_arguments_are_accepted(kernel: Kernel, caplog: pytest.LogCaptureFixture) -> None:
    """The kwargs of Qlib's benchmark configs: XGBoost's ``n_estimators`` is ignored (as by Qlib's xgb.train);
    CatBoost's Poisson bootstrap, GPU-only, becomes Bernoulli on the CPU with a warning."""
    with caplog.at_level(logging.WARNING):
        xgb = kernel.create("model", "XGBModel", eval_metric="rmse", colsample_bytree=0.8879, eta=0.0421, max_depth=8,
                            n_estimators=647, subsample=0.8789, nthread=20)
        cat = kernel.create("model", "CatBoostModel", loss="RMSE", learning_rate=0.0421, subsample=0.8789,
                            max_depth=6, num_leaves=100, thread_count=20, grow_policy="Lossguide",
                            bootstrap_type="Poisson", task_type="CPU")
    assert "n_estimators" not in xgb.params and xgb.num_boost_round == 1000 and xgb.early_stopping_rounds == 50
    assert cat.params["bootstrap_type"] == "Bernoulli" and cat.params["loss_function"] == "RMSE"
    assert "Poisson bootstrap exists on the GPU only" in caplog.text and "n_estimators" in caplog.text
    assert cat.init_params["bootstrap_type"] == "Poisson"  # saved as asked: a GPU machine gets Poisson back


@pytest.mark.slow
@pytest.mark.parametrize(("qlib_class", "kwargs"), [
    ("XGBModel", "{eval_metric: rmse, eta: 0.1, max_depth: 4, nthread: 2, num_boost_round: 40}"),
    ("CatBoostModel", "{loss: RMSE, learning_rate: 0.1, max_depth: 4, thread_count: 2, num_boost_round: 40}"),
])
def test_qlib_yaml_runs_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qlib_class: str,
                                     kwargs: str) -> None:
    monkeypatch.chdir(tmp_path)
    text = textwrap.dedent(QLIB_YAML).format(store=STORE).replace("class: LGBModel", f"class: {qlib_class}")
    text = text.replace("kwargs: {loss: mse, num_threads: 2}", f"kwargs: {kwargs}")
    assert qlib_class in text and "num_boost_round: 40" in text
    path = tmp_path / "workflow.yaml"
    path.write_text(text)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["run", str(path), "--set", "recorder.name=local", "--set",
                                      f"recorder.kwargs.uri={runs}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Rank IC" in result.output and "Information ratio (with cost)" in result.output
    assert not (tmp_path / "catboost_info").exists()  # CatBoost writes nothing into the working directory
    (run,) = LocalRecorder(runs).list_runs()
    stored = LocalRecorder(runs).get_run(run["run_id"])
    pred = pd.read_parquet(Path(stored["path"]) / "artifacts" / "pred.parquet")
    assert pred["score"].notna().all() and pred["score"].std() > 0
