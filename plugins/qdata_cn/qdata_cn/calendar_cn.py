"""An approximate China A-share trading calendar (the intraday sessions are in :mod:`qdata_cn.sessions`).

Trading days are weekdays minus fixed holiday blocks each year: New Year's Day, Spring Festival eve to the fifth
day after it, Qingming (5 April), Labour Day (1-3 May) and National Day (1-7 October). It matches the golden
market's calendar and is close to, but not exactly, the exchanges' (which also close for Dragon Boat and
Mid-Autumn and shift days around weekends). Use a store's own ``calendars/day.txt`` for real data.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from qdata_cn.sessions import BARS_PER_DAY, minute_calendar

#: Spring Festival (lunar new year's day), 2000-2040.
SPRING_FESTIVAL = {
    2000: "02-05", 2001: "01-24", 2002: "02-12", 2003: "02-01", 2004: "01-22", 2005: "02-09", 2006: "01-29",
    2007: "02-18", 2008: "02-07", 2009: "01-26", 2010: "02-14", 2011: "02-03", 2012: "01-23", 2013: "02-10",
    2014: "01-31", 2015: "02-19", 2016: "02-08", 2017: "01-28", 2018: "02-16", 2019: "02-05", 2020: "01-25",
    2021: "02-12", 2022: "02-01", 2023: "01-22", 2024: "02-10", 2025: "01-29", 2026: "02-17", 2027: "02-06",
    2028: "01-26", 2029: "02-13", 2030: "02-03", 2031: "01-23", 2032: "02-11", 2033: "01-31", 2034: "02-19",
    2035: "02-08", 2036: "01-28", 2037: "02-15", 2038: "02-04", 2039: "01-24", 2040: "02-12",
}  # fmt: skip

__all__ = ["BARS_PER_DAY", "SPRING_FESTIVAL", "cn_holidays", "cn_trading_days", "minute_calendar"]


def cn_holidays(year: int) -> list[dt.date]:
    """The holiday block dates of ``year`` (weekends included where a block spans them)."""
    days = [dt.date(year, 1, 1), dt.date(year, 4, 5)]
    days += [dt.date(year, 5, d) for d in (1, 2, 3)]
    days += [dt.date(year, 10, d) for d in range(1, 8)]
    if year in SPRING_FESTIVAL:
        month, day = (int(x) for x in SPRING_FESTIVAL[year].split("-"))
        festival = dt.date(year, month, day)
        days += [festival + dt.timedelta(days=k) for k in range(-1, 6)]
    return days


def cn_trading_days(start: object, end: object = None, count: int | None = None) -> pd.DatetimeIndex:
    """CN trading days from ``start``: up to ``end`` (inclusive), or the first ``count`` of them."""
    first = pd.Timestamp(start).normalize()
    if end is None:
        if count is None:
            raise ValueError("give end or count")
        last = first + pd.Timedelta(days=int(count * 1.6) + 30)
    else:
        last = pd.Timestamp(end).normalize()
    days = pd.bdate_range(first, last)
    holidays: set[dt.date] = set()
    for year in range(first.year, last.year + 1):
        holidays.update(cn_holidays(year))
    keep = np.array([d.date() not in holidays for d in days], dtype=bool)
    out = days[keep]
    if count is not None:
        out = out[:count]
    return pd.DatetimeIndex(out, name="datetime").as_unit("ns")
