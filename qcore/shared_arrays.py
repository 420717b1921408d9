"""Large read-only arrays shared with worker processes through memory-mapped Arrow IPC files, not pickles.

:func:`write_array` stores a numeric numpy array as one Arrow IPC file (one flat column, its shape in the schema's
metadata) and returns a small picklable :class:`ArrayRef`; :func:`read_array` maps that file (``pa.memory_map``) and
hands back a zero-copy, read-only numpy view. What crosses a process pipe is the reference (a path and a shape),
never the data: every worker on the machine reads the same pages of the page cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from qcore.errors import RunError

__all__ = ["ArrayRef", "check_shareable", "read_array", "write_array"]

#: Worker-side cache of mapped arrays, by file path (a task that reuses a panel maps it once per process).
_MAPPED: dict[str, np.ndarray] = {}


@attrs.frozen
class ArrayRef:
    """A handle to an array an execution backend holds (:meth:`qcore.backends.ExecutionBackend.put`).

    :ivar key: the backend's name for it.
    :ivar shape: the array's shape; :ivar dtype: its numpy dtype string.
    :ivar path: the Arrow IPC file holding it (``processes``), None for arrays held in memory (``serial``).
    """

    key: str
    shape: tuple[int, ...]
    dtype: str
    path: str | None = None

    @property
    def nbytes(self) -> int:
        """The array's size in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def check_shareable(array: Any) -> np.ndarray:
    """``array`` as a numeric numpy array (integers or floats), or a :class:`RunError` naming what it is."""
    if not isinstance(array, np.ndarray):
        raise RunError(f"put() takes a numpy array, got {type(array).__name__}")
    if array.dtype.kind not in "iuf" or array.dtype.byteorder == ">":
        raise RunError(f"put() takes a native-endian integer or float array, got dtype {array.dtype}")
    return array


def write_array(array: np.ndarray, path: Path, key: str) -> ArrayRef:
    """Store ``array`` at ``path`` as an Arrow IPC file and return its reference."""
    import pyarrow as pa

    array = check_shareable(array)
    flat = pa.array(np.ascontiguousarray(array).reshape(-1))
    meta = {b"qcore.shape": json.dumps(list(array.shape)).encode(), b"qcore.dtype": array.dtype.str.encode()}
    schema = pa.schema([pa.field("values", flat.type)], metadata=meta)
    tmp = path.with_suffix(".part")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(pa.record_batch([flat], schema=schema))
    tmp.replace(path)
    return ArrayRef(key, tuple(int(n) for n in array.shape), array.dtype.str, str(path))


def read_array(ref: ArrayRef) -> np.ndarray:
    """The array behind ``ref``: a read-only view of the memory-mapped file (mapped once per process)."""
    import pyarrow as pa

    if ref.path is None:
        raise RunError(f"array {ref.key!r} is held in another process's memory; pass it to a task of its backend")
    cached = _MAPPED.get(ref.path)
    if cached is not None:
        return cached
    try:
        source = pa.memory_map(ref.path, "r")
        table = pa.ipc.open_file(source).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise RunError(f"shared array {ref.key!r} cannot be read from {ref.path}: {exc}") from None
    column = table.column(0)
    flat = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
    values = flat.to_numpy(zero_copy_only=True).reshape(ref.shape)
    values.flags.writeable = False
    _MAPPED[ref.path] = values
    return values


def forget(path: str) -> None:
    """Drop a mapped array from this process's cache (its file is about to be deleted)."""
    _MAPPED.pop(path, None)
