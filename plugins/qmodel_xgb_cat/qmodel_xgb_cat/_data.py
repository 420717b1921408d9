"""What both boosters need from a dataset: training arrays (with sample weights), feature matrices, fitted state."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore import atomic
from qcore.errors import ConfigError, DataError, QcoreError
from qcore.protocols import Dataset, Reweighter
from qcore.reweight import sample_weights

#: the file beside ``model.json`` that holds the fitted state (feature names, best iteration).
STATE_FILE = "state.json"


@attrs.frozen
class Segment:
    """One learning segment as arrays: features (float32), label and weights (float64), rows without a label dropped.

    :ivar index: the ``(datetime, instrument)`` rows kept.
    """

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None
    index: pd.Index


def has_segment(dataset: Dataset, segment: str) -> bool:
    """Whether ``dataset`` defines ``segment`` (datasets without a ``segments`` mapping are asked directly)."""
    segments = getattr(dataset, "segments", None)
    if segments is not None:
        return segment in segments
    try:
        dataset.xy(segment)
    except (KeyError, LookupError, QcoreError):
        return False
    return True


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


def score_series(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Predictions as every model returns them: float64, named ``score``."""
    return pd.Series(np.asarray(values, dtype=np.float64).reshape(-1), index=index, name="score")


def jsonable(value: Any) -> Any:
    """``value`` with tuples and numpy scalars turned into plain JSON types (for ``model.json``)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ConfigError(f"model parameters must be JSON values to be saved, got {type(value).__name__}: {value!r}")


def write_state(folder: Path, state: Mapping[str, Any]) -> None:
    """Write the fitted state as JSON, atomically."""
    atomic.write_text(Path(folder) / STATE_FILE, json.dumps(jsonable(state), indent=1) + "\n")


def read_state(folder: Path) -> dict[str, Any]:
    """Read the state written by :func:`write_state`."""
    path = Path(folder) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("the saved model has no fitted state", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg})", path=str(path), row=exc.lineno) from None


def not_fitted(model: str) -> QcoreError:
    """The error for predicting or saving before ``fit``."""
    return QcoreError(f"the {model} model is not fitted; call fit() first")


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int >= ``low``, or a :class:`~qcore.errors.ConfigError` at ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}, got {value!r}", path=name)
    return int(value)
