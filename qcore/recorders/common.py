"""Helpers every recorder shares: flattening params and serialising artifacts without pickle."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore import atomic


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys; lists become their JSON text."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(jsonable(value))
        else:
            flat[name] = jsonable(value)
    return flat


def jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_artifact(folder: Path, name: str, obj: Any) -> Path:
    """Write ``obj`` into ``folder`` atomically and return the file's path.

    DataFrames and Series become ``<name>.parquet``, mappings and lists ``<name>.json``, strings ``<name>`` as
    text (give the extension in ``name``), bytes as they are, and an existing file path is copied.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(name).name
    if isinstance(obj, pd.Series):
        obj = obj.to_frame(name=obj.name if obj.name is not None else stem)
    if isinstance(obj, pd.DataFrame):
        path = folder / (stem if stem.endswith(".parquet") else f"{stem}.parquet")
        with atomic.atomic_path(path) as tmp:
            obj.to_parquet(tmp)
    elif isinstance(obj, (Mapping, list, tuple)):
        path = folder / (stem if stem.endswith(".json") else f"{stem}.json")
        atomic.write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n")
    elif isinstance(obj, (bytes, bytearray)):
        path = folder / stem
        atomic.write_bytes(path, bytes(obj))
    elif isinstance(obj, os.PathLike):
        source = Path(obj)
        path = folder / (stem or source.name)
        with atomic.atomic_path(path) as tmp:
            shutil.copyfile(source, tmp)
    elif isinstance(obj, str):
        path = folder / stem
        atomic.write_text(path, obj)
    else:
        raise TypeError(f"cannot store artifact {name!r} of type {type(obj).__name__}")
    return path
