"""``qcore data import-weights``: benchmark (index) weights from a CSV or Parquet file into a store's
``$<market>_weight`` field, Qlib's layout (``features/<instrument>/<market>_weight.day.bin``).

The file has one row per published weight: ``date`` (or ``datetime``; ``YYYY-MM-DD`` or ``YYYYMMDD``),
``instrument`` (or ``symbol``) and ``weight``. Index providers publish weights on some days (monthly, or at each
rebalance): a date's weights hold on every trading day until the next date in the file, the last date's until the
store's last calendar day (``--no-fill`` writes the published days only). On a day, a name without a row has no
weight (NaN in the bin; readers take it as 0).

Refused before anything is written, naming the file and the line: a missing column, a date that is not a date, a
weight that is not a finite non-negative number, a ``(date, instrument)`` given twice, a date that is not a trading
day of the store's calendar (or lies outside it), and instruments the store does not list (``instruments/all.txt``;
the first few are named).

Each date's weights should sum to 1 (or to 100: a file in percent is recognised by the median of its daily sums and
stored as fractions). A date whose sum is off by more than ``tolerance`` (relative; index files often leave out
a delisted name) is a **warning** naming the dates — the strategies rescale each day to 1 when they read the field —
or an error with ``strict``; ``normalise`` stores each date scaled to sum exactly to 1.

The import replaces the whole field: every existing ``<market>_weight`` bin is rewritten or removed, atomically and
under the store's writer lock (all files or none).
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qdata_cn.naming import code_to_fname

logger = logging.getLogger("qdata_cn.weights")

#: Accepted column names for each role (the first present wins).
COLUMNS = {"date": ("date", "datetime"), "instrument": ("instrument", "symbol"), "weight": ("weight",)}
_MARKET_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: dates named in a message at most.
_SHOWN = 5


def _read(src: Path) -> tuple[pd.DataFrame, int]:
    """The file as a frame, and the line number of its first data row (2 for a CSV with its header)."""
    suffix = src.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(src)
            if isinstance(frame.index, pd.MultiIndex):
                frame = frame.reset_index()
            return frame, 1
        if suffix in (".csv", ".txt") or src.name.lower().endswith(".csv.gz"):
            return pd.read_csv(src, dtype=str, keep_default_na=False, skipinitialspace=True), 2
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read the weights file: {str(exc).strip()}", path=str(src)) from None
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise DataError(f"cannot read the weights file: {type(exc).__name__}: {exc}", path=str(src)) from None
    raise DataError("unsupported file type; give a .csv or .parquet file", path=str(src))


def _column(frame: pd.DataFrame, role: str) -> Any:
    names = {str(c).strip().lower(): c for c in frame.columns}
    return next((names[n] for n in COLUMNS[role] if n in names), None)


def read_weights(src: str | os.PathLike[str]) -> pd.DataFrame:
    """The file's rows checked: columns ``date`` (Timestamp), ``instrument`` (upper case), ``weight`` (float),
    ``line`` (its line in the file).

    :raises DataError: naming the file and the line of the first bad row.
    """
    path = Path(src)
    frame, first = _read(path)
    cols = {role: _column(frame, role) for role in COLUMNS}
    missing = [role for role, col in cols.items() if col is None]
    if missing:
        raise DataError(f"the weights file needs date, instrument and weight columns; missing {', '.join(missing)} "
                        f"(columns: {', '.join(map(str, frame.columns)) or 'none'})", path=str(path))  # fmt: skip
    if frame.empty:
        raise DataError("the weights file has no row", path=str(path))
    lines = np.arange(len(frame)) + first
    raw_dates = frame[cols["date"]]
    if pd.api.types.is_datetime64_any_dtype(raw_dates):
        dates = pd.DatetimeIndex(raw_dates).normalize()
    else:
        text = raw_dates.astype(str).str.strip()
        compact = text.str.fullmatch(r"\d{8}")
        dates = pd.to_datetime(text.where(~compact), format="ISO8601", errors="coerce")
        if compact.any():
            dates = dates.where(~compact, pd.to_datetime(text.where(compact), format="%Y%m%d", errors="coerce"))
        bad = np.flatnonzero(pd.isna(dates))
        if len(bad):
            raise DataError(f"line {lines[bad[0]]}: date {text.iloc[bad[0]]!r} is not a date (2020-01-31 or "
                            "20200131)", path=str(path))  # fmt: skip
        dates = pd.DatetimeIndex(dates)
        timed = np.flatnonzero(dates != dates.normalize())
        if len(timed):
            raise DataError(f"line {lines[timed[0]]}: {text.iloc[timed[0]]!r} has a time of day; weights are daily",
                            path=str(path))  # fmt: skip
    names = frame[cols["instrument"]].astype(str).str.strip().str.upper()
    empty = np.flatnonzero((names == "").to_numpy())
    if len(empty):
        raise DataError(f"line {lines[empty[0]]}: empty instrument", path=str(path))
    weights = pd.to_numeric(frame[cols["weight"]], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if len(bad):
        raise DataError(f"line {lines[bad[0]]}: weight {frame[cols['weight']].iloc[bad[0]]!r} is not a non-negative "
                        "number", path=str(path))  # fmt: skip
    table = pd.DataFrame({"date": dates, "instrument": names.to_numpy(), "weight": weights, "line": lines})
    dup = np.flatnonzero(table.duplicated(["date", "instrument"]).to_numpy())
    if len(dup):
        row = table.iloc[dup[0]]
        raise DataError(f"line {row['line']}: ({row['date'].date()}, {row['instrument']}) is given twice",
                        path=str(path))  # fmt: skip
    return table


def _check_against_store(table: pd.DataFrame, calendar: pd.DatetimeIndex, known: set[str], src: str) -> None:
    off = ~table["date"].isin(calendar)
    if off.any():
        row = table[off].iloc[0]
        span = f"{calendar[0].date()}..{calendar[-1].date()}"
        where = "outside the store's calendar" if not calendar[0] <= row["date"] <= calendar[-1] else \
            "not a trading day of the store's calendar"  # fmt: skip
        raise DataError(f"line {row['line']}: {row['date'].date()} is {where} ({span}); "
                        f"{int(table[off]['date'].nunique())} date(s) are off the calendar", path=src)  # fmt: skip
    unknown = sorted(set(table["instrument"]) - known)
    if unknown:
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        raise DataError(f"{len(unknown)} instrument(s) the store does not list (instruments/all.txt): "
                        f"{', '.join(unknown[:_SHOWN])}{more}", path=src)  # fmt: skip


def _scale_and_sums(table: pd.DataFrame, tolerance: float, strict: bool, normalise: bool,
                    src: str) -> tuple[pd.DataFrame, str, list[pd.Timestamp]]:  # fmt: skip
    """Fractions (percent files divided by 100), each date normalised when asked; the dates whose sum is off."""
    sums = table.groupby("date")["weight"].sum()
    units = "percent" if 50.0 <= float(sums.median()) <= 150.0 else "fraction"
    if units == "percent":
        table = table.assign(weight=table["weight"] / 100.0)
        sums = sums / 100.0
    off = sums[(sums - 1.0).abs() > tolerance]
    off_dates = list(off.index)
    if off_dates:
        shown = ", ".join(f"{d.date()} ({s:.4g})" for d, s in list(off.items())[:_SHOWN])
        more = f" and {len(off_dates) - _SHOWN} more" if len(off_dates) > _SHOWN else ""
        message = (f"{len(off_dates)} of {len(sums)} date(s) have weights that do not sum to 1 within "
                   f"{tolerance:g}: {shown}{more}")  # fmt: skip
        if strict:
            raise DataError(message, path=src)
        logger.warning("%s: %s (readers rescale each day to 1%s)", src, message,
                       "; --normalise stores them scaled" if not normalise else "")  # fmt: skip
    if normalise:
        if (sums <= 0).any():
            raise DataError(f"{sums[sums <= 0].index[0].date()}: all weights are 0, nothing to normalise", path=src)
        table = table.assign(weight=table["weight"] / table["date"].map(sums).to_numpy())
    return table, units, off_dates


def import_weights(src: str | os.PathLike[str], store: str | os.PathLike[str], market: str, *,
                   fill: bool = True, normalise: bool = False, strict: bool = False, tolerance: float = 0.01,
                   lock_timeout: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Import the weights file ``src`` as ``$<market>_weight`` of ``store`` (see the module doc); a summary.

    :raises ConfigError: a bad market name or tolerance.
    :raises DataError: bad input (naming the file and line) or a store that cannot be written.
    """
    from qdata_cn.binstore import read_calendar, read_instruments
    from qdata_cn.writer import StoreTransaction

    began = time.perf_counter()
    if not isinstance(market, str) or not _MARKET_RE.fullmatch(market.lower()):
        raise ConfigError(f"a market name is letters, digits and '_' starting with a letter, got {market!r}",
                          path="--market")  # fmt: skip
    if not 0 <= tolerance < 1:
        raise ConfigError(f"expected a number in [0, 1), got {tolerance!r}", path="--tolerance")
    market = market.lower()
    field = f"{market}_weight"
    root = Path(store).expanduser()
    if not (root / "calendars" / "day.txt").is_file():
        raise DataError("not a store with a daily calendar (calendars/day.txt is missing)", path=str(root))
    source = os.fspath(src)
    table = read_weights(src)
    calendar = read_calendar(root / "calendars" / "day.txt", "day")
    known = set(read_instruments(root / "instruments" / "all.txt"))
    _check_against_store(table, calendar, known, source)
    table, units, off_dates = _scale_and_sums(table, tolerance, strict, normalise, source)
    published = pd.DatetimeIndex(sorted(table["date"].unique()))
    wide = table.pivot(index="date", columns="instrument", values="weight").reindex(published)
    if fill:  # a date's weights hold until the next published date, the last one's to the calendar's end
        rows = np.searchsorted(published.to_numpy(), calendar.to_numpy(), side="right") - 1
        days = calendar[rows >= 0]
        wide = pd.DataFrame(wide.to_numpy()[rows[rows >= 0]], index=days, columns=wide.columns)
    positions = calendar.get_indexer(wide.index)
    written = removed = 0
    with StoreTransaction(root, lock_timeout=lock_timeout) as txn:
        folders = {code_to_fname(name): name for name in wide.columns}
        features = root / "features"
        if features.is_dir():
            for entry in sorted(features.iterdir()):
                if entry.name not in folders and (entry / f"{field}.day.bin").is_file():
                    txn.delete(f"features/{entry.name}/{field}.day.bin")
                    removed += 1
        for folder, name in folders.items():
            values = wide[name].to_numpy(np.float64)
            held = np.flatnonzero(~np.isnan(values))
            lo, hi = int(held[0]), int(held[-1])
            first = int(positions[lo])
            series = np.full(int(positions[hi]) - first + 1, np.nan, dtype=np.float32)
            series[positions[lo : hi + 1] - first] = values[lo : hi + 1]
            txn.write_bin(f"features/{folder}/{field}.day.bin", first, series)
            written += 1
    return {
        "path": str(root), "field": f"${field}", "instruments": written, "removed": removed,
        "dates": len(published), "days": len(wide.index), "first": str(wide.index[0].date()),
        "last": str(wide.index[-1].date()), "units": units, "off_sum_dates": len(off_dates),
        "seconds": time.perf_counter() - began,
    }  # fmt: skip
