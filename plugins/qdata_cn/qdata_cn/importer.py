"""Importing CSV or Parquet bars into a bin store (``qcore data import``).

Sources are a file or a folder of files (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``), either one file per symbol
(the symbol is the file stem, as Qlib's ``dump_bin`` takes it) or long tables with a symbol column. Every numeric
column except the date and symbol columns becomes a field (Qlib dumps those too unless told not to, issue #535).

Modes:

- ``all`` builds a store (refusing to replace one unless ``overwrite``): the calendar is the union of the dates, each
  instrument's bins cover its first to last date, NaN where a date has no row.
- ``update`` adds to an existing store: dates after the calendar's end extend it; each imported instrument's bins
  are rewritten over the union of its old and new ranges, NaN-padded on the calendar (so a stock missing some new
  days gets NaN there, never shifted values: Qlib issue #1818); new instruments are added to ``all.txt``. Rows on
  dates the store already holds must match the stored values (a re-run is a no-op) unless ``overwrite_overlap``,
  which replaces them; a date inside the calendar that is not one of its days is an error (it would shift every
  stored bin).

Minute bars (``freq="1min"``, ``5min`` …; Qlib's collector layout: ``symbol``, ``date`` with a time, the fields):
every stamp must be a bar start of the region's sessions as Qlib stamps them (cn: 09:30 … 11:29, 13:00 … 14:59;
:mod:`qdata_cn.sessions`); anything else (11:30, 15:00, 09:25, seconds) is a bad row naming the file and the row,
with a hint when the file stamps bars by their end (``bar_stamps="end"`` moves them one bar earlier). The calendar
holds every bar of each day that has a row (Qlib's ``dump_bin`` keeps only stamps some file has; the collectors'
files hold every bar, and then both agree byte for byte). A store with minute bars writes spans from midnight of
the first day to the last bar of the last day (:func:`qdata_cn.sessions.span_bounds`), so that Qlib keeps both the
daily and the minute bars of every day.

Dates: one format per file. ISO dates (``2020-01-02``, ``2020/01/02``, with or without a time) and ``20200102`` are
read as such; numeric day/month dates (``02/01/2020``) are read day-first or month-first for the whole file, as the
file's other dates decide (``13/01/2020`` means day-first); a file whose dates read both ways is a :class:`DataError`
naming the file and the column and asking for ``date_format`` (``--date-format %d/%m/%Y``), which is then used for
every row. A date the file's format does not read is a bad row.

Bad input (unparsable or missing dates, duplicate dates of a symbol, non-numeric or infinite values, values beyond
float32's range, negative prices or volumes, symbols that cannot be a folder name such as ``../x``) is a
:class:`DataError` naming the file and the row: the line number for CSV files (the header is line 1), the 1-based
row for Parquet. With ``skip_bad_rows`` such rows are left out and listed in a report CSV (``file,row,reason``).
Rows of a symbol must be in date order unless ``sort`` is given. Each imported instrument gets a bin for every
field of the import (NaN where its rows have none) and keeps its stored fields, so fields never go missing for
some instruments only.

Everything is written in one :class:`~qdata_cn.writer.StoreTransaction`, and everything it writes is decided after
its lock is held, on the store as it is then (another import may have changed it meanwhile): a failure leaves the
store unchanged.
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError
from qdata_cn.naming import (
    DAY_FORMAT,
    HIGH_FREQ_FORMAT,
    bin_name,
    check_freq,
    code_to_fname,
    date_format,
    fname_to_code,
    is_daily,
    normalise_field,
    symbol_problem,
)
from qdata_cn.sessions import (
    bar_end_shift,
    bar_offsets,
    check_region,
    minute_calendar,
    minute_count,
    off_session,
    restamped,
    span_bounds,
)

logger = logging.getLogger(__name__)

SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
#: Exact decimal → float64 parsing: pandas 3 parses exactly by default (and deprecates the option).
_CSV_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
#: Values at or beyond this magnitude become inf as float32 (the largest float32 plus half its last step).
FLOAT32_OVERFLOW = float(2**128 - 2**103)
#: Year-first formats tried when a file's dates are not ISO 8601 (unambiguous: nobody writes year-day-month).
_YEAR_FIRST = ("%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")
#: Day-first and month-first readings of the same numeric dates; a file must settle which one it uses.
_DAY_MONTH = ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%m.%d.%Y", "%d-%m-%Y", "%m-%d-%Y")
_TIMES = ("", " %H:%M:%S", " %H:%M", "T%H:%M:%S", "T%H:%M", " %H:%M:%S.%f")
#: How many distinct dates decide which formats are worth parsing the whole column with.
_SAMPLE = 64
#: Fields that can never be negative.
NON_NEGATIVE = frozenset({"open", "high", "low", "close", "vwap", "adjclose", "factor", "volume", "amount", "money"})


@attrs.frozen
class BadRow:
    """One rejected source row."""

    file: str
    row: int
    reason: str


@attrs.define
class _Part:
    """The rows of one symbol from one file."""

    file: str
    dates: np.ndarray  # datetime64[ns]
    rows: np.ndarray  # row numbers in the file
    values: dict[str, np.ndarray]  # float32


@attrs.define
class SymbolData:
    """All imported rows of one symbol, in date order."""

    symbol: str
    dates: np.ndarray
    rows: np.ndarray
    files: list[str]
    values: dict[str, np.ndarray]


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def source_files(src: str | os.PathLike[str]) -> list[Path]:
    """The data files of ``src``: the file itself, or the ``.csv``/``.parquet`` files of a folder, sorted."""
    path = Path(src).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError("import source does not exist", path=str(path))
    files = sorted(
        p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(SUFFIXES)
    )
    if not files:
        raise DataError(f"no {', '.join(SUFFIXES)} files in the folder", path=str(path))
    return files


def _read_frame(path: Path, date_col: str, symbol_col: str) -> tuple[pd.DataFrame, np.ndarray, bool]:
    """The file as a frame plus each row's number (CSV line or 1-based Parquet row)."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            frame = frame.reset_index(drop=not any(n is not None for n in frame.index.names))
            rows = np.arange(1, len(frame) + 1)
            return frame, rows, False
        header = pd.read_csv(path, nrows=0)
        text_cols = {c: str for c in header.columns if str(c).strip().lower() in (date_col, symbol_col)}
        frame = pd.read_csv(path, dtype=text_cols, skip_blank_lines=False, low_memory=False, **_CSV_FLOATS)
    except DataError:
        raise
    except Exception as error:  # pandas/pyarrow parse errors name no row we could add reliably
        raise DataError(f"cannot read: {type(error).__name__}: {error}", path=str(path)) from None
    rows = np.arange(2, len(frame) + 2)
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        rows = rows[~blank]
    return frame, rows, True


def _date_candidates() -> list[str]:
    return [d + t for d in (*_YEAR_FIRST, *_DAY_MONTH) for t in _TIMES]


def _order(fmt: str) -> str:
    """``day-first``/``month-first``/``year-first`` of a candidate format (for messages)."""
    if fmt.startswith("%d"):
        return "day-first"
    if fmt.startswith("%m"):
        return "month-first"
    return "year-first"


class _DateColumn:
    """One file's date column: picks the file's date format and parses every row with it."""

    def __init__(self, text: pd.Series, file: str, column: str, rows: np.ndarray) -> None:
        self.text = text
        self.file = file
        self.column = column
        self.rows = rows
        self.present = ~text.isna().to_numpy(dtype=bool)
        self.n_present = int(self.present.sum())

    def parse(self, fmt: str) -> pd.DatetimeIndex:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.DatetimeIndex(pd.to_datetime(self.text, format=fmt, errors="coerce"))

    def infer(self) -> tuple[pd.DatetimeIndex, str | None]:
        """The parsed column and the format that read it (``None`` for ISO 8601 or textual dates)."""
        values = self.text[self.present]
        if self.n_present and values.str.fullmatch(r"\d{8}").all():
            return self.parse("%Y%m%d"), "%Y%m%d"
        iso = self.parse("ISO8601")
        if int((~iso.isna()).sum()) == self.n_present:
            return iso, None
        sample = values.drop_duplicates().head(_SAMPLE).tolist()
        results: dict[str, pd.DatetimeIndex] = {"ISO8601": iso}
        for fmt in _date_candidates():
            if any(_strptime_ok(v, fmt) for v in sample):
                results[fmt] = self.parse(fmt)
        counts = {fmt: int((~stamps.isna()).sum()) for fmt, stamps in results.items()}
        best = max(counts.values())
        winners = [fmt for fmt, n in counts.items() if n == best and n > 0]
        if not winners:  # no numeric format reads any row: textual dates (``2 Jan 2020``), row by row
            mixed = self._mixed(0)
            return (iso, None) if mixed is None else (mixed, None)
        self._refuse_disagreement(winners, results)
        fmt = winners[0]
        return results[fmt], None if fmt == "ISO8601" else fmt

    def _mixed(self, best: int) -> pd.DatetimeIndex | None:
        """Row-by-row parsing (textual dates such as ``Jan 2, 2020``) if it reads more rows than ``best``.

        Used only when no single format reads any row, so numeric dates are never guessed row by row.

        Day-first and month-first row-by-row readings must agree on every row: a disagreement is ambiguous.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                a = pd.DatetimeIndex(pd.to_datetime(self.text, format="mixed", dayfirst=False, errors="coerce"))
                b = pd.DatetimeIndex(pd.to_datetime(self.text, format="mixed", dayfirst=True, errors="coerce"))
            except (ValueError, TypeError, OverflowError):
                return None
        if a.tz is not None or b.tz is not None or int((~a.isna()).sum()) <= best:
            return None
        differ = np.flatnonzero(~a.isna() & ~b.isna() & (a.asi8 != b.asi8))
        if differ.size:
            k = int(differ[0])
            self._ambiguous(k, f"reads as {a[k]:%Y-%m-%d} month-first and as {b[k]:%Y-%m-%d} day-first")
        return a

    def _refuse_disagreement(self, winners: list[str], results: dict[str, pd.DatetimeIndex]) -> None:
        first = results[winners[0]]
        for fmt in winners[1:]:
            other = results[fmt]
            differ = np.flatnonzero((first.asi8 != other.asi8) & ~first.isna() & ~other.isna())
            if differ.size:
                k = int(differ[0])
                self._ambiguous(
                    k,
                    f"reads as {first[k]:%Y-%m-%d} {_order(winners[0])} ({winners[0]}) and as {other[k]:%Y-%m-%d} "
                    f"{_order(fmt)} ({fmt}), and no date in the file tells which",
                )
            split = np.flatnonzero(first.isna() != other.isna())
            if split.size:  # as many rows read each way: the file mixes both orders
                k = int(split[0])
                self._ambiguous(k, f"reads only {_order(winners[0]) if other.isna()[k] else _order(fmt)} while as many "
                                   "other dates of the file read only the other way")  # fmt: skip

    def _ambiguous(self, k: int, what: str) -> None:
        raise DataError(
            f"ambiguous dates in column {self.column!r}: {self.text.iloc[k]!r} {what}; pass the file's format "
            "with --date-format (e.g. %d/%m/%Y for day-first, %m/%d/%Y for month-first)",
            path=self.file,
            row=int(self.rows[k]),
        )


def _strptime_ok(value: str, fmt: str) -> bool:
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def _parse_dates(
    values: pd.Series,
    daily: bool,
    *,
    date_format: str | None = None,
    file: str = "",
    column: str = "date",
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Timestamps (ns), a mask of rows whose date could not be parsed, and the format used (``None``: ISO).

    :raises DataError: the column's dates read both day-first and month-first (naming ``file``, ``column`` and a
        row), or ``date_format`` is not a valid format.
    """
    fmt: str | None = None
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.DatetimeIndex(values)
        if stamps.tz is not None:
            stamps = stamps.tz_localize(None)
    else:
        text = values.astype("string").str.strip()
        text = text.mask(text == "")
        column_dates = _DateColumn(text, file, column, np.arange(len(text)) if rows is None else rows)
        if date_format is not None:
            fmt = date_format
            try:
                stamps = column_dates.parse(date_format)
            except (ValueError, TypeError) as error:
                raise DataError(f"invalid --date-format {date_format!r}: {error}") from None
        else:
            try:
                stamps, fmt = column_dates.infer()
            except (TypeError, OverflowError) as error:
                raise DataError(f"cannot read the dates of column {column!r}: {error}", path=file or None) from None
        if stamps.tz is not None:
            stamps = stamps.tz_convert(None)
    stamps = stamps.as_unit("ns")
    if daily:
        stamps = stamps.normalize()
    bad = np.asarray(stamps.isna())
    return stamps.values, bad, fmt


def _numeric(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float64 values and a mask of non-numeric entries (NA-like entries become NaN, not errors)."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64).to_numpy(), np.zeros(len(column), dtype=bool)
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(column), dtype=bool)
    out = np.full(len(column), np.nan)
    bad = np.zeros(len(column), dtype=bool)
    for k, item in enumerate(column.tolist()):
        if item is None or (isinstance(item, float) and np.isnan(item)) or item is pd.NA:
            continue
        try:
            out[k] = float(str(item).strip())
        except ValueError:
            bad[k] = True
    return out, bad


@attrs.define
class ImportOptions:
    """Options of :func:`import_data` (see ``qcore data import --help``)."""

    freq: str = "day"
    symbol_col: str = "symbol"
    date_col: str = "date"
    include_fields: Sequence[str] | None = None
    exclude_fields: Sequence[str] = ()
    mode: str = "all"
    overwrite: bool = False
    overwrite_overlap: bool = False
    skip_bad_rows: bool = False
    sort: bool = False
    report: str | os.PathLike[str] | None = None
    lock_timeout: float = 0.0
    date_format: str | None = None
    region: str = "cn"
    bar_stamps: str = "start"


class _Collector:
    """Reads and validates the source files into per-symbol arrays."""

    def __init__(self, options: ImportOptions) -> None:
        self.opt = options
        self.daily = is_daily(options.freq)
        self.minutes = minute_count(options.freq)
        self.date_col = options.date_col.strip().lower()
        self.symbol_col = options.symbol_col.strip().lower()
        self.include = None if options.include_fields is None else [normalise_field(f) for f in options.include_fields]
        self.exclude = {normalise_field(f) for f in options.exclude_fields}
        self.bad: list[BadRow] = []
        self.parts: dict[str, list[_Part]] = {}
        self.fields: list[str] = []
        self.skipped_columns: set[str] = set()

    def add_bad(self, file: str, rows: Iterable[int], reason: str | Iterable[str]) -> None:
        rows = list(rows)
        reasons = [reason] * len(rows) if isinstance(reason, str) else list(reason)
        self.bad.extend(BadRow(file, int(r), why) for r, why in zip(rows, reasons))

    def read(self, path: Path) -> None:
        file = str(path)
        frame, rows, _ = _read_frame(path, self.date_col, self.symbol_col)
        columns: dict[str, Any] = {}
        for col in frame.columns:
            key = str(col).strip().lower()
            if key in columns:
                raise DataError(f"two columns are named {key!r} (ignoring case)", path=file)
            columns[key] = col
        if self.date_col not in columns:
            raise DataError(
                f"no date column {self.date_col!r} (columns: {', '.join(columns)}); use --date-col", path=file
            )
        date_name = str(columns[self.date_col])
        dates, bad_date, fmt = _parse_dates(
            frame[columns[self.date_col]], self.daily, date_format=self.opt.date_format, file=file, column=date_name,
            rows=rows,
        )  # fmt: skip
        keep = ~bad_date
        if bad_date.any():
            raw = frame[columns[self.date_col]].astype("string").str.strip().to_numpy()
            hint = f" (the file's dates are {fmt})" if fmt else ""
            self.add_bad(file, rows[bad_date], [
                f"bad date {v!r}{hint}" if v is not pd.NA and v != "" else "missing date" for v in raw[bad_date]
            ])  # fmt: skip
        if self.minutes is not None:
            dates = self._session_stamps(file, rows, dates, keep)
        if self.symbol_col in columns:
            symbols = frame[columns[self.symbol_col]].astype("string").str.strip().str.upper()
            missing = symbols.isna().to_numpy() | (symbols.fillna("") == "").to_numpy()
            if missing.any():
                self.add_bad(file, rows[missing & keep], "missing symbol")
                keep &= ~missing
            symbol_values = symbols.fillna("").to_numpy(dtype=object)
            self._check_symbols(file, rows, symbol_values, keep)
        else:
            stem = fname_to_code(_strip_suffix(path.name))
            problem = symbol_problem(stem)
            if problem is not None:
                raise DataError(f"the file name gives no usable symbol: {problem}; name the file after the symbol "
                                "or add a symbol column", path=file)  # fmt: skip
            symbol_values = np.full(len(frame), stem, dtype=object)

        names = [k for k in columns if k not in (self.date_col, self.symbol_col)]
        if self.include is not None:
            names = [k for k in names if normalise_field(k) in self.include]
        names = [k for k in names if normalise_field(k) not in self.exclude]
        values: dict[str, np.ndarray] = {}
        for key in names:
            field = normalise_field(key)
            data, bad = _numeric(frame[columns[key]])
            if bad.any():
                if not (~bad & ~np.isnan(data)).any() and (self.include is None or field not in self.include):
                    self.skipped_columns.add(field)  # a text column (a name, a code): not a field
                    continue
                raw = frame[columns[key]].to_numpy(dtype=object)
                hit = bad & keep
                self.add_bad(file, rows[hit], [f"non-numeric {field} value {v!r}" for v in raw[hit]])
                keep &= ~bad
            inf = np.isinf(data) & keep
            if inf.any():
                self.add_bad(file, rows[inf], [f"infinite {field} value" for _ in range(int(inf.sum()))])
                keep &= ~inf
            with np.errstate(invalid="ignore"):
                huge = (np.abs(data) >= FLOAT32_OVERFLOW) & keep
            if huge.any():
                self.add_bad(file, rows[huge], [
                    f"{field} value {v:g} (column {str(columns[key])!r}) is beyond float32's range (±3.4e38) and would "
                    "be stored as inf" for v in data[huge]
                ])  # fmt: skip
                keep &= ~huge
            if field in NON_NEGATIVE:
                neg = (data < 0) & keep
                if neg.any():
                    self.add_bad(file, rows[neg], [f"negative {field} ({v:g})" for v in data[neg]])
                    keep &= ~neg
            values[field] = data
            if field not in self.fields:
                self.fields.append(field)

        if not keep.all():
            dates, rows, symbol_values = dates[keep], rows[keep], symbol_values[keep]
            values = {k: v[keep] for k, v in values.items()}
        codes, uniques = pd.factorize(pd.Series(symbol_values, dtype=object), sort=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for group in np.split(order, bounds) if len(order) else []:
            symbol = str(uniques[codes[group[0]]])
            part = _Part(
                file=file,
                dates=dates[group],
                rows=rows[group],
                values={k: v[group].astype(np.float32) for k, v in values.items()},
            )
            self._check_order(part, symbol)
            self.parts.setdefault(symbol, []).append(part)

    def _session_stamps(self, file: str, rows: np.ndarray, dates: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Minute stamps as bar starts (``bar_stamps="end"`` moves them one bar earlier); a stamp that is not a bar
        start of the region's sessions is a bad row (``keep`` is updated in place)."""
        stamps = pd.DatetimeIndex(dates)
        if self.opt.bar_stamps == "end":
            stamps = restamped(stamps, self.opt.freq)
        outside = off_session(stamps, self.opt.freq, self.opt.region) & keep
        if outside.any():
            hint = ""
            if self.opt.bar_stamps == "start" and bar_end_shift(stamps[keep], self.opt.freq, self.opt.region):
                hint = "; the file stamps bars by their end (pass --bar-stamps end to move them to their starts)"
            first, last = (pd.Timedelta(int(x)) for x in bar_offsets(self.opt.freq, self.opt.region)[[0, -1]])
            where = f"the {self.opt.region} sessions' {self.opt.freq} bar starts ({_clock(first)} … {_clock(last)})"
            self.add_bad(file, rows[outside], [
                f"timestamp {t:%Y-%m-%d %H:%M:%S} is not one of {where}{hint}" for t in stamps[outside]
            ])  # fmt: skip
            keep &= ~outside
        return stamps.values

    def _check_symbols(self, file: str, rows: np.ndarray, symbols: np.ndarray, keep: np.ndarray) -> None:
        """Rows whose symbol cannot be a folder name (``../X``, ``A/B``, ``..``) are bad rows."""
        for symbol in pd.unique(symbols[keep]):
            problem = symbol_problem(symbol)
            if problem is not None:
                hit = keep & (symbols == symbol)
                self.add_bad(file, rows[hit], problem)
                keep &= ~hit

    def _check_order(self, part: _Part, symbol: str) -> None:
        step = np.diff(part.dates.astype(np.int64))
        back = np.flatnonzero(step < 0)
        if back.size and not self.opt.sort:
            k = int(back[0]) + 1
            when = pd.Timestamp(part.dates[k]).strftime(date_format(self.opt.freq))
            before = pd.Timestamp(part.dates[k - 1]).strftime(date_format(self.opt.freq))
            raise DataError(
                f"rows of {symbol} are not in date order: {when} comes after {before} (use --sort to sort them)",
                path=part.file,
                row=int(part.rows[k]),
            )

    def symbols(self) -> dict[str, SymbolData]:
        """Merge each symbol's parts (sorting by date), rejecting duplicate dates."""
        out: dict[str, SymbolData] = {}
        for symbol, parts in self.parts.items():
            dates = np.concatenate([p.dates for p in parts])
            rows = np.concatenate([p.rows for p in parts])
            file_idx = np.concatenate([np.full(len(p.dates), i) for i, p in enumerate(parts)])
            fields = [f for f in self.fields if any(f in p.values for p in parts)]
            values = {
                f: np.concatenate([p.values.get(f, np.full(len(p.dates), np.nan, np.float32)) for p in parts])
                for f in fields
            }
            order = np.argsort(dates, kind="stable")
            dates, rows, file_idx = dates[order], rows[order], file_idx[order]
            values = {f: v[order] for f, v in values.items()}
            dup = np.concatenate([[False], dates[1:] == dates[:-1]])
            if dup.any():
                for k in np.flatnonzero(dup):
                    when = pd.Timestamp(dates[k]).strftime(date_format(self.opt.freq))
                    first = parts[file_idx[k - 1]].file
                    where = f"line/row {rows[k - 1]}" + ("" if first == parts[file_idx[k]].file else f" of {first}")
                    what = "date" if self.daily else "timestamp"
                    self.bad.append(BadRow(parts[file_idx[k]].file, int(rows[k]), f"duplicate {what} {when} of "
                                           f"{symbol} (first at {where})"))  # fmt: skip
                keep = ~dup
                dates, rows, file_idx = dates[keep], rows[keep], file_idx[keep]
                values = {f: v[keep] for f, v in values.items()}
            if len(dates):
                out[symbol] = SymbolData(symbol, dates, rows, [parts[i].file for i in file_idx], values)
        _check_folders(out)
        return out


def _clock(offset: pd.Timedelta) -> str:
    """``09:30`` for an offset from midnight."""
    minutes = int(offset.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _check_folders(data: dict[str, SymbolData]) -> None:
    """Two symbols stored in one folder (``CON`` and ``_QLIB_CON``) would overwrite each other: an error."""
    owners: dict[str, str] = {}
    for symbol in sorted(data):
        folder = code_to_fname(symbol)
        other = owners.setdefault(folder, symbol)
        if other != symbol:
            sym = data[symbol]
            raise DataError(
                f"symbols {other} and {symbol} would both be stored in features/{folder}/; rename one of them",
                path=sym.files[0],
                row=int(sym.rows[0]),
            )


def _write_report(path: Path, bad: list[BadRow]) -> None:
    from qcore.atomic import atomic_open

    with atomic_open(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "row", "reason"])
        for item in sorted(bad, key=lambda b: (b.file, b.row)):
            writer.writerow([item.file, item.row, item.reason])


def _raise_bad(bad: list[BadRow]) -> None:
    first = sorted(bad, key=lambda b: (b.file, b.row))[0]
    more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
    raise DataError(f"{first.reason}{more}; fix the source or use --skip-bad-rows", path=first.file, row=first.row)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise: equal bits, or both NaN."""
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def import_data(src: str | os.PathLike[str], to: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """Import CSV/Parquet bars from ``src`` into the bin store ``to``; keyword arguments as in :class:`ImportOptions`.

    The sources are read and checked first; then the store is locked, and whether it exists, its calendar, its
    instruments and its bins are read under the lock (another import may have changed them while this one read or
    waited). Returns a summary (instruments added/updated, dates added, files written, skipped rows, report path).
    """
    opt = ImportOptions(**kwargs)
    opt.freq = check_freq(opt.freq)
    if opt.mode not in ("all", "update"):
        raise DataError(f"mode must be 'all' or 'update', not {opt.mode!r}")
    if opt.bar_stamps not in ("start", "end"):
        raise DataError(f"bar_stamps must be 'start' or 'end', not {opt.bar_stamps!r}")
    try:
        opt.region = check_region(opt.region)
    except ValueError as error:
        raise DataError(str(error)) from None
    if opt.bar_stamps == "end" and minute_count(opt.freq) is None:
        raise DataError(f"--bar-stamps end moves minute bars to their starts; freq {opt.freq!r} has no minute bars")
    _check_date_format(opt.date_format)
    root = Path(to).expanduser()
    cal_rel = f"calendars/{opt.freq}.txt"
    seen_store = _check_mode(opt, root, cal_rel, None)  # early answer; decided again under the lock

    collector = _Collector(opt)
    for path in source_files(src):
        collector.read(path)
    data = collector.symbols()
    report_path: Path | None = None
    if collector.bad:
        if not opt.skip_bad_rows:
            _raise_bad(collector.bad)
        report_path = Path(opt.report or "qcore-import-report.csv").expanduser()
        _write_report(report_path, collector.bad)
        logger.warning("skipped %d bad rows; see %s", len(collector.bad), report_path)
    if not data:
        raise DataError("no rows to import", path=str(src))

    from qdata_cn.writer import StoreTransaction

    with StoreTransaction(root, lock_timeout=opt.lock_timeout) as txn:
        _check_mode(opt, root, cal_rel, seen_store)
        summary = _publish(txn, opt, root, data, collector)
    summary["skipped_rows"] = len(collector.bad)
    summary["report"] = None if report_path is None else str(report_path)
    return summary


def _check_date_format(fmt: str | None) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, str) or "%" not in fmt:
        raise DataError(f"invalid --date-format {fmt!r}: use strftime codes such as %d/%m/%Y")
    try:
        datetime.strptime(datetime(2020, 1, 2).strftime(fmt), fmt)
    except ValueError as error:
        raise DataError(f"invalid --date-format {fmt!r}: {error}") from None


def _check_mode(opt: ImportOptions, root: Path, cal_rel: str, seen_before: bool | None) -> bool:
    """Whether a store with this calendar exists, refusing what ``mode`` cannot do with it.

    :param seen_before: what the check before the lock found (``None`` for that check itself): a store that
        appeared or vanished meanwhile is named as the work of another writer.
    """
    has_store = (root / cal_rel).is_file()
    changed = seen_before is not None and seen_before != has_store
    if opt.mode == "all" and has_store and not opt.overwrite:
        why = " (another writer created it while this import read its sources or waited for the lock)" if changed \
            else ""  # fmt: skip
        raise DataError(
            f"a store with a {opt.freq} calendar exists{why}; use --mode update to add data or --overwrite to replace "
            "it",
            path=str(root),
        )
    if opt.mode == "update" and not has_store:
        why = " (it was removed while this import read its sources or waited for the lock)" if changed else ""
        raise DataError(f"no {opt.freq} store to update{why} (use --mode all to create one)",
                        path=str(root / cal_rel))  # fmt: skip
    return has_store


def _store_fields(root: Path, suffix: str) -> list[str]:
    """Fields (of one frequency) that every instrument folder of the store holds."""
    features = root / "features"
    common: set[str] | None = None
    if features.is_dir():
        with os.scandir(features) as dirs:
            for entry in dirs:
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    with os.scandir(entry.path) as files:
                        names = {f.name[: -len(suffix)] for f in files if f.name.endswith(suffix)}
                    if names:
                        common = names if common is None else common & names
    return sorted(common or ())


def _publish(txn: Any, opt: ImportOptions, root: Path, data: dict[str, SymbolData], collector: _Collector) -> dict:
    """Stage the import into ``txn`` (already holding the lock); everything about the store is read here."""
    from qdata_cn.binstore import read_bin, read_calendar, read_instruments
    from qdata_cn.writer import format_calendar, format_instruments

    cal_rel = f"calendars/{opt.freq}.txt"
    fmt = date_format(opt.freq)
    new_dates = np.unique(np.concatenate([d.dates for d in data.values()]))
    update = opt.mode == "update"
    if update:
        old_cal = read_calendar(root / cal_rel, opt.freq).values.astype("datetime64[ns]")
        inside = new_dates[new_dates <= old_cal[-1]]
        unknown = inside[~np.isin(inside, old_cal)]
        if unknown.size:
            bad_date = unknown[0]
            for sym in data.values():
                hit = np.flatnonzero(sym.dates == bad_date)
                if hit.size:
                    raise DataError(
                        f"{pd.Timestamp(bad_date).strftime(fmt)} is inside the store's calendar "
                        f"({pd.Timestamp(old_cal[0]).strftime(fmt)}..{pd.Timestamp(old_cal[-1]).strftime(fmt)}) "
                        "but not one of its days; dates can only be added after its end",
                        path=sym.files[hit[0]],
                        row=int(sym.rows[hit[0]]),
                    )
        calendar = np.concatenate([old_cal, new_dates[new_dates > old_cal[-1]]])
    else:
        old_cal = np.array([], dtype="datetime64[ns]")
        calendar = new_dates
    if minute_count(opt.freq) is not None:  # every bar of each session day: a minute calendar has no gaps
        days = np.unique(pd.DatetimeIndex(new_dates).normalize().values)
        full = minute_calendar(days, opt.freq, opt.region).values
        calendar = np.concatenate([old_cal, full[full > old_cal[-1]]]) if update else full
    n_cal = len(calendar)

    all_path = root / "instruments" / "all.txt"
    spans: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    other_freqs = [
        p.stem for p in (root / "calendars").glob("*.txt") if p.stem != opt.freq and not p.stem.endswith("_future")
    ] if (root / "calendars").is_dir() else []  # fmt: skip
    keep_old_spans = update or bool(other_freqs)
    if keep_old_spans and all_path.exists():
        spans = {k: [(s.start, s.end) for s in v] for k, v in read_instruments(all_path).items()}
    minute_store = any(minute_count(f) is not None for f in (opt.freq, *other_freqs))
    span_fmt = DAY_FORMAT if ("day" in other_freqs or is_daily(opt.freq)) else fmt
    if minute_store:  # one instruments/ folder serves every frequency: see sessions.span_bounds
        span_fmt = HIGH_FREQ_FORMAT

    summary: dict[str, Any] = {
        "store": str(root),
        "mode": opt.mode,
        "freq": opt.freq,
        "fields": collector.fields,
        "added": 0,
        "updated": 0,
        "unchanged": 0,
        "files": 0,
        "calendar": [pd.Timestamp(calendar[0]).strftime(fmt), pd.Timestamp(calendar[-1]).strftime(fmt), n_cal],
        "new_dates": int(n_cal - len(old_cal)),
        "skipped_columns": sorted(collector.skipped_columns),
    }
    suffix = f".{opt.freq}.bin"
    written: set[str] = set()
    if n_cal != len(old_cal) or not update:
        txn.write_text(cal_rel, format_calendar(pd.DatetimeIndex(calendar), fmt))
    store_fields: list[str] | None = None
    for symbol in sorted(data):
        sym = data[symbol]
        pos = np.searchsorted(calendar, sym.dates)
        folder = root / "features" / code_to_fname(symbol)
        old: dict[str, tuple[int, np.ndarray]] = {}
        if update and folder.is_dir():
            for path in sorted(folder.glob(f"*{suffix}")):
                old[path.name[: -len(suffix)]] = read_bin(path, len(old_cal))
        if update and not old and store_fields is None:
            store_fields = _store_fields(root, suffix)
        lo, hi = int(pos[0]), int(pos[-1])
        for start, values in old.values():
            if len(values):
                lo, hi = min(lo, start), max(hi, start + len(values) - 1)
        changed = False
        fields = [*sym.values, *(f for f in old if f not in sym.values)]
        extra = collector.fields if old or not update else [*collector.fields, *(store_fields or ())]
        fields += [f for f in dict.fromkeys(extra) if f not in fields]  # NaN bins: no field missing for some only
        for field in fields:
            arr = np.full(hi - lo + 1, np.nan, dtype=np.float32)
            before = old.get(field)
            if before is not None:
                start, values = before
                arr[start - lo : start - lo + len(values)] = values
            if field in sym.values:
                new = sym.values[field]
                at = pos - lo
                if before is not None:
                    start, values = before
                    stored = (pos >= start) & (pos < start + len(values))
                    clash = stored & ~_same(arr[at], new)
                    if clash.any() and not opt.overwrite_overlap:
                        k = int(np.flatnonzero(clash)[0])
                        raise DataError(
                            f"{symbol} {field} on {pd.Timestamp(sym.dates[k]).strftime(fmt)} is {new[k]!r} but "
                            f"the store holds {arr[at[k]]!r}; use --overwrite-overlap to replace stored values",
                            path=sym.files[k],
                            row=int(sym.rows[k]),
                        )
                arr[at] = new
            rel = f"features/{code_to_fname(symbol)}/{bin_name(field, opt.freq)}"
            same = before is not None and before[0] == lo and len(before[1]) == len(arr)
            if same and _same(before[1], arr).all():
                written.add(rel)
                continue
            txn.write_bin(rel, lo, arr)
            written.add(rel)
            summary["files"] += 1
            changed = True
        if not old:
            summary["added"] += 1
        elif changed:
            summary["updated"] += 1
        else:
            summary["unchanged"] += 1
        span = (pd.Timestamp(calendar[lo]), pd.Timestamp(calendar[hi]))
        if span_fmt == DAY_FORMAT:
            span = (span[0].normalize(), span[1].normalize())
        previous = spans.get(symbol)
        if previous and (update or other_freqs):
            span = (min(span[0], *(a for a, _ in previous)), max(span[1], *(b for _, b in previous)))
        spans[symbol] = [span]
    if opt.mode == "all" and opt.overwrite and (root / "features").is_dir():
        for path in (root / "features").glob(f"*/*{suffix}"):
            rel = path.relative_to(root).as_posix()
            if rel not in written and path.is_file():
                txn.delete(rel)
    if minute_store:
        spans = {k: [span_bounds(a, b, opt.region) for a, b in v] for k, v in spans.items()}
    txn.write_text("instruments/all.txt", format_instruments(spans, span_fmt))
    return summary
