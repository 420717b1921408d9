"""Prediction scores aligned to a trading calendar, as whole arrays.

A score frame is indexed ``(datetime, instrument)`` with one numeric column (the first column is used, as Qlib
does). The strategy of bar ``k`` reads the scores dated inside the previous bar ``[calendar[k-1], calendar[k])``;
when several rows of one instrument fall inside that window the latest non-NaN one wins (Qlib's
``resam_ts_data(..., method="last")``). A score dated on a non-trading day therefore belongs to the bar before it.

Documented handling of bad inputs:

- rows dated before the first or after the last calendar entry raise :class:`~qcore.errors.DataError`;
- instruments the store does not know are kept (``unknown="keep"``, Qlib's behaviour: they can be chosen but are
  never tradable), dropped (``"drop"``) or rejected (``"error"``); a warning names them in the first two cases;
- a duplicated ``(datetime, instrument)`` row raises :class:`~qcore.errors.DataError`;
- a NaN score is kept as "scored, unknown value": it sorts last, as in Qlib.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from qcore.errors import DataError

logger = logging.getLogger(__name__)

UNKNOWN_POLICIES = ("keep", "drop", "error")


def read_scores(path: str | os.PathLike[str]) -> pd.Series:
    """Read a score file (Parquet, or CSV with ``datetime,instrument,score`` columns) into a Series."""
    text = str(path)
    try:
        if text.endswith(".csv"):
            frame = pd.read_csv(path, parse_dates=["datetime"]).set_index(["datetime", "instrument"])
        else:
            frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError("score file not found", path=text) from None
    except (ValueError, KeyError, OSError) as error:
        raise DataError(f"cannot read score file: {error}", path=text) from None
    return as_score_series(frame, source=text)


def as_score_series(scores: pd.Series | pd.DataFrame, source: str | None = None) -> pd.Series:
    """Validate a score frame/series and return it as a float64 Series indexed ``(datetime, instrument)``."""
    if isinstance(scores, pd.DataFrame):
        if scores.shape[1] == 0:
            raise DataError("score frame has no column", path=source)
        column = "score" if "score" in scores.columns else scores.columns[0]
        series = scores[column]
    else:
        series = scores
    index = series.index
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise DataError("scores must be indexed by (datetime, instrument)", path=source)
    names = list(index.names)
    if names == ["instrument", "datetime"]:
        series = series.swaplevel()
    elif names != ["datetime", "instrument"]:
        # unnamed levels: take the level holding timestamps as the date
        first = index.get_level_values(0)
        if pd.api.types.is_datetime64_any_dtype(first):
            series = series.copy()
            series.index = series.index.set_names(["datetime", "instrument"])
        else:
            series = series.swaplevel()
            series.index = series.index.set_names(["datetime", "instrument"])
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    index = series.index
    try:
        dates = pd.DatetimeIndex(index.levels[0])
    except (TypeError, ValueError) as error:
        raise DataError(f"score dates are not timestamps: {error}", path=source) from None
    names = index.levels[1]
    if names.dtype != object or not all(isinstance(x, str) for x in names):
        names = pd.Index([str(x) for x in names], dtype=object)
    index = pd.MultiIndex(levels=[dates, names], codes=index.codes, names=["datetime", "instrument"],
                          verify_integrity=False)  # fmt: skip
    if (np.asarray(index.codes[0]) < 0).any() or (np.asarray(index.codes[1]) < 0).any():
        raise DataError("score rows with a missing date or instrument", path=source)
    out = pd.Series(values, index=index)
    if not out.index.is_unique:
        dup = out.index[out.index.duplicated()][0]
        raise DataError(f"duplicated score row ({dup[0].date()}, {dup[1]})", path=source)
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
        self._values: np.ndarray | None = None
        self._present: np.ndarray | None = None
        self._has_rows: np.ndarray | None = None
        self._columns: dict[str, int] = {}
        self._first = 0

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
        known_set = set(known)
        missing = sorted(set(self.instruments) - known_set)
        if not missing:
            return []
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        if self.unknown == "error":
            raise DataError(f"scores name {len(missing)} instrument(s) the store does not know: {shown}",
                            path=self.source)  # fmt: skip
        if self.unknown == "drop":
            logger.warning("dropping scores of %d instrument(s) the store does not know: %s", len(missing), shown)
            keep = ~self.scores.index.get_level_values(1).isin(missing)
            self.scores = self.scores[keep]
            return []
        logger.warning("scores name %d instrument(s) the store does not know (never tradable): %s",
                       len(missing), shown)  # fmt: skip
        return missing

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
        used = np.unique(index.codes[0])
        dates = pd.DatetimeIndex(index.levels[0])[used] if len(used) else pd.DatetimeIndex([])
        if len(dates) and len(calendar):
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
        keep = (cols >= 0) & (rows >= 0) & (rows < t)
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
