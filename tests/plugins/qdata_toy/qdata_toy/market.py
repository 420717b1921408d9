"""An in-memory market of a few instruments: lot 1, no price limit, T+0, flat commission."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from qcore.errors import DataError, UnknownComponentError
from qcore.types import CostSchedule, Panel, Span, Universe

FIELDS = ("open", "close", "volume")


class ToyProvider:
    """``n_instruments`` random-walk stocks over ``n_days`` business days from 2021-01-04.

    Instrument ``TOY000`` lists late (day 5) and ``TOY001`` delists early (10 days before the end).
    The ``even`` universe holds the even-numbered instruments.
    """

    def __init__(self, n_instruments: int = 4, n_days: int = 30, seed: int = 0) -> None:
        if n_instruments < 2 or n_days < 15:
            raise DataError(f"toy market needs >= 2 instruments and >= 15 days, got {n_instruments} x {n_days}")
        self._dates = pd.bdate_range("2021-01-04", periods=n_days)
        self._names = tuple(f"TOY{i:03d}" for i in range(n_instruments))
        rng = np.random.default_rng(seed)
        close = np.exp(np.cumsum(rng.normal(0, 0.02, (n_days, n_instruments)), axis=0)).astype(np.float32)
        self._data = {
            "close": close,
            "open": (close * np.float32(0.999)).astype(np.float32),
            "volume": rng.integers(1000, 5000, (n_days, n_instruments)).astype(np.float32),
        }
        self._ranges = {name: (0, n_days - 1) for name in self._names}
        self._ranges[self._names[0]] = (5, n_days - 1)
        self._ranges[self._names[1]] = (0, n_days - 11)
        for name, (lo, hi) in self._ranges.items():
            j = self._names.index(name)
            for values in self._data.values():
                values[:lo, j] = np.nan
                values[hi + 1 :, j] = np.nan

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        if freq != "day":
            raise DataError(f"toy market has no {freq!r} bars (only 'day')")
        return self._dates

    def markets(self) -> list[str]:
        return ["all", "even"]

    def universe(self, market: str = "all") -> Universe:
        if market not in self.markets():
            raise UnknownComponentError("market", market, self.markets())
        names = self._names if market == "all" else self._names[::2]
        return {n: (Span(self._dates[self._ranges[n][0]], self._dates[self._ranges[n][1]]),) for n in names}

    def fields(self, freq: str = "day") -> list[str]:
        return list(FIELDS)

    def load(
        self,
        fields: Sequence[str],
        instruments: Sequence[str],
        start: object = None,
        end: object = None,
        freq: str = "day",
    ) -> Panel:
        dates = self.calendar(freq)
        lo = 0 if start is None else int(dates.searchsorted(pd.Timestamp(start), "left"))
        hi = len(dates) if end is None else int(dates.searchsorted(pd.Timestamp(end), "right"))
        data = {}
        for field in fields:
            key = field.lstrip("$").lower()
            if key not in self._data:
                raise DataError(f"toy market has no field {field!r} (fields: {', '.join(FIELDS)})")
            out = np.full((hi - lo, len(instruments)), np.nan, dtype=np.float32)
            for j, inst in enumerate(instruments):
                if inst in self._names:
                    out[:, j] = self._data[key][lo:hi, self._names.index(inst)]
            data[key] = out
        return Panel(dates[lo:hi], tuple(instruments), data)

    @property
    def version(self) -> str:
        return "toy-1"


class ToyRules:
    """Toy market rules: lot 1, T+0, no price limits, 0.1% commission without minimum, no stamp duty."""

    name = "toy"
    lot_size = 1
    settlement_days = 0
    costs = CostSchedule(commission=0.001)

    def price_limits(self, instruments: Sequence[str], dates: pd.DatetimeIndex) -> np.ndarray:
        return np.full((len(dates), len(instruments)), np.nan)
