"""What both boosters need from a dataset: training arrays (with sample weights), feature matrices, fitted state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError
from qcore.modelio import STATE_FILE, has_segment, jsonable, not_fitted, read_state, score_series, write_state
from qcore.protocols import Dataset, Reweighter
from qcore.reweight import sample_weights


@attrs.frozen
class Segment:
    """One learning segment as arrays: features (float32), label and weights (float64), rows without a label dropped.

    :ivar index: the ``(datetime, instrument)`` rows kept.
    """

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None
    index: pd.Index


def learning_segment(dataset: Dataset, segment: str, names: Sequence[str] | None = None,
                     reweighter: Reweighter | None = None) -> tuple[Segment, list[str]]:
    """The arrays of a learning segment and its feature names (``names``: the training columns, in that order).

    Rows whose label is NaN are left out (Qlib's ``DropnaLabel``); ``reweighter`` gives one weight per kept row,
    checked by :func:`qcore.reweight.sample_weights`.
    """
    features, label = dataset.xy(segment)
    if label is None:
        raise QcoreError(f"the {segment} segment has no label to learn from")
    if isinstance(label, pd.DataFrame):
        if label.shape[1] != 1:
            raise QcoreError(f"the {segment} segment has {label.shape[1]} label columns; these boosters learn one")
        label = label.iloc[:, 0]
    label = label.reindex(features.index)
    keep = label.notna().to_numpy()
    if not keep.any():
        raise QcoreError(f"the {segment} segment has no rows with a label; check the dataset's segments")
    features, label = features[keep], label[keep]
    columns = [str(c) for c in features.columns] if names is None else list(names)
    x = feature_matrix(features, columns)
    weight = sample_weights(reweighter, features.index, segment=segment) if reweighter is not None else None
    return Segment(x, label.to_numpy(dtype=np.float64), weight, features.index), columns


def feature_matrix(features: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """The columns ``names`` of ``features`` as one float32 array, in that order; an error naming missing columns."""
    found = [str(c) for c in features.columns]
    missing = [name for name in names if name not in found]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise QcoreError(f"the dataset lacks {len(missing)} feature(s) the model was fitted on: {shown}")
    if found == list(names):
        return features.to_numpy(dtype=np.float32)
    position = {name: i for i, name in enumerate(found)}
    return features.iloc[:, [position[name] for name in names]].to_numpy(dtype=np.float32)


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low``, or a :class:`~qcore.errors.ConfigError` at ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}", path=name)
    return int(value)


__all__ = ["STATE_FILE", "Segment", "check_int", "feature_matrix", "has_segment", "jsonable", "learning_segment",
           "not_fitted", "read_state", "score_series", "write_state"]
