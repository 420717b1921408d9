"""Prediction scores aligned to a trading calendar, as whole arrays.

A score frame is indexed ``(datetime, instrument)`` with one numeric column: the column named ``score``, or the
only column (a frame with several columns and none named ``score`` is refused rather than guessed at). The
strategy of bar ``k`` reads the scores dated inside the previous bar ``[calendar[k-1], calendar[k])``; when
several rows of one instrument fall inside that window the latest non-NaN one wins (Qlib's
``resam_ts_data(..., method="last")``). A score dated on a non-trading day therefore belongs to the bar before it.

Score files are Parquet (``.parquet``, ``.pq``) or CSV (``.csv``, optionally compressed: ``.csv.gz``...) with
``datetime`` and ``instrument`` columns (or index levels) and ISO dates (``2020-01-31``; day-first or month-first
dates are not guessed). Documented handling of bad inputs, each a :class:`~qcore.errors.DataError` that names the
file and the row (a CSV's line) or column:

- an unreadable, corrupt or unsupported file, a missing ``datetime``/``instrument`` column, no score column or
  several candidates, an index of the wrong shape;
- a date that is not an ISO date, a time-zone-aware date (the calendar has none: convert to local dates and drop
  the zone), a missing instrument;
- a score that is not a number (text, a boolean), or infinite;
- no rows, or no score that is a number (all NaN);
- a duplicated ``(datetime, instrument)`` row;
- rows dated before the first or after the last calendar entry, or no score inside the backtest's bars;
- instruments the store does not know are kept (``unknown="keep"``, Qlib's behaviour: they can be chosen but are
  never tradable), dropped (``"drop"``) or rejected (``"error"``); a warning names them in the first two cases,
  and scores naming no instrument the store knows are an error whatever the policy;
- some NaN scores are kept as "scored, unknown value" (they sort last, as in Qlib), with a warning counting them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qcore.errors import DataError

logger = logging.getLogger(__name__)

UNKNOWN_POLICIES = ("keep", "drop", "error")

#: File name endings of the score files :func:`read_scores` reads, and how.
SCORE_FILE_TYPES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".csv.gz": "csv", ".csv.bz2": "csv",
                    ".csv.xz": "csv", ".csv.zip": "csv", ".csv.zst": "csv"}  # fmt: skip


def _file_type(path: Path, source: str) -> str:
    name = path.name.lower()
    for suffix, kind in SCORE_FILE_TYPES.items():
        if name.endswith(suffix):
            return kind
    found = "".join(path.suffixes[-2:]) or "no extension"
    raise DataError(f"unsupported score file type ({found}); give a Parquet (.parquet, .pq) or CSV (.csv) file",
                    path=source)  # fmt: skip


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged file may raise (pyarrow's errors are not all ValueErrors)."""
    errors: tuple[type[BaseException], ...] = (ValueError, KeyError, TypeError, OSError, NotImplementedError,
                                               IndexError, UnicodeDecodeError, OverflowError)  # fmt: skip
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pandas' Parquet engine
        return errors
    return (*errors, pa.ArrowException)


def read_scores(path: str | os.PathLike[str] | bytes) -> pd.Series:
    """Read a score file (Parquet, or CSV with ``datetime,instrument,score`` columns) into a checked Series.

    :raises DataError: naming the file (and row or column); see the module doc for what is refused.
    """
    text = os.fsdecode(path)
    file = Path(text)
    kind = _file_type(file, text)
    if not file.exists():
        raise DataError("score file not found", path=text)
    if file.is_dir():
        raise DataError("is a folder, not a score file", path=text)
    try:
        frame = _read_csv(file, text) if kind == "csv" else pd.read_parquet(file)
    except DataError:
        raise
    except _read_errors() as error:
        what = "CSV" if kind == "csv" else "Parquet"
        raise DataError(f"cannot read score file as {what}: {_first_line(error)}", path=text) from None
    return as_score_series(frame, source=text)


#: Where the first value of a mask lies: ``(row for DataError, text for the message)``.
Locate = Callable[[np.ndarray], tuple[int | None, str]]


def _csv_line(mask: np.ndarray) -> tuple[int | None, str]:
    """The file line of the first row in ``mask`` (the header is line 1)."""
    return int(np.flatnonzero(mask)[0]) + 2, ""


def _read_csv(file: Path, source: str) -> pd.DataFrame:
    """A CSV score file as a frame indexed ``(datetime, instrument)``; bad cells are reported with their line."""
    try:
        raw = pd.read_csv(file, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError("score file is empty", path=source) from None
    missing = [c for c in ("datetime", "instrument") if c not in raw.columns]
    if missing:
        shown = ", ".join(map(str, raw.columns[:10])) or "none"
        raise DataError(f"CSV score file needs the columns datetime and instrument (and a score column); "
                        f"missing {' and '.join(missing)}; found: {shown}", path=source)  # fmt: skip
    column = _score_column(raw.drop(columns=["datetime", "instrument"]), source)
    dates = _parse_dates(raw["datetime"], source, _csv_line)
    names = raw["instrument"]
    blank = names.isna().to_numpy() | (names.fillna("").str.strip() == "").to_numpy()
    if blank.any():
        raise DataError(f"column instrument: {int(blank.sum())} row(s) without an instrument",
                        path=source, row=_csv_line(blank)[0])  # fmt: skip
    values = _parse_scores(raw[column], source, column, _csv_line)
    index = pd.MultiIndex.from_arrays([dates, names.to_numpy(dtype=object)], names=["datetime", "instrument"])
    return pd.DataFrame({column: values}, index=index)


def _score_column(frame: pd.DataFrame, source: str | None) -> str:
    """The score column of ``frame`` (its columns other than datetime/instrument): ``score``, or the only one."""
    columns = list(frame.columns)
    if "score" in columns:
        if columns.count("score") > 1:
            raise DataError(f"column 'score' appears {columns.count('score')} times", path=source)
        return "score"
    if len(columns) == 1:
        return columns[0]
    if not columns:
        raise DataError("no score column (expected a column named 'score')", path=source)
    shown = ", ".join(repr(c) for c in columns[:10]) + (f" and {len(columns) - 10} more" if len(columns) > 10 else "")
    raise DataError(f"{len(columns)} candidate score columns ({shown}) and none is named 'score'; "
                    "name the one to use 'score'", path=source)  # fmt: skip


def _parse_dates(values: pd.Series | pd.Index, source: str | None, locate: Locate | None) -> pd.DatetimeIndex:
    """``values`` as naive timestamps: datetimes as they are, text as ISO dates; anything else is an error
    (``locate`` says where the first bad value is)."""
    raw = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = raw
    elif raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                parsed = pd.to_datetime(raw, format="ISO8601", errors="coerce")
            except (ValueError, TypeError, OverflowError):  # mixed time zones and the like: find the culprit
                parsed = pd.Series([_one_date(v) for v in raw], dtype="datetime64[ns]")
    else:
        raise DataError(f"score dates are {raw.dtype} values, not timestamps or ISO dates", path=source)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        raise DataError(f"score dates carry the time zone {parsed.dtype.tz}; the store's calendar has none: "
                        "convert them to local dates and drop the zone (tz_localize(None))", path=source)  # fmt: skip
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = raw.to_numpy()[bad][0]
        what = "a missing date" if pd.isna(first) else f"{str(first)[:40]!r} is not an ISO date (YYYY-MM-DD)"
        row, at = locate(bad) if locate is not None else (None, "")
        raise DataError(f"column datetime: {what} ({int(bad.sum())} such value(s){at}); dates must be ISO 8601 "
                        "without a time zone", path=source, row=row)  # fmt: skip
    return pd.DatetimeIndex(parsed)


def _dates_like(level: pd.Index) -> bool:
    """Whether an index level holds timestamps, or text whose first values are ISO dates."""
    if pd.api.types.is_datetime64_any_dtype(level.dtype):
        return True
    if level.dtype != object or not len(level):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return not pd.to_datetime(pd.Series(level[:5]), format="ISO8601", errors="coerce").isna().any()


def _one_date(value: object) -> pd.Timestamp:
    """One ISO date, NaT when it is not one or carries a time zone."""
    try:
        stamp = pd.to_datetime(value, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    return pd.NaT if getattr(stamp, "tzinfo", None) is not None else stamp


def _parse_scores(values: pd.Series, source: str | None, column: object, locate: Locate) -> np.ndarray:
    """``values`` as float64: numbers as they are, text parsed; text that is not a number, booleans and infinite
    values are errors (``locate`` says where the first bad value is)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"column {column!r}: scores are booleans, not numbers", path=source)
    if pd.api.types.is_numeric_dtype(values.dtype):
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        if values.map(lambda v: isinstance(v, (bool, np.bool_))).any():
            raise DataError(f"column {column!r}: scores are booleans, not numbers", path=source)
        parsed = pd.to_numeric(values, errors="coerce")
        out = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(out) & values.notna().to_numpy()
        if bad.any():  # blank text and "nan" are missing values, not errors
            bad[bad] = [str(v).strip().lower() not in ("nan", "") for v in values.to_numpy()[bad]]
        if bad.any():
            first = values.to_numpy()[bad][0]
            row, at = locate(bad)
            raise DataError(f"column {column!r}: {str(first)[:40]!r} is not a number ({int(bad.sum())} such "
                            f"row(s){at})", path=source, row=row)  # fmt: skip
    infinite = np.isinf(out)
    if infinite.any():
        row, at = locate(infinite)
        raise DataError(f"column {column!r}: {int(infinite.sum())} infinite score(s){at}", path=source, row=row)
    return out


def _row_label(index: pd.MultiIndex, mask: np.ndarray) -> str:
    date, name = index[int(np.flatnonzero(mask)[0])]
    return f"row ({pd.Timestamp(date).date()}, {name})"


def _as_frame(scores: pd.Series | pd.DataFrame, source: str | None) -> pd.Series:
    """The score column of a frame (with ``datetime``/``instrument`` columns moved to the index)."""
    if not isinstance(scores, pd.DataFrame):
        return scores
    frame = scores
    if not isinstance(frame.index, pd.MultiIndex) and {"datetime", "instrument"} <= set(frame.columns):
        frame = frame.set_index(["datetime", "instrument"])
    column = _score_column(frame, source)
    return frame[column].rename(column)


def as_score_series(scores: pd.Series | pd.DataFrame, source: str | None = None) -> pd.Series:
    """Validate a score frame/series and return it as a float64 Series indexed ``(datetime, instrument)``.

    :raises DataError: naming ``source`` and the culprit; see the module doc for what is refused.
    """
    series = _as_frame(scores, source)
    index = series.index
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        levels = index.nlevels
        names = ", ".join(str(n) for n in index.names)
        raise DataError(f"scores must be indexed by (datetime, instrument); got an index of {levels} level(s) "
                        f"({names})", path=source)  # fmt: skip
    names = list(index.names)
    if names == ["instrument", "datetime"]:
        series = series.swaplevel()
    elif names != ["datetime", "instrument"] and not _dates_like(index.levels[0]) and _dates_like(index.levels[1]):
        series = series.swaplevel()  # other level names: the level holding timestamps (or ISO dates) is the date
    index = series.index
    if (np.asarray(index.codes[0]) < 0).any() or (np.asarray(index.codes[1]) < 0).any():
        raise DataError("score rows with a missing date or instrument", path=source)
    dates = _parse_dates(index.levels[0], source, None)
    levels = index.levels[1]
    if levels.dtype != object or not all(isinstance(x, str) for x in levels):
        levels = pd.Index([str(x) for x in levels], dtype=object)
    if (levels.str.strip() == "").any():
        raise DataError("score rows with an empty instrument name", path=source)
    index = pd.MultiIndex(levels=[dates, levels], codes=index.codes, names=["datetime", "instrument"],
                          verify_integrity=False)  # fmt: skip
    if len(index) == 0:
        raise DataError("no score rows", path=source)
    column = series.name if series.name is not None else "score"
    values = _parse_scores(series, source, column, lambda mask: (None, f", first at {_row_label(index, mask)}"))
    out = pd.Series(values, index=index)
    if not index.is_unique:
        dup = index.duplicated()
        raise DataError(f"duplicated score {_row_label(index, dup)} ({int(dup.sum())} duplicate row(s))",
                        path=source)  # fmt: skip
    if np.isnan(values).all():
        raise DataError(f"no score is a number: all {len(values)} scores are NaN", path=source)
    return out


class Signal:
    """Scores bound to a calendar and an instrument axis: one row of values per calendar entry.

    :param scores: a Series or DataFrame indexed ``(datetime, instrument)``.
    :param unknown: what to do with instruments missing from the store (see the module doc).
    """

    def __init__(self, scores: pd.Series | pd.DataFrame, *, unknown: str = "keep", source: str | None = None) -> None:
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"unknown must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}")
        self.scores = as_score_series(scores, source=source)
        self.unknown = unknown
        self.source = source
        self._warn_nan()
        self._values: np.ndarray | None = None
        self._present: np.ndarray | None = None
        self._has_rows: np.ndarray | None = None
        self._columns: dict[str, int] = {}
        self._first = 0
        self._checked: tuple[frozenset[str], tuple[str, ...]] | None = None

    def _warn_nan(self) -> None:
        """Warn, with counts, when some scores are NaN (they are kept: they sort last)."""
        nan = np.isnan(self.scores.to_numpy())
        if not nan.any():
            return
        codes = self.scores.index.codes[0]
        days = len(np.unique(codes[nan]))
        logger.warning("%s%d of %d scores are NaN, on %d of %d dates; they sort last", self._prefix,
                       int(nan.sum()), len(nan), days, len(np.unique(codes)))  # fmt: skip

    @property
    def _prefix(self) -> str:
        return f"{self.source}: " if self.source else ""

    @property
    def instruments(self) -> list[str]:
        """Every instrument named in the scores, sorted."""
        index = self.scores.index
        return sorted(index.levels[1][np.unique(index.codes[1])])

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The distinct score dates, sorted."""
        index = self.scores.index
        return pd.DatetimeIndex(index.levels[0][np.unique(index.codes[0])]).sort_values()

    def check_instruments(self, known: Iterable[str]) -> list[str]:
        """Apply the ``unknown`` policy against the store's instruments; return the unknown ones kept."""
        known_set = frozenset(known)
        if self._checked is not None and self._checked[0] == known_set:  # checked (and warned) already
            return list(self._checked[1])
        named = self.instruments
        missing = sorted(set(named) - known_set)
        kept = self._apply_unknown(named, missing, known_set)
        self._checked = (known_set, tuple(kept))
        return kept

    def _apply_unknown(self, named: list[str], missing: list[str], known_set: frozenset[str]) -> list[str]:
        if not missing:
            return []
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        if len(missing) == len(named):
            upper = sorted({m.upper() for m in missing} & known_set)
            hint = f" (codes are case-sensitive: the store has {', '.join(upper[:3])})" if upper else ""
            raise DataError(f"none of the {len(named)} instrument(s) in the scores is in the store: {shown}{hint}",
                            path=self.source)  # fmt: skip
        if self.unknown == "error":
            raise DataError(f"scores name {len(missing)} instrument(s) the store does not know: {shown}",
                            path=self.source)  # fmt: skip
        if self.unknown == "drop":
            logger.warning("%sdropping scores of %d instrument(s) the store does not know: %s", self._prefix,
                           len(missing), shown)  # fmt: skip
            keep = ~self.scores.index.get_level_values(1).isin(missing)
            self.scores = self.scores[keep]
            return []
        logger.warning("%sscores name %d instrument(s) the store does not know (never tradable): %s",
                       self._prefix, len(missing), shown)  # fmt: skip
        return missing

    def check_dates(self, calendar: pd.DatetimeIndex) -> None:
        """Raise :class:`~qcore.errors.DataError` when a score is dated before or after ``calendar``."""
        calendar = pd.DatetimeIndex(calendar)
        index = self.scores.index
        used = np.unique(index.codes[0])
        dates = pd.DatetimeIndex(index.levels[0])[used] if len(used) else pd.DatetimeIndex([])
        if not len(dates) or not len(calendar):
            return
        outside = (dates < calendar[0]) | (dates > calendar[-1])
        if outside.any():
            bad = dates[outside]
            counts = np.isin(index.codes[0], used[outside]).sum()
            raise DataError(
                f"{int(counts)} score row(s) dated outside the store's calendar "
                f"({calendar[0].date()}..{calendar[-1].date()}): {bad.min().date()}..{bad.max().date()}; "
                "trim the score file or extend the store",
                path=self.source,
            )

    def bind(
        self, calendar: pd.DatetimeIndex, instruments: Sequence[str], first: int = 0, last: int | None = None
    ) -> None:
        """Align the scores to calendar rows ``first..last`` and ``instruments`` columns.

        Every score date must lie inside ``calendar`` (else :class:`~qcore.errors.DataError`); rows outside
        ``first..last`` and instruments not in ``instruments`` are ignored.
        """
        calendar = pd.DatetimeIndex(calendar)
        last = len(calendar) - 1 if last is None else last
        index = self.scores.index
        self.check_dates(calendar)
        self._columns = {name: j for j, name in enumerate(instruments)}
        self._first = first
        t, n = max(last - first + 1, 0), len(instruments)
        values = np.full((t, n), np.nan)
        present = np.zeros((t, n), dtype=bool)
        level_cols = pd.Index(list(instruments)).get_indexer(index.levels[1])
        level_rows = calendar.searchsorted(pd.DatetimeIndex(index.levels[0]), side="right") - 1 - first
        cols = level_cols[index.codes[1]]
        rows = level_rows[index.codes[0]]
        vals = self.scores.to_numpy()
        in_range = (rows >= 0) & (rows < t)
        if t and len(rows) and not in_range.any():
            span = f"{calendar[max(first, 0)].date()}..{calendar[min(last, len(calendar) - 1)].date()}"
            raise DataError(f"no score falls in the backtest's range {span} (the scores cover "
                            f"{self.dates[0].date()}..{self.dates[-1].date()})", path=self.source)  # fmt: skip
        keep = (cols >= 0) & in_range
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        when = pd.DatetimeIndex(index.levels[0]).asi8[index.codes[0]][keep]
        # the latest row of each cell wins (stable sort by date); a NaN never hides an earlier value
        order = np.argsort(when, kind="stable")
        rows, cols, vals = rows[order], cols[order], vals[order]
        present[rows, cols] = True
        finite = ~np.isnan(vals)
        values[rows[finite], cols[finite]] = vals[finite]
        self._values, self._present = values, present
        self._has_rows = present.any(axis=1)

    def row(self, calendar_index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(values, present)`` of one calendar row, or None when no score falls in it (or it is not bound)."""
        if self._values is None or self._present is None or self._has_rows is None:
            raise RuntimeError("Signal.bind() must be called before reading rows")
        k = calendar_index - self._first
        if calendar_index < 0 or k < 0 or k >= len(self._values) or not self._has_rows[k]:
            return None
        return self._values[k], self._present[k]

    def column(self, instrument: str) -> int | None:
        """The column of ``instrument`` in the bound axis."""
        return self._columns.get(instrument)
