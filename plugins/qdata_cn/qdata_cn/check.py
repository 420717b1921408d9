"""Health check of a bin store (``qcore data check``).

Errors (the command exits non-zero): a missing or malformed calendar or instrument file, bins that are truncated,
have a bad header, run past the calendar or cannot be read (a folder, a special or unreadable file), negative prices
or volumes, instruments listed in ``all.txt`` without feature files, damage that reads as NaN (a feature folder or
bin whose name is not the lower-case one readers open, a field file missing for one instrument only, or for a few
while 90% of the instruments have it), an interrupted write, and a write journal naming anything but the store's
own files (reported without advising ``recover``, which refuses it), and a minute calendar whose stamps are not
Qlib's bar starts of the region's sessions (bar ends, written by older qcore versions, are named with the fix:
``qcore data restamp``). Warnings: minute days that miss bars, spans that end at midnight in a minute store (Qlib
drops their last day of bars), fields of one instrument covering
different ranges, fields some instruments lack, ``all.txt`` spans that disagree with the bins, long all-NaN runs,
rows where only some price fields are NaN, implausible jumps of the close, high below low or prices outside
``[low, high]``, a missing or NaN ``$factor``, infinite values, feature folders not listed in ``all.txt``, temporary
files and folders left by an interrupted write.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError
from qdata_cn.naming import (
    BIN_SUFFIX,
    check_freq,
    code_to_fname,
    date_format,
    field_order,
    fname_to_code,
    is_daily,
    symbol_problem,
)
from qdata_cn.sessions import bar_end_shift, bar_offsets, minute_count, off_session

SEVERITIES = ("error", "warning", "info")
PRICE_FIELDS = ("open", "high", "low", "close")
NON_NEGATIVE = ("open", "high", "low", "close", "vwap", "volume", "amount", "factor")
#: A field file missing for an instrument is an error when it is the only one without it, or when at least this
#: share of the instruments has the field (otherwise a warning: stores may hold fields for some instruments only).
MISSING_FIELD_ERROR = 0.9


@attrs.frozen
class Finding:
    """One result of the check."""

    severity: str
    check: str
    target: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        """As a plain mapping (for ``--json``)."""
        return attrs.asdict(self)


class _Report:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, severity: str, check: str, target: str, detail: str) -> None:
        self.findings.append(Finding(severity, check, target, detail))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def check_store(
    root: str | os.PathLike[str],
    freq: str = "day",
    *,
    max_jump: float = 0.5,
    max_nan_run: int | None = None,
    region: str = "cn",
) -> list[Finding]:
    """Check the store at ``root`` for ``freq``; returns the findings (errors first).

    :param max_jump: a close-to-close move of the adjusted close beyond this is an implausible jump.
    :param max_nan_run: all-NaN runs longer than this many rows are reported (default 250 days, or 5 days of bars).
    :param region: the market whose sessions a minute calendar's stamps must be bar starts of (``cn``, ``us``,
        ``tw``).
    """
    from qdata_cn.binstore import bin_extent, read_bin, read_calendar, read_instruments

    freq = check_freq(freq)
    root = Path(root).expanduser()
    report = _Report()
    if not root.is_dir():
        report.add("error", "store", str(root), "directory does not exist")
        return report.findings
    if max_nan_run is None:
        max_nan_run = 250 if is_daily(freq) else 5 * 240
    journal_ok = _check_journal(report, root)

    fmt = date_format(freq)
    cal_path = root / "calendars" / f"{freq}.txt"
    calendar: pd.DatetimeIndex | None = None
    try:
        calendar = read_calendar(cal_path, freq)
        if len(calendar) == 0:
            report.add("error", "calendar", _rel(cal_path, root), "calendar is empty")
            calendar = None
    except DataError as error:
        where = f" (line {error.row})" if error.row else ""
        report.add("error", "calendar", _rel(cal_path, root), error.message + where)

    universes: dict[str, dict[str, tuple[Any, ...]]] = {}
    inst_dir = root / "instruments"
    if not (inst_dir / "all.txt").exists():
        report.add("error", "instruments", "instruments/all.txt", "missing: every store needs it")
    for path in sorted(inst_dir.glob("*.txt")) if inst_dir.is_dir() else []:
        try:
            universes[path.stem.lower()] = read_instruments(path)
        except DataError as error:
            where = f" (line {error.row})" if error.row else ""
            report.add("error", "instruments", _rel(path, root), error.message + where)
    if calendar is not None and minute_count(freq) is not None:
        _check_minute_stamps(report, root, cal_path, calendar, freq, region, universes)
    listed = universes.get("all", {})
    for market, spans in universes.items():
        if market in ("all",):
            continue
        strangers = sorted(set(spans) - set(listed))
        if listed and strangers:
            report.add("warning", "instruments", f"instruments/{market}.txt",
                       f"{len(strangers)} symbols not in all.txt: {', '.join(strangers[:5])}")  # fmt: skip

    features = root / "features"
    suffix = f".{freq}{BIN_SUFFIX}"
    folders: dict[str, Path] = {}
    if features.is_dir():
        folders = _feature_folders(report, root, features)
    else:
        report.add("error", "features", "features/", "missing")
    n_cal = None if calendar is None else len(calendar)

    for symbol in sorted(set(listed) - set(folders)):
        report.add("error", "features", symbol, "listed in instruments/all.txt but has no feature folder")
    for symbol in sorted(set(folders) - set(listed)):
        if listed:
            report.add("warning", "instruments", symbol, "feature folder not listed in instruments/all.txt")

    checked = files = 0
    present: dict[str, set[str]] = {}
    for symbol in sorted(folders):
        folder = folders[symbol]
        paths, names = _bin_paths(report, root, folder, suffix)
        present[symbol] = names
        if not paths:
            if symbol in listed:
                report.add("error", "features", symbol, f"no *{suffix} files")
            continue
        checked += 1
        data: dict[str, tuple[int, np.ndarray]] = {}
        for path in paths:
            files += 1
            field = path.name[: -len(suffix)]
            try:
                bin_extent(path, n_cal)
                data[field] = read_bin(path, n_cal)
            except DataError as error:
                report.add("error", "bin", _rel(path, root), error.message)
        if data and calendar is not None:
            _check_instrument(report, symbol, data, calendar, listed.get(symbol), fmt, max_jump, max_nan_run)
    _check_missing_fields(report, root, folders, present, suffix)
    _check_temporaries(report, root, journal_ok)

    errors = sum(f.severity == "error" for f in report.findings)
    warnings = sum(f.severity == "warning" for f in report.findings)
    span = "" if calendar is None else f", calendar {calendar[0].strftime(fmt)}..{calendar[-1].strftime(fmt)} " \
        f"({len(calendar)} rows)"  # fmt: skip
    report.add("info", "summary", str(root),
               f"{checked} instruments, {files} {freq} files{span}; {errors} errors, {warnings} warnings")  # fmt: skip
    order = {s: k for k, s in enumerate(SEVERITIES)}
    return sorted(report.findings, key=lambda f: order[f.severity])


def _check_instrument(
    report: _Report,
    symbol: str,
    data: dict[str, tuple[int, np.ndarray]],
    calendar: pd.DatetimeIndex,
    spans: tuple[Any, ...] | None,
    fmt: str,
    max_jump: float,
    max_nan_run: int,
) -> None:
    ranges = {f: (s, s + len(v) - 1) for f, (s, v) in data.items() if len(v)}
    if not ranges:
        report.add("warning", "features", symbol, "every bin is empty")
        return
    lo = min(a for a, _ in ranges.values())
    hi = max(b for _, b in ranges.values())
    if len(set(ranges.values())) > 1:
        listing = ", ".join(f"{f} {a}..{b}" for f, (a, b) in sorted(ranges.items()))
        report.add("warning", "lengths", symbol, f"fields cover different calendar ranges: {listing}")
    if spans:  # compared by day: a store's spans serve all its frequencies (see sessions.span_bounds)
        first, last = spans[0].start, spans[-1].end
        if (first.normalize(), last.normalize()) != (calendar[lo].normalize(), calendar[hi].normalize()):
            span_fmt = "%Y-%m-%d" if first == first.normalize() and last == last.normalize() else fmt
            report.add("warning", "alignment", symbol,
                       f"all.txt says {first.strftime(span_fmt)}..{last.strftime(span_fmt)}, bins cover "
                       f"{calendar[lo].strftime(fmt)}..{calendar[hi].strftime(fmt)}")  # fmt: skip
    width = hi - lo + 1

    def full(field: str) -> np.ndarray | None:
        item = data.get(field)
        if item is None:
            return None
        arr = np.full(width, np.nan, dtype=np.float64)
        start, values = item
        arr[start - lo : start - lo + len(values)] = values
        return arr

    for field in field_order(data):
        values = data[field][1]
        if field in NON_NEGATIVE:
            neg = np.flatnonzero(values < 0)
            if neg.size:
                when = calendar[data[field][0] + int(neg[0])].strftime(fmt)
                report.add("error", "negative", symbol, f"{neg.size} negative {field} values (first {when})")
        inf = int(np.isinf(values).sum())
        if inf:
            report.add("warning", "infinite", symbol, f"{inf} infinite {field} values")

    close = full("close")
    if close is None:
        close = full(next(iter(field_order(data))))
    assert close is not None
    missing = np.isnan(close)
    if missing.all():
        report.add("warning", "nan", symbol, "every close is NaN")
        return
    longest = max(_runs(missing), key=lambda r: r[1] - r[0], default=None)
    if longest is not None and longest[1] - longest[0] + 1 > max_nan_run:
        a, b = longest
        report.add("warning", "nan-run", symbol, f"{b - a + 1} rows without data from "
                   f"{calendar[lo + a].strftime(fmt)} to {calendar[lo + b].strftime(fmt)}")  # fmt: skip
    prices = [p for p in (full(f) for f in PRICE_FIELDS) if p is not None]
    if len(prices) > 1:
        nan_count = np.sum([np.isnan(p) for p in prices], axis=0)
        partial = int(((nan_count > 0) & (nan_count < len(prices))).sum())
        if partial:
            detail = f"{partial} rows where only some of open/high/low/close are NaN"
            report.add("warning", "partial-nan", symbol, detail)
    high, low = full("high"), full("low")
    if high is not None and low is not None:
        tol = 1e-6 * np.nanmax(np.abs(high)) if np.isfinite(high).any() else 0.0
        with np.errstate(invalid="ignore"):
            inverted = int((high < low - tol).sum())
            outside = 0
            for name in ("open", "close"):
                arr = full(name)
                if arr is not None:
                    outside += int(((arr > high + tol) | (arr < low - tol)).sum())
        if inverted:
            report.add("warning", "ohlc", symbol, f"{inverted} rows with high < low")
        if outside:
            report.add("warning", "ohlc", symbol, f"{outside} open/close values outside [low, high]")
    valid = np.flatnonzero(~missing)
    if valid.size > 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            moves = close[valid[1:]] / close[valid[:-1]] - 1.0
        jumps = np.flatnonzero(np.abs(moves) > max_jump)
        if jumps.size:
            k = int(valid[jumps[0] + 1])
            report.add("warning", "jump", symbol, f"{jumps.size} close moves beyond ±{max_jump:.0%} (first "
                       f"{calendar[lo + k].strftime(fmt)}: {moves[jumps[0]]:+.1%})")  # fmt: skip
    factor = full("factor")
    if factor is None:
        report.add("warning", "factor", symbol, "no $factor: raw prices and lot rounding are unavailable")
    else:
        gaps = int((np.isnan(factor) & ~missing).sum())
        if gaps:
            report.add("warning", "factor", symbol, f"{gaps} rows with a close but no $factor")


def _check_minute_stamps(
    report: _Report,
    root: Path,
    cal_path: Path,
    calendar: pd.DatetimeIndex,
    freq: str,
    region: str,
    universes: dict[str, dict[str, tuple[Any, ...]]],
) -> None:
    """Minute stamps must be Qlib's bar starts, days complete, and spans must keep each last day's bars."""
    try:
        starts = bar_offsets(freq, region)
    except ValueError as error:
        report.add("error", "calendar", _rel(cal_path, root), str(error))
        return
    target = _rel(cal_path, root)
    outside = off_session(calendar, freq, region)
    if bar_end_shift(calendar, freq, region):
        report.add("error", "stamps", target,
                   f"the calendar stamps {freq} bars by their end ({calendar[0]:%H:%M} … {calendar[-1]:%H:%M}), as "
                   "qcore did before; Qlib and qcore stamp minute bars by their start (cn: 09:30 … 14:59), so every "
                   "bar reads one minute late and Qlib's minute code misplaces or rejects them. Run `qcore data "
                   "restamp STORE` to rewrite the calendar and spans (the bins stay as they are)")  # fmt: skip
    elif outside.any():
        k = int(outside.argmax())
        report.add("error", "stamps", target,
                   f"{int(outside.sum())} stamps are not {freq} bar starts of the {region} sessions (first "
                   f"{calendar[k]:%Y-%m-%d %H:%M:%S}, line {k + 1}); Qlib's minute resampling (cal_sam_minute) "
                   "files them under the wrong bar")  # fmt: skip
    else:
        days, counts = np.unique(calendar.normalize().asi8, return_counts=True)
        short = np.flatnonzero(counts != len(starts))
        if short.size:
            k = int(short[0])
            first = pd.Timestamp(days[k])
            report.add("warning", "stamps", target,
                       f"{short.size} days do not hold all {len(starts)} {freq} bars (first {first:%Y-%m-%d}: "
                       f"{counts[k]}); Qlib's resampled calendars assume full days")  # fmt: skip
    for market, spans in sorted(universes.items()):
        midnight = sum(1 for items in spans.values() for span in items if span.end == span.end.normalize())
        if midnight:
            report.add("warning", "spans", f"instruments/{market}.txt",
                       f"{midnight} spans end at midnight (a date without a time): Qlib keeps no {freq} bar of their "
                       "last day (it drops rows after a span's end); `qcore data restamp STORE` moves the ends to "
                       "the day's last bar")  # fmt: skip


def _check_journal(report: _Report, root: Path) -> bool:
    """Report a pending write journal; ``False`` when the journal is one that ``recover`` refuses."""
    from qdata_cn.writer import JOURNAL_NAME, JournalError, read_journal

    try:
        plan = read_journal(root)
    except JournalError as error:
        report.add("error", "journal", JOURNAL_NAME,
                   f"the write journal is not one qcore wrote for this store: {error.entry} {error.problem}. Do not "
                   "use this store as it is: `qcore data recover` refuses to replay such a journal (it would move or "
                   "remove files it names); the store may be damaged or come from an untrusted source, so compare it "
                   "with where it came from, and delete the journal by hand only once its files check out")  # fmt: skip
        return False
    if plan is not None:
        report.add("error", "journal", JOURNAL_NAME,
                   f"an interrupted write is pending ({len(plan['renames'])} renames, {len(plan['deletes'])} removals "
                   "inside the store); run `qcore data recover` to complete it")  # fmt: skip
    return True


def _feature_folders(report: _Report, root: Path, features: Path) -> dict[str, Path]:
    """``{SYMBOL: folder}`` of the folders readers can find; misnamed folders are errors (reads of them are NaN)."""
    found: dict[str, Path] = {}
    try:
        with os.scandir(features) as it:
            entries = sorted((e.name, e.is_dir()) for e in it if not e.name.startswith("."))
    except OSError as error:
        report.add("error", "features", "features/", f"cannot list the folder: {error.strerror or error}")
        return found
    for name, is_dir in entries:
        if not is_dir:
            continue
        path = features / name
        code = fname_to_code(name)
        problem = symbol_problem(code)
        if problem is not None:
            report.add("error", "features", _rel(path, root), f"folder name is not a symbol: {problem}")
            continue
        expected = code_to_fname(code)
        if name != expected:
            canonical = features / expected
            if canonical.is_dir() and os.path.samefile(canonical, path):  # a case-insensitive file system
                report.add("warning", "features", _rel(path, root),
                           f"folder name is not the lower-case symbol: readers on case-sensitive file systems look "
                           f"for features/{expected}/ and read NaN")  # fmt: skip
            else:
                report.add("error", "features", _rel(path, root),
                           f"folder name is not what readers open for {code} (features/{expected}/, lower case): "
                           f"every read of {code} from it is NaN; rename it")  # fmt: skip
                continue
        if code in found:
            report.add("error", "features", _rel(path, root), f"a second folder for {code}")
            continue
        found[code] = path
    return found


def _bin_paths(report: _Report, root: Path, folder: Path, suffix: str) -> tuple[list[Path], set[str]]:
    """The readable ``*<suffix>`` files of an instrument folder, and the fields it has an entry for (readable or not).

    Folders, special files and names readers do not open (not lower case) where bins should be are errors.
    """
    paths: list[Path] = []
    names: set[str] = set()
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as error:
        report.add("error", "features", _rel(folder, root), f"cannot list the folder: {error.strerror or error}")
        return paths, names
    for entry in entries:
        name = entry.name
        if not name.lower().endswith(suffix) or name.startswith("."):
            continue
        names.add(name[: -len(suffix)].lower())
        path = Path(entry.path)
        if name != name.lower():
            report.add("error", "bin", _rel(path, root),
                       f"file name is not lower case: readers open {name.lower()} and read NaN; rename it")  # fmt: skip
            continue
        try:
            mode = os.stat(entry.path).st_mode
        except OSError as error:
            report.add("error", "bin", _rel(path, root), f"cannot read: {error.strerror or error}")
            continue
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            report.add("error", "bin", _rel(path, root), f"is {what} where a feature file should be")
            continue
        paths.append(path)
    return paths, names


def _check_missing_fields(
    report: _Report, root: Path, folders: dict[str, Path], present: dict[str, set[str]], suffix: str
) -> None:
    """A field file one instrument lacks while the others have it reads as NaN without a word: report it."""
    with_bins = {s: f for s, f in present.items() if f}
    if len(with_bins) < 2:
        return
    counts: dict[str, int] = {}
    for names in with_bins.values():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    total = len(with_bins)
    for field in field_order(counts):
        lacking = sorted(s for s, names in with_bins.items() if field not in names)
        if not lacking:
            continue
        if len(lacking) == 1 or counts[field] >= MISSING_FIELD_ERROR * total:
            for symbol in lacking:
                path = _rel(folders[symbol] / f"{field}{suffix}", root)
                report.add("error", "missing-field", path,
                           f"missing while {counts[field]} of {total} instruments have ${field}: reads of {symbol}'s "
                           f"${field} are NaN (a deleted file?)")  # fmt: skip
        else:
            sample = ", ".join(_rel(folders[s] / f"{field}{suffix}", root) for s in lacking[:3])
            more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
            report.add("warning", "missing-field", f"${field}",
                       f"{len(lacking)} of {total} instruments have no {field}{suffix} (reads are NaN): "
                       f"{sample}{more}")  # fmt: skip


def _check_temporaries(report: _Report, root: Path, journal_ok: bool) -> None:
    from qdata_cn.writer import find_temporaries

    stale = find_temporaries(root)
    if stale:
        advice = "`qcore data recover` removes them" if journal_ok else \
            "`qcore data recover` removes them once the journal problem above is resolved"  # fmt: skip
        report.add("warning", "temporary", stale[0],
                   f"{len(stale)} temporary files or folders left by an interrupted write (first: {stale[0]}); "
                   f"{advice}")  # fmt: skip


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def format_table(findings: Iterable[Finding]) -> str:
    """Findings as an aligned text table."""
    rows = [("SEVERITY", "CHECK", "TARGET", "DETAIL")] + [(f.severity, f.check, f.target, f.detail) for f in findings]
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows
    )
