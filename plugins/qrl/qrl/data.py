"""Market data for the RL environments: intraday bars by day (execution) and daily bars with features (portfolio).

Both come either from a qcore data provider (a Qlib-format store, e.g. ``qcore data synth --freq 1min``) or from a
seeded synthetic generator with a *planted* pattern, used to prove that a policy learns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError
from qrl.risk import TurbulenceSpec
from qrl.scaling import FeatureScaler

BARS_PER_DAY = 240


@dataclass(frozen=True)
class IntradayData:
    """Minute bars grouped by trading day.

    :ivar price: raw deal price per bar, shape ``(days, instruments, bars)``.
    :ivar volume: raw traded shares per bar, same shape.
    :ivar prev_close: raw close of the previous day, ``(days, instruments)`` (for price limits).
    :ivar limit: price-limit ratio per day and instrument, ``(days, instruments)``; NaN for none.
    """

    days: pd.DatetimeIndex
    instruments: tuple[str, ...]
    price: np.ndarray
    volume: np.ndarray
    prev_close: np.ndarray
    limit: np.ndarray

    @property
    def n_bars(self) -> int:
        """Bars per day."""
        return int(self.price.shape[2])

    def orders(self) -> list[tuple[int, int]]:
        """Every ``(day, instrument)`` pair with a complete day of positive prices."""
        ok = np.isfinite(self.price).all(axis=2) & (self.price > 0).all(axis=2) & np.isfinite(self.volume).all(axis=2)
        return [(int(d), int(i)) for d, i in zip(*np.nonzero(ok), strict=True)]

    def take(self, days: slice) -> IntradayData:
        """A sub-range of days."""
        return IntradayData(
            self.days[days], self.instruments, self.price[days], self.volume[days], self.prev_close[days],
            self.limit[days],
        )


def planted_intraday(
    days: int = 20, instruments: int = 3, *, drift_bps: float = 60.0, noise_bps: float = 5.0, seed: int = 0,
    bars: int = BARS_PER_DAY,
) -> IntradayData:
    """Synthetic minute bars whose price drifts by ``drift_bps`` from the open to the close of every day.

    Selling late (or buying early) beats TWAP by about ``drift_bps / 2``; the noise hides the pattern bar by bar.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, bars)
    base = 10.0 * np.exp(rng.normal(0, 0.2, size=(days, instruments, 1)))
    noise = np.cumsum(rng.normal(0, noise_bps / 1e4, size=(days, instruments, bars)), axis=2) / np.sqrt(bars / 10)
    price = base * (1.0 + drift_bps / 1e4 * t + noise)
    price = np.round(price, 2)
    profile = 0.6 + 1.6 * (t - 0.5) ** 2 * 2 + 0.8 * np.exp(-t * 25)
    volume = np.round(2e5 * profile * rng.lognormal(0, 0.3, size=(days, instruments, bars)) / 100) * 100
    prev_close = price[:, :, 0] * (1 - rng.normal(0, 0.002, size=(days, instruments)))
    dates = pd.bdate_range("2020-01-02", periods=days)
    names = tuple(f"P{i:03d}" for i in range(instruments))
    return IntradayData(dates, names, price, volume, prev_close, np.full((days, instruments), 0.1))


def load_intraday(
    provider: Any, rules: Any | None, instruments: Sequence[str] | str = "all", start: object = None,
    end: object = None, price_field: str = "vwap",
) -> IntradayData:
    """Minute bars of a Qlib-format store (adjusted fields are turned back into raw prices and shares)."""
    if isinstance(instruments, str):
        instruments = sorted(provider.universe(instruments))
    instruments = list(instruments)
    if not instruments:
        raise DataError("no instruments to load intraday bars for")
    cal = provider.calendar("1min")
    day_cal = provider.calendar("day")
    if start is not None:
        day_cal = day_cal[day_cal >= pd.Timestamp(start)]
    if end is not None:
        day_cal = day_cal[day_cal <= pd.Timestamp(end)]
    if len(day_cal) == 0:
        raise DataError("no trading days in the requested range")
    first, last = day_cal[0], day_cal[-1] + pd.Timedelta(days=1)
    minutes = cal[(cal >= first) & (cal < last)]
    if len(minutes) != len(day_cal) * BARS_PER_DAY:
        raise DataError(f"expected {BARS_PER_DAY} one-minute bars per day, got {len(minutes)} for {len(day_cal)} days")
    panel = provider.load([price_field, "volume", "factor"], instruments, minutes[0], minutes[-1], freq="1min")
    factor = np.asarray(panel["factor"], dtype=np.float64)
    factor = np.where(np.isfinite(factor) & (factor > 0), factor, np.nan)
    price = np.asarray(panel[price_field], dtype=np.float64) / factor
    volume = np.asarray(panel["volume"], dtype=np.float64) * factor
    n_days = len(day_cal)

    def by_day(x: np.ndarray) -> np.ndarray:
        return x.reshape(n_days, BARS_PER_DAY, len(instruments)).transpose(0, 2, 1)

    daily = provider.load(["close", "factor"], instruments, None, day_cal[-1], freq="day")
    close = np.asarray(daily["close"], dtype=np.float64) / np.asarray(daily["factor"], dtype=np.float64)
    prev = pd.DataFrame(close, index=daily.dates).shift(1).reindex(day_cal).to_numpy()
    price_d = by_day(price)
    prev = np.where(np.isfinite(prev), prev, price_d[:, :, 0])
    limit = (
        np.asarray(rules.price_limits(instruments, day_cal), dtype=np.float64)
        if rules is not None else np.full((n_days, len(instruments)), np.nan)
    )
    return IntradayData(day_cal, tuple(instruments), price_d, by_day(volume), prev, limit)


@attrs.frozen(eq=False)
class DailyData:
    """Daily bars with raw technical features for the portfolio environment.

    Nothing is filled backwards in time: an instrument has no price before its first quote, and it is
    :attr:`tradable` only on days it is listed and quoted.

    :ivar close: raw close, ``(dates, instruments)``, carried *forward* over suspensions (to value holdings); NaN
        before the first quote.
    :ivar features: raw feature values, ``(dates, instruments, features)``; NaN where undefined. The environment
        observes them through :attr:`scaler` (:meth:`observed_features`).
    :ivar limit: price-limit ratio, ``(dates, instruments)``; NaN for none.
    :ivar feature_names: the names of the feature axis.
    :ivar tradable: ``(dates, instruments)``: listed and quoted that day (a finite, positive close).
    :ivar prev_close: the (carried) raw close of the previous row, NaN on the first row and before the first quote;
        it survives :meth:`take`, so a split's first row still knows its previous close (returns, price limits).
    :ivar open: raw open, ``(dates, instruments)``; NaN where unknown (a store without ``$open``).
    :ivar scaler: the training span's feature scaler (None: features are observed raw, NaN as 0).
    :ivar turbulence: the turbulence index of each row (:func:`qrl.risk.turbulence`, computed on the whole loaded
        range before any split, so a split's first rows keep their history), or None.
    :ivar market_volatility: a VIX-like series per row (:func:`qrl.meta.processor.market_volatility`, causal,
        computed like the turbulence before any split), or None; the portfolio environment observes it.
    """

    dates: pd.DatetimeIndex
    instruments: tuple[str, ...]
    close: np.ndarray
    features: np.ndarray
    limit: np.ndarray
    feature_names: tuple[str, ...] = ()
    tradable: np.ndarray | None = None
    prev_close: np.ndarray | None = None
    open: np.ndarray | None = None
    scaler: FeatureScaler | None = None
    turbulence: np.ndarray | None = None
    market_volatility: np.ndarray | None = None

    def __attrs_post_init__(self) -> None:
        shape = (len(self.dates), len(self.instruments))
        if self.tradable is None:
            object.__setattr__(self, "tradable", np.isfinite(self.close) & (np.nan_to_num(self.close) > 0))
        if self.prev_close is None:
            prev = np.full(shape, np.nan)
            prev[1:] = self.close[:-1]
            object.__setattr__(self, "prev_close", prev)
        if self.open is None:
            object.__setattr__(self, "open", np.full(shape, np.nan))
        for name in ("close", "limit", "tradable", "prev_close", "open"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        if self.market_volatility is not None and np.shape(self.market_volatility) != shape[:1]:
            raise ValueError(f"market_volatility has shape {np.shape(self.market_volatility)}, expected {shape[:1]}")
        if self.turbulence is not None and np.shape(self.turbulence) != shape[:1]:
            raise ValueError(f"turbulence has shape {np.shape(self.turbulence)}, expected {shape[:1]}")
        if self.features.shape[:2] != shape:
            raise ValueError(f"features have shape {self.features.shape}, expected {shape} + (features,)")

    def take(self, rows: slice) -> DailyData:
        """A sub-range of dates (same scaler)."""
        assert self.tradable is not None and self.prev_close is not None and self.open is not None
        return attrs.evolve(self, dates=self.dates[rows], close=self.close[rows], features=self.features[rows],
                            limit=self.limit[rows], tradable=self.tradable[rows], prev_close=self.prev_close[rows],
                            open=self.open[rows],
                            turbulence=None if self.turbulence is None else self.turbulence[rows],
                            market_volatility=None if self.market_volatility is None
                            else self.market_volatility[rows])  # fmt: skip

    def with_turbulence(self, spec: TurbulenceSpec) -> DailyData:
        """The same data with the turbulence series of ``spec`` (call it on the whole loaded range, then split)."""
        return attrs.evolve(self, turbulence=spec.series(self.close))

    def with_market_volatility(self, window: int = 21) -> DailyData:
        """The same data with the VIX-like series of its closes over ``window`` rows (call it on the whole loaded
        range, then split)."""
        from qrl.meta.processor import market_volatility

        return attrs.evolve(self, market_volatility=market_volatility(self.close, window))

    def with_scaler(self, scaler: FeatureScaler | None) -> DailyData:
        """The same data observed through ``scaler`` (fitted on the training span)."""
        if scaler is not None and tuple(scaler.names) != tuple(self.feature_names):
            raise ValueError(f"the scaler was fitted on features {list(scaler.names)}, the data has "
                             f"{list(self.feature_names)}")  # fmt: skip
        return attrs.evolve(self, scaler=scaler)

    def fit_scaler(self) -> FeatureScaler:
        """A scaler fitted on *all* of this data's rows: call it on the training split only."""
        return FeatureScaler.fit(self.features, self.feature_names)

    def observed_features(self) -> np.ndarray:
        """The features as the environment observes them: z-scored by :attr:`scaler`, float32, NaN as 0."""
        if self.scaler is not None:
            return self.scaler.transform(self.features)
        return np.nan_to_num(np.asarray(self.features, dtype=np.float64), nan=0.0).astype(np.float32)

    def returns(self) -> np.ndarray:
        """Close-to-close returns, ``(dates, instruments)``; 0 where a close is missing."""
        with np.errstate(divide="ignore", invalid="ignore"):
            r = self.close / self.prev_close - 1
        return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


def planted_daily(
    days: int = 120, drifts: Sequence[float] = (0.004, 0.0, -0.003), *, vol: float = 0.01, seed: int = 0,
) -> DailyData:
    """Synthetic daily closes with a known drift per asset (the planted edge a portfolio policy should find).

    Opens sit near the previous close (a separate random stream, so the closes do not depend on them); the raw
    features are 5-day momentum and the 1-day return.
    """
    rng = np.random.default_rng(seed)
    drift = np.asarray(drifts, dtype=np.float64)
    rets = drift + rng.normal(0, vol, size=(days, len(drift)))
    rets[0] = 0.0
    close = np.round(10.0 * np.exp(np.cumsum(rets, axis=0)), 2)
    gap = np.random.default_rng([seed, 1]).normal(0, vol / 4, size=close.shape)
    opened = close.copy()
    opened[1:] = np.round(close[:-1] * np.exp(gap[1:]), 2)
    mom = np.zeros_like(close)
    mom[5:] = close[5:] / close[:-5] - 1
    ret1 = np.zeros_like(close)
    ret1[1:] = close[1:] / close[:-1] - 1
    dates = pd.bdate_range("2020-01-02", periods=days)
    names = tuple(f"A{i:03d}" for i in range(len(drift)))
    return DailyData(dates, names, close, np.stack([mom, ret1], axis=2), np.full_like(close, 0.1), ("mom5", "ret1"),
                     open=opened)  # fmt: skip


DEFAULT_FEATURES: Mapping[str, str] = {
    "mom5": "$close/Ref($close, 5) - 1",
    "ret1": "$close/Ref($close, 1) - 1",
    "ma10": "$close/Mean($close, 10) - 1",
    "std10": "Std($close/Ref($close, 1), 10)",
}


def load_daily(
    provider: Any, operators: Any, rules: Any | None, instruments: Sequence[str] | str = "all", start: object = None,
    end: object = None, features: Mapping[str, str] | None = None,
) -> DailyData:
    """Daily raw closes and opens, the tradable mask and raw features computed by the expression engine.

    :param provider: a :class:`~qcore.protocols.DataProvider`.
    :param operators: the kernel's operator registry (``kernel.registry("operator")``, or ``TradingInfra.operators``).
    :param rules: market rules for the price limits (None: no limits).
    """
    from qcore.expr.engine import ExpressionEngine

    if isinstance(instruments, str):
        instruments = sorted(provider.universe(instruments))
    instruments = list(instruments)
    if not instruments:
        raise DataError("no instruments to load daily bars for")
    fields = ["close", "factor"] + (["open"] if "open" in provider.fields("day") else [])
    panel = provider.load(fields, instruments, start, end, freq="day")
    factor = np.asarray(panel["factor"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.asarray(panel["close"], dtype=np.float64) / factor
        opened = np.asarray(panel["open"], dtype=np.float64) / factor if "open" in fields else None
    dates = panel.dates
    if len(dates) < 3:
        raise DataError("the portfolio environment needs at least 3 trading days")
    quoted = np.isfinite(raw) & (np.nan_to_num(raw) > 0)
    close = pd.DataFrame(np.where(quoted, raw, np.nan)).ffill().to_numpy()  # forward only: no price before listing
    prev = np.full_like(close, np.nan)
    prev[1:] = close[:-1]
    if opened is not None:
        opened = np.where(quoted & np.isfinite(opened) & (np.nan_to_num(opened) > 0), opened, np.nan)
    exprs = dict(features or DEFAULT_FEATURES)
    frame = ExpressionEngine(provider, operators).evaluate(exprs, instruments, start, end)
    cube = np.stack(
        [frame[name].unstack("instrument").reindex(index=dates, columns=instruments).to_numpy() for name in exprs],
        axis=2,
    ).astype(np.float64)
    limit = (
        np.asarray(rules.price_limits(instruments, dates), dtype=np.float64)
        if rules is not None else np.full(close.shape, np.nan)
    )
    return DailyData(dates, tuple(instruments), close, cube, limit, tuple(exprs), tradable=quoted, prev_close=prev,
                     open=opened)  # fmt: skip
