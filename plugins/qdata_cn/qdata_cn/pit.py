"""Qlib's point-in-time (PIT) store: ``financial/<inst>/<field>_{q,a}.data`` and ``.index``, read and written.

The layout is Qlib's (``scripts/dump_pit.py``, ``qlib.utils.read_period_data``), byte for byte:

``<field>.data``
    packed little-endian records of 20 bytes, in publication order: ``date`` (uint32 ``YYYYMMDD``), ``period``
    (uint32, ``YYYYQQ`` for a ``_q`` field, ``YYYY`` for an ``_a`` one), ``value`` (float64) and ``_next`` (uint32, the
    byte offset of the next revision of the same period, ``0xFFFFFFFF`` for none).
``<field>.index``
    ``first_year`` (uint32), then one uint32 per period from ``first_year``'s first period to the last period stored:
    the byte offset of that period's first record, ``0xFFFFFFFF`` for a period without any.

A revision (amendment) is a later record of the same period; Qlib follows the ``_next`` links and keeps the last
record published on or before the day asked. Records are written sorted by publication date, so the links always
point forward and file order is revision order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from qcore.errors import DataError
from qcore.protocols import PIT_RECORD

#: The folder of a store that holds period data.
PIT_DIR = "financial"
#: One stored record (Qlib's ``C.pit_record_type``: ``I I d I``, packed).
STORED_RECORD = np.dtype([("date", "<u4"), ("period", "<u4"), ("value", "<f8"), ("_next", "<u4")])
#: The ``_next`` / index value meaning "none" (Qlib's ``C.pit_record_nan["index"]``).
NO_RECORD = 0xFFFFFFFF
DATA_SUFFIX = ".data"
INDEX_SUFFIX = ".index"
#: Suffixes of period field names: quarterly and annual.
PERIOD_KINDS = ("_q", "_a")


def is_quarterly(field: str) -> bool:
    """Whether ``field`` (``eps_q``, ``eps_a``) is quarterly; anything else than ``_q``/``_a`` is a DataError."""
    if field.endswith("_q"):
        return True
    if field.endswith("_a"):
        return False
    raise DataError(f"period field {field!r} must end with '_q' (quarterly) or '_a' (annual)")


def period_problem(period: int, quarterly: bool) -> str | None:
    """Why ``period`` is not a valid period of its kind (``YYYYQQ``, ``QQ`` 1..4; or ``YYYY``), or None."""
    if quarterly:
        year, quarter = divmod(int(period), 100)
        if not 1900 <= year <= 2099 or not 1 <= quarter <= 4:
            return f"period {period} is not a quarter YYYYQQ (year 1900..2099, quarter 01..04)"
        return None
    if not 1900 <= int(period) <= 2099:
        return f"period {period} is not a year YYYY (1900..2099)"
    return None


def period_ordinal(periods: np.ndarray, quarterly: bool) -> np.ndarray:
    """Consecutive integers for consecutive periods: ``year * 4 + quarter - 1`` (quarterly) or the year."""
    periods = np.asarray(periods, dtype=np.int64)
    if quarterly:
        return (periods // 100) * 4 + periods % 100 - 1
    return periods


def ordinal_period(ordinals: np.ndarray, quarterly: bool) -> np.ndarray:
    """The inverse of :func:`period_ordinal`."""
    ordinals = np.asarray(ordinals, dtype=np.int64)
    if quarterly:
        return (ordinals // 4) * 100 + ordinals % 4 + 1
    return ordinals


def encode_pit(records: np.ndarray, quarterly: bool) -> tuple[bytes, bytes]:
    """The ``.data`` and ``.index`` bytes of one instrument's field from :data:`~qcore.protocols.PIT_RECORD` records.

    Records are sorted by publication date (stable: records of one day keep their order, the later one the revision).
    """
    if len(records) == 0:
        raise DataError("no record to write")
    order = np.argsort(records["date"], kind="stable")
    rows = records[order]
    stored = np.zeros(len(rows), dtype=STORED_RECORD)
    stored["date"] = rows["date"]
    stored["period"] = rows["period"]
    stored["value"] = rows["value"]
    stored["_next"] = NO_RECORD
    ordinal = period_ordinal(rows["period"], quarterly)
    offsets = np.arange(len(rows), dtype=np.int64) * STORED_RECORD.itemsize
    if offsets[-1] >= NO_RECORD:
        raise DataError(f"{len(rows)} records are more than a PIT file can address")
    # link each record to the next one of its period: sort by (period, file position), neighbours of one period link
    by_period = np.lexsort((np.arange(len(rows)), ordinal))
    same = ordinal[by_period[1:]] == ordinal[by_period[:-1]]
    stored["_next"][by_period[:-1][same]] = offsets[by_period[1:][same]]
    first_year = int(rows["period"].min() // 100 if quarterly else rows["period"].min())
    base = first_year * 4 if quarterly else first_year
    index = np.full(int(ordinal.max()) - base + 1, NO_RECORD, dtype="<u4")
    firsts = by_period[np.r_[True, ~same]]  # each period's first record in file order
    index[ordinal[firsts] - base] = offsets[firsts]
    return stored.tobytes(), np.uint32(first_year).astype("<u4").tobytes() + index.tobytes()


def decode_pit(data: bytes, path: str, quarterly: bool) -> np.ndarray:
    """:data:`~qcore.protocols.PIT_RECORD` records of a ``.data`` file's bytes, checked.

    :raises DataError: naming the file and the record: a size that is not whole records, a date that is not
        ``YYYYMMDD``, an invalid period, or dates out of order.
    """
    if len(data) % STORED_RECORD.itemsize:
        raise DataError(f"size {len(data)} is not a whole number of {STORED_RECORD.itemsize}-byte records", path=path)
    stored = np.frombuffer(data, dtype=STORED_RECORD)
    out = np.empty(len(stored), dtype=PIT_RECORD)
    out["date"], out["period"], out["value"] = stored["date"], stored["period"], stored["value"]
    if len(out) == 0:
        return out
    dates = out["date"].astype(np.int64)
    month, day = dates // 100 % 100, dates % 100
    bad = (dates < 19000101) | (dates > 20991231) | (month < 1) | (month > 12) | (day < 1) | (day > 31)
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"record {k}: date {int(dates[k])} is not YYYYMMDD", path=path)
    periods = out["period"].astype(np.int64)
    if quarterly:
        year, quarter = periods // 100, periods % 100
        wrong = (year < 1900) | (year > 2099) | (quarter < 1) | (quarter > 4)
    else:
        wrong = (periods < 1900) | (periods > 2099)
    if wrong.any():
        k = int(np.argmax(wrong))
        raise DataError(f"record {k}: {period_problem(int(periods[k]), quarterly)}", path=path)
    back = np.diff(dates) < 0
    if back.any():
        k = int(np.argmax(back)) + 1
        raise DataError(f"record {k}: published {int(dates[k])}, before the record above it (not in PIT order)",
                        path=path)  # fmt: skip
    return out


def read_pit(folder: Path, field: str) -> np.ndarray | None:
    """The records of ``<folder>/<field>.data`` (None when the instrument has no such file)."""
    quarterly = is_quarterly(field)
    path = folder / f"{field}{DATA_SUFFIX}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror or error}", path=str(path)) from None
    return decode_pit(data, str(path), quarterly)


def pit_field_names(root: Path) -> list[str]:
    """Period fields (``eps_q``...) that any instrument of the store under ``root`` has, sorted."""
    folder = root / PIT_DIR
    names: set[str] = set()
    if not folder.is_dir():
        return []
    try:
        with os.scandir(folder) as dirs:
            for entry in dirs:
                if entry.is_dir() and not entry.name.startswith("."):
                    with os.scandir(entry.path) as files:
                        names |= {f.name[: -len(DATA_SUFFIX)] for f in files if f.name.endswith(DATA_SUFFIX)}
    except OSError as error:
        raise DataError(f"cannot list the folder: {error.strerror or error}", path=str(folder)) from None
    return sorted(n for n in names if n.endswith(PERIOD_KINDS) and not n.startswith("."))


def merge_records(old: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    """``old`` records followed by ``new`` ones, in publication order (new ones after old ones published the same day:
    an import amends what is stored)."""
    if old is None or len(old) == 0:
        both = new
    else:
        both = np.concatenate([old, new])
    return both[np.argsort(both["date"], kind="stable")]

