"""One-minute bars that aggregate exactly to the synthetic daily bars (``qcore data synth --freq 1min``).

Each trading day has 240 bars stamped by their start as Qlib stamps them (09:30 … 11:29, 13:00 … 14:59; see
:mod:`qdata_cn.sessions`). Per day and instrument the minute closes follow a Brownian bridge (U-shaped intraday
volatility) from the daily open to the daily close inside the daily range, on the 0.01 CNY tick; whole lots are
spread over the bars with a U-shaped volume profile, and each bar's VWAP lies inside its range.

**What "exact" means** (float32 stores; checked for every instrument and day by the tests). For a day with bars
``i = 0 … 239`` of stored float32 values:

- ``open = open[0]``, ``close = close[239]``, ``high = max high[i]``, ``low = min low[i]``: the same float32 bits;
- ``volume = f32(Σ volume[i])`` and ``amount = f32(Σ amount[i])``: the exact sum of the stored float32 minute
  values (``math.fsum``), rounded once to float32, is the stored daily value. The bars are drawn in whole lots that
  add up to the day's; ``round(volume[i] · factor / 100)`` recovers them (a bar moves by the least amount that
  makes its day's sum exact, a fraction of a lot even where float32 resolves a busy day only to half a lot);
- ``vwap = f32(fsum(vwap[i] · volume[i]) / fsum(volume[i]))`` on a day with volume: the volume-weighted mean of
  the minute VWAPs (each product exact in float64), rounded once, is the daily VWAP; ``low[i] ≤ vwap[i] ≤
  high[i]``; for stocks ``amount[i] = vwap[i] · volume[i]`` within 1e-5 (``$vwap · $volume`` is raw CNY in Qlib's
  adjusted convention; the bar that absorbs the rounding of a sum moves by a few float32 steps; the index's amount
  is its members' and is spread in proportion to the traded value);
- ``factor[i]`` is the day's factor; ``change[i] = close[i] / previous day's close - 1``, against the reference
  price of the daily price limit (so a bar at the limit price has ``|$change|`` at the limit and the last bar's
  ``$change`` is the day's, bit for bit; Qlib's collectors write bar-to-bar changes instead);
- a suspended day is NaN in every field of every bar; a one-word limit day has 240 flat bars
  (``open = high = low = close = vwap`` = the day's price).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from qdata_cn.naming import HIGH_FREQ_FORMAT, bin_name, code_to_fname
from qdata_cn.sessions import BARS_PER_DAY, minute_calendar

if TYPE_CHECKING:
    from qdata_cn.synth import SynthMarket
    from qdata_cn.writer import StoreTransaction

FIELDS = ("open", "high", "low", "close", "vwap", "volume", "amount", "factor", "change")
#: Raw daily inputs, each of shape ``(D,)`` (NaN on suspended days): :func:`minute_bars` reads all but ``volume``,
#: which :func:`draw_noise` spreads over the bars.
DAY_INPUTS = ("open", "high", "low", "close", "vwap", "volume", "amount", "factor", "prev_close")
#: Stored daily float32 values the minutes aggregate to.
DAY_TARGETS = ("volume", "amount", "vwap")
_LOT = 100.0


def _profile() -> np.ndarray:
    """Relative intraday volatility / volume: high at the open, low at noon, rising into the close."""
    k = np.arange(BARS_PER_DAY) / (BARS_PER_DAY - 1)
    return 0.6 + 1.6 * (k - 0.5) ** 2 * 4 / 2 + 0.8 * np.exp(-k * 25)


def _cents(x: np.ndarray) -> np.ndarray:
    return np.floor(x * 100.0 + 0.5) / 100.0


# ---------------------------------------------------------------------------------------------------------------
# Exact sums of float32 values
# ---------------------------------------------------------------------------------------------------------------


def rounded_sums(values: np.ndarray) -> np.ndarray:
    """Per row, the exact sum of ``values`` (float32 or float64) rounded to float64, as ``math.fsum`` gives it.

    The rows are summed left to right in float64 (``cumsum``) and every addition is checked for a rounding error
    (Knuth's two-sum); only rows where one occurred are summed again with ``math.fsum``. NaN rows give NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    total = np.cumsum(x, axis=1)
    before, after, added = total[:, :-1], total[:, 1:], x[:, 1:]  # the first addition (0 + x0) is exact
    with np.errstate(invalid="ignore"):
        back = after - before
        error = (before - (after - back)) + (added - back)
    out = total[:, -1].copy()
    for row in np.flatnonzero((error != 0).any(axis=1) & np.isfinite(out)):
        out[row] = math.fsum(x[row].tolist())
    return out


def _aim(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The float64 value nearest to ``current`` well inside the interval that rounds to the float32 ``target``
    (a tenth of a step from its edges): moving a sum or a mean there changes the bars least."""
    t = target.astype(np.float64)
    down = t - np.nextafter(target, np.float32(-np.inf)).astype(np.float64)
    up = np.nextafter(target, np.float32(np.inf)).astype(np.float64) - t
    return np.clip(current, t - 0.4 * down, t + 0.4 * up)


def _fit_sums(values: np.ndarray, target: np.ndarray, rows: np.ndarray) -> None:
    """Where ``f32(fsum(row))`` misses ``target``, move the row's largest value by the least amount that makes it
    hit (in place, float32)."""
    if not rows.size:
        return
    total = rounded_sums(values[rows])
    miss = total.astype(np.float32) != target[rows]
    rows, total = rows[miss], total[miss]
    if not rows.size:
        return
    k = np.argmax(values[rows], axis=1)
    picked = values[rows, k].astype(np.float64)
    values[rows, k] = (picked + (_aim(total, target[rows]) - total)).astype(np.float32)
    got = rounded_sums(values[rows]).astype(np.float32)
    for r in np.flatnonzero(got != target[rows]):
        _nudge(values, int(rows[r]), [int(k[r])], target[rows[r]], _row_sum)


def _row_sum(values: np.ndarray, row: int) -> np.float32:
    return np.float32(math.fsum(values[row].astype(np.float64).tolist()))


def _nudge(
    values: np.ndarray,
    row: int,
    bars: list[int],
    target: np.float32,
    measure: Callable[[np.ndarray, int], np.float32],
    limits: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Move ``values[row, bar]`` one float32 step at a time (trying ``bars`` in turn) until ``measure`` hits
    ``target``; ``limits`` optionally bounds each value to ``(low, high)`` arrays of the row."""
    for bar in bars:
        for _ in range(64):
            got = measure(values, row)
            if got == target:
                return
            direction = np.float32(np.inf) if got < target else np.float32(-np.inf)
            new = np.nextafter(values[row, bar], direction)
            if limits is not None and not (limits[0][row, bar] <= new <= limits[1][row, bar]):
                break
            values[row, bar] = new
    if measure(values, row) != target:  # pragma: no cover - only an unreachable target gets here
        raise ArithmeticError(f"cannot make minute bars of row {row} aggregate to {target!r}")


def _weighted_vwap(vwap: np.ndarray, volume: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``f32(fsum(vwap·volume) / fsum(volume))`` of each row (products of float32 values are exact in float64)."""
    w = volume[rows].astype(np.float64)
    p = vwap[rows].astype(np.float64) * w
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rounded_sums(p) / rounded_sums(w)).astype(np.float32)


def _fit_vwap(vwap: np.ndarray, volume: np.ndarray, low: np.ndarray, high: np.ndarray, target: np.ndarray,
              rows: np.ndarray) -> None:  # fmt: skip
    """Where the weighted mean misses ``target``, move the VWAP of the row's busiest bar with room inside its
    range by the least amount that makes it hit (in place, float32)."""
    if not rows.size:
        return
    miss = _weighted_vwap(vwap, volume, rows) != target[rows]
    rows = rows[miss]
    if not rows.size:
        return
    w = volume[rows].astype(np.float64)
    room = (vwap[rows] > low[rows]) & (vwap[rows] < high[rows]) & (w > 0)
    k = np.argmax(np.where(room, w, -1.0), axis=1)
    r = np.arange(len(rows))
    wk = w[r, k]
    total = rounded_sums(w)
    mean = rounded_sums(vwap[rows].astype(np.float64) * w) / total
    move = (_aim(mean, target[rows]) - mean) * total / np.where(wk > 0, wk, 1.0)
    new = np.clip((vwap[rows, k].astype(np.float64) + move).astype(np.float32), low[rows, k], high[rows, k])
    vwap[rows, k] = np.where(wk > 0, new, vwap[rows, k])
    got = _weighted_vwap(vwap, volume, rows)

    def measure(values: np.ndarray, row: int) -> np.float32:
        return _weighted_vwap(values, volume, np.array([row]))[0]

    for i in np.flatnonzero(got != target[rows]):
        row = int(rows[i])
        order = [int(b) for b in np.argsort(-volume[row], kind="stable") if volume[row, b] > 0]
        _nudge(vwap, row, order, target[row], measure, (low, high))


# ---------------------------------------------------------------------------------------------------------------
# Bars
# ---------------------------------------------------------------------------------------------------------------


def draw_noise(volume: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The random draws of one instrument's days ``(D, 240)``: path steps, wick sizes and raw shares per bar.

    ``volume`` is the day's raw volume (0 on suspended days); its whole lots are apportioned to the bars by a noisy
    U-shaped profile (a remainder below one lot goes to the last bar).
    """
    n_days, k = len(volume), BARS_PER_DAY
    prof = _profile()
    steps = rng.standard_normal((n_days, k)) * np.sqrt(prof)[None, :]
    up = np.abs(rng.standard_normal((n_days, k)))
    down = np.abs(rng.standard_normal((n_days, k)))
    lots = np.floor(volume / _LOT)
    weights = prof[None, :] * np.exp(0.5 * rng.standard_normal((n_days, k)))
    weights /= weights.sum(axis=1, keepdims=True)
    shares = _apportion(lots, weights) * _LOT
    shares[:, -1] += volume - lots * _LOT
    return {"steps": steps, "up": up, "down": down, "shares": shares}


def _apportion(total: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Whole numbers per row in proportion to ``weights`` that add up to ``total`` (largest remainders first)."""
    exact = total[:, None] * weights
    whole = np.floor(exact)
    short = total - whole.sum(axis=1)
    order = np.argsort(whole - exact, axis=1, kind="stable")  # largest remainder first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(weights.shape[1])[None, :], axis=1)
    return whole + (rank < short[:, None])


def _price_paths(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, noise: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw minute opens, highs, lows and closes ``(D, 240)`` on the tick, inside and spanning each day's range."""
    n_days, k = len(c), BARS_PER_DAY
    walk = np.cumsum(noise["steps"], axis=1)
    frac = (np.arange(1, k + 1) / k)[None, :]
    bridge = walk - frac * walk[:, -1:]
    span = np.log(h) - np.log(lo)
    width = bridge.max(axis=1) - bridge.min(axis=1)
    scale = np.where(width > 0, 0.9 * span / np.maximum(width, 1e-12), 0.0)
    path = np.log(o)[:, None] + (np.log(c) - np.log(o))[:, None] * frac + scale[:, None] * bridge
    closes = np.clip(_cents(np.exp(path)), lo[:, None], h[:, None])
    closes[:, -1] = c
    opens = np.concatenate([o[:, None], closes[:, :-1]], axis=1)
    wiggle = (span / np.sqrt(k))[:, None] * 0.3
    highs = np.minimum(_cents(np.maximum(opens, closes) * np.exp(wiggle * noise["up"])), h[:, None])
    lows = np.maximum(_cents(np.minimum(opens, closes) * np.exp(-wiggle * noise["down"])), lo[:, None])
    highs = np.maximum(highs, np.maximum(opens, closes))
    lows = np.minimum(lows, np.minimum(opens, closes))
    rows = np.arange(n_days)
    highs[rows, np.argmax(highs, axis=1)] = h
    lows[rows, np.argmin(lows, axis=1)] = lo
    return opens, highs, lows, closes


#: Bar VWAPs use at most this share of the room between their first guess and their bars' extremes.
_MAX_FILL = 0.9


def _widen(bound: np.ndarray, extreme: np.ndarray, guess: np.ndarray, shares: np.ndarray, gap: np.ndarray,
           up: bool) -> np.ndarray:  # fmt: skip
    """Bar highs (``up``) or lows moved towards the day's extreme, on the tick, so that the VWAP ``gap`` takes at
    most ``_MAX_FILL`` of the room: a daily VWAP near the day's high needs bars that traded up there."""
    sign = 1.0 if up else -1.0
    need = np.maximum(sign * gap, 0.0) / _MAX_FILL - sign * ((bound - guess) * shares).sum(axis=1)
    reach = sign * ((extreme[:, None] - bound) * shares).sum(axis=1)
    alpha = np.divide(need, reach, out=np.zeros_like(need), where=reach > 0)
    moved = bound + np.clip(alpha, 0.0, 1.0)[:, None] * (extreme[:, None] - bound)
    ticks = np.ceil(moved * 100.0 - 1e-6) / 100.0 if up else np.floor(moved * 100.0 + 1e-6) / 100.0
    return np.minimum(ticks, extreme[:, None]) if up else np.maximum(ticks, extreme[:, None])


def _vwaps(typical: np.ndarray, lows: np.ndarray, highs: np.ndarray, shares: np.ndarray, vwap: np.ndarray,
           day_low: np.ndarray, day_high: np.ndarray,
           traded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Raw bar VWAPs inside each bar's range whose share-weighted mean is the day's ``vwap``, with the bar ranges.

    The VWAPs start at each bar's typical price shifted by the day's difference and clipped to the bar, then move
    towards the bars' highs (or lows) in proportion to the room there. A daily VWAP the bars' ranges can hardly
    reach (the day traded mostly near its high) first widens the bars towards the day's extreme
    (:func:`_widen`): the bars keep the day's high, low and volume profile.
    """
    total = shares.sum(axis=1)
    target = np.where(traded, vwap * total, 0.0)
    path = np.divide((typical * shares).sum(axis=1), total, out=typical[:, -1].copy(), where=total > 0)
    shift = np.where(traded, vwap - path, 0.0)[:, None]
    guess = np.clip(typical + shift, lows, highs)
    gap = target - (guess * shares).sum(axis=1)
    highs = _widen(highs, day_high, guess, shares, gap, up=True)
    lows = _widen(lows, day_low, guess, shares, gap, up=False)
    guess = np.clip(typical + shift, lows, highs)
    gap = target - (guess * shares).sum(axis=1)
    room = np.where(gap[:, None] > 0, highs - guess, guess - lows)
    room_value = (room * shares).sum(axis=1)
    share = np.divide(np.abs(gap), room_value, out=np.zeros_like(gap), where=room_value > 0)
    v = np.clip(guess + (np.sign(gap) * np.minimum(share, 1.0))[:, None] * room, lows, highs)
    return v, lows, highs


def minute_bars(
    day: dict[str, np.ndarray], targets: dict[str, np.ndarray], noise: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Minute bars of ``D`` instrument-days, as stored float32 arrays ``(D, 240)``.

    Rows are independent days (of one instrument or several).

    :param day: raw daily values, each ``(D,)`` (NaN on suspended days): ``open high low close vwap`` in CNY,
        ``amount`` in CNY, the stored ``factor`` (float64) and ``prev_close``, the previous traded day's stored
        (adjusted) close in float64 (NaN on an instrument's first day).
    :param targets: the stored daily float32 ``volume``, ``amount`` and ``vwap`` the minutes must aggregate to.
    :param noise: :func:`draw_noise` of the rows (its ``shares`` are the raw volume per bar).
    """
    traded = ~np.isnan(day["close"])
    o, h, lo, c = (np.nan_to_num(day[k], nan=1.0) for k in ("open", "high", "low", "close"))
    f = np.where(traded, day["factor"], np.nan)
    opens, highs, lows, closes = _price_paths(o, h, lo, c, noise)
    shares = noise["shares"]
    typical = 0.25 * (opens + highs + lows + closes)
    v, lows, highs = _vwaps(typical, lows, highs, shares, np.nan_to_num(day["vwap"], nan=0.0), lo, h, traded)
    value = v * shares
    traded_value = value.sum(axis=1)
    scale = np.divide(np.nan_to_num(day["amount"], nan=0.0), traded_value, out=np.zeros_like(traded_value),
                      where=traded_value > 0)  # fmt: skip
    fac = f[:, None]
    close64 = closes * fac
    out = {
        "open": (opens * fac).astype(np.float32),
        "high": (highs * fac).astype(np.float32),
        "low": (lows * fac).astype(np.float32),
        "close": close64.astype(np.float32),
        "vwap": (v * fac).astype(np.float32),
        "volume": (shares / fac).astype(np.float32),
        "amount": np.where(traded[:, None], value * scale[:, None], np.nan).astype(np.float32),
        "factor": np.broadcast_to(fac, shares.shape).astype(np.float32),
        "change": (close64 / day["prev_close"][:, None] - 1.0).astype(np.float32),
    }
    rows = np.flatnonzero(traded)
    t_vol, t_amt, t_vwap = (np.asarray(targets[k], dtype=np.float32) for k in DAY_TARGETS)
    _fit_sums(out["volume"], t_vol, rows)
    _fit_sums(out["amount"], t_amt, rows)
    _fit_vwap(out["vwap"], out["volume"], out["low"], out["high"], t_vwap, rows[t_vol[rows] > 0])
    return out


#: Instruments computed together (rows of about 120 days each keep the arrays at a few MB).
_BATCH_ROWS = 4096


def write_minutes(market: SynthMarket, txn: StoreTransaction) -> set[str]:
    """Stage ``calendars/1min.txt`` and every instrument's ``*.1min.bin``; returns the staged feature paths.

    Each instrument's draws come from its own generator (seed, 1440, its column), so its bars do not depend on
    the others; the arithmetic runs over batches of instruments at once.
    """
    from qdata_cn.writer import format_calendar

    txn.write_text("calendars/1min.txt", format_calendar(minute_calendar(market.dates), HIGH_FREQ_FORMAT))
    seed = int(market.info["params"]["seed"])
    written: set[str] = set()
    batch: list[int] = []
    rows = 0
    for j in range(len(market.symbols)):
        batch.append(j)
        rows += int(market.last[j] - market.first[j] + 1)
        if rows >= _BATCH_ROWS or j == len(market.symbols) - 1:
            written |= _write_batch(market, txn, batch, seed)
            batch, rows = [], 0
    return written


def _write_batch(market: SynthMarket, txn: StoreTransaction, columns: list[int], seed: int) -> set[str]:
    """Stage the minute bins of the instruments at ``columns`` (their days stacked as the rows of one batch)."""
    days: dict[str, list[np.ndarray]] = {name: [] for name in DAY_INPUTS}
    targets: dict[str, list[np.ndarray]] = {name: [] for name in DAY_TARGETS}
    noise: dict[str, list[np.ndarray]] = {}
    for j in columns:
        lo, hi = int(market.first[j]), int(market.last[j])
        for name in ("open", "high", "low", "close", "vwap", "volume", "factor"):
            days[name].append(market.raw[name][lo : hi + 1, j])
        days["amount"].append(market.fields["amount"][lo : hi + 1, j].astype(np.float64))
        days["prev_close"].append(_previous_close(days["close"][-1] * days["factor"][-1]))
        for name in DAY_TARGETS:
            targets[name].append(market.fields[name][lo : hi + 1, j])
        volume = np.where(np.isnan(days["close"][-1]), 0.0, np.nan_to_num(days["volume"][-1], nan=0.0))
        for key, arr in draw_noise(volume, np.random.default_rng([seed, 1440, j])).items():
            noise.setdefault(key, []).append(arr)
    bars = minute_bars(
        {k: np.concatenate(v) for k, v in days.items()},
        {k: np.concatenate(v) for k, v in targets.items()},
        {k: np.concatenate(v) for k, v in noise.items()},
    )
    written: set[str] = set()
    at = 0
    for j in columns:
        lo, hi = int(market.first[j]), int(market.last[j])
        folder = f"features/{code_to_fname(market.symbols[j])}"
        for name in FIELDS:
            rel = f"{folder}/{bin_name(name, '1min')}"
            txn.write_bin(rel, lo * BARS_PER_DAY, bars[name][at : at + hi - lo + 1].reshape(-1))
            written.add(rel)
        at += hi - lo + 1
    return written


def _previous_close(close: np.ndarray) -> np.ndarray:
    """Each day's previous traded close (forward-filled over suspensions); NaN on the first day."""
    valid = ~np.isnan(close)
    idx = np.where(valid, np.arange(len(close)), -1)
    prev_idx = np.concatenate([[-1], np.maximum.accumulate(idx)[:-1]])
    return np.where(prev_idx >= 0, close[np.maximum(prev_idx, 0)], np.nan)
