"""Execution strategies: inner strategies of a nested run that split each outer order over the inner bars.

Each is told the outer decision (``set_parent``), hears the fills of every inner step (``post_exe_step``), and at
each inner step orders part of what remains of every outer order, in the outer order's direction:

- :class:`TWAP` (Qlib's ``TWAPStrategy``): after step ``k`` of the ``n`` steps of the decision's trade range,
  ``amount × (k + 1) / n`` should be done; it orders the shortfall (rounded to the nearest lot, at most what
  remains), so what a step could not fill is ordered again later; the last step orders all that remains, and what
  is still left after it is dropped (fill rate < 1). Suspended names are skipped.
- :class:`VWAP`: the same re-targeting on a volume profile: after step ``k`` the share of the range's expected
  volume up to ``k`` should be done, the expected volume of an inner bar being the mean volume of the same bar of
  the day over the previous ``lookback`` days (TWAP's even split where there is no history).
- :class:`SBBEMA` (Qlib's ``SBBStrategyEMA``): pairs of adjacent bars; the trend is the sign of
  ``EMA($close, 10) - EMA($close, 20)`` at ``freq`` read at the last value of the previous bar; neutral: an even
  split rounded up to lots; trending: two parts of ``remaining steps + 1`` in the better bar of the pair (buys in
  the first bar of a rising pair, sells in the first of a falling one, the other way in the second). Sells finish
  at the last step. The EMA is computed as Qlib does, afresh for each outer bar from 19 bars before its first
  signal bar.
- :class:`AlmgrenChriss` (Qlib's ``ACStrategy``): with ``σ`` the standard deviation of log returns over
  ``window_size`` bars at ``freq``, ``κ = arccosh(lamb / eta · σ² / 2 + 1)`` and step ``k`` of ``n`` executes
  ``[sinh(κ(n - k)) - sinh(κ(n - k - 1))] / sinh(κ n)`` of the order (rounded down to lots); without ``σ`` (or with
  ``κ = 0``, where Qlib divides by zero) it splits evenly like SBB's neutral case. Sells finish at the last step.

A daily ``freq`` signal is read from the day before the inner bar's day: Qlib reads the day's own value at the
first inner bar of the day (its close is not known yet, a look-ahead). SBB-EMA and Almgren–Chriss ignore the
decision's trade range, as in Qlib; TWAP and VWAP use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qbacktest.freq import Freq
from qbacktest.strategies.topk_dropout import _ignore_qlib_infra
from qcore.errors import ConfigError
from qcore.trade_range import range_of
from qcore.trading import Fill, Order, Step, TradeDecision, TradingInfra

TREND_MID, TREND_SHORT, TREND_LONG = 0, 1, 2


def ewm_mean(values: np.ndarray, span: float | np.ndarray) -> np.ndarray:
    """pandas' ``ewm(span=span, min_periods=1).mean()`` down each column of ``values`` (float64; ``adjust=True``,
    NaN rows decay the weights as pandas does with ``ignore_na=False``), with pandas' arithmetic step by step.
    ``span`` may give one span per column."""
    com = (np.asarray(span, dtype=np.float64) - 1) / 2.0
    decay = np.broadcast_to(1.0 - 1.0 / (1.0 + com), np.shape(values)[1:]).astype(np.float64)
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    if not len(x):
        return out
    clean = ~np.isnan(x).any(axis=0)
    if clean.all():
        return _ewm_observed(x, decay)
    if clean.any():
        out[:, clean] = _ewm_observed(x[:, clean], decay[clean])
    out[:, ~clean] = _ewm_gaps(x[:, ~clean], decay[~clean])
    return out


def _ewm_observed(x: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """:func:`ewm_mean` of columns without NaN."""
    out = np.empty_like(x)
    weighted = x[0].copy()
    out[0] = weighted
    old = np.ones_like(weighted)
    for i in range(1, len(x)):
        cur = x[i]
        old *= decay
        mixed = (old * weighted + cur) / (old + 1.0)
        np.copyto(weighted, mixed, where=weighted != cur)
        old += 1.0
        out[i] = weighted
    return out


def _ewm_gaps(x: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """:func:`ewm_mean` of columns with NaN (pandas' branches per cell)."""
    out = np.empty_like(x)
    weighted = x[0].copy()
    old = np.ones(x.shape[1:], dtype=np.float64)
    seen = ~np.isnan(weighted)
    out[0] = np.where(seen, weighted, np.nan)
    with np.errstate(invalid="ignore"):
        for i in range(1, len(x)):
            cur = x[i]
            obs = ~np.isnan(cur)
            has = ~np.isnan(weighted)
            old = np.where(has, old * decay, old)
            update = has & obs
            mixed = (old * weighted + cur) / (old + 1.0)
            weighted = np.where(update & (weighted != cur), mixed, weighted)
            old = np.where(update, old + 1.0, old)
            weighted = np.where(~has & obs, cur, weighted)
            seen |= obs
            out[i] = np.where(seen, weighted, np.nan)
    return out


class ExecutionStrategy:
    """What the execution strategies share: the outer orders, what remains of each, lots and the inner bars."""

    def __init__(self, **qlib_kwargs: Any) -> None:
        qlib_kwargs.pop("outer_trade_decision", None)
        _ignore_qlib_infra(qlib_kwargs)
        self.infra: TradingInfra | None = None
        self.parent = TradeDecision(())
        self.remaining: dict[str, float] = {}
        #: the number of inner bars, and the decision's trade range on them
        self.n_steps = 0
        self.range = (0, -1)
        self._factors: list[float] | None = None

    def reset(self, infra: TradingInfra) -> None:
        """Bind to the inner bars of one outer bar (called by the nested executor before each outer bar)."""
        self.infra = infra
        self.parent = TradeDecision(())
        self.remaining = {}
        n_bars = getattr(infra.calendar, "n_bars", None)
        self.n_steps = int(n_bars) if n_bars is not None else len(infra.calendar.bars)
        self.range = (0, self.n_steps - 1)
        self._factors = None

    def set_parent(self, decision: TradeDecision, step: Step) -> None:
        """The outer decision to carry out over the inner bars."""
        assert self.infra is not None, "reset() first"
        self.parent = decision
        self.remaining = {order.instrument: order.amount for order in decision.orders}
        self.range = range_of(decision, self.infra.calendar)

    def post_exe_step(self, fills: Sequence[Fill]) -> None:
        """Count what the last inner step dealt."""
        for fill in fills:
            name = fill.order.instrument
            if name in self.remaining:
                self.remaining[name] -= fill.deal_amount

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The orders of inner step ``step``."""
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------------------------

    @property
    def exchange(self) -> Any:
        """The inner bars' exchange."""
        assert self.infra is not None, "reset() first"
        return self.infra.exchange

    def _unit(self, j: int) -> float | None:
        """Adjusted shares per lot of column ``j`` (the factor of the outer bar), None without lots."""
        exchange = self.exchange
        if exchange.trade_unit is None or j is None:
            return None
        if self._factors is None:  # the last valid factor of every column over the outer bar
            factor = exchange.factor
            valid = ~np.isnan(factor)
            last = len(factor) - 1 - np.argmax(valid[::-1], axis=0)
            self._factors = np.where(valid.any(axis=0), factor[last, np.arange(factor.shape[1])], np.nan).tolist()
        value = self._factors[j]
        if value != value:
            return None
        return exchange.trade_unit / value

    def _split_evenly(self, name: str, j: int, k: int, n: int) -> float:
        """Qlib's even split: what remains over the steps left, rounded up to lots."""
        remaining = self.remaining[name]
        unit = self._unit(j)
        if unit is None:
            return remaining / (n - k)
        count = int(remaining // unit)
        return (count + n - k - 1) // (n - k) * unit

    def _finish(self, order: Order, amount: float, k: int, n: int) -> float:
        """Sells finish at the last step (or once nothing would be ordered); never more than remains."""
        remaining = self.remaining[order.instrument]
        if order.direction.sign < 0 and remaining > 1e-5 and (amount < 1e-5 or k == n - 1):
            amount = remaining
        return min(amount, remaining)


class TWAP(ExecutionStrategy):
    """Qlib's ``TWAPStrategy``: even split over the decision's trade range with shortfall re-targeting."""

    def _expected(self, order: Order, j: int, first: int, last: int, k: int) -> float:
        """The amount of ``order`` that should be done after inner step ``k`` (Qlib's arithmetic)."""
        return order.amount / (last - first + 1) * (k - first + 1)

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The shortfall of every outer order against its schedule, at inner step ``step``."""
        if not self.parent.orders:
            return TradeDecision(())
        first, last = self.range
        k = step.index
        if k < first or k > last:
            return TradeDecision(())
        exchange = self.exchange
        orders = []
        for order in self.parent.orders:
            name = order.instrument
            j = exchange.col(name)
            if exchange.is_suspended(k, j):
                continue
            expected = self._expected(order, j, first, last, k)
            remaining = self.remaining[name]
            delta = expected - (order.amount - remaining)
            unit = self._unit(j)
            target = delta if unit is None else min(round(delta / unit) * unit, remaining)
            if k == last:
                target = remaining
            if target > 1e-5:
                orders.append(Order(name, target, order.direction))
        return TradeDecision(tuple(orders))


class VWAP(TWAP):
    """TWAP's re-targeting on the expected intraday volume profile (see the module docstring).

    :param lookback: trading days of history the profile averages.
    """

    def __init__(self, lookback: int = 20, **qlib_kwargs: Any) -> None:
        super().__init__(**qlib_kwargs)
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 1:
            raise ConfigError(f"lookback must be a positive integer, got {lookback!r}", path="strategy.kwargs.lookback")
        self.lookback = lookback
        self._profiles: tuple[Any, np.ndarray, dict[pd.Timestamp, int]] | None = None
        self._cum: dict[str, np.ndarray] = {}

    def reset(self, infra: TradingInfra) -> None:
        """Bind to one outer bar's inner bars (the profile of the whole run is computed once)."""
        super().reset(infra)
        self._cum = {}
        parent = getattr(infra.exchange, "_parent", None) or infra.exchange
        if self._profiles is None or self._profiles[0] is not parent:
            self._profiles = (parent, *self._profile(infra, parent))

    def _profile(self, infra: TradingInfra, level: Any) -> tuple[np.ndarray, dict[pd.Timestamp, int]]:
        """Mean volume per (day, slot of the day, instrument) over the previous ``lookback`` days."""
        provider = infra.provider
        calendar = infra.calendar.calendar
        bars = pd.DatetimeIndex(level.dates)
        days = provider.calendar("day")
        first_day = int(days.searchsorted(bars[0].normalize(), "left"))
        start = days[max(first_day - self.lookback, 0)]
        lo = int(calendar.searchsorted(start, "left"))
        hi = int(calendar.searchsorted(bars[-1], "right"))
        history = calendar[lo:hi]
        freq = getattr(level.minutes, "freq", "1min")
        minutes = provider.calendar(freq)
        mlo = int(minutes.searchsorted(history[0], "left"))
        mhi = int(minutes.searchsorted(bars[-1] + Freq.parse(infra.calendar.freq).length, "left"))
        names = list(level.instruments)
        known = provider.universe("all")
        present = [n for n in names if n in known]
        volume = np.zeros((mhi - mlo, len(names)))
        if present and mhi > mlo:
            panel = provider.load(["volume"], present, minutes[mlo], minutes[mhi - 1], freq)
            cols = [names.index(n) for n in present]
            volume[:, cols] = np.nan_to_num(panel["volume"].astype(np.float64))
        bar_of = history.searchsorted(minutes[mlo:mhi], "right") - 1
        day_of_bar = history.normalize()
        unique_days = pd.DatetimeIndex(np.unique(day_of_bar))
        day_index = unique_days.searchsorted(day_of_bar)
        first_of_day = np.searchsorted(day_index, day_index, "left")
        slot_of_bar = np.arange(len(history)) - first_of_day
        n_slots = int(slot_of_bar.max()) + 1 if len(slot_of_bar) else 1
        sums = np.zeros((len(unique_days), n_slots, len(names)))
        valid = bar_of >= 0
        np.add.at(sums, (day_index[bar_of[valid]], slot_of_bar[bar_of[valid]]), volume[valid])
        running = np.concatenate([np.zeros((1, n_slots, len(names))), np.cumsum(sums, axis=0)])
        profiles = np.empty_like(sums)
        for d in range(len(unique_days)):
            a = max(d - self.lookback, 0)
            profiles[d] = (running[d] - running[a]) / max(d - a, 1)
        return profiles, {day: i for i, day in enumerate(unique_days)}

    def _expected(self, order: Order, j: int, first: int, last: int, k: int) -> float:
        return order.amount * self._share(order.instrument, j, first, last, k)

    def _share(self, name: str, j: int, first: int, last: int, k: int) -> float:
        """The share of the range's expected volume up to inner step ``k``."""
        cum = self._cum.get(name)
        if cum is None:
            assert self.infra is not None and self._profiles is not None
            _, profiles, day_index = self._profiles
            bars = self.infra.calendar.bars
            day = day_index.get(bars[0].normalize())
            offset = int(self.infra.calendar.calendar.searchsorted(bars[0].normalize(), "left"))
            slots = [self.infra.calendar.offset + i - offset for i in range(first, last + 1)]
            expected = np.zeros(len(slots))
            if day is not None and all(0 <= s < profiles.shape[1] for s in slots):
                expected = profiles[day, slots, j]
            total = float(expected.sum())
            if not total > 0:
                expected = np.ones(len(slots))
                total = float(len(slots))
            cum = np.cumsum(expected) / total
            self._cum[name] = cum
        return float(cum[k - first])


class _SignalReader:
    """A signal at ``freq`` read at the last valid value of the bar before each inner bar."""

    def __init__(self, instruments: str | Sequence[str] | None, freq: str) -> None:
        self.instruments = "all" if instruments is None else instruments
        self.freq = Freq.parse(freq, path="strategy.kwargs.freq")
        self._cache: tuple[Any, ...] | None = None

    def history(self, infra: TradingInfra, lookback: int) -> tuple[pd.DatetimeIndex, int, np.ndarray, dict, dict]:
        """The closes the signal of the whole run needs, loaded once per run: ``(signal calendar, its row of
        the first loaded row, closes (rows × members), column of each member, members with their spans)``;
        ``lookback`` rows before the first bar's window are included (Qlib's extended window)."""
        exchange = infra.exchange
        level = getattr(exchange, "_parent", None) or exchange
        if self._cache is not None and self._cache[0] is level and self._cache[1] == lookback:
            return self._cache[2:]
        calendar = infra.provider.calendar(self.freq.name)
        full = infra.calendar.calendar
        offset = infra.calendar.offset - getattr(exchange, "base", 0)
        bars = pd.DatetimeIndex(level.dates)
        begin = full[offset - 1] if offset > 0 else bars[0]
        if self.freq.daily:
            begin = begin.normalize() - pd.Timedelta(days=1)
        lo = max(int(calendar.searchsorted(begin, "left")) - lookback, 0)
        hi = int(calendar.searchsorted(bars[-1], "right"))
        members = self.members(infra, list(level.instruments))
        if members and hi > lo:
            close = load_close(infra.provider, list(members), calendar, lo, hi, self.freq)
        else:
            close = np.empty((0, len(members)))
        cols = {n: i for i, n in enumerate(members)}
        self._cache = (level, lookback, calendar, lo, close, cols, members)
        return calendar, lo, close, cols, members

    def block(self, infra: TradingInfra, names: Sequence[str], lookback: int) -> tuple[
            list[str], np.ndarray, np.ndarray, np.ndarray, int]:  # fmt: skip
        """For ``names`` in the signal's universe: ``(names kept, closes from lookback rows before the first
        window to the last, membership mask of those rows, each inner bar's window [lo, hi) in block rows,
        first block row's calendar position)``."""
        calendar, base, close, cols, members = self.history(infra, lookback)
        kept = [n for n in dict.fromkeys(names) if n in cols]
        _, starts, stops = self.windows(infra, calendar)
        valid = stops > starts
        if not kept or not valid.any():
            empty = np.empty((0, len(kept)))
            return kept, empty, np.zeros((0, len(kept)), dtype=bool), np.zeros((len(starts), 2), dtype=np.intp), 0
        lo, hi = int(starts[valid].min()), int(stops[valid].max())
        first = max(lo - lookback, 0)
        values = close[first - base : hi - base][:, [cols[n] for n in kept]]
        from qcore.types import membership_mask

        mask = membership_mask({n: members[n] for n in kept}, calendar[first:hi], kept)
        rows = np.stack([np.where(valid, starts - first, 0), np.where(valid, stops - first, 0)], axis=1)
        return kept, values, mask, rows, first

    def members(self, infra: TradingInfra, names: Sequence[str]) -> dict[str, Any]:
        """The universe of ``instruments`` among ``names`` (spans kept, as Qlib keeps rows inside them)."""
        provider = infra.provider
        if isinstance(self.instruments, str):
            universe = provider.universe(self.instruments)
            return {n: universe[n] for n in names if n in universe}
        known = provider.universe("all")
        return {n: known[n] for n in names if n in self.instruments and n in known}

    def windows(self, infra: TradingInfra, signal_calendar: pd.DatetimeIndex) -> tuple[
            pd.DatetimeIndex, np.ndarray, np.ndarray]:  # fmt: skip
        """The signal calendar and, per inner bar, the signal rows ``[lo, hi)`` of the bar before it."""
        calendar = infra.calendar
        n_bars = getattr(calendar, "n_bars", None)
        full, offset, n = calendar.calendar, calendar.offset, int(n_bars) if n_bars is not None else len(calendar.bars)
        starts = np.empty(n, dtype=np.intp)
        stops = np.empty(n, dtype=np.intp)
        for k in range(n):
            prev = offset + k - 1
            if prev < 0:
                starts[k] = stops[k] = 0
                continue
            begin, end = full[prev], full[prev + 1]
            if self.freq.daily:  # a day's value is known at its close: read the days before the bar's day
                end = pd.Timestamp(full[prev + 1]).normalize()
                begin = min(begin.normalize(), end - pd.Timedelta(days=1))
            starts[k] = signal_calendar.searchsorted(begin, "left")
            stops[k] = signal_calendar.searchsorted(end, "left")
        return signal_calendar, starts, stops


def load_close(provider: Any, names: Sequence[str], calendar: pd.DatetimeIndex, lo: int, hi: int,
               freq: Freq) -> np.ndarray:  # fmt: skip
    """``$close`` of ``names`` on ``calendar[lo:hi]`` (float64): stored bars, or, for a calendar the store derives
    from its minute bars (``30min``), each bar's last valid minute close."""
    from qcore.errors import DataError

    try:
        return provider.load(["close"], list(names), calendar[lo], calendar[hi - 1], freq.name)["close"].astype(
            np.float64)  # fmt: skip
    except DataError:
        if freq.daily:
            raise
    minutes = provider.calendar("1min")
    end = calendar[hi] if hi < len(calendar) else None
    mlo = int(minutes.searchsorted(calendar[lo], "left"))
    mhi = len(minutes) if end is None else int(minutes.searchsorted(end, "left"))
    close = provider.load(["close"], list(names), minutes[mlo], minutes[mhi - 1], "1min")["close"].astype(np.float64)
    bar = calendar[lo:hi].searchsorted(minutes[mlo:mhi], "right") - 1
    out = np.full((hi - lo, len(names)), np.nan)
    valid = ~np.isnan(close)
    for j in range(len(names)):  # the last valid minute of each bar wins
        rows = np.flatnonzero(valid[:, j] & (bar >= 0))
        out[bar[rows], j] = close[rows, j]
    return out


def _last_valid(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The last non-NaN value of each column over rows ``[lo, hi)`` (NaN where none)."""
    block = values[lo:hi]
    out = np.full(values.shape[1], np.nan)
    if not len(block):
        return out
    valid = ~np.isnan(block)
    has = valid.any(axis=0)
    last = len(block) - 1 - np.argmax(valid[::-1], axis=0)
    out[has] = block[last[has], np.arange(block.shape[1])[has]]
    return out


class SBBEMA(ExecutionStrategy):
    """Qlib's ``SBBStrategyEMA`` (see the module docstring).

    :param instruments: the market (or list of names) the EMA signal covers; names outside it are neutral.
    :param freq: the signal's bar frequency (``day``, ``1min``...).
    """

    def __init__(self, instruments: str | Sequence[str] | None = "csi300", freq: str = "day",
                 **qlib_kwargs: Any) -> None:  # fmt: skip
        super().__init__(**qlib_kwargs)
        self.reader = _SignalReader(instruments, freq)
        self.trend: dict[str, int] = {}
        self._signal: np.ndarray | None = None
        self._cols: dict[str, int] = {}

    def reset(self, infra: TradingInfra) -> None:
        """Bind to one outer bar's inner bars (the signal is read when the outer orders are known)."""
        super().reset(infra)
        self.trend = {}
        self._signal = None

    def set_parent(self, decision: TradeDecision, step: Step) -> None:
        """The outer decision; every name starts neutral."""
        super().set_parent(decision, step)
        self.trend = {order.instrument: TREND_MID for order in decision.orders}
        self._signal = None

    def _compute(self) -> np.ndarray:
        """``EMA($close, 10) - EMA($close, 20)`` of the outer orders' names, as Qlib computes it for this outer
        bar (from 19 bars before its first window), read at each inner bar's previous bar."""
        infra = self.infra
        assert infra is not None
        names, close, mask, rows, _ = self.reader.block(infra, [o.instrument for o in self.parent.orders], 19)
        self._cols = {n: i for i, n in enumerate(names)}
        signal = np.full((self.n_steps, len(names)), np.nan)
        if len(close):
            both = ewm_mean(np.hstack([close, close]), np.repeat([10.0, 20.0], close.shape[1]))
            values = (both[:, : close.shape[1]] - both[:, close.shape[1] :]).astype(np.float32).astype(np.float64)
            values[~mask] = np.nan
            for k, (lo, hi) in enumerate(rows.tolist()):
                if hi > lo:
                    signal[k] = _last_valid(values, lo, hi)
        self._signal = signal
        return signal

    def _predict(self, name: str, k: int) -> int:
        signal = self._signal if self._signal is not None else self._compute()
        col = self._cols.get(name)
        if col is None:
            return TREND_MID
        value = float(signal[k, col])
        if math.isnan(value) or value == 0:
            return TREND_MID
        return TREND_LONG if value > 0 else TREND_SHORT

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The orders of inner step ``step`` (pairs of bars; the trend picks the better bar of a pair)."""
        assert self.infra is not None
        exchange = self.exchange
        k, n = step.index, self.n_steps
        orders = []
        for order in self.parent.orders:
            name = order.instrument
            j = exchange.col(name)
            trend = self._predict(name, k) if k % 2 == 0 else self.trend[name]
            if not exchange.is_tradable(k, j):
                if k % 2 == 0:
                    self.trend[name] = trend
                continue
            remaining = self.remaining[name]
            if trend == TREND_MID:
                amount = self._split_evenly(name, j, k, n)
                amount = self._finish(order, amount, k, n)
                if amount > 1e-5:
                    orders.append(Order(name, amount, order.direction))
            else:
                unit = self._unit(j)
                if unit is None:
                    amount = 2 * remaining / (n - k + 1)
                else:
                    amount = (int(remaining // unit) + n - k) // (n - k + 1) * 2 * unit
                amount = self._finish(order, amount, k, n)
                buy = order.direction.sign > 0
                if amount > 1e-5:
                    if k % 2 == 0:
                        place = (trend == TREND_SHORT and not buy) or (trend == TREND_LONG and buy)
                    else:
                        place = (trend == TREND_SHORT and buy) or (trend == TREND_LONG and not buy)
                    if place:
                        orders.append(Order(name, amount, order.direction))
            if k % 2 == 0:
                self.trend[name] = trend
        return TradeDecision(tuple(orders))


class AlmgrenChriss(ExecutionStrategy):
    """Qlib's ``ACStrategy`` (see the module docstring).

    :param lamb: risk aversion λ.
    :param eta: temporary impact η.
    :param window_size: bars of the volatility estimate.
    :param instruments: the market (or names) the volatility covers; others split evenly.
    :param freq: the volatility's bar frequency.
    """

    def __init__(self, lamb: float = 1e-6, eta: float = 2.5e-6, window_size: int = 20,
                 instruments: str | Sequence[str] | None = "csi300", freq: str = "day",
                 **qlib_kwargs: Any) -> None:  # fmt: skip
        super().__init__(**qlib_kwargs)
        for key, value in (("lamb", lamb), ("eta", eta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{key} must be a number > 0, got {value!r}", path=f"strategy.kwargs.{key}")
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 2:
            raise ConfigError(f"window_size must be an integer >= 2, got {window_size!r}",
                              path="strategy.kwargs.window_size")  # fmt: skip
        self.lamb, self.eta, self.window_size = float(lamb), float(eta), window_size
        self.reader = _SignalReader(instruments, freq)
        self._sigma: np.ndarray | None = None
        self._cols: dict[str, int] = {}

    def reset(self, infra: TradingInfra) -> None:
        """Bind to one outer bar's inner bars (the volatility is read when the outer orders are known)."""
        super().reset(infra)
        self._sigma = None

    def set_parent(self, decision: TradeDecision, step: Step) -> None:
        """The outer decision."""
        super().set_parent(decision, step)
        self._sigma = None

    def _compute(self) -> np.ndarray:
        """The volatility of the outer orders' names at each inner bar's previous bar (Qlib's expression)."""
        infra = self.infra
        assert infra is not None
        w = self.window_size
        names, close, mask, rows, _ = self.reader.block(infra, [o.instrument for o in self.parent.orders], w)
        self._cols = {n: i for i, n in enumerate(names)}
        out = np.full((self.n_steps, len(names)), np.nan)
        if len(close):
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.log(close[1:] / close[:-1])
            r = np.vstack([np.full((1, close.shape[1]), np.nan), r])
            sigma = np.full_like(close, np.nan)
            for t in range(len(r)):  # Qlib's rolling sums: min_periods=1, NaN returns skipped
                block = r[max(t - w + 1, 0) : t + 1]
                seen = (~np.isnan(block)).any(axis=0)
                s1, s2 = np.nansum(block, axis=0), np.nansum(block * block, axis=0)
                with np.errstate(invalid="ignore"):
                    value = np.sqrt(s2 / (w - 1) - s1 * s1 / (w * (w - 1)))
                sigma[t] = np.where(seen, value, np.nan)
            sigma = sigma.astype(np.float32).astype(np.float64)
            sigma[~mask] = np.nan
            for k, (lo, hi) in enumerate(rows.tolist()):
                if hi > lo:
                    out[k] = _last_valid(sigma, lo, hi)
        self._sigma = out
        return out

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The Almgren–Chriss share of every outer order at inner step ``step``."""
        assert self.infra is not None
        sigmas = self._sigma if self._sigma is not None else self._compute()
        exchange = self.exchange
        k, n = step.index, self.n_steps
        orders = []
        for order in self.parent.orders:
            name = order.instrument
            j = exchange.col(name)
            if not exchange.is_tradable(k, j):
                continue
            col = self._cols.get(name)
            sigma = float(sigmas[k, col]) if col is not None else math.nan
            kappa = math.acosh(self.lamb / self.eta * sigma * sigma / 2 + 1) if not math.isnan(sigma) else 0.0
            if kappa == 0.0:
                amount = self._split_evenly(name, j, k, n)
            else:
                ratio = (math.sinh(kappa * (n - k)) - math.sinh(kappa * (n - k - 1))) / math.sinh(kappa * n)
                factor = float(exchange.factor_at(k, j))
                amount = order.amount * ratio
                if not math.isnan(factor):
                    amount = exchange.round_amount(amount, factor)
            amount = self._finish(order, amount, k, n)
            if amount > 1e-5:
                orders.append(Order(name, amount, order.direction))
        return TradeDecision(tuple(orders))
