"""Dates given by a user (a CLI option, a config value) parsed strictly into :class:`pandas.Timestamp`.

>>> parse_date("2020-01-31", "--start")
Timestamp('2020-01-31 00:00:00')

Accepted: ``YYYY-MM-DD`` (also with ``/`` or ``.`` separators, or ``YYYYMMDD``), optionally followed by a time
``HH:MM[:SS[.fraction]]`` after a space or ``T``; :class:`datetime.date`, :class:`datetime.datetime`,
:class:`numpy.datetime64` and :class:`pandas.Timestamp` values. Refused, with a :class:`DateError` naming the
argument or key: impossible dates (``2020-02-30``), words (``yesterday``, ``now``), empty text, numbers (``2020``
read from YAML), day-first or month-first forms (``01/02/2020`` is ambiguous), time-zone-aware values, and years
outside :data:`MIN_YEAR`..:data:`MAX_YEAR` (what a nanosecond timestamp holds).

pandas is imported when a date is parsed, not when this module is imported.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from qcore.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

#: The first and last years a date may have (every day of them fits a nanosecond :class:`pandas.Timestamp`).
MIN_YEAR = 1678
MAX_YEAR = 2261

_ISO = re.compile(
    r"(?P<year>\d{4})(?P<sep>[-/.]?)(?P<month>\d{1,2})(?P=sep)(?P<day>\d{1,2})"
    r"(?:[ T](?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?)?"
)
_TZ_SUFFIX = re.compile(r"(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
_EXAMPLE = "a date such as 2020-01-31"


class DateError(ConfigError):
    """A date given by the user is not a valid calendar date; the message names the argument or key."""


def _fail(what: str, value: Any, label: str) -> DateError:
    shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60] + "...")
    return DateError(f"expected {_EXAMPLE}, got {shown} ({what})", path=label)


def _check_year(year: int, value: Any, label: str) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise _fail(f"year {year} is out of range {MIN_YEAR}..{MAX_YEAR}", value, label)


def _from_text(text: str, value: Any, label: str) -> dt.datetime:
    stripped = text.strip()
    if not stripped:
        raise _fail("empty date", value, label)
    if _TZ_SUFFIX.search(stripped) and _ISO.match(stripped):
        raise _fail("time-zone-aware dates are not supported: give the exchange's local date", value, label)
    match = _ISO.fullmatch(stripped)
    if match is None:
        raise _fail("not a date", value, label)
    if not match.group("sep") and (len(match.group("month")) != 2 or len(match.group("day")) != 2):
        raise _fail("not a date: write YYYYMMDD with a two-digit month and day", value, label)
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items() if k not in ("sep", "fraction")}
    _check_year(parts["year"], value, label)
    fraction = match.group("fraction") or ""
    micro = int((fraction + "000000")[:6]) if fraction else 0
    try:
        return dt.datetime(parts["year"], parts["month"], parts["day"], parts["hour"], parts["minute"],
                           parts["second"], micro)  # fmt: skip
    except ValueError as exc:
        raise _fail(f"invalid date: {exc}", value, label) from None


def _from_object(value: Any, label: str) -> dt.datetime | pd.Timestamp:
    import numpy as np
    import pandas as pd

    if value is pd.NaT or (isinstance(value, np.datetime64) and np.isnat(value)):
        raise _fail("not a date: NaT", value, label)
    if isinstance(value, np.datetime64):
        try:
            value = pd.Timestamp(value)
        except (ValueError, OverflowError):
            raise _fail("out of range", value, label) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise _fail("time-zone-aware dates are not supported: give the exchange's local date", value, label)
        _check_year(value.year, value, label)
        return value
    assert isinstance(value, dt.date)
    _check_year(value.year, value, label)
    return dt.datetime(value.year, value.month, value.day)


def parse_date(value: Any, label: str = "date") -> pd.Timestamp:
    """``value`` (text, a date, a datetime, a Timestamp) as a tz-naive nanosecond :class:`pandas.Timestamp`.

    :param value: what the user gave.
    :param label: what to name in an error: the option (``--start``) or key path
        (``dataset.segments.test.1``).
    :raises DateError: (a :class:`~qcore.errors.ConfigError`) naming ``label`` when ``value`` is not a valid date.
    """
    import numpy as np
    import pandas as pd

    if isinstance(value, bool) or value is None:
        raise _fail("not a date", value, label)
    if isinstance(value, str):
        parsed: Any = _from_text(value, value, label)
    elif isinstance(value, (dt.date, np.datetime64)):
        parsed = _from_object(value, label)
    else:
        raise _fail(f"not a date: {type(value).__name__}", value, label)
    stamp = pd.Timestamp(parsed)
    return stamp.as_unit("ns") if stamp.unit != "ns" else stamp


def parse_optional_date(value: Any, label: str = "date") -> pd.Timestamp | None:
    """:func:`parse_date`, with ``None`` passed through (an omitted bound)."""
    return None if value is None else parse_date(value, label)
