"""Reading a dataset's columns from files (:class:`~qcore.types.StaticFiles`, Qlib's ``StaticDataLoader``).

Each file is one table with rows ``(datetime, instrument)`` — the index of a pandas frame, in either order, or two
columns of those names in a Parquet/Feather file written without its index — and numeric columns. The files of a
:class:`~qcore.types.StaticFiles` become the frame a dataset wraps: columns ``(group, name)`` in file order, rows the
union (``join: outer``) or intersection (``inner``) of the files' rows, sorted, values float32 (qcore's dataset
type; booleans become 0/1). Everything a reader could trip over is a :class:`~qcore.errors.DataError` naming the
file: unreadable or unsupported formats, an index that is not two levels of dates and instrument codes, duplicate
rows, a text column, a name given to two columns.

Suffixes: ``.parquet``/``.pq``, ``.feather``/``.arrow``/``.ipc``, ``.csv`` (the first two columns are the index, as
Qlib reads them), ``.pkl``/``.pickle`` (optionally ``.gz``/``.bz2``/``.xz``; read by :mod:`qcore.safe_pickle`, so a
pickle that names anything but pandas' and numpy's data classes is refused before it runs). HDF5 is not read (it
needs PyTables): convert it with ``pd.read_hdf(src).to_parquet(dst)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcore.errors import DataError
from qcore.types import INDEX_NAMES, StaticFiles

if TYPE_CHECKING:
    import pandas as pd

#: Suffix → reader kind.
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".feather": "arrow", ".arrow": "arrow", ".ipc": "arrow",
            ".csv": "csv", ".pkl": "pickle", ".pickle": "pickle"}
_COMPRESSED = (".gz", ".bz2", ".xz")


def file_format(path: str | Path) -> str | None:
    """The reader kind of ``path`` by its suffix (``parquet``, ``arrow``, ``csv``, ``pickle``), None if unknown."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSED:
        return "pickle" if suffixes[-2] in (".pkl", ".pickle") else None
    return _FORMATS.get(suffixes[-1]) if suffixes else None


def check_file(path: str | Path) -> None:
    """``path`` names a readable file of a supported format (cheap: the file is not read)."""
    source = Path(path)
    kind = file_format(source)
    if kind is None:
        hint = (" (HDF5 is not read: convert it with pd.read_hdf(src).to_parquet(dst))"
                if source.suffix.lower() in (".h5", ".hdf", ".hdf5") else "")
        raise DataError(f"unsupported file type {''.join(source.suffixes) or '(no suffix)'!r}: give Parquet, "
                        f"Feather/Arrow, CSV or a pickled pandas frame{hint}", path=str(source))  # fmt: skip
    if not source.is_file():
        where = "" if source.is_absolute() else f" (relative paths are read from the current folder, {os.getcwd()})"
        raise DataError(f"no such file{where}", path=str(source))
    if not os.access(source, os.R_OK):
        raise DataError("the file is not readable", path=str(source))


def fingerprint(static: StaticFiles) -> tuple[Any, ...]:
    """What identifies the files' content for caches: each file's resolved path, size and modification time (a
    rewritten file is a new dataset), the groups and the join."""
    parts: list[Any] = [static.join, sorted(static.groups)]
    for path in static.paths:
        stat = Path(path).stat()
        parts.append((str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(parts)


def read_static(static: StaticFiles) -> pd.DataFrame:
    """The frame of ``static``: see the module docstring."""
    import pandas as pd

    if static.frame is not None:
        frame = _table(static.frame)
        if not isinstance(frame.columns, pd.MultiIndex) or frame.columns.nlevels != 2:
            raise DataError("a single data file needs two-level columns (group, name): ('feature', 'KMID')...",
                            path=static.frame)
        unknown = [g for g in dict.fromkeys(frame.columns.get_level_values(0)) if g not in ("feature", "label")]
        if unknown:
            raise DataError(f"unknown column group {unknown[0]!r} (groups: feature, label)", path=static.frame)
        frame.columns = pd.MultiIndex.from_arrays([list(frame.columns.get_level_values(0)),
                                                   [str(c) for c in frame.columns.get_level_values(1)]])
    else:
        parts = {}
        for group, path in static.groups.items():
            part = _table(path)
            if isinstance(part.columns, pd.MultiIndex):
                groups = set(part.columns.get_level_values(0))
                if part.columns.nlevels != 2 or groups != {group}:
                    raise DataError(f"the {group} file's columns must be names (or ({group!r}, name) pairs)",
                                    path=path)
                part.columns = part.columns.get_level_values(1)
            part.columns = [str(c) for c in part.columns]
            parts[group] = part
        frame = pd.concat(parts, axis=1, join=static.join)
    names = frame.columns.get_level_values(1)
    if names.has_duplicates:
        twice = sorted(set(names[names.duplicated()]))
        raise DataError(f"column {twice[0]!r} appears twice in the files", path=", ".join(static.paths))
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index()
    return frame


def _table(path: str) -> pd.DataFrame:
    """One file as a float32 frame with a ``(datetime, instrument)`` index."""
    import numpy as np
    import pandas as pd

    check_file(path)
    kind = file_format(path)
    try:
        if kind == "pickle":
            from qcore.safe_pickle import read_frame

            obj: Any = read_frame(path)
        elif kind == "parquet":
            obj = pd.read_parquet(path, engine="pyarrow")
        elif kind == "arrow":
            import pyarrow.feather as feather

            obj = feather.read_table(path).to_pandas()
        else:
            obj = pd.read_csv(path, index_col=[0, 1])
    except DataError:
        raise
    except Exception as exc:  # any reader's failure on a damaged file
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot read: {type(exc).__name__}: {first}", path=path) from None
    if isinstance(obj, pd.Series):
        obj = obj.to_frame(name=obj.name if obj.name is not None else "value")
    frame = _indexed(obj, path)
    if frame.shape[1] == 0:
        raise DataError("the file has no data columns", path=path)
    columns = {}
    for i, name in enumerate(frame.columns):
        values = frame.iloc[:, i]
        if values.dtype == bool or pd.api.types.is_numeric_dtype(values.dtype):
            columns[i] = values.to_numpy(dtype=np.float32, na_value=np.nan)
        else:
            raise DataError(f"column {name!r} holds {values.dtype} values, not numbers", path=path)
    out = pd.DataFrame(dict(enumerate(columns.values())), index=frame.index)
    out.columns = frame.columns
    return out


def _indexed(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    """``frame`` with its ``(datetime, instrument)`` index: the frame's own two levels (either order) or, for a
    file written without its index, two columns of those names."""
    import pandas as pd

    if not isinstance(frame.index, pd.MultiIndex) and all(n in frame.columns for n in INDEX_NAMES):
        frame = frame.set_index(list(INDEX_NAMES))
    index = frame.index
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise DataError("rows must be indexed by (datetime, instrument): found "
                        f"{index.nlevels if isinstance(index, pd.MultiIndex) else 1} index level(s)", path=path)
    names = [str(n).lower() if n is not None else None for n in index.names]
    date_level = names.index("datetime") if "datetime" in names else _date_level(index, path)
    dates, codes = index.get_level_values(date_level), index.get_level_values(1 - date_level)
    if not isinstance(dates, pd.DatetimeIndex):
        try:
            dates = pd.DatetimeIndex(pd.to_datetime(dates, format="ISO8601"))
        except (ValueError, TypeError):
            level = index.names[date_level] or date_level
            raise DataError(f"index level {level!r} must hold dates", path=path) from None
    if dates.tz is not None:
        raise DataError("index dates carry a time zone: give naive dates (the store's calendar is naive)", path=path)
    if dates.hasnans:
        raise DataError(f"an index date is missing (row {int(dates.isna().argmax())})", path=path)
    if not all(isinstance(c, str) and c for c in codes.unique()):
        raise DataError("instrument codes must be non-empty text", path=path)
    frame = frame.set_axis(pd.MultiIndex.from_arrays([dates, codes.astype(str)], names=list(INDEX_NAMES)), axis=0)
    if frame.index.has_duplicates:
        first = frame.index[frame.index.duplicated()][0]
        raise DataError(f"row ({first[0].date()}, {first[1]}) appears more than once", path=path)
    return frame


def _date_level(index: Any, path: str) -> int:
    """The level of an unnamed two-level index that holds dates."""
    import pandas as pd

    for level in (0, 1):
        values = index.levels[level]
        if isinstance(values, pd.DatetimeIndex):
            return level
    for level in (0, 1):
        try:
            pd.to_datetime(index.levels[level][:5], format="ISO8601")
        except (ValueError, TypeError):
            continue
        return level
    raise DataError("neither index level holds dates: rows must be indexed by (datetime, instrument)", path=path)


def select_rows(frame: pd.DataFrame, universe: Any, start: Any, end: Any) -> tuple[pd.DataFrame, int]:
    """Rows of ``frame`` dated ``[start, end]`` whose instrument is a member of ``universe`` (a
    :data:`~qcore.types.Universe`) on that date, and how many rows in those dates were dropped as non-members."""
    import numpy as np
    import pandas as pd

    frame = frame.loc[pd.Timestamp(start):pd.Timestamp(end)]
    days = frame.index.get_level_values(0).values.astype("datetime64[D]").astype(np.int64)
    codes, names = pd.factorize(frame.index.get_level_values(1))
    # one sorted key per span (instrument code, first day) and per row (instrument code, day): a row is kept when
    # the spans starting at or before it reach it (running maximum of the ends: spans may overlap; an instrument's
    # keys all lie below the next instrument's, so the maximum never carries over)
    shift = np.int64(1) << np.int64(40)
    lo, hi = [], []
    for k, name in enumerate(names):
        for span in universe.get(name, ()):
            lo.append(k * shift + np.datetime64(span.start.date(), "D").astype(np.int64))
            hi.append(k * shift + np.datetime64(span.end.date(), "D").astype(np.int64))
    if not lo:
        return frame.iloc[:0], len(frame)
    order = np.argsort(lo, kind="stable")
    starts, ends = np.asarray(lo)[order], np.maximum.accumulate(np.asarray(hi)[order])
    keys = codes.astype(np.int64) * shift + days
    at = np.searchsorted(starts, keys, side="right") - 1
    keep = (at >= 0) & (keys <= ends[np.clip(at, 0, None)])
    return (frame if keep.all() else frame[keep]), int((~keep).sum())
