"""China A-share market rules: boards, daily price limits by board and date, lots, T+1 and trading costs.

Price limits (ratio of the previous close):

========================  ===========================  ==================================================
board                     symbols                      limit
========================  ===========================  ==================================================
main board                SH60xxxx, SZ000-003xxx       ±10%, ST ±5%
ChiNext                   SZ300xxx, SZ301xxx           ±10% (ST ±5%) before 2020-08-24, ±20% from then
STAR market               SH688xxx, SH689xxx           ±20% (opened 2019-07-22)
Beijing Stock Exchange    BJ4xxxxx, BJ8xxxxx, BJ920xxx ±30%
B shares                  SH900xxx, SZ200xxx           ±10%, ST ±5%
indices                   SH000xxx, SZ399xxx           none (NaN)
========================  ===========================  ==================================================

With listing dates known (from a store's ``all.txt``), new listings follow the IPO rules: no limit (NaN) on the first
day, and on the first five days for registration-system listings (STAR; ChiNext from 2020-08-24; main board from
2023-04-10). ST status comes from spans (``instruments/st.txt`` in stores written by ``qcore data synth``); without
them every stock is treated as non-ST.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qcore.types import CostSchedule, Span, StampDuty

STAR_OPENED = pd.Timestamp("2019-07-22")
CHINEXT_REFORM = pd.Timestamp("2020-08-24")
MAIN_BOARD_REGISTRATION = pd.Timestamp("2023-04-10")

#: Sell-side stamp duty history. Until 2008-09-18 the duty was also charged on buys (not modelled by
#: :class:`~qcore.types.CostSchedule`, which charges it on sells only).
CN_STAMP_DUTY = (
    StampDuty("1997-05-12", 0.005),
    StampDuty("1998-06-12", 0.004),
    StampDuty("2001-11-16", 0.002),
    StampDuty("2005-01-24", 0.001),
    StampDuty("2007-05-30", 0.003),
    StampDuty("2008-04-24", 0.001),
    StampDuty("2008-09-19", 0.001),  # sells only from here on
    StampDuty("2023-08-28", 0.0005),
)

BOARDS = ("main", "chinext", "star", "bse", "bshare", "index", "unknown")


def split_symbol(symbol: str) -> tuple[str, str]:
    """``SH600000`` or ``600000.SH`` → ``("SH", "600000")``; unknown forms give ``("", SYMBOL)``."""
    text = str(symbol).strip().upper()
    if len(text) > 2 and text[:2] in ("SH", "SZ", "BJ") and text[2:].isdigit():
        return text[:2], text[2:]
    if "." in text:
        code, _, exchange = text.rpartition(".")
        if exchange in ("SH", "SZ", "BJ", "SS") and code.isdigit():
            return ("SH" if exchange == "SS" else exchange), code
    return "", text


def board_of(symbol: str) -> str:
    """The board of an A-share symbol: ``main``, ``chinext``, ``star``, ``bse``, ``bshare``, ``index``, ``unknown``."""
    exchange, code = split_symbol(symbol)
    if len(code) != 6 or not code.isdigit():
        return "unknown"
    if exchange == "SH":
        if code.startswith(("688", "689")):
            return "star"
        if code.startswith("60"):
            return "main"
        if code.startswith("900"):
            return "bshare"
        if code.startswith("000"):
            return "index"
    elif exchange == "SZ":
        if code.startswith(("000", "001", "002", "003")):
            return "main"
        if code.startswith(("300", "301", "302")):
            return "chinext"
        if code.startswith("200"):
            return "bshare"
        if code.startswith("399"):
            return "index"
    elif exchange == "BJ":
        if code.startswith(("4", "8", "920")):
            return "bse"
    return "unknown"


def limit_ratios(
    symbols: Sequence[str], dates: pd.DatetimeIndex, st: np.ndarray | None = None
) -> np.ndarray:
    """Daily limit ratios by board, date and ST status, shape ``(len(dates), len(symbols))``; NaN = no limit.

    :param st: optional boolean ``(T, N)`` array, True where the stock is ST.
    """
    dates = pd.DatetimeIndex(dates)
    t, n = len(dates), len(symbols)
    out = np.full((t, n), np.nan)
    after_reform = np.asarray(dates >= CHINEXT_REFORM)[:, None]
    st_mask = np.zeros((t, n), dtype=bool) if st is None else np.asarray(st, dtype=bool)
    boards = np.array([board_of(s) for s in symbols])
    for board in ("main", "bshare"):
        cols = boards == board
        out[:, cols] = np.where(st_mask[:, cols], 0.05, 0.10)
    cols = boards == "chinext"
    if cols.any():
        ten = np.where(st_mask[:, cols], 0.05, 0.10)
        out[:, cols] = np.where(after_reform, 0.20, ten)
    out[:, boards == "star"] = 0.20
    out[:, boards == "bse"] = 0.30
    return out


def _registration(board: str, listed: pd.Timestamp) -> bool:
    if board in ("star",):
        return True
    if board == "chinext":
        return listed >= CHINEXT_REFORM
    if board == "main":
        return listed >= MAIN_BOARD_REGISTRATION
    return False


class CNMarketRules:
    """China A-share rules: lot 100, T+1, board/date/ST price limits, commission with a minimum and stamp duty.

    Satisfies :class:`qcore.protocols.MarketRules`.

    :param provider_uri: a bin store; its ``instruments/st.txt`` gives ST spans, ``all.txt`` listing dates and
        ``calendars/day.txt`` the trading calendar.
    :param st: ST spans ``{symbol: [Span or (start, end), ...]}`` (overrides the store's).
    :param commission: broker commission rate, both sides.
    :param min_commission: least commission per order, CNY.
    :param transfer_fee: exchange transfer fee rate, both sides.
    :param ipo_rules: apply the new-listing rules (needs listing dates from ``provider_uri``).
    """

    name = "cn"
    lot_size = 100
    settlement_days = 1

    def __init__(
        self,
        provider_uri: str | os.PathLike[str] | None = None,
        *,
        st: Mapping[str, Iterable[object]] | None = None,
        commission: float = 0.0003,
        min_commission: float = 5.0,
        transfer_fee: float = 0.0,
        ipo_rules: bool = True,
        region: str = "cn",
    ) -> None:
        self.costs = CostSchedule(
            commission=commission, min_commission=min_commission, stamp_duty=CN_STAMP_DUTY, transfer_fee=transfer_fee
        )
        self.region = region
        self._provider = None
        self._listing: dict[str, pd.Timestamp] = {}
        self._st: dict[str, tuple[Span, ...]] = {}
        if provider_uri is not None:
            from qdata_cn.binstore import QlibBinProvider

            self._provider = QlibBinProvider(provider_uri)
            if "st" in self._provider.markets():
                self._st = dict(self._provider.universe("st"))
            if ipo_rules:
                self._listing = {s: spans[0].start for s, spans in self._provider.universe("all").items() if spans}
        if st is not None:
            self._st = {
                k.upper(): tuple(s if isinstance(s, Span) else Span(*s) for s in v) for k, v in st.items()
            }

    def __repr__(self) -> str:
        return f"CNMarketRules(lot_size={self.lot_size}, settlement_days={self.settlement_days})"

    @staticmethod
    def board(symbol: str) -> str:
        """The board of ``symbol`` (see :func:`board_of`)."""
        return board_of(symbol)

    def is_st(self, instruments: Sequence[str], dates: pd.DatetimeIndex) -> np.ndarray:
        """Boolean ``(T, N)``: True where the instrument is ST on that date."""
        from qcore.types import membership_mask

        return membership_mask(self._st, pd.DatetimeIndex(dates), [s.upper() for s in instruments])

    def price_limits(self, instruments: Sequence[str], dates: pd.DatetimeIndex) -> np.ndarray:
        """Daily price-limit ratios, shape ``(len(dates), len(instruments))``; NaN where no limit applies."""
        dates = pd.DatetimeIndex(dates)
        symbols = [str(s).upper() for s in instruments]
        out = limit_ratios(symbols, dates, self.is_st(symbols, dates) if self._st else None)
        if self._listing and self._provider is not None and len(dates):
            calendar = self._provider.calendar("day")
            for j, sym in enumerate(symbols):
                listed = self._listing.get(sym)
                if listed is None:
                    continue
                board = board_of(sym)
                if board in ("index", "unknown"):
                    continue
                days = 5 if _registration(board, listed) else 1
                k = int(calendar.searchsorted(listed))
                free_until = calendar[min(k + days - 1, len(calendar) - 1)]
                out[(dates >= listed) & (dates <= free_until), j] = np.nan
        return out

    def calendar(self, start: object = None, end: object = None) -> pd.DatetimeIndex:
        """Trading days between ``start`` and ``end``: the store's calendar, else the approximate CN calendar."""
        if self._provider is not None:
            cal = self._provider.calendar("day")
            lo = 0 if start is None else cal.searchsorted(pd.Timestamp(start))
            hi = len(cal) if end is None else cal.searchsorted(pd.Timestamp(end), side="right")
            return cal[lo:hi]
        from qdata_cn.calendar_cn import cn_trading_days

        if start is None or end is None:
            raise ValueError("start and end are needed without a store")
        return cn_trading_days(start, end)

    def stamp_duty(self, date: object) -> float:
        """The sell-side stamp duty rate on ``date``."""
        return self.costs.stamp_duty_on(date)

    def round_lots(self, shares: np.ndarray | float) -> np.ndarray:
        """Real (unadjusted) share counts rounded down to whole lots."""
        return np.floor(np.asarray(shares, dtype=float) / self.lot_size + 1e-9) * self.lot_size


def st_spans_from_file(path: str | os.PathLike[str]) -> dict[str, tuple[Span, ...]]:
    """ST spans read from an instrument-format file."""
    from qdata_cn.binstore import read_instruments

    return read_instruments(Path(path))
