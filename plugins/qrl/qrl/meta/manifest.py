"""Dataset manifests: which files (with their SHA-256), instruments and dates an RL run read.

Every RL run records one in its checkpoint sidecar (``dataset``) and, with a recorder, as the run's
``dataset_manifest`` artifact, so a result can be traced to the exact bytes it was trained and tested on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHUNK = 1 << 20


def sha256(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _files(paths: Iterable[Path], root: Path | None = None) -> list[dict[str, Any]]:
    out = []
    for p in sorted(paths):
        name = str(p.relative_to(root)) if root is not None else str(p)
        out.append({"path": name, "bytes": p.stat().st_size, "sha256": sha256(p)})
    return out


def _dates(dates: Sequence[Any]) -> dict[str, Any]:
    idx = pd.DatetimeIndex(dates)
    if len(idx) == 0:
        return {"first": None, "last": None, "rows": 0}
    return {"first": str(idx[0].date() if (idx.normalize() == idx).all() else idx[0]),
            "last": str(idx[-1].date() if (idx.normalize() == idx).all() else idx[-1]), "rows": len(idx)}


def files_manifest(fmt: str, files: Sequence[Path], frame: pd.DataFrame) -> dict[str, Any]:
    """The manifest of source files in format ``fmt`` and the normalised rows read from them (per instrument: the
    first and last date and the number of bars)."""
    per = {}
    for name, group in frame.groupby("instrument", sort=True):
        d = pd.DatetimeIndex(group["date"])
        per[str(name)] = {"first": str(d.min()), "last": str(d.max()), "bars": len(d)}
    return {"kind": "files", "format": fmt, "files": _files(Path(f).resolve() for f in files),
            "dates": _dates(sorted(frame["date"].unique())), "instruments": per}


def store_manifest(uri: str | Path, instruments: Sequence[str], dates: Sequence[Any],
                   freq: str = "day") -> dict[str, Any]:
    """The manifest of a Qlib-layout store as a run read it: the calendar, the instrument lists and every
    ``features/<instrument>/*.<freq>.bin`` of the loaded instruments, hashed; plus the loaded dates."""
    root = Path(uri).expanduser().resolve()
    paths: list[Path] = []
    cal = root / "calendars" / f"{freq}.txt"
    if cal.is_file():
        paths.append(cal)
    paths += [p for p in sorted((root / "instruments").glob("*.txt")) if p.is_file()]
    for name in instruments:
        folder = root / "features" / str(name).lower()
        paths += sorted(p for p in folder.glob(f"*.{freq}.bin") if p.is_file())
    return {"kind": "store", "uri": str(root), "files": _files(paths, root), "dates": _dates(dates),
            "instruments": list(instruments)}


def planted_manifest(params: Mapping[str, Any], dates: Sequence[Any], instruments: Sequence[str]) -> dict[str, Any]:
    """The manifest of generated (planted) data: the generator's parameters and what it produced."""
    return {"kind": "planted", "params": {k: (list(v) if isinstance(v, (list, tuple, np.ndarray)) else v)
                                          for k, v in dict(params).items()},
            "dates": _dates(dates), "instruments": list(instruments)}
