"""Writing a bin store atomically: a locked, store-wide transaction of temporary files and renames.

A :class:`StoreTransaction` holds ``<root>/.qcore.lock`` (a second writer gets a :class:`DataError` at once, or
after ``lock_timeout`` seconds) and stages every new or changed file as a temporary file beside its target. Nothing
visible changes until :meth:`~StoreTransaction.commit`, which records the pending renames in a journal, renames
every temporary file over its target (calendars first, then features, then instrument files) and removes the
journal. An error or interruption before the journal exists removes the temporary files and leaves the store as it
was; one during the renames leaves the journal, and the next writer (or ``qcore data recover``) completes them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType

import numpy as np

from qcore.atomic import write_text as atomic_write_text
from qcore.errors import DataError
from qdata_cn.binstore import bin_bytes

logger = logging.getLogger(__name__)

LOCK_NAME = ".qcore.lock"
JOURNAL_NAME = ".qcore.journal"
TMP_SUFFIX = ".qcore-tmp"
#: Commit order: readers never see features that run past the calendar, nor instruments without their features.
_ORDER = {"calendars": 0, "features": 1, "instruments": 2}


def _write_file(path: Path, data: bytes | memoryview, durable: bool) -> None:
    """Write one temporary file (tests patch this to simulate a failure half-way through a write)."""
    with open(path, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def _replace(src: Path, dst: Path) -> None:
    """Rename one staged file over its target (tests patch this to simulate a crash during commit)."""
    os.replace(src, dst)


def _sweep_temporaries(root: Path) -> int:
    """Remove temporary files left by writers that died before committing; returns how many."""
    removed = 0
    for folder in (root / "calendars", root / "instruments"):
        if folder.is_dir():
            for path in folder.glob(f"*{TMP_SUFFIX}"):
                path.unlink(missing_ok=True)
                removed += 1
    features = root / "features"
    if features.is_dir():
        with os.scandir(features) as dirs:
            for entry in dirs:
                if entry.is_dir():
                    with os.scandir(entry.path) as files:
                        stale = [f.path for f in files if f.name.endswith(TMP_SUFFIX)]
                    for path in stale:
                        os.unlink(path)
                        removed += 1
    return removed


def recover(root: str | os.PathLike[str]) -> dict[str, int]:
    """Complete an interrupted commit (from its journal) and remove stale temporary files.

    Call it only while holding the store lock (a :class:`StoreTransaction` does so when it opens).
    """
    root = Path(root)
    journal = root / JOURNAL_NAME
    renamed = deleted = 0
    if journal.exists():
        try:
            plan = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(f"unreadable write journal: {error}", path=str(journal)) from None
        for tmp, target in plan.get("renames", []):
            src = root / tmp
            if src.exists():
                os.replace(src, root / target)
                renamed += 1
        for rel in plan.get("deletes", []):
            path = root / rel
            if path.exists():
                path.unlink()
                deleted += 1
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        journal.unlink()
        logger.warning("completed an interrupted write of %s (%d files renamed)", root, renamed)
    swept = _sweep_temporaries(root)
    return {"renamed": renamed, "deleted": deleted, "swept": swept}


class StoreTransaction:
    """Stage file writes to a store and publish them together; use as a context manager.

    >>> with StoreTransaction(root) as txn:
    ...     txn.write_text("calendars/day.txt", text)
    ...     txn.write_bin("features/sh600000/close.day.bin", 0, values)

    Leaving the block normally commits; an exception rolls back (the store is unchanged).

    :param root: the store directory (created if missing).
    :param lock_timeout: seconds to wait for another writer's lock; 0 fails at once.
    :param durable: fsync every file before publishing it (slower; survives power loss).
    """

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 0.0, durable: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.lock_timeout = lock_timeout
        self.durable = durable
        self._txn = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._staged: dict[str, Path] = {}
        self._deletes: set[str] = set()
        self._created_dirs: list[Path] = []
        self._created_root = False
        self._lock = None
        self._open = False

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> StoreTransaction:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def open(self) -> None:
        """Take the store lock and finish any interrupted commit."""
        from filelock import FileLock, Timeout

        if not self.root.exists():
            self.root.mkdir(parents=True)
            self._created_root = True
        elif not self.root.is_dir():
            raise DataError("not a directory", path=str(self.root))
        lock_path = self.root / LOCK_NAME
        self._lock = FileLock(str(lock_path), timeout=self.lock_timeout)
        try:
            self._lock.acquire()
        except Timeout:
            self._lock = None
            raise DataError(
                "the store is locked by another writer (an import or synth is running); try again when it ends",
                path=str(lock_path),
            ) from None
        self._open = True
        try:
            recover(self.root)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError("the transaction is not open (use it as a context manager)")

    # -- staging -----------------------------------------------------------------------------------------------

    def _target(self, rel: str | os.PathLike[str]) -> tuple[str, Path]:
        rel_path = Path(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts:
            raise ValueError(f"store paths must be relative to the store root, got {rel}")
        key = rel_path.as_posix()
        return key, self.root / rel_path

    def _ensure_dir(self, folder: Path) -> None:
        missing: list[Path] = []
        probe = folder
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            path.mkdir()
            self._created_dirs.append(path)

    def write_bytes(self, rel: str | os.PathLike[str], data: bytes | memoryview) -> None:
        """Stage ``data`` as the new content of ``rel`` (a path relative to the store root)."""
        self._check_open()
        key, target = self._target(rel)
        self._ensure_dir(target.parent)
        tmp = self._staged.get(key) or target.with_name(f".{target.name}.{self._txn}{TMP_SUFFIX}")
        self._staged[key] = tmp
        self._deletes.discard(key)
        _write_file(tmp, data, self.durable)

    def write_text(self, rel: str | os.PathLike[str], text: str) -> None:
        """Stage a text file (UTF-8, ``\\n`` line ends)."""
        self.write_bytes(rel, text.encode("utf-8"))

    def write_bin(self, rel: str | os.PathLike[str], start: int, values: np.ndarray) -> None:
        """Stage a feature bin: header ``start`` then ``values`` as little-endian float32."""
        self.write_bytes(rel, bin_bytes(start, values))

    def delete(self, rel: str | os.PathLike[str]) -> None:
        """Stage the removal of ``rel`` (done at commit; an empty parent folder goes too)."""
        self._check_open()
        key, _ = self._target(rel)
        tmp = self._staged.pop(key, None)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        self._deletes.add(key)

    @property
    def staged(self) -> list[str]:
        """Paths (relative to the root) staged for writing."""
        return sorted(self._staged)

    # -- publish -----------------------------------------------------------------------------------------------

    def commit(self) -> None:
        """Publish every staged file and removal, then release the lock."""
        self._check_open()
        try:
            if not self._staged and not self._deletes:
                return
            order = sorted(self._staged, key=lambda k: (_ORDER.get(k.split("/", 1)[0], 3), k))
            plan = {
                "renames": [[self._staged[k].relative_to(self.root).as_posix(), k] for k in order],
                "deletes": sorted(self._deletes),
            }
            journal = self.root / JOURNAL_NAME
            atomic_write_text(journal, json.dumps(plan))
            # from here on the write is decided: a failure leaves the journal for recover() to finish.
            for key in order:
                _replace(self._staged[key], self.root / key)
            for key in plan["deletes"]:
                path = self.root / key
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    path.parent.rmdir()
            journal.unlink()
            self._staged.clear()
            self._deletes.clear()
        except BaseException:
            if not (self.root / JOURNAL_NAME).exists():
                self._discard()
            raise
        finally:
            self._release()

    def rollback(self) -> None:
        """Drop every staged change and release the lock; the store is left as it was."""
        try:
            self._discard()
        finally:
            self._release()
            if self._created_root:  # a store that did not exist before: leave no trace of the failed write
                with contextlib.suppress(OSError):
                    (self.root / LOCK_NAME).unlink()
                    self.root.rmdir()

    def _discard(self) -> None:
        for tmp in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged.clear()
        self._deletes.clear()
        for folder in reversed(self._created_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created_dirs.clear()


def format_calendar(dates: object, fmt: str) -> str:
    """The text of a calendar file: one timestamp per line in ``fmt``."""
    import pandas as pd

    index = pd.DatetimeIndex(dates)
    return "".join(f"{d}\n" for d in index.strftime(fmt))


def format_instruments(spans: Mapping[str, Iterable[object]], fmt: str) -> str:
    """The text of an instrument file: ``SYMBOL<TAB>start<TAB>end`` rows, by symbol then start.

    :param spans: ``{symbol: [Span or (start, end), ...]}``.
    """
    import pandas as pd

    rows = []
    for symbol in sorted(spans):
        pairs = [(s.start, s.end) if hasattr(s, "start") else tuple(s) for s in spans[symbol]]
        for lo, hi in sorted((pd.Timestamp(a), pd.Timestamp(b)) for a, b in pairs):
            rows.append(f"{symbol}\t{lo.strftime(fmt)}\t{hi.strftime(fmt)}\n")
    return "".join(rows)
