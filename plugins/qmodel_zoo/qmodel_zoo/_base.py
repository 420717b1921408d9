"""Helpers every model of the zoo shares: segment access, feature matrices, parameter checks, fitted-state files."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError
from qcore.modelio import STATE_FILE, has_segment, jsonable, not_fitted, read_state, score_series, write_state
from qcore.protocols import Dataset


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


__all__ = ["STATE_FILE", "check_choice", "check_known", "check_number", "feature_matrix", "has_segment", "jsonable",
           "labelled", "not_fitted", "read_state", "score_series", "write_state"]
