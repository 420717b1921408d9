"""Columns evaluated on intraday bars, resampled to one row per day (Qlib's multi-frequency handlers).

Qlib's multi-frequency configs evaluate a column group on the store's 1-minute bars and hand each instrument's
minute frame to an ``inst_processor`` that turns it into daily rows: ``resample("1d").last()`` (each day's last
non-NaN value of each column) or the bar at a time of day (``14:56``). Here the same rules run over the whole panel
at once: the group is evaluated with an engine reading the intraday bars (:meth:`ExpressionEngine.at_freq
<qcore.expr.engine.ExpressionEngine.at_freq>`), a block of days at a time so that memory stays bounded, and each
``(bars, instruments)`` panel is reduced per day with numpy (no loop per instrument or day).

Rows: a day has a row for an instrument when at least one of its bars that day is a member of the universe (the
``last`` rule), or when its bar at the ``at`` time is (the ``at`` rule). Each row is stamped with the date
(midnight), as the day calendar stamps it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError
from qcore.types import Resample

#: Bytes of float32 minute panels held at once while a group is evaluated (the days are cut into blocks to fit).
BLOCK_BYTES = 256 * 2**20


def _day_starts(stamps: pd.DatetimeIndex) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The days of sorted intraday ``stamps`` and the position of each day's first bar."""
    days = stamps.normalize()
    first = np.flatnonzero(np.r_[True, days[1:] != days[:-1]]) if len(days) else np.zeros(0, dtype=np.int64)
    return days[first], first


def reduce_last(values: np.ndarray, member: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each day's last non-NaN member value per instrument (NaN when the day has none) and whether the day has a
    row (any member bar); ``values`` and ``member`` are ``(bars, instruments)``, ``starts`` each day's first bar."""
    rows = np.arange(values.shape[0])[:, None]
    position = np.where(member & ~np.isnan(values), rows, -1)
    last = np.maximum.reduceat(position, starts, axis=0)
    columns = np.broadcast_to(np.arange(values.shape[1]), last.shape)
    out = np.where(last >= 0, values[np.maximum(last, 0), columns], np.nan).astype(np.float32, copy=False)
    has_row = np.logical_or.reduceat(member, starts, axis=0)
    return out, has_row


def _at_rows(stamps: pd.DatetimeIndex, at: str) -> np.ndarray:
    """Positions of the bars stamped at time of day ``at`` (``HH:MM``)."""
    hour, minute = (int(part) for part in at.split(":"))
    return np.flatnonzero((stamps.hour == hour) & (stamps.minute == minute) & (stamps.second == 0))


def check_resample_freq(provider: Any, rule: Resample) -> tuple[str, str] | None:
    """Why ``provider`` cannot serve ``rule``, as ``(what is at fault, why)``: ``("store", ...)`` when it has no
    calendar of the rule's bars, ``("rule", ...)`` when no bar of that calendar is at the rule's ``at`` time; else
    None."""
    from qcore.errors import DataError

    try:
        calendar = provider.calendar(rule.freq)
    except DataError as exc:
        return "store", f"the store has no {rule.freq} bars ({exc.message})"
    if not len(calendar):
        return "store", f"the store's {rule.freq} calendar is empty"
    if rule.rule == "at" and not len(_at_rows(calendar, rule.at or "")):
        return "rule", f"the store's {rule.freq} calendar has no bar at {rule.at}"
    return None


def evaluate_resampled(
    engine: Any,
    expressions: Mapping[str, str],
    rule: Resample,
    instruments: str | Sequence[str],
    start: object,
    end: object,
) -> pd.DataFrame:
    """``expressions`` evaluated on ``rule.freq`` bars from ``start``'s day to ``end``'s day (whole days) and
    resampled to days by ``rule``: a float32 frame indexed ``(datetime, instrument)`` (dates), one column each."""
    from qcore.types import membership_mask

    if not hasattr(engine, "at_freq"):
        raise ConfigError(f"this engine cannot read {rule.freq} bars (resampled columns need an ExpressionEngine)")
    intraday = engine.at_freq(rule.freq)
    names = list(expressions)
    plan = intraday.plan(dict(expressions))
    calendar = intraday.provider.calendar(rule.freq)
    first = pd.Timestamp(start).normalize()
    last = pd.Timestamp(end).normalize() + pd.Timedelta(days=1) - pd.Timedelta(1)
    lo, hi = int(calendar.searchsorted(first, "left")), int(calendar.searchsorted(last, "right"))
    days, starts = _day_starts(calendar[lo:hi])
    universe = intraday.universe(instruments, calendar[lo], calendar[hi - 1]) if hi > lo else {}
    width = max(1, len(universe)) * max(1, len(names)) * 4
    per_block = max(1, BLOCK_BYTES // (width * max(1, (hi - lo) // max(1, len(days)))))
    parts = []
    for b in range(0, len(days), per_block):
        block_lo = lo + int(starts[b])
        block_hi = lo + (int(starts[b + per_block]) if b + per_block < len(days) else hi - lo)
        stamps = calendar[block_lo:block_hi]
        panel, _ = intraday.evaluate_panel(plan, instruments, stamps[0], stamps[-1])
        member = membership_mask(universe, panel.dates, panel.instruments)
        block_days, block_starts = _day_starts(panel.dates)
        if rule.rule == "last":
            reduced = [reduce_last(panel[f"e{i}"], member, block_starts) for i in range(len(names))]
            has_row = reduced[0][1] if reduced else np.zeros((len(block_days), len(panel.instruments)), bool)
            values = [r[0] for r in reduced]
            row_days = block_days
        else:
            at = _at_rows(panel.dates, rule.at or "")
            has_row = member[at]
            values = [np.asarray(panel[f"e{i}"], dtype=np.float32)[at] for i in range(len(names))]
            row_days = panel.dates[at].normalize()
        t, n = np.nonzero(has_row)
        index = pd.MultiIndex(levels=[row_days, pd.Index(panel.instruments, dtype=object)], codes=[t, n],
                              names=["datetime", "instrument"], verify_integrity=False)  # fmt: skip
        block = np.empty((len(t), len(names)), dtype=np.float32)
        for i, value in enumerate(values):
            block[:, i] = value[t, n]
        parts.append(pd.DataFrame(block, index=index, columns=names, copy=False))
    if not parts:
        empty = pd.MultiIndex.from_arrays([pd.DatetimeIndex([]), pd.Index([], dtype=object)],
                                          names=["datetime", "instrument"])  # fmt: skip
        return pd.DataFrame(np.empty((0, len(names)), dtype=np.float32), index=empty, columns=names)
    return pd.concat(parts) if len(parts) > 1 else parts[0]
