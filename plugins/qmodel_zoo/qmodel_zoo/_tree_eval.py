"""LightGBM trees evaluated with numpy, one tree at a time, for DoubleEnsemble's inner loops.

DoubleEnsemble asks for the loss after every tree and for the ensemble's predictions with each feature shuffled in
turn. ``Booster.predict`` re-reads every value of every row on each call, which dominates when a call only needs
one tree, or only the few trees that split on the shuffled feature. Here the trees are read once from LightGBM's
text model and walked level by level over all rows, with LightGBM's decision rules for numerical splits: values
with ``|v| <= 1e-35`` read as 0, NaN reads as 0 unless the split's missing type is NaN, a missing value (NaN, or 0
for the ``Zero`` type) goes the split's default way, otherwise ``v <= threshold`` goes left. Models with
categorical or linear trees are not handled (:func:`read_trees` returns ``None``), and callers fall back to
``Booster.predict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import lightgbm as lgb
import numpy as np

#: LightGBM's ``kZeroThreshold`` (a float constant, compared in double).
ZERO = float(np.float32(1e-35))
MISSING_ZERO, MISSING_NAN = 1, 2


@attrs.frozen
class Tree:
    """One tree as arrays over its internal nodes; children ``>= 0`` are nodes, ``< 0`` are ``~leaf``."""

    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray

    @property
    def features(self) -> frozenset[int]:
        """Columns the tree splits on."""
        return frozenset(self.feature.tolist())

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The tree's output for every row of ``x`` (float64)."""
        n = x.shape[0]
        if self.feature.size == 0:
            return np.full(n, self.leaf_value[0])
        out = np.empty(n)
        node = np.zeros(n, dtype=np.int64)
        active = np.arange(n)
        while active.size:
            current = node[active]
            value = x[active, self.feature[current]].astype(np.float64)
            missing_type = self.missing[current]
            nan = np.isnan(value)
            value = np.where(nan & (missing_type != MISSING_NAN), 0.0, value)
            value = np.where(np.abs(value) <= ZERO, 0.0, value)
            is_missing = ((missing_type == MISSING_ZERO) & (np.abs(value) <= ZERO)) | (
                (missing_type == MISSING_NAN) & nan
            )
            go_left = np.where(is_missing, self.default_left[current], value <= self.threshold[current])
            child = np.where(go_left, self.left[current], self.right[current])
            leaf = child < 0
            out[active[leaf]] = self.leaf_value[~child[leaf]]
            node[active[~leaf]] = child[~leaf]
            active = active[~leaf]
        return out


def _numbers(block: dict[str, str], key: str, dtype: type) -> np.ndarray:
    text = block.get(key, "").strip()
    return np.array(text.split(), dtype=dtype) if text else np.zeros(0, dtype=dtype)


def read_trees(booster: lgb.Booster) -> list[Tree] | None:
    """Every tree of ``booster`` (all iterations), or ``None`` for models this module cannot evaluate."""
    if booster.num_model_per_iteration() != 1:
        return None
    trees = []
    for chunk in booster.model_to_string(num_iteration=-1).split("\nTree=")[1:]:
        lines = chunk.split("\n\n", 1)[0].split("\n")[1:]  # a blank line ends the tree's block
        block = dict(line.split("=", 1) for line in lines if "=" in line)
        if block.get("num_cat", "0").strip() != "0" or block.get("is_linear", "0").strip() != "0":
            return None
        decision = _numbers(block, "decision_type", np.int64)
        trees.append(Tree(
            feature=_numbers(block, "split_feature", np.int64),
            threshold=_numbers(block, "threshold", np.float64),
            default_left=(decision & 2) > 0,
            missing=(decision >> 2) & 3,
            left=_numbers(block, "left_child", np.int64),
            right=_numbers(block, "right_child", np.int64),
            leaf_value=_numbers(block, "leaf_value", np.float64),
        ))
    return trees


def predict(trees: Sequence[Tree], x: np.ndarray) -> np.ndarray:
    """The sum of the trees' outputs, tree after tree (LightGBM's order)."""
    out = np.zeros(x.shape[0])
    for tree in trees:
        out += tree.predict(x)
    return out
