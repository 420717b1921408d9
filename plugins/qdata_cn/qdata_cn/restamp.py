"""``qcore data restamp``: bring a minute store written by an older qcore to Qlib's stamps, atomically.

Older qcore versions stamped minute bars by their end (09:31 … 11:30, 13:01 … 15:00) and wrote date-only
instrument spans. Both misplace minute bars in Qlib (see :mod:`qdata_cn.sessions`): the calendar is rewritten to
bar starts (every stamp one bar earlier; the bins are indexed by calendar row and stay as they are), and the spans
of every ``instruments/*.txt`` become :func:`~qdata_cn.sessions.span_bounds` (midnight of the first day to the last
bar of the last day). Everything happens in one locked :class:`~qdata_cn.writer.StoreTransaction`: a failure
leaves the store as it was, and a second run changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qcore.errors import DataError
from qdata_cn.naming import HIGH_FREQ_FORMAT, check_freq
from qdata_cn.sessions import bar_end_shift, check_region, minute_count, off_session, restamped, span_bounds


def restamp_store(
    root: str | os.PathLike[str], freq: str = "1min", region: str = "cn", *, lock_timeout: float = 0.0
) -> dict[str, Any]:
    """Rewrite a bar-end minute calendar to bar starts and the instrument spans to minute-safe bounds.

    Returns ``{"calendar": rows restamped (0 if already bar starts), "instrument_files": [names rewritten]}``.

    :raises DataError: ``freq`` is not a minute frequency or has no calendar, or the calendar holds stamps that
        are neither bar starts nor bar ends of ``region``'s sessions (nothing is changed then).
    """
    from qdata_cn.binstore import read_calendar, read_instruments
    from qdata_cn.writer import StoreTransaction, format_calendar, format_instruments

    freq = check_freq(freq)
    if minute_count(freq) is None:
        raise DataError(f"restamp rewrites minute calendars; {freq!r} is not a minute frequency")
    try:
        region = check_region(region)
    except ValueError as error:
        raise DataError(str(error)) from None
    root = Path(root).expanduser()
    cal_path = root / "calendars" / f"{freq}.txt"
    if not cal_path.is_file():
        raise DataError(f"no {freq} calendar to restamp", path=str(cal_path))
    summary: dict[str, Any] = {"store": str(root), "freq": freq, "calendar": 0, "instrument_files": []}
    with StoreTransaction(root, lock_timeout=lock_timeout) as txn:
        calendar = read_calendar(cal_path, freq)
        if bar_end_shift(calendar, freq, region):
            calendar = restamped(calendar, freq)
            txn.write_text(f"calendars/{freq}.txt", format_calendar(calendar, HIGH_FREQ_FORMAT))
            summary["calendar"] = len(calendar)
        outside = off_session(calendar, freq, region)
        if outside.any():
            k = int(outside.argmax())
            raise DataError(
                f"{outside.sum()} stamps are neither bar starts nor bar ends of the {region} sessions (first "
                f"{calendar[k]:%Y-%m-%d %H:%M:%S}); restamp cannot tell where those bars belong",
                path=str(cal_path),
                row=k + 1,
            )
        folder = root / "instruments"
        for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            spans = read_instruments(path)
            fixed = {s: [span_bounds(x.start, x.end, region) for x in items] for s, items in spans.items()}
            text = format_instruments(fixed, HIGH_FREQ_FORMAT)
            if text != path.read_text(encoding="utf-8"):
                txn.write_text(f"instruments/{path.name}", text)
                summary["instrument_files"].append(path.name)
    return summary
