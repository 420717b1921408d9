"""An on-disk cache of evaluated expressions that needs no server: files, atomic renames and file locks.

Each entry is one expression's float32 values on one grid (rows, instruments), stored as ``.npy`` under a folder
named after the data's version token. When the store changes its version changes, so old entries are never read
again; they are removed the next time the cache writes. Concurrent writers of the same entry serialise on a file
lock, and readers never see a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qcore.atomic import atomic_path

logger = logging.getLogger(__name__)


def _digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


def _is_digest(name: str) -> bool:
    """Whether ``name`` is a folder name :func:`_digest` gives (32 lower-case hex digits)."""
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


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
        """Store ``value`` atomically; drop entries of other data versions.

        A cache that cannot be written (a file where its folder should be, no space, no permission, a lock held
        too long) costs only the caching: a warning is logged and the evaluation goes on.
        """
        from filelock import FileLock, Timeout  # here: it imports asyncio, 30-50 ms of every start-up otherwise

        folder = self._folder(version)
        path = folder / f"{key}.npy"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with FileLock(str(path) + ".lock", timeout=60), atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(value, dtype=np.float32), allow_pickle=False)
            self._prune(folder)
        except (OSError, Timeout) as exc:
            logger.warning("expression cache %s not written: %s", self.root, exc)

    def _prune(self, keep: Path) -> None:
        # only folders this cache made (named by a version digest): a root shared with other files loses none
        for other in self.root.iterdir():
            if other != keep and _is_digest(other.name) and other.is_dir() and not other.is_symlink():
                shutil.rmtree(other, ignore_errors=True)

    def clear(self) -> None:
        """Remove every entry (the folders this cache made; anything else under ``root`` is left alone)."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if _is_digest(folder.name) and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only if now empty
