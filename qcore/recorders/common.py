"""Helpers every recorder shares: flattening params, turning names into safe path components and serialising
artifacts without pickle.

Every user-given name that becomes part of a path (an experiment's folder, an artifact's file name) goes through
:func:`safe_component`: the result is one plain file name that cannot leave its folder, whatever the name holds
(``../``, an absolute path, separators, NUL bytes, ``.``/``..``, names Windows reserves, any length).
"""

from __future__ import annotations

import hashlib
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
from qcore.errors import ConfigError, RunError

#: Characters a path component keeps as they are (besides letters and digits of any script).
_SAFE_PUNCTUATION = frozenset("-_.+=,@ ")
#: Device names Windows reserves whatever the extension (``CON``, ``nul.txt``...).
_RESERVED = frozenset(["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
                      + [f"{p}{d}" for p in ("COM", "LPT") for d in "0123456789\u00b9\u00b2\u00b3"])  # fmt: skip
#: Longest component :func:`safe_component` returns, in UTF-8 bytes (file systems allow 255; room for a suffix).
MAX_COMPONENT_BYTES = 200


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def safe_component(name: Any, key: str) -> str:
    """``name`` as one file name that stays inside its folder; the same name always gives the same component.

    Letters, digits and ``-_.+=,@`` and inner spaces are kept, so ordinary names are their own folder; every other
    character becomes ``%XX`` (its UTF-8 bytes; ``%`` itself too, so distinct names stay distinct), as do a leading
    dot (no hidden files, no ``.``/``..``), trailing dots and spaces, and the first letter of a reserved device
    name. A result longer than :data:`MAX_COMPONENT_BYTES` is cut and ends with ``~`` and a hash of the name.

    :param key: what the name is (``experiment``, ``artifact``), for the error message.
    :raises ConfigError: ``name`` is not a string, or is empty.
    """
    if not isinstance(name, str):
        raise ConfigError(f"{key} name must be a string, got {type(name).__name__} {name!r}", path=key)
    if not name:
        raise ConfigError(f"{key} name is empty", path=key)
    chars = [c if c.isalnum() or c in _SAFE_PUNCTUATION else _escape(c) for c in name]
    if chars[0] in (".", " "):
        chars[0] = _escape(chars[0])
    for i in range(len(chars) - 1, -1, -1):
        if chars[i] not in (".", " "):
            break
        chars[i] = _escape(chars[i])
    if "".join(chars).split(".")[0].upper() in _RESERVED:
        chars[0] = _escape(chars[0])
    text = "".join(chars)
    if len(text.encode("utf-8")) > MAX_COMPONENT_BYTES:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        kept, size = [], 0
        for part in chars:  # cut between characters, never inside an escape
            size += len(part.encode("utf-8"))
            if size > MAX_COMPONENT_BYTES - 17:
                break
            kept.append(part)
        text = "".join(kept) + "~" + digest
    return text


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symbolic links followed) lies in ``root`` or is ``root``."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte...
        return False


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
    text (give the extension in ``name``), bytes as they are, and an existing file path is copied. ``name`` is
    made a safe file name first (:func:`safe_component`), so the file is always directly inside ``folder``.
    """
    stem = safe_component(name, "artifact")
    folder.mkdir(parents=True, exist_ok=True)
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
        if not source.is_file():
            raise RunError(f"artifact {name!r}: {source} is not a file")
        path = folder / stem
        with atomic.atomic_path(path) as tmp:
            shutil.copyfile(source, tmp)
    elif isinstance(obj, str):
        path = folder / stem
        atomic.write_text(path, obj)
    else:
        raise RunError(f"cannot store artifact {name!r} of type {type(obj).__name__}")
    return path
