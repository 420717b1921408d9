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

from qcore import atomic
from qcore.errors import DataError
from qcore.kernel import Kernel

MANIFEST = "model.json"


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
