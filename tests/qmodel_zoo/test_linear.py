"""Linear models: OLS, ridge, lasso (coordinate descent) and NNLS; JSON save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import nnls

from qcore.errors import QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, assert_roundtrip, mean_test_ic


def centred(dataset):
    x, y = dataset.xy("train")
    x, y = x.to_numpy(np.float64), y.to_numpy(np.float64)
    return x - x.mean(axis=0), y - y.mean()


@pytest.mark.parametrize("kwargs", [{}, {"estimator": "ridge", "alpha": 10.0}, {"estimator": "lasso", "alpha": 0.01},
                                    {"estimator": "nnls"}])
def test_each_estimator_learns_and_roundtrips(kernel: Kernel, planted, tmp_path, kwargs) -> None:
    model = kernel.create("model", "linear", **kwargs).fit(planted)
    assert mean_test_ic(model, planted) > IC_BAR
    assert_roundtrip(model, planted, tmp_path, kernel, "linear")
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["features"] == ["A", "B", "C", "D"] and len(state["coef"]) == 4


def test_lasso_meets_its_optimality_conditions(kernel: Kernel, planted) -> None:
    alpha = 0.02
    model = kernel.create("model", "linear", estimator="lasso", alpha=alpha).fit(planted)
    x, y = centred(planted)
    w = model.coef_.to_numpy()
    gradient = x.T @ (y - x @ w) / len(y)  # KKT: = alpha*sign(w) where w != 0, |.| <= alpha where w == 0
    active = w != 0
    np.testing.assert_allclose(gradient[active], alpha * np.sign(w[active]), atol=1e-6)
    assert np.all(np.abs(gradient[~active]) <= alpha + 1e-9)
    assert w[1] < 0 and w[0] > 0  # the planted signs: +A, -B
    heavy = kernel.create("model", "linear", estimator="lasso", alpha=10.0).fit(planted)
    assert np.all(heavy.coef_ == 0)  # a large penalty zeroes everything
    assert heavy.intercept_ == pytest.approx(planted.xy("train")[1].mean())


def test_nnls_is_scipys_on_centred_data(kernel: Kernel, planted) -> None:
    model = kernel.create("model", "linear", estimator="nnls").fit(planted)
    x, y = centred(planted)
    np.testing.assert_allclose(model.coef_.to_numpy(), nnls(x, y)[0], atol=1e-10)
    assert model.coef_["B"] == 0 and model.coef_["A"] > 0


def test_include_valid_and_no_intercept(kernel: Kernel, planted) -> None:
    train_only = kernel.create("model", "linear", fit_intercept=False).fit(planted)
    both = kernel.create("model", "linear", fit_intercept=False, include_valid=True).fit(planted)
    assert train_only.intercept_ == 0.0
    assert not np.allclose(train_only.coef_, both.coef_)


def test_bad_arguments(kernel: Kernel, planted) -> None:
    with pytest.raises(ValueError, match="alpha applies to ridge and lasso only"):
        kernel.create("model", "linear", estimator="ols", alpha=1.0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        kernel.create("model", "linear", estimator="ridge", alpha=-1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        kernel.create("model", "linear", alpah=1.0)
    model = kernel.create("model", "linear")
    with pytest.raises(QcoreError, match="not fitted"):
        model.save("unused")
    model.fit(planted)
    features, _ = planted.xy("test")
    dataset = type("Narrow", (), {"xy": lambda self, seg, data_key=None: (features[["A", "B"]], None)})()
    with pytest.raises(QcoreError, match="lacks 2 feature"):
        model.predict(dataset, "test")
