"""Saving and loading models without pickle.

A saved model is a folder: ``model.json`` names the registry entry and the keyword arguments that rebuild the
model, and the model's own files (a LightGBM text model, a torch ``state_dict``...) sit beside it. Loading builds
the model from the registry and lets it restore its files, so a saved model only needs the plugin that registered
it, never the pickled class.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore import atomic
from qcore.errors import ConfigError, DataError, QcoreError
from qcore.kernel import Kernel
from qcore.protocols import Dataset

MANIFEST = "model.json"
#: the file beside ``model.json`` that holds a model's fitted state (feature names, coefficients...).
STATE_FILE = "state.json"


def write_manifest(folder: str | os.PathLike[str], name: str, params: Mapping[str, Any], **extra: Any) -> Path:
    """Write ``model.json`` for a model registered as ``name`` and built with ``params``."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    body = {"model": name, "params": dict(params), **extra}
    atomic.write_text(path / MANIFEST, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return path / MANIFEST


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``model.json``."""
    path = Path(folder) / MANIFEST
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("not a saved model (no model.json)", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg})", path=str(path), row=exc.lineno) from None
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(body.get("params"), dict):
        raise DataError("model.json needs a 'model' name and a 'params' mapping", path=str(path))
    return body


def load_model(folder: str | os.PathLike[str], kernel: Kernel | None = None) -> Any:
    """Rebuild a saved model: create it from the registry, then ``model.restore(folder)``."""
    body = read_manifest(folder)
    kernel = kernel or Kernel.load()
    model = kernel.create("model", body["model"], **body["params"])
    model.restore(Path(folder))
    return model


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


def score_series(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Predictions as the Series every model returns: float64, named ``score``."""
    return pd.Series(np.asarray(values, dtype=np.float64).reshape(-1), index=index, name="score")
