"""The numpy tree evaluator gives LightGBM's predictions bit for bit (NaN, zeros, tiny values, missing types)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from qmodel_zoo import _de_steps as steps
from qmodel_zoo import _tree_eval as tree_eval


def data(seed: int = 0, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.standard_normal(n)
    x[rng.random(n) < 0.1, 1] = np.nan
    x[rng.random(n) < 0.1, 2] = 0.0
    x[rng.random(n) < 0.05, 3] = 1e-36  # read as 0 by LightGBM
    return x, y


@pytest.mark.parametrize("extra", [{}, {"zero_as_missing": True}, {"use_missing": False}])
def test_trees_match_booster_predict(extra: dict) -> None:
    x, y = data()
    params = {"objective": "mse", "verbosity": -1, "num_leaves": 31, "num_threads": 1, **extra}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=15)
    trees = tree_eval.read_trees(booster)
    assert trees is not None and len(trees) == 15
    probe, _ = data(seed=1)
    probe[::11, 0] = np.nan
    probe[::13, 4] = -1e-37
    probe = np.asfortranarray(probe)
    np.testing.assert_array_equal(tree_eval.predict(trees, probe), booster.predict(probe))
    prepared, nan_columns = tree_eval.prepare(probe)
    assert nan_columns.tolist() == [True, True, False, False, False, False]
    np.testing.assert_array_equal(tree_eval.predict(trees, prepared, nan_columns), booster.predict(probe))
    np.testing.assert_array_equal(trees[7].predict(probe), booster.predict(probe, start_iteration=7, num_iteration=1))


def test_single_leaf_trees_and_fallback() -> None:
    x, y = data()
    stump = lgb.train({"objective": "mse", "verbosity": -1, "min_data_in_leaf": 10**6}, lgb.Dataset(x, y), 2)
    trees = tree_eval.read_trees(stump)
    np.testing.assert_array_equal(tree_eval.predict(trees, x), stump.predict(x))
    classes = lgb.train({"objective": "multiclass", "num_class": 3, "verbosity": -1},
                        lgb.Dataset(x, (y > 0).astype(int) + (y > 1)), 2)
    assert tree_eval.read_trees(classes) is None


def test_shuffles_only_reevaluate_the_trees_that_split_on_the_feature() -> None:
    x, y = data()
    booster = lgb.train({"objective": "mse", "verbosity": -1, "num_leaves": 7, "num_threads": 1},
                        lgb.Dataset(x, y), num_boost_round=10)
    shuffler = steps._Shuffler(booster, np.asfortranarray(x.copy()))
    order = np.random.default_rng(0).permutation(len(x))
    for column in range(x.shape[1]):
        shuffled = x.copy()
        shuffled[:, column] = x[order, column]
        np.testing.assert_allclose(shuffler.shuffled(column, order), booster.predict(shuffled), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(shuffler.inputs, tree_eval.prepare(x)[0])  # restored after each shuffle
