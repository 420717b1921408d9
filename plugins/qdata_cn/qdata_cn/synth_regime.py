"""A regime shift in the synthetic market: the planted loadings that drive returns change on one date.

Before the shift date the planted expected return is the usual one (:class:`qdata_cn.synth.SynthParams`:
short-term reversal, intermediate momentum, abnormal volume, each in units of the stock's volatility); from the
shift date on, the loadings are ``after`` (by default the reversal and volume effects change sign and momentum
doubles), so a model trained before the date degrades after it. Everything else (prices on ticks, limits,
listings, corporate actions, the index, fundamentals) is the ordinary synthetic market; ``synth_info.json``
records the shift under ``regime``.

``qcore data synth --regime-shift 2020-01-02 [--regime-after -0.04,0.03,-0.02]``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ArgumentError, DataError
from qdata_cn.calendar_cn import cn_trading_days
from qdata_cn.synth import SynthMarket, SynthParams, generate, write_market


@attrs.frozen
class RegimeShift:
    """The planted loadings from ``date`` on (same units as :class:`~qdata_cn.synth.SynthParams`).

    :ivar date: the first trading day of the new regime (a date that is no trading day moves to the next one).
    :ivar reversal: planted short-term reversal after the shift (negative: short-term momentum).
    :ivar momentum: planted intermediate momentum after the shift.
    :ivar volume: planted abnormal-volume effect after the shift (negative: high volume → higher next return).
    """

    date: pd.Timestamp = attrs.field(converter=pd.Timestamp)
    reversal: float = -0.04
    momentum: float = 0.03
    volume: float = -0.02

    @classmethod
    def parse(cls, date: str, after: str | None = None) -> RegimeShift:
        """From the command line: ``date`` and ``after`` as ``"reversal,momentum,volume"`` (None: the defaults)."""
        try:
            when = pd.Timestamp(date)
        except (ValueError, TypeError):
            raise ArgumentError(f"must be a date such as 2020-01-02, got {date!r}", option="--regime-shift") from None
        if after is None:
            return cls(when)
        parts = [p.strip() for p in str(after).split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 3 or not all(np.isfinite(values)):
            raise ArgumentError(f"must be three numbers 'reversal,momentum,volume', got {after!r}",
                                option="--regime-after")
        return cls(when, *values)

    def loadings(self, params: SynthParams, dates: pd.DatetimeIndex) -> np.ndarray:
        """The ``(days, 3)`` coefficients (reversal, momentum, minus volume) of each day of ``dates``."""
        if not dates[0] < self.date <= dates[-1]:
            raise DataError(f"the regime shift {self.date.date()} must fall after the first and by the last day "
                            f"of the market ({dates[0].date()}..{dates[-1].date()})")  # fmt: skip
        before = np.array([params.reversal, params.momentum, -params.volume])
        after = np.array([self.reversal, self.momentum, -self.volume])
        return np.where((dates >= self.date)[:, None], after, before)


def generate_regime(params: SynthParams, shift: RegimeShift) -> SynthMarket:
    """The market of ``params`` with the planted loadings switched at ``shift.date`` (no files are written)."""
    dates = cn_trading_days(params.start, count=params.days)
    market = generate(params, loadings=shift.loadings(params, dates))
    first_day = dates[int(dates.searchsorted(shift.date))]
    market.info["regime"] = {
        "date": first_day.strftime("%Y-%m-%d"),
        "before": {"reversal": params.reversal, "momentum": params.momentum, "volume": params.volume},
        "after": {"reversal": shift.reversal, "momentum": shift.momentum, "volume": shift.volume},
    }
    return market


def synthesize_regime(
    out: str | os.PathLike[str],
    shift: RegimeShift,
    *,
    instruments: int = 300,
    days: int = 2500,
    seed: int = 0,
    start: str = "2015-01-05",
    freq: str = "day",
    overwrite: bool = False,
    fundamentals: bool = True,
) -> dict[str, Any]:
    """Write the regime-shift market as a Qlib bin store (``qcore data synth --regime-shift``); returns a summary."""
    if freq not in ("day", "1min"):
        raise DataError(f"synth writes freq 'day' or '1min', not {freq!r}")
    began = time.perf_counter()
    params = SynthParams(instruments=instruments, days=days, seed=seed, start=start)
    market = generate_regime(params, shift)
    summary = write_market(market, out, overwrite=overwrite, intraday=freq == "1min", fundamentals=fundamentals)
    summary["regime"] = market.info["regime"]["date"]
    summary["seconds"] = round(time.perf_counter() - began, 3)
    return summary
