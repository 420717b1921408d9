"""FinRL-Meta's data-processor interface over local files: download (read), clean, indicators, turbulence, VIX,
arrays — and the same data as :class:`~qrl.data.DailyData` for the RL environments.

``DataProcessor("yahoo", start, end, path="prices/")`` reads the files of ``path`` in the source's native export
format (:mod:`qrl.meta.formats`); nothing is fetched over the network. Unlike FinRL-Meta, tickers with missing days
are kept: every ticker is aligned to one calendar (the union of the dates) with a tradable mask, and nothing is filled
backwards in time (FinRL drops or back-fills them; unaligned tickers crash its environments).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import DataError
from qcore.types import Panel
from qrl.meta import formats
from qrl.meta.indicators import select
from qrl.meta.manifest import files_manifest
from qrl.meta.panel import CleanReport, MemoryProvider, align, clean

#: The trailing window of the VIX-like series (a trading month) and its annualisation.
VIX_WINDOW = 21
ANNUAL = 252


def market_volatility(close: np.ndarray, window: int = VIX_WINDOW, annual: int = ANNUAL) -> np.ndarray:
    """A VIX-like series from a ``(dates, instruments)`` close panel, causal: 100 × the annualised standard
    deviation (ddof 1) of the equal-weight mean daily return of the quoted instruments over the trailing ``window``
    rows (row ``t`` reads rows ``<= t``; NaN until two returns exist)."""
    c = np.asarray(close, dtype=np.float64)
    rets = np.full_like(c, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        rets[1:] = c[1:] / c[:-1] - 1
    rets[~np.isfinite(rets)] = np.nan
    count = np.isfinite(rets).sum(axis=1)
    market = np.where(count > 0, np.nansum(rets, axis=1) / np.maximum(count, 1), np.nan)
    std = pd.Series(market).rolling(window, min_periods=2).std().to_numpy()
    return 100.0 * np.sqrt(annual) * std


def _date(value: object, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(str(value))
    except ValueError:
        raise DataError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


class DataProcessor:
    """FinRL-Meta's ``DataProcessor`` on local files.

    :param data_source: a format of :data:`qrl.meta.formats.FORMATS` (``yahoo``, ``binance``, ``ccxt``,
        ``akshare``, ``tushare``, ``baostock``, ``alpaca``).
    :param start_date: first date kept (inclusive; None: from the first bar).
    :param end_date: last date kept (inclusive; None: to the last bar).
    :param time_interval: ``1d`` (stamps cut to their day) or the source's own stamps (anything else).
    :param path: the file or folder of exported files (required: there is no download).
    :param kernel: the kernel whose operators evaluate indicators (default: one loaded on first use).

    :ivar dataframe: the long frame FinRL's methods build up: ``date``, ``tic``, ``open``, ``high``, ``low``,
        ``close``, ``volume`` (adjusted prices, as FinRL's), ``tradable``, then indicators, ``turbulence``, ``vix``.
    """

    def __init__(self, data_source: str, start_date: object = None, end_date: object = None,
                 time_interval: str = "1d", *, path: str | Path | None = None, kernel: Any = None) -> None:
        self.format = formats.get_format(data_source)
        self.start, self.end = _date(start_date, "start_date"), _date(end_date, "end_date")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise DataError(f"end_date {self.end.date()} is before start_date {self.start.date()}")
        self.time_interval = time_interval
        self.path = None if path is None else Path(path)
        self._kernel = kernel
        self.files: list[Path] = []
        self.raw: pd.DataFrame | None = None
        self.cleaned: pd.DataFrame | None = None
        self.report: CleanReport | None = None
        self.panel: Panel | None = None
        self.indicators: dict[str, str] = {}
        self.dataframe = pd.DataFrame()
        self._extra: dict[str, np.ndarray] = {}
        self._cube: tuple[Any, np.ndarray] | None = None

    # -- FinRL-Meta's steps -------------------------------------------------------------------------------------
    def download_data(self, ticker_list: Sequence[str] | None = None) -> pd.DataFrame:
        """Read the exported files of :attr:`path` (all tickers, or ``ticker_list``) between the dates; no network."""
        if self.path is None:
            raise DataError(f"{self.format.name}: give path= (a file or folder of exported files); qrl downloads "
                            "nothing")
        frame, self.files = formats.read_source(self.path, self.format, ticker_list, self.time_interval)
        day = frame["date"].dt.normalize()
        if self.start is not None:
            frame = frame[day >= self.start]
        if self.end is not None:
            frame = frame[day <= self.end]
        if frame.empty:
            raise DataError("no bars between the start and end dates", path=str(self.path))
        self.raw = frame.reset_index(drop=True)
        self.dataframe = self._long(self.raw)
        return self.dataframe

    def clean_data(self) -> pd.DataFrame:
        """Drop exact duplicates and bars without a positive close, refuse conflicting duplicates, and align every
        ticker to one calendar (the union of the dates) with a tradable mask; nothing is filled backwards."""
        if self.raw is None:
            self.download_data()
        assert self.raw is not None
        self.cleaned, self.report = clean(self.raw)
        self.panel = align(self.cleaned)
        self._extra = {}
        self.indicators = {}
        self.dataframe = self._frame()
        return self.dataframe

    def add_technical_indicator(self, tech_indicator_list: Sequence[str] | Mapping[str, str] | None = None
                                ) -> pd.DataFrame:
        """Add FinRL's indicators (names of :data:`~qrl.meta.indicators.FINRL_INDICATORS`; default all) or a
        mapping of name → expression, evaluated by the expression engine on the aligned panel."""
        exprs = dict(tech_indicator_list) if isinstance(tech_indicator_list, Mapping) else \
            self._indicator_exprs(tech_indicator_list)
        self.indicators.update(exprs)
        self.dataframe = self._frame()
        return self.dataframe

    def add_turbulence(self, window: int = 252, min_periods: int | None = None) -> pd.DataFrame:
        """Add FinRL's turbulence index (:func:`qrl.risk.turbulence`, causal) as column ``turbulence``."""
        from qrl.risk import turbulence

        self._extra["turbulence"] = turbulence(self._close(), window, min_periods)
        self.dataframe = self._frame()
        return self.dataframe

    def add_vix(self, ticker: str | None = None, window: int = VIX_WINDOW) -> pd.DataFrame:
        """Add column ``vix``: the close of ``ticker`` (a volatility index among the files, e.g. Yahoo's ``^VIX``,
        then dropped from the tradable tickers), or without one :func:`market_volatility` of the tickers."""
        panel = self._panel()
        if ticker is None:
            self._extra["vix"] = market_volatility(self._close(), window)
        else:
            name = self.format.symbol(ticker)
            if name not in panel.instruments:
                raise DataError(f"no ticker {name!r} among the data for the VIX series")
            j = panel.instruments.index(name)
            self._extra["vix"] = panel["close"][:, j].astype(np.float64)
            keep = [k for k in range(len(panel.instruments)) if k != j]
            self.panel = Panel(panel.dates, tuple(panel.instruments[k] for k in keep),
                               {f: v[:, keep] for f, v in panel.data.items()})
        self.dataframe = self._frame()
        return self.dataframe

    def df_to_array(self, tech_indicator_list: Sequence[str] | None = None, if_vix: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FinRL's arrays: ``price_array`` ``(dates, tickers)`` closes (carried forward over gaps, NaN before the
        first bar), ``tech_array`` ``(dates, tickers × indicators)`` ticker-major as FinRL's, and
        ``turbulence_array`` ``(dates,)`` — the VIX series when ``if_vix``, else the turbulence."""
        names = list(self.indicators) if tech_indicator_list is None else list(tech_indicator_list)
        missing = [n for n in names if n not in self.indicators]
        if missing:
            raise DataError(f"indicator(s) {', '.join(missing)} not added: call add_technical_indicator first")
        key = "vix" if if_vix else "turbulence"
        if key not in self._extra:
            raise DataError(f"no {key} series: call add_{key}() first")
        close = pd.DataFrame(self._close()).ffill().to_numpy()
        cube = self._indicator_cube(names)
        tech = cube.reshape(cube.shape[0], -1)  # ticker-major, as FinRL's hstack per ticker
        return close, tech, np.asarray(self._extra[key], dtype=np.float64)

    def run(self, ticker_list: Sequence[str] | None, technical_indicator_list: Sequence[str] | None = None,
            if_vix: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FinRL-Meta's ``run``: download, clean, indicators, turbulence or VIX, arrays."""
        self.download_data(ticker_list)
        self.clean_data()
        self.add_technical_indicator(technical_indicator_list)
        self.add_vix() if if_vix else self.add_turbulence()
        return self.df_to_array(technical_indicator_list, if_vix)

    # -- qcore's side -------------------------------------------------------------------------------------------
    def aligned_panel(self) -> Panel:
        """The aligned panel (adjusted prices, NaN where a ticker has no tradable bar), cleaning first if needed."""
        return self._panel()

    def provider(self) -> MemoryProvider:
        """A data provider over the aligned panel (for the expression engine and :func:`qrl.data.load_daily`)."""
        return MemoryProvider(self._panel())

    def daily_data(self, features: Mapping[str, str] | None = None) -> Any:
        """The aligned data as :class:`~qrl.data.DailyData` (raw closes and opens, tradable mask, raw features:
        ``features``, default every FinRL indicator), for the daily RL environments; no market rules (no limits)."""
        from qrl.data import load_daily

        exprs = dict(features) if features is not None else select(None)
        return load_daily(self.provider(), self._operators(), None, list(self._panel().instruments), None, None,
                          exprs)

    def manifest(self) -> dict[str, Any]:
        """The files read (with SHA-256), the instruments and the dates (:func:`files_manifest`)."""
        if self.raw is None:
            raise DataError("nothing read yet: call download_data first")
        frame = self.cleaned if self.cleaned is not None else self.raw
        out = files_manifest(self.format.name, self.files, frame)
        if self.report is not None:
            out["cleaning"] = {"duplicates_dropped": self.report.duplicates,
                               "no_close_dropped": self.report.no_close}
        return out

    # -- helpers ------------------------------------------------------------------------------------------------
    def _panel(self) -> Panel:
        if self.panel is None:
            self.clean_data()
        assert self.panel is not None
        return self.panel

    def _close(self) -> np.ndarray:
        return np.asarray(self._panel()["close"], dtype=np.float64)

    def _operators(self) -> Any:
        if self._kernel is None:
            import qcore

            self._kernel = qcore.load_kernel()
        return self._kernel.registry("operator")

    @staticmethod
    def _indicator_exprs(names: Sequence[str] | None) -> dict[str, str]:
        try:
            return select(None if names is None else list(names))
        except ValueError as exc:
            raise DataError(str(exc)) from None

    def _indicator_cube(self, names: Sequence[str]) -> np.ndarray:
        from qcore.expr.engine import ExpressionEngine

        panel = self._panel()
        if not names:
            return np.zeros((len(panel.dates), len(panel.instruments), 0))
        key = (id(panel), tuple((n, self.indicators[n]) for n in names))
        if self._cube is None or self._cube[0] != key:
            exprs = {n: self.indicators[n] for n in names}
            frame = ExpressionEngine(self.provider(), self._operators()).evaluate(exprs, list(panel.instruments))
            cube = np.stack([frame[n].unstack("instrument").reindex(index=panel.dates,
                                                                    columns=list(panel.instruments))
                             .to_numpy(dtype=np.float64) for n in names], axis=2)  # fmt: skip
            self._cube = (key, cube)
        return self._cube[1]

    @staticmethod
    def _long(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.rename(columns={"instrument": "tic"})
        for col in ("open", "high", "low", "close"):
            out[col] = out[col] * out["factor"]
        out["volume"] = out["volume"] / out["factor"]
        return out[["date", "tic", "open", "high", "low", "close", "volume", "tradable"]]

    def _frame(self) -> pd.DataFrame:
        """The long frame of the aligned panel: one row per date and ticker with a bar, plus added columns."""
        panel = self._panel()
        t, n = panel.shape
        grid = {f: panel[f].astype(np.float64).reshape(-1) for f in ("open", "high", "low", "close", "volume")}
        frame = pd.DataFrame({"date": np.repeat(panel.dates.to_numpy(), n),
                              "tic": np.tile(np.asarray(panel.instruments, dtype=object), t), **grid})
        frame["tradable"] = np.isfinite(grid["close"]) & (np.nan_to_num(grid["close"]) > 0)
        if self.indicators:
            cube = self._indicator_cube(list(self.indicators))
            for k, name in enumerate(self.indicators):
                frame[name] = cube[:, :, k].reshape(-1)
        for name, series in self._extra.items():
            frame[name] = np.repeat(np.asarray(series, dtype=np.float64), n)
        return frame[frame["tradable"]].reset_index(drop=True)
