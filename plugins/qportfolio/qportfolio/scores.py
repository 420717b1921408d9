"""Prediction scores as a strategy of this plugin reads them, without the backtest plugin.

A signal is a Series or one-column DataFrame indexed ``(datetime, instrument)`` (a column named ``score`` when there
are several), a score file (Parquet, or CSV with ``datetime,instrument,score`` columns), or an object carrying
such a Series as ``.scores`` (the backtest's own signal objects, which the workflow hands to strategies). The
workflow's ``<PRED>`` placeholder cannot be read here: it is an error naming it.

The decision for a bar reads the scores dated from the bar's information date (the last calendar entry before the
bar, :meth:`qcore.trading.BarCalendar.information_date`) up to, not including, the bar's start — the window the
backtest's strategies read (Qlib's ``shift=1``), so a score dated on a non-trading day belongs to the next bar.
Where an instrument has several rows in that window, its latest non-NaN score wins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError


def _frame_to_series(frame: pd.DataFrame, source: str) -> pd.Series:
    if not isinstance(frame.index, pd.MultiIndex):
        cols = {str(c).lower(): c for c in frame.columns}
        date_col = cols.get("datetime", cols.get("date"))
        if date_col is None or "instrument" not in cols:
            raise DataError("scores need datetime and instrument columns (or index levels)", path=source)
        frame = frame.set_index([date_col, cols["instrument"]])
    if frame.shape[1] == 1:
        return frame.iloc[:, 0]
    if "score" in frame.columns:
        return frame["score"]
    raise DataError(f"scores have {frame.shape[1]} columns and none is named 'score'", path=source)


def read_score_file(path: str | os.PathLike[str]) -> pd.Series:
    """A score file (Parquet or CSV) as a Series indexed ``(datetime, instrument)``."""
    file = Path(path)
    if not file.is_file():
        raise DataError("score file not found", path=str(path))
    name = file.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(file)
        elif ".csv" in name:
            frame = pd.read_csv(file)
        else:
            raise DataError("unsupported score file type; give a Parquet (.parquet) or CSV (.csv) file", path=str(path))
    except DataError:
        raise
    except Exception as exc:  # pandas' and pyarrow's readers raise many types
        raise DataError(f"cannot read the score file: {type(exc).__name__}: {exc}", path=str(path)) from None
    return _frame_to_series(frame, str(path))


class Scores:
    """Scores by date, read per bar window.

    :param signal: see the module doc.
    """

    def __init__(self, signal: Any) -> None:
        source = "the signal"
        if signal is None:
            raise ConfigError("the strategy needs a signal (scores indexed by datetime and instrument)",
                              path="signal")  # fmt: skip
        if isinstance(signal, str) and signal.startswith("<") and signal.endswith(">"):
            raise ConfigError(f"the strategy's signal is the placeholder {signal}; give scores or a score file",
                              path="signal")  # fmt: skip
        if isinstance(getattr(signal, "scores", None), pd.Series):
            series = signal.scores
        elif isinstance(signal, pd.Series):
            series = signal
        elif isinstance(signal, pd.DataFrame):
            series = _frame_to_series(signal, source)
        elif isinstance(signal, str | bytes) or hasattr(signal, "__fspath__"):
            source = os.fsdecode(signal)
            series = read_score_file(source)
        else:
            raise ConfigError(f"cannot use {type(signal).__name__} as a signal (give scores or a score file)",
                              path="signal")  # fmt: skip
        if not isinstance(series.index, pd.MultiIndex) or series.index.nlevels != 2:
            raise DataError("scores must be indexed by (datetime, instrument)", path=source)
        dates = pd.DatetimeIndex(pd.to_datetime(series.index.get_level_values(0)))
        names = series.index.get_level_values(1).astype(str)
        values = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
        if np.isinf(values).any():
            raise DataError("scores hold infinite values", path=source)
        order = np.argsort(dates.to_numpy(), kind="stable")
        self._dates = dates.to_numpy()[order]
        self._names = np.asarray(names)[order]
        self._values = values[order]
        if len(self._values) == 0 or np.isnan(self._values).all():
            raise DataError("the signal has no score that is a number", path=source)
        self.source = source

    @property
    def instruments(self) -> list[str]:
        """Every instrument named, sorted."""
        return sorted(set(self._names.tolist()))

    @property
    def dates(self) -> pd.DatetimeIndex:
        """The distinct score dates."""
        return pd.DatetimeIndex(np.unique(self._dates))

    def window(self, since: pd.Timestamp, until: pd.Timestamp) -> pd.Series | None:
        """The latest non-NaN score of each instrument dated in ``[since, until)`` (None when there is none;
        instruments whose scores there are all NaN keep NaN)."""
        lo = int(np.searchsorted(self._dates, np.datetime64(pd.Timestamp(since)), "left"))
        hi = int(np.searchsorted(self._dates, np.datetime64(pd.Timestamp(until)), "left"))
        if hi <= lo:
            return None
        names, values = self._names[lo:hi], self._values[lo:hi]
        frame = pd.Series(values, index=names)
        if frame.index.has_duplicates:
            ok = frame.dropna()
            latest = ok[~ok.index.duplicated(keep="last")]
            frame = latest.reindex(pd.unique(names))
        return frame
