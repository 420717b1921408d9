"""The two steps of DoubleEnsemble between sub-models: sample re-weighting (SR) and feature selection (FS).

Both follow Qlib's ``DEnsembleModel`` (Zhang et al., "DoubleEnsemble", ICDM 2020) on numpy arrays:

- SR: each sample's ``h = alpha1*h1 + alpha2*h2``, with ``h1`` the percentile rank of the negative current
  ensemble loss and ``h2`` the percentile rank of ``l_end/l_start``, where ``l_start``/``l_end`` average the
  sample's per-tree loss percentile over the first/last 10% of the previous sub-model's trees. Samples are cut
  into ``bins_sr`` equal-width bins of ``h``; a bin's weight is ``1/(decay**k * mean_h + 0.1)``.
- FS: each feature's importance ``g`` is the mean over samples of the loss increase when the feature is
  shuffled, divided by its standard deviation; features are cut into ``bins_fs`` equal-width bins of ``g`` and
  the ``i``-th most important non-empty bin keeps ``ceil(sample_ratios[i] * size)`` features drawn at random.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata


def squared_loss(label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-sample squared error, the only loss DoubleEnsemble defines."""
    return (label - pred) ** 2


def _pct_rank(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Percentile ranks (average ties) along ``axis``, as pandas' ``rank(pct=True)``."""
    return rankdata(values, method="average", axis=axis) / values.shape[axis]


def loss_curve_ends(booster: lgb.Booster, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(l_start, l_end)``: each sample's mean loss percentile over the first and the last 10% of the trees.

    The loss after tree ``t`` is that of the cumulative prediction of trees ``0..t``; only the columns the two
    means need are kept, not the whole samples × trees curve.
    """
    n_trees = booster.num_trees()
    part = max(int(n_trees * 0.1), 1)
    wanted = sorted(set(range(part)) | set(range(n_trees - part, n_trees)))
    columns = {}
    cumulative = np.zeros(len(y))
    for tree in range(n_trees):
        cumulative += booster.predict(x, start_iteration=tree, num_iteration=1)
        if tree in wanted:
            columns[tree] = squared_loss(y, cumulative)
    first = _pct_rank(np.column_stack([columns[t] for t in range(part)]))
    last = _pct_rank(np.column_stack([columns[t] for t in range(n_trees - part, n_trees)]))
    return first.mean(axis=1), last.mean(axis=1)


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


def permutation_scores(x: np.ndarray, y: np.ndarray, boosters: Sequence[lgb.Booster],
                       sub_features: Sequence[np.ndarray], loss_values: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """FS: ``g`` of every column of ``x`` (NaN → 0) against the plain average of the sub-models.

    Shuffling a feature leaves the sub-models that do not use it unchanged, so their predictions are reused.
    """
    n_models = len(boosters)
    inputs = [np.ascontiguousarray(x[:, cols]) for cols in sub_features]
    base = [booster.predict(inp) for booster, inp in zip(boosters, inputs)]
    positions = [{int(c): j for j, c in enumerate(cols)} for cols in sub_features]
    scores = np.zeros(x.shape[1])
    for feature in range(x.shape[1]):
        order = rng.permutation(x.shape[0])
        pred = np.zeros(x.shape[0])
        for s, booster in enumerate(boosters):
            j = positions[s].get(feature)
            if j is None:
                pred += base[s] / n_models
                continue
            original = inputs[s][:, j].copy()
            inputs[s][:, j] = original[order]
            pred += booster.predict(inputs[s]) / n_models
            inputs[s][:, j] = original
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
