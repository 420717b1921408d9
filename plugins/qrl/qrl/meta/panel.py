"""Cleaning a normalised source frame, aligning it to one calendar, and a data provider over the aligned panel.

Aligning never fills backwards: a ticker has no price before its first bar, and a day it has no bar (or a bar its
source marks suspended) is a NaN row of its columns, which :func:`qrl.data.load_daily` turns into a tradable mask.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError
from qcore.types import Panel, Span
from qrl.meta.formats import PRICES

#: The fields of an aligned panel (Qlib's convention: prices adjusted by ``factor``, volume divided by it).
FIELDS = ("open", "high", "low", "close", "volume", "factor")


@attrs.frozen
class CleanReport:
    """What :func:`clean` changed: exact duplicate rows dropped and rows without a positive close dropped."""

    duplicates: int = 0
    no_close: int = 0


def clean(frame: pd.DataFrame) -> tuple[pd.DataFrame, CleanReport]:
    """Sort by instrument and date, drop exact duplicates and rows without a positive close, fill a missing
    ``factor`` forward within its instrument (1 before the first). Two different bars of one instrument on one
    date are a :class:`DataError` naming them."""
    out = frame.sort_values(["instrument", "date"], kind="stable").reset_index(drop=True)
    n = len(out)
    out = out.drop_duplicates().reset_index(drop=True)
    duplicates = n - len(out)
    clash = out.duplicated(["instrument", "date"], keep=False)
    if clash.any():
        row = out[clash].iloc[0]
        raise DataError(f"two different bars of {row['instrument']} on {row['date']}: fix the source files")
    close = out["close"].to_numpy(dtype=np.float64)
    keep = np.isfinite(close) & (close > 0)
    out = out[keep].reset_index(drop=True)
    factor = out["factor"].where(np.isfinite(out["factor"]) & (out["factor"] > 0))
    out["factor"] = factor.groupby(out["instrument"]).ffill().fillna(1.0)
    return out, CleanReport(duplicates, int((~keep).sum()))


def align(frame: pd.DataFrame, calendar: Sequence[object] | None = None) -> Panel:
    """A ``(dates, instruments)`` panel of :data:`FIELDS` on ``calendar`` (default: every date any instrument has
    a bar), instruments sorted. A cell without a bar, or a bar the source marks not tradable, is NaN (volume 0 on a
    suspension). Dates outside ``calendar`` are a :class:`DataError`."""
    if frame.empty:
        raise DataError("no bars to align")
    dates = pd.DatetimeIndex(sorted(frame["date"].unique())) if calendar is None else pd.DatetimeIndex(calendar)
    instruments = tuple(sorted(frame["instrument"].unique()))
    rows = dates.get_indexer(pd.DatetimeIndex(frame["date"]))
    if (rows < 0).any():
        raise DataError(f"bar dated {frame['date'].iloc[int(np.argmax(rows < 0))]} is not in the calendar")
    cols = pd.Index(instruments).get_indexer(frame["instrument"])
    tradable = frame["tradable"].to_numpy(dtype=bool)
    factor = frame["factor"].to_numpy(dtype=np.float64)
    data: dict[str, np.ndarray] = {}
    for name in FIELDS:
        grid = np.full((len(dates), len(instruments)), np.nan, dtype=np.float32)
        values = frame[name].to_numpy(dtype=np.float64)
        if name in PRICES:
            values = np.where(tradable, values * factor, np.nan)
        elif name == "volume":
            values = np.where(tradable, values / factor, 0.0)
        grid[rows, cols] = values
        data[name] = grid
    return Panel(dates, instruments, data)


class MemoryProvider:
    """A :class:`~qcore.protocols.DataProvider` over an aligned in-memory panel (one ``freq``), so the expression
    engine and :func:`qrl.data.load_daily` read imported files without writing a store.

    An instrument's membership span runs from its first to its last finite close.
    """

    def __init__(self, panel: Panel, freq: str = "day") -> None:
        self.panel = panel
        self.freq = freq
        spans: dict[str, tuple[Span, ...]] = {}
        close = panel["close"]
        for j, name in enumerate(panel.instruments):
            ok = np.flatnonzero(np.isfinite(close[:, j]))
            if len(ok):
                spans[name] = (Span(panel.dates[ok[0]], panel.dates[ok[-1]]),)
        self._universe = spans
        digest = hashlib.sha256()
        for field in panel.fields:
            digest.update(field.encode())
            digest.update(np.ascontiguousarray(panel[field]).tobytes())
        digest.update(np.asarray(panel.dates.asi8).tobytes())
        digest.update("|".join(panel.instruments).encode())
        self._version = digest.hexdigest()[:16]

    def _check(self, freq: str) -> None:
        if freq != self.freq:
            raise DataError(f"this in-memory data holds {self.freq!r} bars, not {freq!r}")

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        """The aligned dates."""
        self._check(freq)
        return self.panel.dates

    def markets(self) -> list[str]:
        """Only ``all``."""
        return ["all"]

    def universe(self, market: str = "all") -> dict[str, tuple[Span, ...]]:
        """Every instrument with a quote, with its first-to-last-quote span."""
        if market != "all":
            raise DataError(f"in-memory data has only the universe 'all', not {market!r}")
        return dict(self._universe)

    def fields(self, freq: str = "day") -> list[str]:
        """The panel's fields."""
        self._check(freq)
        return list(self.panel.fields)

    def load(self, fields: Sequence[str], instruments: Sequence[str], start: object = None, end: object = None,
             freq: str = "day") -> Panel:
        """The rows between ``start`` and ``end`` (inclusive) of ``fields`` for ``instruments`` (unknown ones NaN)."""
        self._check(freq)
        dates = self.panel.dates
        lo = 0 if start is None else int(dates.searchsorted(pd.Timestamp(start), "left"))
        hi = len(dates) if end is None else int(dates.searchsorted(pd.Timestamp(end), "right"))
        cols = pd.Index(self.panel.instruments).get_indexer(list(instruments))
        out: dict[str, np.ndarray] = {}
        for field in fields:
            name = field.lstrip("$").lower()
            if name not in self.panel.data:
                raise DataError(f"in-memory data has no field {name!r} (fields: {', '.join(self.panel.fields)})")
            block = self.panel[name][lo:hi]
            grid = np.full((hi - lo, len(cols)), np.nan, dtype=np.float32)
            grid[:, cols >= 0] = block[:, cols[cols >= 0]]
            out[name] = grid
        return Panel(dates[lo:hi], tuple(instruments), out)

    @property
    def version(self) -> str:
        """A hash of the panel's values, dates and instruments."""
        return self._version
