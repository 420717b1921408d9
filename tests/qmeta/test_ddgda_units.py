"""DDG-DA's parts on planted frames: period statistics and similarity, the meta-model, the per-date reweighter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qmeta.ddgda import DDGDA, TimeWeights
from qmeta.meta import similarity_blocks, train_meta
from qmeta.proxy import cs_zscore, day_bounds, period_data, select_features

from qcore.errors import ConfigError, DataError


def planted(days: int = 120, names: int = 60, shift: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Label = 0.5·A (− 0.5·A from day ``shift`` on) + 0.3·B + noise; C is noise."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=days)
    index = pd.MultiIndex.from_product([dates, [f"S{i:02d}" for i in range(names)]], names=["datetime", "instrument"])
    x = rng.standard_normal((len(index), 3))
    sign = np.ones(len(index))
    if shift is not None:
        sign[np.repeat(np.arange(days) >= shift, names)] = -1.0
    y = 0.5 * sign * x[:, 0] + 0.3 * x[:, 1] + rng.standard_normal(len(index))
    columns = pd.MultiIndex.from_tuples([("feature", "A"), ("feature", "B"), ("feature", "C"), ("label", "LABEL0")])
    return pd.DataFrame(np.column_stack([x, y]), index=index, columns=columns)


def test_cs_zscore_per_date_with_nan_and_constant_columns() -> None:
    values = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0], [10.0, 1.0], [20.0, 2.0]])
    z = cs_zscore(values, np.array([0, 3]))
    np.testing.assert_allclose(z[:3, 0], [-1.0, 1.0, 0.0])
    np.testing.assert_array_equal(z[:3, 1], 0.0)  # constant on the date
    np.testing.assert_allclose(z[3:, 0], [-1.0, 1.0])


def test_period_ic_equals_the_correlation_of_each_period_models_predictions() -> None:
    frame = planted(days=40, names=30)
    features, label = frame["feature"], frame["label"]["LABEL0"]
    data = period_data(features, label, ["A", "B", "C"], step=10, alpha=0.01)
    assert data.periods == 4 and data.ic.shape == (40, 4)
    dates, starts = day_bounds(features.index.get_level_values("datetime"))
    x = cs_zscore(features.to_numpy(), starts)
    y = cs_zscore(label.to_numpy()[:, None], starts)[:, 0]
    p = 2
    rows = np.isin(features.index.get_level_values("datetime"), dates[20:30])
    gram = x[rows].T @ x[rows]
    beta = np.linalg.solve(gram + 0.01 * np.trace(gram) / 3 * np.eye(3), x[rows].T @ y[rows])
    for d in (0, 17, 39):
        on_day = features.index.get_level_values("datetime") == dates[d]
        expected = np.corrcoef(x[on_day] @ beta, y[on_day])[0, 1]
        assert data.ic[d, p] == pytest.approx(expected, abs=1e-10)
    np.testing.assert_allclose(data.rows, [300.0] * 4)


def test_similarity_blocks_are_causal_means() -> None:
    data = period_data(planted(days=60, names=20)["feature"], planted(days=60, names=20)["label"]["LABEL0"],
                       ["A", "B"], step=10, alpha=0.01)  # fmt: skip
    block = similarity_blocks(data, 4, 2)
    assert block.shape == (2, 4)
    np.testing.assert_allclose(block[1], np.nanmean(data.ic[30:40, :4], axis=0))
    assert np.all(similarity_blocks(data, 1, 3)[:2] == 0.0)  # history before the span's start is 0


def _next_period_mse(frame: pd.DataFrame, span_days: int, weights: pd.Series | None) -> float:
    """Mean squared error on the days after ``span_days`` of a weighted least-squares fit on the span."""
    dates = frame.index.get_level_values("datetime")
    cut = dates.unique()[span_days]
    train, test = frame[dates < cut], frame[dates >= cut]
    x, y = train["feature"].to_numpy(), train["label"]["LABEL0"].to_numpy()
    w = np.ones(len(x)) if weights is None else weights.reindex(dates[dates < cut]).to_numpy()
    beta = np.linalg.solve(x.T @ (x * w[:, None]), x.T @ (w * y))
    residual = test["label"]["LABEL0"].to_numpy() - test["feature"].to_numpy() @ beta
    return float(np.mean(residual**2))


def test_the_meta_model_upweights_the_periods_after_a_shift() -> None:
    frame = planted(days=210, names=60, shift=150)
    span = frame[frame.index.get_level_values("datetime") < frame.index.get_level_values("datetime").unique()[200]]
    data = period_data(span["feature"], span["label"]["LABEL0"], ["A", "B", "C"], step=10, alpha=0.01)
    result = train_meta(data, hist_steps=3, clip_weight=4.0, alpha=0.01, epochs=150, lr=0.05, seed=0)
    assert result.tasks == data.periods - 2
    assert result.loss_after < result.loss_before
    before, after = result.weights[:15], result.weights[15:]
    assert after.min() > before.max()
    assert after.mean() > 2.0 > 0.5 > before.mean()
    assert np.all((result.weights >= 0.25 - 1e-12) & (result.weights <= 4.0 + 1e-12))
    weights = DDGDA(step=10, hist_steps=3, proxy_model=None, clip_weight=4.0, epochs=150).learn(span)
    assert _next_period_mse(frame, 200, weights.weights) < 0.9 * _next_period_mse(frame, 200, None)


def test_without_drift_the_weights_cost_little_out_of_sample() -> None:
    frame = planted(days=210, names=60)
    span = frame[frame.index.get_level_values("datetime") < frame.index.get_level_values("datetime").unique()[200]]
    weights = DDGDA(step=10, hist_steps=3, proxy_model=None, clip_weight=4.0, epochs=150).learn(span)
    assert weights.result is not None and weights.result.tasks == 18
    assert _next_period_mse(frame, 200, weights.weights) < 1.01 * _next_period_mse(frame, 200, None)


def test_a_short_span_gives_equal_weights() -> None:
    frame = planted(days=15, names=20)
    weights = DDGDA(step=10, proxy_model=None).learn(frame)
    assert weights.result is not None and weights.result.tasks == 0
    assert (weights.weights == 1.0).all()


def test_time_weights_by_date_and_one_elsewhere() -> None:
    dates = pd.bdate_range("2020-01-01", periods=3)
    reweighter = TimeWeights(pd.Series([0.5, 2.0, 1.5], index=dates))
    index = pd.MultiIndex.from_product([pd.bdate_range("2020-01-02", periods=4), ["A", "B"]],
                                       names=["datetime", "instrument"])  # fmt: skip
    got = reweighter.reweight(index)
    assert got.tolist() == [2.0, 1.5, 1.0, 1.0]


def test_learn_is_deterministic_and_maps_periods_to_dates() -> None:
    frame = planted(days=120, names=40, shift=90)
    first = DDGDA(step=10, hist_steps=3, proxy_model=None, epochs=50).learn(frame)
    again = DDGDA(step=10, hist_steps=3, proxy_model=None, epochs=50).learn(frame)
    pd.testing.assert_series_equal(first.weights, again.weights)
    assert len(first.weights) == 120 and first.weights.index.is_monotonic_increasing
    assert first.weights.iloc[:10].nunique() == 1 and first.weights.iloc[110:].nunique() == 1


def test_proxy_features_are_the_top_k_by_importance() -> None:
    frame = planted(days=30, names=10)["feature"]
    assert select_features(frame, 2, pd.Series({"A": 1.0, "B": 5.0, "C": 3.0})) == ["B", "C"]
    assert select_features(frame, 2, None) == ["A", "B", "C"]
    assert select_features(frame, 5, pd.Series({"A": 1.0})) == ["A", "B", "C"]


@pytest.mark.parametrize(("kwargs", "path"), [
    ({"step": 0}, "step"), ({"hist_steps": 1.5}, "hist_steps"), ({"clip_weight": 1.0}, "clip_weight"),
    ({"lr": -1}, "lr"), ({"proxy_model": {"nme": "x"}}, "proxy_model"), ({"top_k": True}, "top_k"),
])
def test_bad_settings_are_config_errors(kwargs: dict, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        DDGDA(**kwargs)
    assert info.value.path == path


def test_used_outside_a_rolling_run_it_says_so() -> None:
    with pytest.raises(ConfigError, match="per rolling window"):
        DDGDA(proxy_model=None).reweight(pd.MultiIndex.from_tuples([], names=["datetime", "instrument"]))


def test_a_frame_without_label_is_refused() -> None:
    with pytest.raises(DataError, match="needs a label"):
        DDGDA(proxy_model=None).learn(planted(days=20, names=5)[["feature"]])


def test_pickles_without_its_kernel() -> None:
    import pickle

    reweighter = DDGDA(step=5, proxy_model=None, kernel=object())
    copy = pickle.loads(pickle.dumps(reweighter))
    assert copy.kernel is None and copy.step == 5 and copy.proxy is None


def test_the_proxy_lightgbm_picks_the_informative_features() -> None:
    from qcore.kernel import Kernel

    kernel = Kernel.load(use_env=False)
    weights = DDGDA(step=10, top_k=2, epochs=10, kernel=kernel).learn(planted(days=60, names=60))
    assert weights.features == ("A", "B")
    weights = DDGDA(step=10, top_k=2, epochs=10, proxy_model={"name": "linear"}, kernel=kernel).learn(
        planted(days=60, names=60))
    assert weights.features == ("A", "B", "C")  # a model without importances: every feature
