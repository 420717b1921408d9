"""An on-disk cache of evaluated expressions that needs no server: files, atomic renames and file locks.

Each entry is one expression's float32 values on one grid (rows, instruments), stored as ``.npy`` under a folder
named after the data's version token. When the store changes its version changes, so old entries are never read
again; they are removed the next time the cache writes. Concurrent writers of the same entry serialise on a file
lock, and readers never see a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from filelock import FileLock

from qcore.atomic import atomic_path


def _digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


class ExpressionCache:
    """Cached expression values under ``root`` (e.g. ``~/.cache/qcore/expr``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.hits = 0
        self.misses = 0

    def _folder(self, version: str) -> Path:
        return self.root / _digest(version)

    def key(self, expression: str, freq: str, symbols: Sequence[str], rows: tuple[object, object]) -> str:
        """The entry name of ``expression`` on a grid of ``symbols`` × ``rows`` (first and last date)."""
        return _digest(expression, freq, tuple(symbols), rows)

    def get(self, version: str, key: str) -> np.ndarray | None:
        """The cached array, or None."""
        path = self._folder(version) / f"{key}.npy"
        try:
            value = np.load(path, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, version: str, key: str, value: np.ndarray) -> None:
        """Store ``value`` atomically; drop entries of other data versions."""
        folder = self._folder(version)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key}.npy"
        with FileLock(str(path) + ".lock", timeout=60), atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(value, dtype=np.float32), allow_pickle=False)
        self._prune(folder)

    def _prune(self, keep: Path) -> None:
        for other in self.root.iterdir():
            if other.is_dir() and other != keep:
                shutil.rmtree(other, ignore_errors=True)

    def clear(self) -> None:
        """Remove every entry."""
        shutil.rmtree(self.root, ignore_errors=True)
