"""The two steps of DoubleEnsemble between sub-models: sample re-weighting (SR) and feature selection (FS).

Both follow Qlib's ``DEnsembleModel`` (Zhang et al., "DoubleEnsemble", ICDM 2020) on numpy arrays:

- SR: each sample's ``h = alpha1*h1 + alpha2*h2``, with ``h1`` the percentile rank of the negative current
  ensemble loss and ``h2`` the percentile rank of ``l_end/l_start``, where ``l_start``/``l_end`` average the
  sample's per-tree loss percentile over the first/last 10% of the previous sub-model's trees. Samples are cut
  into ``bins_sr`` equal-width bins of ``h``; a bin's weight is ``1/(decay**k * mean_h + 0.1)``.
- FS: each feature's importance ``g`` is the mean over samples of the loss increase when the feature is
  shuffled, divided by its standard deviation; features are cut into ``bins_fs`` equal-width bins of ``g`` and
  the ``i``-th most important non-empty bin keeps ``ceil(sample_ratios[i] * size)`` features drawn at random.

Both need many partial predictions; :mod:`qmodel_zoo._tree_eval` computes them tree by tree, and the shuffles
only re-evaluate the trees that split on the shuffled feature.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from qmodel_zoo._lightgbm import lgb
from qmodel_zoo._tree_eval import prepare, read_trees


def squared_loss(label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-sample squared error, the only loss DoubleEnsemble defines."""
    return (label - pred) ** 2


def _pct_rank(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Percentile ranks (average ties) along ``axis``, as pandas' ``rank(pct=True)``."""
    return rankdata(values, method="average", axis=axis) / values.shape[axis]


def _single_tree_outputs(booster: lgb.Booster, x: np.ndarray) -> Iterator[np.ndarray]:
    """Each tree's output on ``x``, in order (numpy trees when readable, else ``Booster.predict``)."""
    trees = read_trees(booster)
    nan_columns = None
    if trees is not None:
        x, nan_columns = prepare(x)
    for index in range(booster.num_trees()):
        if trees is not None:
            yield trees[index].predict(x, nan_columns)
        else:
            yield booster.predict(x, start_iteration=index, num_iteration=1)


def loss_curve_ends(booster: lgb.Booster, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(l_start, l_end)``: each sample's mean loss percentile over the first and the last 10% of the trees.

    The loss after tree ``t`` is that of the cumulative prediction of trees ``0..t`` (all trees, past any early
    stopping, as Qlib); only the columns the two means need are kept, not the whole samples × trees curve.
    """
    n_trees = booster.num_trees()
    part = max(int(n_trees * 0.1), 1)
    first, last = [], []
    cumulative = np.zeros(len(y))
    for tree, output in enumerate(_single_tree_outputs(booster, x)):
        cumulative += output
        if tree < part:
            first.append(squared_loss(y, cumulative))
        if tree >= n_trees - part:
            last.append(squared_loss(y, cumulative))
    return _pct_rank(np.column_stack(first)).mean(axis=1), _pct_rank(np.column_stack(last)).mean(axis=1)


def sample_weights(l_start: np.ndarray, l_end: np.ndarray, loss_values: np.ndarray, *, k_th: int, alpha1: float,
                   alpha2: float, bins: int, decay: float) -> np.ndarray:
    """SR: the weights of the next sub-model's samples (``k_th`` counts the sub-models trained so far)."""
    h1 = _pct_rank(-loss_values)
    h2 = _pct_rank(l_end / l_start)
    h = alpha1 * h1 + alpha2 * h2
    codes = np.asarray(pd.cut(h, bins, labels=False))
    counts = np.bincount(codes, minlength=bins)
    sums = np.bincount(codes, weights=h, minlength=bins)
    bin_mean = np.divide(sums, counts, out=np.zeros(bins), where=counts > 0)
    return 1.0 / (decay**k_th * bin_mean[codes] + 0.1)


class _Shuffler:
    """One sub-model's predictions with one of its columns shuffled.

    With readable trees only the trees that split on the column are evaluated again: the shuffled prediction is
    the base prediction minus those trees' outputs on the original inputs (computed once, ``rows × trees``
    floats) plus their outputs with the shuffled column.
    """

    def __init__(self, booster: lgb.Booster, inputs: np.ndarray) -> None:
        self.booster = booster
        trees = read_trees(booster)
        self.trees = None if trees is None else trees[: booster.best_iteration or len(trees)]
        self.inputs, self.nan_columns = prepare(inputs)  # the same predictions: LightGBM reads tiny values as 0
        self.base = booster.predict(self.inputs)
        self.by_column: dict[int, list[int]] = {}
        for index, tree in enumerate(self.trees or ()):
            for column in tree.features:
                self.by_column.setdefault(column, []).append(index)
        self.outputs = [tree.predict(self.inputs, self.nan_columns) for tree in self.trees or ()]

    def shuffled(self, column: int, order: np.ndarray) -> np.ndarray:
        """Predictions with ``inputs[:, column]`` permuted by ``order``."""
        if self.trees is not None and column not in self.by_column:
            return self.base
        original = self.inputs[:, column].copy()
        self.inputs[:, column] = original[order]
        try:
            if self.trees is None:
                return self.booster.predict(self.inputs)
            pred = self.base.copy()
            for index in self.by_column[column]:
                pred += self.trees[index].predict(self.inputs, self.nan_columns) - self.outputs[index]
            return pred
        finally:
            self.inputs[:, column] = original


def permutation_scores(x: np.ndarray, y: np.ndarray, boosters: Sequence[lgb.Booster],
                       sub_features: Sequence[np.ndarray], loss_values: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """FS: ``g`` of every column of ``x`` (NaN → 0) against the plain average of the sub-models.

    A sub-model that does not use the shuffled feature keeps its predictions (see :class:`_Shuffler`).
    """
    n_models = len(boosters)
    shufflers = [_Shuffler(b, x[:, cols]) for b, cols in zip(boosters, sub_features)]
    positions = [{int(c): j for j, c in enumerate(cols)} for cols in sub_features]
    scores = np.zeros(x.shape[1])
    for feature in range(x.shape[1]):
        order = rng.permutation(x.shape[0])
        pred = np.zeros(x.shape[0])
        for shuffler, position in zip(shufflers, positions):
            j = position.get(feature)
            pred += (shuffler.base if j is None else shuffler.shuffled(j, order)) / n_models
        diff = squared_loss(y, pred) - loss_values
        scores[feature] = np.mean(diff) / (np.std(diff) + 1e-7)
    return np.nan_to_num(scores, nan=0.0)


def select_features(scores: np.ndarray, *, bins: int, sample_ratios: Sequence[float],
                    rng: np.random.Generator) -> np.ndarray:
    """FS: column positions kept for the next sub-model, in their original order."""
    codes = np.asarray(pd.cut(scores, bins, labels=False))
    kept: list[int] = []
    for rank, code in enumerate(sorted(set(codes.tolist()), reverse=True)):
        members = np.flatnonzero(codes == code)
        count = int(np.ceil(sample_ratios[rank] * len(members)))
        kept.extend(rng.choice(members, size=count, replace=False).tolist())
    return np.array(sorted(kept), dtype=np.int64)
