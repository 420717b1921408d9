"""Helpers every model of the zoo shares: segment access, feature matrices, parameter checks, fitted-state files."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore import atomic
from qcore.errors import ConfigError, DataError, QcoreError
from qcore.protocols import Dataset

#: the file beside ``model.json`` that holds a model's fitted state (feature names, coefficients...).
STATE_FILE = "state.json"


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


def labelled(dataset: Dataset, segment: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features and label of a learning segment; an error when it has no label or no rows."""
    features, label = dataset.xy(segment)
    if label is None:
        raise QcoreError(f"the {segment} segment has no label to learn from")
    if features.empty:
        raise QcoreError(f"the {segment} segment has no rows; check the dataset's segments")
    return features, label.reindex(features.index)


def feature_matrix(features: pd.DataFrame, names: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
    """The columns ``names`` of ``features`` as one array, in that order; an error naming any missing column."""
    missing = [name for name in names if name not in features.columns]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise QcoreError(f"the dataset lacks {len(missing)} feature(s) the model was fitted on: {shown}")
    if list(features.columns) == list(names):
        return features.to_numpy(dtype=dtype)
    return features.loc[:, list(names)].to_numpy(dtype=dtype)


def score_series(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Predictions as the Series every model returns: float64, named ``score``."""
    return pd.Series(np.asarray(values, dtype=np.float64).reshape(-1), index=index, name="score")


def check_known(component: str, given: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise a :class:`ConfigError` for any key of ``given`` outside ``known``, suggesting the closest name.

    The error's ``path`` is the unknown key (a workflow reports it at ``model.kwargs.<key>`` with its line).
    """
    known = sorted(known)
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if len(known) <= 60:
                listing = f" (accepted: {', '.join(known)})"
            else:
                nearest = f"; the closest: {', '.join(close)}" if close else ""
                listing = f" (accepted: {len(known)} names{nearest})"
            raise ConfigError(f"unknown parameter {key!r} for {component}{hint}{listing}", path=str(key))


def _key(name: str, path: str | None) -> str:
    """The argument an error is about: ``path``, else ``name`` when it is an argument name."""
    if path is not None:
        return path
    return name if name.isidentifier() else ""


def check_choice(name: str, value: Any, choices: Sequence[Any], *, path: str | None = None) -> None:
    """Raise a :class:`ConfigError` (at the argument ``path``, default ``name``) unless ``value`` is in ``choices``."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a mapping of choices
        ok = False
    if not ok or isinstance(value, bool) != any(isinstance(c, bool) for c in choices if c == value):
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}",
                          path=_key(name, path))  # fmt: skip


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 integer: bool = False, low_open: bool = False, path: str | None = None) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is a (whole, with ``integer``) number within the bounds.

    :param path: the argument the error is about (default: ``name``, when it is an argument name).
    """
    key = _key(name, path)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{name} must be a number, got {value!r}", path=key)
    if not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be finite, got {value!r}", path=key)
    if integer and float(value) != int(value):
        raise ConfigError(f"{name} must be a whole number, got {value!r}", path=key)
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}", path=key)
    if high is not None and value > high:
        raise ConfigError(f"{name} must be <= {high}, got {value!r}", path=key)


def jsonable(value: Any) -> Any:
    """``value`` with tuples, numpy scalars and arrays turned into plain JSON types (for ``model.json``)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ConfigError(f"model parameters must be JSON values to be saved, got {type(value).__name__}: {value!r}")


def write_state(folder: Path, state: Mapping[str, Any]) -> None:
    """Write a model's fitted state as JSON (floats keep every bit: JSON numbers round-trip float64)."""
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
