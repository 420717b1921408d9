"""Reading a Qlib bin store: calendars, instrument files and feature bins, as whole panels.

The layout (see Qlib's ``scripts/dump_bin.py``)::

    <root>/calendars/<freq>.txt                 one timestamp per line; the line number is the calendar index
    <root>/instruments/<market>.txt             SYMBOL<TAB>start<TAB>end, several rows (spans) per symbol allowed
    <root>/features/<inst>/<field>.<freq>.bin   little-endian float32; element 0 = start index into the calendar

Every malformed input raises :class:`qcore.errors.DataError` naming the file and the line or element: also a
folder, a special file or an unreadable file where a bin should be. Symbols (and market names) become file names,
so one that could name another place (``../x``, ``a/b``) is an error naming the instrument file and the line.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import os
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qcore.errors import DataError
from qcore.types import Panel, Span, Universe
from qdata_cn.naming import (
    BIN_SUFFIX,
    check_freq,
    code_to_fname,
    date_format,
    field_order,
    is_daily,
    normalise_fields,
    symbol_problem,
)
from qdata_cn.pit import PIT_DIR, is_quarterly, pit_field_names, read_pit
from qdata_cn.sessions import SESSIONS, minute_count, resample_minute_calendar, span_bounds

logger = logging.getLogger(__name__)

_O_BINARY = getattr(os, "O_BINARY", 0)
_HAS_PREADV = hasattr(os, "preadv")
#: ``O_NONBLOCK``: opening a FIFO planted where a bin should be must not hang (no effect on regular files).
_READ_FLAGS = os.O_RDONLY | _O_BINARY | getattr(os, "O_NONBLOCK", 0)
_HEADER = struct.Struct("<f")
#: Float32 represents every integer exactly up to 2**24; a larger header cannot be a calendar index.
_MAX_HEADER = float(2**24)


# ---------------------------------------------------------------------------------------------------------------
# Calendars and instrument files
# ---------------------------------------------------------------------------------------------------------------


def _file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _parse_dates(texts: Sequence[str], freq_format: str | None) -> pd.DatetimeIndex:
    """Parse timestamps; unparsable ones become NaT (the caller reports them)."""
    values = pd.Series(list(texts), dtype=object)
    if freq_format is not None:
        out = pd.to_datetime(values, format=freq_format, errors="coerce")
        if not out.isna().any():
            return pd.DatetimeIndex(out).as_unit("ns")
    return pd.DatetimeIndex(pd.to_datetime(values, format="ISO8601", errors="coerce")).as_unit("ns")


def _read_text(path: Path) -> str:
    """A text file's UTF-8 content; a folder, FIFO or device in its place is an ``OSError`` (never a hang)."""
    fd = os.open(path, _READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EISDIR if stat.S_ISDIR(info.st_mode) else errno.EINVAL,
                          "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file")  # fmt: skip
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
    finally:
        os.close(fd)
    return data.decode("utf-8")


def read_calendar(path: str | os.PathLike[str], freq: str = "day") -> pd.DatetimeIndex:
    """The timestamps of a calendar file, checked to be valid and strictly increasing.

    :raises DataError: the file is missing, a line is not a date (naming the line) or dates are not increasing.
    """
    path = Path(path)
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise DataError(f"calendar file for freq {freq!r} not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read calendar: {error}", path=str(path)) from None
    lines: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line:
            lines.append(line)
            numbers.append(number)
    dates = _parse_dates(lines, date_format(freq))
    bad = np.flatnonzero(np.asarray(dates.isna()))
    if bad.size:
        k = int(bad[0])
        raise DataError(f"not a date: {lines[k]!r}", path=str(path), row=numbers[k])
    if len(dates) > 1:
        step = np.diff(dates.asi8)
        wrong = np.flatnonzero(step <= 0)
        if wrong.size:
            k = int(wrong[0]) + 1
            what = "repeats" if step[k - 1] == 0 else "is earlier than"
            raise DataError(
                f"calendar date {lines[k]!r} {what} the previous line ({lines[k - 1]!r}); calendars must increase",
                path=str(path),
                row=numbers[k],
            )
    return pd.DatetimeIndex(dates, name="datetime")


def read_instruments(path: str | os.PathLike[str]) -> dict[str, tuple[Span, ...]]:
    """The membership spans of an instrument file: ``{SYMBOL: (Span, ...)}``, spans sorted by start.

    Rows are ``SYMBOL<TAB>start<TAB>end`` (extra columns are ignored; whitespace separates when a row has no tab).

    :raises DataError: the file is missing, or a row has too few columns, a bad date or ends before it starts.
    """
    path = Path(path)
    try:
        text = _read_text(path)
    except FileNotFoundError:
        raise DataError("instrument file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read instrument file: {error}", path=str(path)) from None
    symbols: list[str] = []
    starts: list[str] = []
    ends: list[str] = []
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) < 3:
            parts = line.split()
        if len(parts) < 3:
            raise DataError(
                f"expected SYMBOL<TAB>START<TAB>END, got {line.strip()!r}", path=str(path), row=number
            )
        problem = symbol_problem(parts[0]) if parts[0].strip() else None
        if problem is not None:
            raise DataError(problem, path=str(path), row=number)
        symbols.append(parts[0].strip().upper())
        starts.append(parts[1].strip())
        ends.append(parts[2].strip())
        numbers.append(number)
    start_dates = _parse_dates(starts, None)
    end_dates = _parse_dates(ends, None)
    for dates, texts in ((start_dates, starts), (end_dates, ends)):
        bad = np.flatnonzero(np.asarray(dates.isna()))
        if bad.size:
            k = int(bad[0])
            raise DataError(f"not a date: {texts[k]!r} (symbol {symbols[k]})", path=str(path), row=numbers[k])
    backwards = np.flatnonzero(end_dates.values < start_dates.values)
    if backwards.size:
        k = int(backwards[0])
        raise DataError(
            f"span of {symbols[k]} ends ({ends[k]}) before it starts ({starts[k]})", path=str(path), row=numbers[k]
        )
    spans: dict[str, list[Span]] = {}
    for sym, lo, hi in zip(symbols, start_dates, end_dates):
        if not sym:
            continue
        spans.setdefault(sym, []).append(Span(lo, hi))
    return {sym: tuple(sorted(items, key=lambda s: s.start)) for sym, items in spans.items()}


# ---------------------------------------------------------------------------------------------------------------
# Feature bins
# ---------------------------------------------------------------------------------------------------------------


def _pread(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, size)  # pragma: no cover


def check_header(raw: bytes | float, path: str, calendar_length: int | None) -> int:
    """The calendar start index stored in element 0 of a bin, validated.

    :raises DataError: the header is not a finite non-negative integer, or points past the calendar's end.
    """
    value = _HEADER.unpack(raw)[0] if isinstance(raw, bytes | bytearray) else float(raw)
    if not math.isfinite(value) or value != int(value) or value < 0 or value >= _MAX_HEADER:
        raise DataError(
            f"header (element 0) is {value!r}, not a calendar index (a non-negative integer)", path=path
        )
    start = int(value)
    if calendar_length is not None and start >= calendar_length:
        raise DataError(
            f"header (element 0) is start index {start}, past the calendar's end (it has {calendar_length} entries)",
            path=path,
        )
    return start


def _check_size(size: int, path: str) -> int:
    if size % 4:
        raise DataError(f"truncated file: {size} bytes is not a multiple of 4 (float32 values)", path=path)
    if size < 4:
        raise DataError("empty file: no header (element 0 must be the calendar start index)", path=path)
    return size // 4 - 1


def _check_extent(start: int, length: int, path: str, calendar_length: int | None) -> None:
    if calendar_length is not None and start + length > calendar_length:
        raise DataError(
            f"{length} values from calendar index {start} run past the calendar's end "
            f"(last value at index {start + length - 1}, calendar has {calendar_length} entries)",
            path=path,
        )


def _os_error(error: OSError, name: str) -> DataError:
    """A read failure of a bin as a :class:`DataError` naming the file."""
    if isinstance(error, IsADirectoryError):
        return DataError("is a folder, not a feature file", path=name)
    if isinstance(error, NotADirectoryError):
        return DataError("a file stands where the instrument's folder should be", path=name)
    return DataError(f"cannot read feature file: {error.strerror or error}", path=name)


def _open_bin(name: str) -> tuple[int, int]:
    """An open descriptor and the size of a regular bin file.

    :raises FileNotFoundError: it does not exist.
    :raises DataError: it is a folder or special file, or cannot be read.
    """
    try:
        fd = os.open(name, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise _os_error(error, name) from None
    try:
        info = os.fstat(fd)
    except OSError as error:  # pragma: no cover - fstat of an open descriptor
        os.close(fd)
        raise _os_error(error, name) from None
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise DataError(f"is {what}; a feature file was expected", path=name)
    return fd, info.st_size


def _read_exact(fd: int, out: np.ndarray, offset: int, name: str) -> None:
    """Fill ``out`` (a contiguous array) from byte ``offset`` of the open file."""
    view = memoryview(out).cast("B")
    got = 0
    while got < len(view):
        try:
            if _HAS_PREADV:
                n = os.preadv(fd, [view[got:]], offset + got)
            else:  # pragma: no cover - platforms without preadv
                chunk = _pread(fd, len(view) - got, offset + got)
                n = len(chunk)
                view[got : got + n] = chunk
        except OSError as error:
            raise _os_error(error, name) from None
        if n == 0:
            raise DataError(f"file changed while reading ({got} of {len(view)} bytes read)", path=name)
        got += n


def bin_extent(path: str | os.PathLike[str], calendar_length: int | None = None) -> tuple[int, int]:
    """``(start_index, number_of_values)`` of a bin file, validated like :func:`read_bin`."""
    name = os.fspath(path)
    try:
        fd, size = _open_bin(name)
    except FileNotFoundError:
        raise DataError("feature file not found", path=name) from None
    try:
        length = _check_size(size, name)
        head = np.empty(1, dtype="<f4")
        _read_exact(fd, head, 0, name)
        start = check_header(head.tobytes(), name, calendar_length)
    finally:
        os.close(fd)
    _check_extent(start, length, name, calendar_length)
    return start, length


def read_bin(path: str | os.PathLike[str], calendar_length: int | None = None) -> tuple[int, np.ndarray]:
    """``(start_index, values)`` of a whole bin file; values are little-endian float32, exactly as stored.

    :param calendar_length: when given, a header or data running past it is a :class:`DataError`.
    :raises DataError: the file is missing, a folder, unreadable, truncated or its header is not a calendar index.
    """
    name = os.fspath(path)
    try:
        fd, size = _open_bin(name)
    except FileNotFoundError:
        raise DataError("feature file not found", path=name) from None
    try:
        _check_size(size, name)
        raw = np.empty(size // 4, dtype="<f4")
        _read_exact(fd, raw, 0, name)
    finally:
        os.close(fd)
    start = check_header(raw[:1].tobytes(), name, calendar_length)
    values = raw[1:]
    _check_extent(start, len(values), name, calendar_length)
    return start, values


def read_bin_into(path: str, row: np.ndarray, lo: int, hi: int, calendar_length: int) -> tuple[int, int] | None:
    """Copy the calendar rows ``[lo, hi)`` of one bin into ``row`` (a contiguous ``<f4`` array of ``hi - lo``).

    Only the needed byte range is read, straight into ``row`` (``preadv``): the copy a memory map would make,
    without the cost of mapping thousands of small files. Returns the file's ``(start, length)``, or ``None`` if it
    does not exist (``row`` is left untouched).
    """
    try:
        fd, size = _open_bin(path)
    except FileNotFoundError:
        return None
    try:
        if size % 4 or size < 4:
            _check_size(size, path)
        value = _HEADER.unpack(_pread(fd, 4, 0))[0]
        if not (0.0 <= value < calendar_length) or value != int(value):  # NaN fails the first test
            check_header(value, path, calendar_length)
        start = int(value)
        length = size // 4 - 1
        if start + length > calendar_length:
            _check_extent(start, length, path, calendar_length)
        a = lo if lo > start else start
        b = hi if hi < start + length else start + length
        if a < b:
            offset = 4 * (1 + a - start)
            target = row[a - lo : b - lo]
            try:
                if _HAS_PREADV:
                    got = os.preadv(fd, [memoryview(target).cast("B")], offset)
                else:  # pragma: no cover - platforms without preadv
                    raw = _pread(fd, 4 * (b - a), offset)
                    got = len(raw)
                    target[: got // 4] = np.frombuffer(raw, "<f4", count=got // 4)
            except OSError as error:
                raise _os_error(error, path) from None
            if got != 4 * (b - a):
                raise DataError(f"file changed while reading ({got} of {4 * (b - a)} bytes read)", path=path)
    finally:
        os.close(fd)
    return start, length


def bin_bytes(start: int, values: np.ndarray) -> bytes:
    """The bytes of a bin file: header ``start`` then ``values`` as little-endian float32."""
    data = np.empty(len(values) + 1, dtype="<f4")
    data[0] = start
    data[1:] = values
    return data.tobytes()


# ---------------------------------------------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------------------------------------------


def _locate(calendar: pd.DatetimeIndex, start: object, end: object, daily: bool = True) -> tuple[int, int]:
    """Calendar rows ``[lo, hi)`` between ``start`` and ``end`` (inclusive; ``None`` = open).

    On an intraday calendar an ``end`` without a time of day includes that whole day.
    """
    lo = 0 if start is None else int(calendar.searchsorted(pd.Timestamp(start), side="left"))
    if end is None:
        hi = len(calendar)
    else:
        stamp = pd.Timestamp(end)
        if not daily and stamp == stamp.normalize():
            stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(1)
        hi = int(calendar.searchsorted(stamp, side="right"))
    return lo, max(lo, hi)


class QlibBinProvider:
    """A Qlib bin store (``provider_uri``) read as whole panels; satisfies :class:`qcore.protocols.DataProvider`.

    An existing Qlib data directory (``~/.qlib/qlib_data/cn_data``) works unchanged. ``provider_uri`` may also be a
    mapping ``{freq: path}`` as in Qlib; instrument files then come from the ``day`` entry (or the first one).

    :param provider_uri: the store's root directory, or ``{freq: root}``.
    :param region: market region (``cn``, ``us``, ``tw``): its sessions place the bars of ``N``-minute calendars
        derived from a stored minute calendar (``calendar("30min")`` of a ``1min`` store, as in Qlib).
    """

    def __init__(self, provider_uri: str | os.PathLike[str] | Mapping[str, str], region: str = "cn") -> None:
        if isinstance(provider_uri, Mapping):
            if not provider_uri:
                raise DataError("provider_uri mapping is empty")
            self._roots = {check_freq(k): Path(v).expanduser() for k, v in provider_uri.items()}
            self.root = self._roots.get("day", next(iter(self._roots.values())))
        else:
            self.root = Path(provider_uri).expanduser()
            self._roots = {}
        self.region = region
        for root in {self.root, *self._roots.values()}:
            if not root.is_dir():
                raise DataError("data directory does not exist (build one with `qcore data synth`)", path=str(root))
        self._calendars: dict[str, tuple[object, pd.DatetimeIndex]] = {}
        self._universes: dict[str, tuple[tuple[object, ...], dict[str, tuple[Span, ...]]]] = {}

    def __repr__(self) -> str:
        return f"QlibBinProvider({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------------------------

    def root_for(self, freq: str) -> Path:
        """The directory holding ``freq``'s calendar and features."""
        return self._roots.get(check_freq(freq), self.root)

    def calendar_path(self, freq: str = "day") -> Path:
        """``<root>/calendars/<freq>.txt``."""
        return self.root_for(freq) / "calendars" / f"{check_freq(freq)}.txt"

    def feature_path(self, instrument: str, field: str, freq: str = "day") -> Path:
        """``<root>/features/<inst>/<field>.<freq>.bin`` of one instrument and field."""
        freq = check_freq(freq)
        return self.root_for(freq) / "features" / code_to_fname(instrument) / f"{field}.{freq}{BIN_SUFFIX}"

    def freqs(self) -> list[str]:
        """Frequencies with a calendar file (``*_future`` calendars excluded)."""
        names: set[str] = set()
        for root in {self.root, *self._roots.values()}:
            folder = root / "calendars"
            if folder.is_dir():
                names |= {p.stem for p in folder.glob("*.txt") if not p.stem.endswith("_future")}
        return sorted(names)

    # -- DataProvider ------------------------------------------------------------------------------------------

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        """Every trading timestamp of ``freq``, ascending (cached until the file changes)."""
        freq = check_freq(freq)
        path = self.calendar_path(freq)
        key = _file_key(path)
        cached = self._calendars.get(freq)
        if cached is not None and key is not None and cached[0] == key:
            return cached[1]
        if key is None:
            derived = self._derived_calendar(freq)
            if derived is not None:
                return derived
            available = ", ".join(self.freqs()) or "none"
            raise DataError(f"calendar file for freq {freq!r} not found (available freqs: {available})", path=str(path))
        dates = read_calendar(path, freq)
        self._calendars[freq] = (key, dates)
        return dates

    def source_freq(self, freq: str) -> str | None:
        """The stored minute frequency an ``N``-minute calendar without a file is derived from, as Qlib picks it
        (the coarsest stored ``M``-minute calendar with ``M <= N``); ``None`` for a stored or underivable one."""
        freq = check_freq(freq)
        count = minute_count(freq)
        if count is None or _file_key(self.calendar_path(freq)) is not None:
            return None
        finer = [(n, f) for f in self.freqs() if (n := minute_count(f)) is not None and n <= count]
        return max(finer)[1] if finer else None

    def _derived_calendar(self, freq: str) -> pd.DatetimeIndex | None:
        """An ``N``-minute calendar resampled from a finer stored one, as Qlib's ``resam_calendar`` does.

        The ``30min`` calendar of a store holding ``1min`` bars is every 30th session minute of each day
        (09:30, 10:00, … 14:30 for ``cn``): the bar frame a nested executor steps through. No bins are derived.
        """
        source = self.source_freq(freq)
        if source is None:
            return None
        base = self.calendar(source)
        key = ("derived", source, len(base), self._calendars[source][0])
        cached = self._calendars.get(freq)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            dates = resample_minute_calendar(base, freq, self.region)
        except ValueError as error:
            raise DataError(f"cannot derive the {freq} calendar from {source}: {error}",
                            path=str(self.calendar_path(source))) from None  # fmt: skip
        self._calendars[freq] = (key, dates)
        return dates

    def markets(self) -> list[str]:
        """Names of the instrument files (``all`` first, then alphabetically)."""
        folder = self.root / "instruments"
        names = sorted(p.stem.lower() for p in folder.glob("*.txt")) if folder.is_dir() else []
        if "all" not in names:
            raise DataError("instruments/all.txt is missing: every Qlib store needs it", path=str(folder / "all.txt"))
        return ["all"] + [n for n in names if n != "all"]

    def instruments_path(self, market: str) -> Path:
        """``<root>/instruments/<market>.txt``.

        :raises DataError: ``market`` could name a file elsewhere (``../x``, ``a/b``).
        """
        problem = symbol_problem(market)
        if problem is not None:
            raise DataError(f"invalid market name {market!r}: " + problem.split(": ", 1)[-1])
        return self.root / "instruments" / f"{market.strip().lower()}.txt"

    def universe(self, market: str = "all") -> Universe:
        """Instruments of ``market`` and their membership spans, as stored in ``instruments/<market>.txt``.

        In a store that also holds minute bars, a span ending on a date without a time (midnight, as daily stores
        write them) ends at that day's last bar instead (:func:`qdata_cn.sessions.span_bounds`), so that the day's
        minute bars are members too: Qlib reads minute spans from the minute store's own instrument files.
        """
        market = str(market).strip().lower()
        path = self.instruments_path(market)
        key = (_file_key(path), *(_file_key(root / "calendars") for root in sorted({self.root, *self._roots.values()})))
        if key[0] is None:
            available = self.markets()
            raise DataError(f"unknown market {market!r} (available: {', '.join(available)})", path=str(path))
        cached = self._universes.get(market)
        if cached is not None and cached[0] == key:
            return dict(cached[1])
        spans = read_instruments(path)
        if self.region in SESSIONS and any(minute_count(f) is not None for f in self.freqs()):
            spans = {s: tuple(_minute_span(x, self.region) for x in items) for s, items in spans.items()}
        self._universes[market] = (key, spans)
        return dict(spans)

    def fields(self, freq: str = "day") -> list[str]:
        """Field names stored for ``freq`` by any instrument, canonical order (``open high low close ...``)."""
        freq = check_freq(freq)
        suffix = f".{freq}{BIN_SUFFIX}"
        features = self.root_for(freq) / "features"
        names: set[str] = set()
        if features.is_dir():
            folder = str(features)
            try:
                with os.scandir(features) as dirs:
                    for entry in dirs:
                        if not entry.is_dir():
                            continue
                        folder = entry.path
                        with os.scandir(entry.path) as files:
                            names |= {f.name[: -len(suffix)] for f in files if f.name.endswith(suffix)}
            except OSError as error:
                raise DataError(f"cannot list the folder: {error.strerror or error}", path=folder) from None
        return field_order(n for n in names if n and not n.startswith("."))

    def load(
        self,
        fields: Sequence[str],
        instruments: Sequence[str],
        start: object = None,
        end: object = None,
        freq: str = "day",
    ) -> Panel:
        """Raw fields of ``instruments`` on the calendar rows between ``start`` and ``end`` (inclusive).

        Each bin contributes exactly the bytes of the requested rows (no conversion: values, NaN payloads included,
        are the stored float32 bits). Cells outside an instrument's stored range, and instruments or fields without
        a file, are NaN.
        """
        freq = check_freq(freq)
        names = normalise_fields(fields)
        symbols = [str(s).strip().upper() for s in instruments]
        source = self.source_freq(freq)
        if source is not None:
            raise DataError(
                f"the store has no {freq} bars: its {freq} calendar is derived from the {source} one (as Qlib "
                f"resamples calendars); load freq={source!r} and aggregate each {freq} window",
                path=str(self.calendar_path(freq)),
            )
        calendar = self.calendar(freq)
        lo, hi = _locate(calendar, start, end, is_daily(freq))
        dates = calendar[lo:hi]
        features = self.root_for(freq) / "features"
        prefixes = [os.path.join(features, code_to_fname(s), "") for s in symbols]
        n_cal = len(calendar)
        data: dict[str, np.ndarray] = {}
        # one contiguous row per instrument, filled straight from the files, then one transposed copy to (T, N)
        rows = np.empty((len(symbols), hi - lo), dtype="<f4")
        for name in names:
            rows.fill(np.nan)
            filename = f"{name}.{freq}{BIN_SUFFIX}"
            if hi > lo:
                for j, prefix in enumerate(prefixes):
                    read_bin_into(prefix + filename, rows[j], lo, hi, n_cal)
            data[name] = np.array(rows.T, dtype=np.float32, order="C")  # always a copy: ``rows`` is reused
        return Panel(dates=dates, instruments=tuple(symbols), data=data)

    @property
    def version(self) -> str:
        """A digest of the names, sizes, modification times and inodes of every calendar, instrument and feature file.

        Writers replace files by renaming new ones over them, so any change produces a new token.
        """
        digest = hashlib.blake2b(digest_size=12)
        for root in sorted({self.root, *self._roots.values()}):
            digest.update(os.fsencode(root))
            for sub in ("calendars", "instruments"):
                _hash_dir(digest, root / sub)
            features = root / "features"
            if features.is_dir():
                with os.scandir(features) as it:
                    entries = sorted((e.name, e.path) for e in it if e.is_dir())
                for name, path in entries:
                    digest.update(name.encode())
                    _hash_dir(digest, Path(path))
            financial = root / PIT_DIR
            if financial.is_dir():
                with os.scandir(financial) as it:
                    entries = sorted((e.name, e.path) for e in it if e.is_dir())
                for name, path in entries:
                    digest.update(b"pit:" + name.encode())
                    _hash_dir(digest, Path(path))
        return digest.hexdigest()

    # -- point-in-time period data (qcore.protocols.PointInTimeProvider) -----------------------------------------

    def pit_fields(self) -> list[str]:
        """Period fields (``eps_q``, ``roe_a``...) stored under ``financial/`` by any instrument, sorted."""
        return pit_field_names(self.root)

    def load_pit(self, field: str, instruments: Sequence[str]) -> dict[str, np.ndarray]:
        """Every record of period field ``field`` for each instrument that has one, in publication order.

        :raises DataError: a malformed ``.data`` file, naming it and the record.
        """
        name = str(field).strip().lower().removeprefix("$$")
        is_quarterly(name)
        folder = self.root / PIT_DIR
        out: dict[str, np.ndarray] = {}
        for symbol in instruments:
            records = read_pit(folder / code_to_fname(symbol), name)
            if records is not None and len(records):
                out[symbol] = records
        return out

    # -- extras ------------------------------------------------------------------------------------------------

    def extent(self, instrument: str, freq: str = "day", fields: Iterable[str] | None = None) -> tuple[int, int] | None:
        """Calendar rows ``[first, last]`` covered by any of the instrument's bins (``None`` when it has none)."""
        freq = check_freq(freq)
        n_cal = len(self.calendar(freq))
        folder = self.root_for(freq) / "features" / code_to_fname(instrument)
        suffix = f".{freq}{BIN_SUFFIX}"
        wanted = None if fields is None else set(normalise_fields(fields))
        first, last = None, None
        if not folder.is_dir():
            return None
        for path in sorted(folder.glob(f"*{suffix}")):
            name = path.name[: -len(suffix)]
            if wanted is not None and name not in wanted:
                continue
            start, length = bin_extent(path, n_cal)
            if length == 0:
                continue
            first = start if first is None else min(first, start)
            last = start + length - 1 if last is None else max(last, start + length - 1)
        return None if first is None else (first, last)


def _minute_span(span: Span, region: str) -> Span:
    """``span`` with a midnight end moved to that day's last bar (other spans unchanged)."""
    if span.end != span.end.normalize():
        return span
    return Span(span.start, span_bounds(span.start, span.end, region)[1])


def _hash_dir(digest: hashlib.blake2b, folder: Path) -> None:
    if not folder.is_dir():
        digest.update(b"-")
        return
    try:
        with os.scandir(folder) as it:
            rows = []
            for entry in it:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                st = entry.stat()
                rows.append(f"{entry.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    except OSError as error:
        raise DataError(f"cannot list the folder: {error.strerror or error}", path=str(folder)) from None
    digest.update("|".join(sorted(rows)).encode())
