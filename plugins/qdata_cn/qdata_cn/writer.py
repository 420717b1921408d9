"""Writing a bin store atomically: a locked, store-wide transaction of temporary files and renames.

A :class:`StoreTransaction` holds ``<root>/.qcore.lock`` (a second writer gets a :class:`DataError` at once, or
after ``lock_timeout`` seconds) and stages every new or changed file as a temporary file beside its target. Nothing
visible changes until :meth:`~StoreTransaction.commit`, which records the pending renames in a journal, renames
every temporary file over its target (calendars first, then features, then instrument files) and removes the
journal. An error or interruption before the journal exists removes the temporary files and leaves the store as it
was; one during the renames leaves the journal, and the next writer (or ``qcore data recover``) completes them.

A store may come from anywhere, so its metadata is never trusted with the file system: every path the journal
names must be one of the store's own files (``calendars/*``, ``instruments/*``, ``features/<inst>/*`` or a file at
the top), resolve inside the store (no ``..``, absolute paths or symbolic links leading out), and each rename must
move a qcore temporary file onto its own target. The whole journal is checked before the first rename; anything
else is a :class:`DataError` naming the journal and the entry, and nothing is touched. Folders a transaction creates
are made under a temporary name with a marker inside and then renamed into place, so the folders of a writer killed
while staging are recognisably qcore's and :func:`recover` removes them (and nothing else).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import numpy as np

from qcore.atomic import write_text as atomic_write_text
from qcore.errors import DataError
from qdata_cn.binstore import bin_bytes

logger = logging.getLogger(__name__)

LOCK_NAME = ".qcore.lock"
JOURNAL_NAME = ".qcore.journal"
TMP_SUFFIX = ".qcore-tmp"
#: Left inside a folder a transaction created until the transaction ends (a temporary name: swept by recover).
NEW_FOLDER_MARKER = f".qcore-new-folder{TMP_SUFFIX}"
#: Commit order: readers never see features that run past the calendar, nor instruments without their features.
_ORDER = {"calendars": 0, "features": 1, "financial": 1, "instruments": 2}
#: The store's folders and the depth of the files in them (``features/<inst>/<file>``).
_LAYOUT = {"calendars": 2, "instruments": 2, "features": 3, "financial": 3}
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: A journal is a list of paths: anything this large was not written by qcore.
MAX_JOURNAL_BYTES = 256 * 2**20


def _write_file(path: Path, data: bytes | memoryview, durable: bool) -> None:
    """Write one temporary file (tests patch this to simulate a failure half-way through a write).

    The file must not exist yet (``x`` mode): a link planted under a temporary name is never followed.
    """
    with open(path, "xb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def _replace(src: Path, dst: Path) -> None:
    """Rename one staged file over its target (tests patch this to simulate a crash during commit)."""
    os.replace(src, dst)


# ---------------------------------------------------------------------------------------------------------------
# Store paths: what a journal or a writer may name
# ---------------------------------------------------------------------------------------------------------------


def store_path_problem(rel: object) -> str | None:
    """Why ``rel`` is not the relative path of one of a store's files, or ``None``.

    A store file is ``calendars/<name>``, ``instruments/<name>``, ``features/<inst>/<name>``,
    ``financial/<inst>/<name>`` (point-in-time period data) or ``<name>`` at the top, written with ``/`` and
    nothing else: no absolute path, drive, ``..``, ``.``, empty part, backslash or control character, and never the
    lock or the journal.
    """
    if not isinstance(rel, str):
        return f"is {type(rel).__name__} {rel!r}, not a path"
    if not rel:
        return "is empty"
    if _CONTROL_RE.search(rel):
        return f"{rel!r} holds a NUL or control character"
    if "\\" in rel or rel[1:2] == ":":
        return f"{rel!r} is not a relative POSIX path (backslash or drive)"
    if rel.startswith("/"):
        return f"{rel!r} is an absolute path"
    parts = rel.split("/")
    if ".." in parts:
        return f"{rel!r} climbs out of its folder ('..')"
    if any(part in ("", ".") for part in parts):
        return f"{rel!r} has an empty or '.' part"
    depth = _LAYOUT.get(parts[0], 1)
    if len(parts) != depth:
        where = f"{parts[0]}/" if parts[0] in _LAYOUT else "the store's top level"
        return f"{rel!r} is not a file of {where} (expected {depth} parts)"
    if len(parts) == 1 and parts[0] in (LOCK_NAME, JOURNAL_NAME):
        return f"{rel!r} is the store's own lock or journal"
    return None


def _inside(path: Path, real_root: Path) -> bool:
    """Whether ``path`` (symbolic links followed) lies inside ``real_root`` (itself already resolved)."""
    try:
        resolved = path.resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return resolved == real_root or resolved.is_relative_to(real_root)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None


def _is_temp_name(name: str) -> bool:
    return name.endswith(TMP_SUFFIX)


# ---------------------------------------------------------------------------------------------------------------
# The journal
# ---------------------------------------------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_journal(root: str | os.PathLike[str]) -> dict[str, list[Any]] | None:
    """The pending plan of ``<root>/.qcore.journal``, checked entry by entry; ``None`` when there is no journal.

    Reading only: nothing is renamed or removed. Every path must be a store file (see :func:`store_path_problem`)
    that resolves inside the store; each rename moves a qcore temporary file (``.<name>.<id>.qcore-tmp`` in the
    target's folder, a regular file) onto its target; no target or deleted path may be a folder.

    :raises DataError: the journal is unreadable, not the JSON qcore writes, or an entry names anything else; the
        message names the journal, the entry (``renames[3] target``) and the path.
    """
    root = Path(root)
    journal = root / JOURNAL_NAME
    info = _lstat(journal)
    if info is None:
        return None
    where = str(journal)
    if not stat.S_ISREG(info.st_mode):
        raise _journal_error(where, "the journal", "is not a regular file (a folder or a link)")
    if info.st_size > MAX_JOURNAL_BYTES:
        raise _journal_error(where, "the journal", f"is {info.st_size} bytes, more than qcore ever writes")
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _journal_error(where, "the journal", f"is unreadable ({type(error).__name__}: {error})") from None
    _check_plan(plan, root, where)
    return plan


class JournalError(DataError):
    """A write journal that qcore did not write (or that was damaged): it is never replayed.

    :param entry: which part of the journal (``renames[3] target``, ``the document``).
    :param problem: what is wrong with it.
    """

    def __init__(self, where: str, entry: str, problem: str) -> None:
        self.entry = entry
        self.problem = problem
        super().__init__(
            f"refusing to replay the write journal: {entry} {problem}; nothing was changed. A journal qcore writes "
            "names only its own temporary files and store files: this one may come from a damaged or untrusted copy "
            "of the store, so check the store's files (`qcore data check`) before removing the journal by hand",
            path=where,
        )


def _journal_error(where: str, entry: str, problem: str) -> JournalError:
    return JournalError(where, entry, problem)


def _check_plan(plan: object, root: Path, where: str) -> None:
    if not isinstance(plan, dict):
        raise _journal_error(where, "the document", f"is a JSON {type(plan).__name__}, not an object")
    unknown = sorted(set(plan) - {"renames", "deletes"})
    if unknown:
        raise _journal_error(where, "the document", f"has unknown keys {unknown}")
    renames, deletes = plan.get("renames", []), plan.get("deletes", [])
    for key, value in (("renames", renames), ("deletes", deletes)):
        if not isinstance(value, list):
            raise _journal_error(where, f"{key!r}", f"is a JSON {type(value).__name__}, not a list")
    plan.setdefault("renames", renames)
    plan.setdefault("deletes", deletes)
    real_root = root.resolve()
    seen: set[str] = set()
    for k, item in enumerate(renames):
        entry = f"renames[{k}]"
        if not isinstance(item, list) or len(item) != 2:
            raise _journal_error(where, entry, f"is {item!r}, not a [temporary, target] pair")
        src, dst = item
        for role, rel in (("temporary", src), ("target", dst)):
            _check_entry_path(rel, root, real_root, where, f"{entry} {role}")
        src_path, dst_path = PurePosixPath(src), PurePosixPath(dst)
        if src_path.parent != dst_path.parent or not src_path.name.startswith(f".{dst_path.name}.") \
                or not _is_temp_name(src_path.name):  # fmt: skip
            raise _journal_error(where, f"{entry} temporary", f"{src!r} is not a qcore temporary file of {dst!r}")
        if dst in seen or src in seen:
            raise _journal_error(where, entry, f"names {dst!r} or {src!r} twice")
        seen |= {src, dst}
        src_info = _lstat(root / src)
        if src_info is not None and not stat.S_ISREG(src_info.st_mode):
            raise _journal_error(where, f"{entry} temporary", f"{src!r} is not a regular file")
        _check_not_folder(root / dst, where, f"{entry} target", dst)
    for k, rel in enumerate(deletes):
        entry = f"deletes[{k}]"
        _check_entry_path(rel, root, real_root, where, entry)
        _check_not_folder(root / rel, where, entry, rel)


def _check_entry_path(rel: object, root: Path, real_root: Path, where: str, entry: str) -> None:
    problem = store_path_problem(rel)
    if problem is not None:
        raise _journal_error(where, entry, problem)
    assert isinstance(rel, str)
    if not _inside(root / rel, real_root):
        raise _journal_error(where, entry, f"{rel!r} leads outside the store (through a symbolic link)")


def _check_not_folder(path: Path, where: str, entry: str, rel: str) -> None:
    info = _lstat(path)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise _journal_error(where, entry, f"{rel!r} is a folder")


# ---------------------------------------------------------------------------------------------------------------
# Recovery
# ---------------------------------------------------------------------------------------------------------------


def _store_folders(root: Path) -> list[Path]:
    """The store's real folders that writers stage into, deepest first (symbolic links are not followed)."""
    out: list[Path] = []
    for name in ("calendars", "instruments"):
        folder = root / name
        if folder.is_dir() and not folder.is_symlink():
            out.append(folder)
    for name in ("features", "financial"):
        folder = root / name
        if folder.is_dir() and not folder.is_symlink():
            with os.scandir(folder) as entries:
                out += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False) and not _is_temp_name(e.name)]
            out.append(folder)
    out.append(root)
    return out


def _temp_entries(root: Path) -> list[tuple[Path, os.DirEntry[str]]]:
    """``(folder, entry)`` of every qcore temporary in the store's real folders, deepest folders first."""
    journal_tmp = f".{JOURNAL_NAME}."
    out = []
    for folder in _store_folders(root):
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if _is_temp_name(name) or (folder == root and name.startswith(journal_tmp) and name.endswith(".tmp")):
                    out.append((folder, entry))
    return out


def find_temporaries(root: str | os.PathLike[str]) -> list[str]:
    """Paths (relative to ``root``) of the temporary files and folders interrupted writers left; reads only."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(Path(entry.path).relative_to(root).as_posix() for _, entry in _temp_entries(root))


def _remove_temp_folder(folder: Path) -> int:
    """Remove a folder left under a qcore temporary name if it holds nothing but qcore temporaries."""
    removed = 0
    with os.scandir(folder) as entries:
        items = list(entries)
    if any(not _is_temp_name(e.name) or e.is_dir(follow_symlinks=False) for e in items):
        logger.warning("left %s in place: it holds files that are not qcore temporaries", folder)
        return 0
    for entry in items:
        os.unlink(entry.path)
        removed += 1
    folder.rmdir()
    return removed + 1


def _sweep_temporaries(root: Path) -> int:
    """Remove what writers that died before committing left: temporary files, and the folders they created.

    Only names qcore gives its temporaries are touched (``*.qcore-tmp``, the journal's own temporary), only in the
    store's real folders; a folder a transaction created (it holds the marker) is removed when it ends up empty.
    """
    removed = 0
    marked: list[Path] = []
    for folder, entry in _temp_entries(root):
        if entry.is_dir(follow_symlinks=False):
            removed += _remove_temp_folder(Path(entry.path))
            continue
        if entry.name == NEW_FOLDER_MARKER and folder != root:
            marked.append(folder)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed += 1
    for folder in marked:  # deepest first, as listed
        with contextlib.suppress(OSError):
            folder.rmdir()
            removed += 1
    return removed


def recover(root: str | os.PathLike[str]) -> dict[str, int]:
    """Complete an interrupted commit (from its journal) and remove stale temporary files and folders.

    The journal is checked in full first (:func:`read_journal`); a journal naming anything but the store's own
    files is a :class:`DataError` and nothing is renamed, removed or swept. Call it only while holding the store
    lock (a :class:`StoreTransaction` does so when it opens).
    """
    root = Path(root)
    journal = root / JOURNAL_NAME
    renamed = deleted = 0
    plan = read_journal(root)
    if plan is not None:
        for tmp, target in plan["renames"]:
            src = root / tmp
            if _lstat(src) is not None:
                os.replace(src, root / target)
                renamed += 1
        for rel in plan["deletes"]:
            path = root / rel
            if _lstat(path) is not None:
                path.unlink()
                deleted += 1
            with contextlib.suppress(OSError):
                path.parent.rmdir()
        journal.unlink()
        logger.warning("completed an interrupted write of %s (%d files renamed)", root, renamed)
    swept = _sweep_temporaries(root) if root.is_dir() else 0
    return {"renamed": renamed, "deleted": deleted, "swept": swept}


# ---------------------------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------------------------


#: How often the lock file may vanish under a waiting writer before giving up (a writer that created a store and
#: failed removes it once; only something else removing it again and again exhausts this).
_LOCK_RETRIES = 1000


class _Locked(Exception):
    """The lock is held by another writer (internal)."""


class _StoreLock:
    """An exclusive lock on ``<root>/.qcore.lock`` that never follows a symbolic link and survives the file's removal.

    POSIX: ``flock`` on a file opened with ``O_NOFOLLOW`` (so a link planted as the lock file cannot make qcore open
    a file elsewhere), re-checked after locking to be the file still at that path (a writer that created a store
    and failed removes it: a waiter then retries on a fresh file). Elsewhere: :mod:`filelock`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._fallback: Any = None

    def acquire(self, timeout: float, ensure_root: Any) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            self._acquire_fallback(timeout, ensure_root)
            return
        deadline = time.monotonic() + max(0.0, timeout)
        vanished = 0
        while vanished < _LOCK_RETRIES:
            ensure_root()
            fd = self._open()
            if fd is None:
                vanished += 1
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise DataError(f"cannot lock the store: {error.strerror}", path=str(self.path)) from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Locked from None
                time.sleep(min(0.05, left))
                continue
            if self._still_ours(fd):
                self._fd = fd
                return
            os.close(fd)  # the file was removed or replaced while we waited: lock the one there now
            vanished += 1
        raise DataError("the lock file keeps disappearing or being replaced; is something else removing it?",
                        path=str(self.path))  # fmt: skip

    def _open(self) -> int | None:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            return None  # the store folder was removed meanwhile; ensure_root() makes it again
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise DataError("the lock file is a symbolic link; refusing to follow it out of the store",
                                path=str(self.path)) from None  # fmt: skip
            raise DataError(f"cannot open the lock file: {error.strerror}", path=str(self.path)) from None

    def _still_ours(self, fd: int) -> bool:
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def _acquire_fallback(self, timeout: float, ensure_root: Any) -> None:  # pragma: no cover - Windows
        from filelock import FileLock, Timeout

        ensure_root()
        if self.path.is_symlink():
            raise DataError("the lock file is a symbolic link; refusing to follow it out of the store",
                            path=str(self.path))  # fmt: skip
        self._fallback = FileLock(str(self.path), timeout=timeout)
        try:
            self._fallback.acquire()
        except Timeout:
            self._fallback = None
            raise _Locked from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
            self._fallback = None


class StoreTransaction:
    """Stage file writes to a store and publish them together; use as a context manager.

    >>> with StoreTransaction(root) as txn:
    ...     txn.write_text("calendars/day.txt", text)
    ...     txn.write_bin("features/sh600000/close.day.bin", 0, values)

    Leaving the block normally commits; an exception rolls back (the store is unchanged). Decide what to write
    only after entering the block: the store may change until the lock is held.

    :param root: the store directory (created if missing).
    :param lock_timeout: seconds to wait for another writer's lock; 0 fails at once.
    :param durable: fsync every file before publishing it (slower; survives power loss).
    """

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = 0.0, durable: bool = False) -> None:
        self.root = Path(root).expanduser()
        self.lock_timeout = lock_timeout
        self.durable = durable
        #: What :func:`recover` did when the transaction opened.
        self.recovered: dict[str, int] = {"renamed": 0, "deleted": 0, "swept": 0}
        self._txn = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._staged: dict[str, Path] = {}
        self._deletes: set[str] = set()
        self._created_dirs: list[Path] = []
        self._subdirs: dict[Path, set[str]] = {}  # folders made ready for staging -> names of their subfolders
        self._real_root: Path | None = None
        self._created_root = False
        self._lock: _StoreLock | None = None
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

    def _ensure_root(self) -> None:
        if self.root.is_dir():
            return
        if self.root.exists() or self.root.is_symlink():
            raise DataError("not a directory", path=str(self.root))
        try:
            self.root.mkdir(parents=True)
            self._created_root = True
        except FileExistsError:  # another writer made it at the same moment
            if not self.root.is_dir():
                raise DataError("not a directory", path=str(self.root)) from None
        except OSError as error:
            raise DataError(f"cannot create the store folder: {error.strerror}", path=str(self.root)) from None

    def open(self) -> None:
        """Take the store lock and finish any interrupted commit."""
        lock_path = self.root / LOCK_NAME
        lock = _StoreLock(lock_path)
        try:
            lock.acquire(self.lock_timeout, self._ensure_root)
        except _Locked:
            raise DataError(
                "the store is locked by another writer (an import or synth is running); try again when it ends"
                + (f" (waited {self.lock_timeout:g}s; raise --lock-timeout to wait longer)" if self.lock_timeout else
                   " (or pass --lock-timeout SECONDS to wait)"),
                path=str(lock_path),
            ) from None
        self._lock = lock
        self._open = True
        try:
            self._real_root = self.root.resolve()
            self.recovered = recover(self.root)
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
        key = rel if isinstance(rel, str) else Path(rel).as_posix()
        problem = store_path_problem(key)
        if problem is not None:
            raise DataError(f"refusing a path that is not one of the store's files: {problem}", path=str(self.root))
        return key, self.root / key

    def _folder(self, folder: Path, create: bool) -> set[str]:
        """Check a folder once per transaction, from the root down, creating it if asked; its subfolders' names.

        A real subfolder of a checked folder is inside the store; anything else in the way is checked: a file is an
        error, and so is a symbolic link leading outside the store. The names returned are those of the folder's
        real subfolders (a file cannot be staged over one); a missing folder not to be created has none.
        """
        subdirs = self._subdirs.get(folder)
        if subdirs is not None:
            return subdirs
        if folder != self.root:
            parent = self._folder(folder.parent, create)
            if folder.name not in parent:  # missing, a file, or a link
                if not os.path.lexists(folder):
                    if not create:
                        return set()
                    self._make_dir(folder)
                    parent.add(folder.name)
                    self._subdirs[folder] = set()
                    return self._subdirs[folder]
                if not folder.is_dir():
                    raise DataError("expected a folder here, found a file", path=str(folder))
                assert self._real_root is not None
                if not _inside(folder, self._real_root):
                    raise DataError("this store folder is a symbolic link leading outside the store; refusing to "
                                    "write through it", path=str(folder))  # fmt: skip
        with os.scandir(folder) as entries:
            subdirs = {e.name for e in entries if e.is_dir(follow_symlinks=False)}
        self._subdirs[folder] = subdirs
        return subdirs

    def _make_dir(self, path: Path) -> None:
        """Create ``path`` under a temporary name with the marker inside, then rename it into place.

        A writer killed at any point leaves either a temporary folder or a marked one: :func:`recover` removes both.
        """
        tmp = path.with_name(f".{path.name}.{self._txn}{TMP_SUFFIX}")
        tmp.mkdir()
        try:
            (tmp / NEW_FOLDER_MARKER).touch(exist_ok=False)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                (tmp / NEW_FOLDER_MARKER).unlink()
                tmp.rmdir()
            raise
        self._created_dirs.append(path)

    def write_bytes(self, rel: str | os.PathLike[str], data: bytes | memoryview) -> None:
        """Stage ``data`` as the new content of ``rel`` (a path relative to the store root)."""
        self._check_open()
        key, target = self._target(rel)
        if target.name in self._folder(target.parent, create=True):
            raise DataError("a folder stands where this file is to be written; remove it first", path=str(target))
        tmp = self._staged.get(key)
        if tmp is None:
            tmp = target.with_name(f".{target.name}.{self._txn}{TMP_SUFFIX}")
        else:
            tmp.unlink(missing_ok=True)
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
        """Stage the removal of ``rel`` (done at commit; an empty parent folder goes too).

        :raises DataError: ``rel`` is a folder.
        """
        self._check_open()
        key, target = self._target(rel)
        if target.name in self._folder(target.parent, create=False):
            raise DataError("cannot remove a folder where a file was expected", path=str(target))
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
                self._discard()
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
            self._unmark_created()
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
            if self._created_root and self._open:  # a store that did not exist before: leave no trace of it
                with contextlib.suppress(OSError):
                    if os.listdir(self.root) == [LOCK_NAME]:  # still holding the lock: nobody else wrote here
                        (self.root / LOCK_NAME).unlink()
                        self.root.rmdir()
        finally:
            self._release()

    def _unmark_created(self) -> None:
        """Remove the markers of the folders this transaction created (and those left empty)."""
        for folder in reversed(self._created_dirs):
            with contextlib.suppress(OSError):
                (folder / NEW_FOLDER_MARKER).unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created_dirs.clear()

    def _discard(self) -> None:
        for tmp in self._staged.values():
            tmp.unlink(missing_ok=True)
        self._staged.clear()
        self._deletes.clear()
        self._unmark_created()


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
