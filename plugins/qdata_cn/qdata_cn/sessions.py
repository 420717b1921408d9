"""Trading sessions and minute calendars, stamped the way Qlib stamps them.

Qlib labels a minute bar by its **start**: the China A-share day has 240 one-minute bars stamped 09:30 … 11:29 and
13:00 … 14:59 (``qlib.utils.time.get_min_cal``, ``cn_data_1min``, the collectors'
``generate_minutes_calendar_from_daily``), so the bar stamped 09:30 covers 09:30:00-09:30:59. An ``N``-minute
calendar keeps every ``N``-th of those stamps (09:30, 10:00, … for 30 minutes) and a 1-minute stamp belongs to the
last ``N``-minute stamp at or before it (``cal_sam_minute``). The same holds for Qlib's other regions (``us``
09:30-15:59, ``tw`` 09:00-13:29).

Stamps at bar ends (09:31 … 11:30, 13:01 … 15:00), which qcore wrote before, put each bar one minute late: Qlib's
``time_to_day_index`` rejects 15:00, and a 30-minute window ``[10:00, 10:29]`` holds the bars of 09:59 … 10:28.
:func:`bar_end_shift` recognises such calendars and :func:`restamped` turns them into bar starts.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: Sessions per region as ``(open, close)`` clock times, the close exclusive (``qlib.utils.time``'s ``*_TIME``).
SESSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "cn": (("09:30", "11:30"), ("13:00", "15:00")),
    "us": (("09:30", "16:00"),),
    "tw": (("09:00", "13:30"),),
}
#: One-minute bars in a China A-share session day.
BARS_PER_DAY = 240
_MINUTE_RE = re.compile(r"^([0-9]*)(minute|min)$")
_NS_PER_MIN = 60 * 10**9


def check_region(region: str) -> str:
    """``region`` lower-cased if Qlib knows its sessions (``cn``, ``us``, ``tw``), else a :class:`ValueError`."""
    key = str(region).strip().lower()
    if key not in SESSIONS:
        raise ValueError(f"unknown region {region!r} (sessions are known for {', '.join(SESSIONS)})")
    return key


def minute_count(freq: str) -> int | None:
    """``N`` of an ``N``-minute frequency (``1min``, ``5min``, ``30minute``), ``None`` for any other frequency."""
    match = _MINUTE_RE.match(str(freq).strip().lower())
    if match is None:
        return None
    count = int(match.group(1)) if match.group(1) else 1
    return count if count > 0 else None


def session_minutes(region: str = "cn", shift: int = 0) -> np.ndarray:
    """Offsets from midnight (``timedelta64[ns]``) of every one-minute bar start of a session day.

    ``get_min_cal(shift, region)`` of Qlib: 240 offsets for ``cn`` (09:30 … 11:29, 13:00 … 14:59); ``shift``
    moves them ``shift`` minutes earlier (Qlib's ``min_data_shift``, 0 by default).
    """
    parts = []
    for start, end in SESSIONS[check_region(region)]:
        lo, hi = pd.Timedelta(f"{start}:00"), pd.Timedelta(f"{end}:00")
        parts.append(pd.timedelta_range(lo, hi - pd.Timedelta(minutes=1), freq="1min").values)
    return (np.concatenate(parts) - np.timedelta64(shift, "m")).astype("timedelta64[ns]")


def bar_offsets(freq: str = "1min", region: str = "cn") -> np.ndarray:
    """Offsets from midnight of the bar starts of an ``N``-minute frequency: every ``N``-th session minute."""
    return session_minutes(region)[:: _count_or_raise(freq)]


def minute_calendar(days: object, freq: str = "1min", region: str = "cn") -> pd.DatetimeIndex:
    """The ``freq`` calendar of trading ``days``: every bar start of each day's sessions (240 a day for 1min cn)."""
    base = pd.DatetimeIndex(days).normalize().as_unit("ns").values
    stamps = (base[:, None] + bar_offsets(freq, region)[None, :]).ravel()
    return pd.DatetimeIndex(stamps, name="datetime")


def time_of_day(stamps: object) -> np.ndarray:
    """Nanoseconds since midnight of each timestamp (``int64``)."""
    values = pd.DatetimeIndex(stamps).as_unit("ns").asi8
    return values - pd.DatetimeIndex(stamps).normalize().as_unit("ns").asi8


def off_session(stamps: object, freq: str = "1min", region: str = "cn") -> np.ndarray:
    """A mask of the timestamps that are not a bar start of ``freq`` in ``region``'s sessions."""
    allowed = bar_offsets(freq, region).astype(np.int64)
    return ~np.isin(time_of_day(stamps), allowed)


def bar_end_shift(stamps: object, freq: str = "1min", region: str = "cn") -> bool:
    """Whether ``stamps`` label bars by their end: none is a bar start, each is one bar after a bar start.

    A calendar of bar starts, or one that mixes both, answers ``False``.
    """
    count = minute_count(freq)
    if count is None or len(pd.DatetimeIndex(stamps)) == 0:
        return False
    tod = time_of_day(stamps)
    allowed = bar_offsets(freq, region).astype(np.int64)
    step = count * _NS_PER_MIN
    return bool(np.isin(tod - step, allowed).all() and not np.isin(tod, allowed).all())


def restamped(stamps: object, freq: str = "1min") -> pd.DatetimeIndex:
    """Bar-end stamps moved to the bar starts (one bar, ``N`` minutes, earlier)."""
    index = pd.DatetimeIndex(stamps).as_unit("ns")
    return pd.DatetimeIndex(index - pd.Timedelta(minutes=_count_or_raise(freq)), name="datetime")


def resample_minute_calendar(
    calendar: object, freq: str, region: str = "cn", shift: int = 0
) -> pd.DatetimeIndex:
    """The ``freq`` (``N``-minute) calendar Qlib derives from a finer minute calendar (``resam_calendar``).

    Each stamp goes to the last ``N``-minute bar start at or before its time of day on the same date
    (``cal_sam_minute``); repeats collapse. Like Qlib, a stamp before the first session minute wraps to the day's
    last bar (``bisect_right(...) - 1`` is -1): a calendar that :func:`off_session` passes never has one.
    """
    starts = session_minutes(region, shift)[:: _count_or_raise(freq)].astype(np.int64)
    index = pd.DatetimeIndex(calendar).as_unit("ns")
    if len(index) == 0:
        return pd.DatetimeIndex([], dtype="datetime64[ns]", name="datetime")
    midnight = index.normalize().asi8
    slot = np.searchsorted(starts, index.asi8 - midnight, side="right") - 1
    values = np.unique(midnight + starts[slot])  # slot -1 picks the last start, as Qlib's list indexing does
    return pd.DatetimeIndex(values.astype("datetime64[ns]"), name="datetime")


def span_bounds(first: object, last: object, region: str = "cn") -> tuple[pd.Timestamp, pd.Timestamp]:
    """Membership span bounds of a store that holds minute bars: ``first``'s day from midnight to the start of
    ``last``'s day's last one-minute bar (``2020-01-02 00:00:00`` … ``2020-06-30 14:59:00`` for ``cn``).

    Qlib keeps an instrument's rows only inside its spans (``inst_calculator``) and one ``instruments/`` folder
    serves every frequency of a store: a date-only end (midnight) drops the whole last day of minute bars, a start
    at 09:30 drops the first daily bar. These bounds keep both.
    """
    start = pd.Timestamp(first).normalize()
    end = pd.Timestamp(last).normalize() + pd.Timedelta(int(session_minutes(region)[-1].astype(np.int64)))
    return start, end


def _count_or_raise(freq: str) -> int:
    count = minute_count(freq)
    if count is None:
        raise ValueError(f"{freq!r} is not a minute frequency")
    return count
