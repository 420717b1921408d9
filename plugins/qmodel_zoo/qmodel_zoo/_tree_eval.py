"""LightGBM trees evaluated with numpy, one tree at a time, for DoubleEnsemble's inner loops.

DoubleEnsemble asks for the loss after every tree and for the ensemble's predictions with each feature shuffled in
turn. ``Booster.predict`` re-reads every value of every row on each call, which dominates when a call only needs
one tree, or only the few trees that split on the shuffled feature. Here the trees are read once from LightGBM's
text model, and each tree partitions the rows node by node (column-major inputs read fastest).

LightGBM's rules for numerical splits are kept, so the outputs equal ``Booster.predict``'s bit for bit: a value
with ``|v| <= 1e-35`` reads as 0; NaN reads as 0 unless the split's missing type is NaN; a missing value (NaN, or
0 for the ``Zero`` type) goes the split's default way; otherwise ``v <= threshold`` goes left. Models with
categorical or linear trees are not handled (:func:`read_trees` returns ``None``; callers use ``Booster.predict``).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from qmodel_zoo._lightgbm import lgb

#: LightGBM's ``kZeroThreshold`` (a float constant, compared in double).
ZERO = float(np.float32(1e-35))
MISSING_ZERO, MISSING_NAN = 1, 2


@attrs.frozen
class Tree:
    """One tree as flat node arrays: the ``n_internal`` split nodes first, then the leaves.

    ``nan_left``/``zero_left`` say where a NaN or a 0 goes at each split (the default way when the split treats it
    as missing, else where ``0 <= threshold`` sends it).
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    nan_left: np.ndarray
    zero_left: np.ndarray
    value: np.ndarray
    n_internal: int
    zero_missing: bool

    @classmethod
    def from_arrays(cls, feature: np.ndarray, threshold: np.ndarray, decision: np.ndarray, left: np.ndarray,
                    right: np.ndarray, leaf_value: np.ndarray) -> Tree:
        """Build from the text model's arrays (there, children ``< 0`` are ``~leaf``)."""
        n_internal = len(feature)
        default_left = (decision & 2) > 0
        missing = (decision >> 2) & 3
        zero_goes_left = threshold >= 0.0
        return cls(
            feature=feature,
            threshold=threshold,
            left=np.where(left < 0, n_internal + ~left, left),
            right=np.where(right < 0, n_internal + ~right, right),
            nan_left=np.where(missing != 0, default_left, zero_goes_left),
            zero_left=np.where(missing == MISSING_ZERO, default_left, zero_goes_left),
            value=np.concatenate([np.zeros(n_internal), leaf_value]),
            n_internal=n_internal,
            zero_missing=bool((missing == MISSING_ZERO).any()),
        )

    @property
    def features(self) -> frozenset[int]:
        """Columns the tree splits on."""
        return frozenset(self.feature.tolist())

    def predict(self, x: np.ndarray, nan_columns: np.ndarray | None = None) -> np.ndarray:
        """The tree's output for every row of ``x`` (float64).

        ``x`` may be float32 (splits compare in float64, as LightGBM). With ``nan_columns`` (one flag per column
        saying whether it holds a NaN) ``x`` must come from :func:`prepare`; this skips the per-split checks.
        """
        prepared = nan_columns is not None
        out = np.empty(x.shape[0])
        pending = [(0, np.arange(x.shape[0]))]
        while pending:
            node, rows = pending.pop()
            if node >= self.n_internal:
                out[rows] = self.value[node]
                continue
            column = self.feature[node]
            value = x[:, column][rows]
            go_left = value <= self.threshold[node]
            if not prepared or nan_columns[column]:
                nan = np.isnan(value)
                go_left[nan] = self.nan_left[node]
            if not prepared:
                tiny = np.abs(value) <= ZERO
                go_left[tiny] = self.zero_left[node]
            elif self.zero_missing:
                go_left[value == 0] = self.zero_left[node]
            pending.append((int(self.left[node]), rows[go_left]))
            pending.append((int(self.right[node]), rows[~go_left]))
        return out


def prepare(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A column-major copy of ``x`` with LightGBM's near-zero values set to 0, and each column's has-NaN flag."""
    out = np.asfortranarray(x).copy(order="F")
    with np.errstate(invalid="ignore"):
        out[np.abs(out) <= ZERO] = 0.0
    return out, np.isnan(out).any(axis=0)


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
        trees.append(Tree.from_arrays(
            _numbers(block, "split_feature", np.int64),
            _numbers(block, "threshold", np.float64),
            _numbers(block, "decision_type", np.int64),
            _numbers(block, "left_child", np.int64),
            _numbers(block, "right_child", np.int64),
            _numbers(block, "leaf_value", np.float64),
        ))
    return trees


def predict(trees: Sequence[Tree], x: np.ndarray, nan_columns: np.ndarray | None = None) -> np.ndarray:
    """The sum of the trees' outputs, tree after tree (LightGBM's order)."""
    out = np.zeros(x.shape[0])
    for tree in trees:
        out += tree.predict(x, nan_columns)
    return out
