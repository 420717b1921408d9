"""One-minute bars consistent with the synthetic daily bars (``qcore data synth --freq 1min``).

Each trading day has 240 bars (09:31-11:30 and 13:01-15:00, labelled by their end). Per day and instrument the
minute closes follow a Brownian bridge (U-shaped intraday volatility) from the daily open to the daily close, kept
inside the daily range, on the 0.01 CNY tick. The bars aggregate exactly to the day: the first bar opens at the
daily open, the last closes at the daily close, the highest bar high is the daily high and the lowest bar low the
daily low (the same float32 values), and the raw minute volumes (whole lots) sum to the daily raw volume.
Minute ``vwap`` lies inside each bar's range and is shifted so that the volume-weighted minute vwap is close to the
daily vwap; ``amount`` ≈ raw vwap × raw volume, scaled so that the minute amounts add up to the daily amount.
``$factor`` is the day's factor, and suspended days are all NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qdata_cn.calendar_cn import BARS_PER_DAY, minute_calendar
from qdata_cn.naming import HIGH_FREQ_FORMAT, bin_name, code_to_fname

if TYPE_CHECKING:
    from qdata_cn.synth import SynthMarket
    from qdata_cn.writer import StoreTransaction

FIELDS = ("open", "high", "low", "close", "vwap", "volume", "amount", "factor", "change")


def _profile() -> np.ndarray:
    """Relative intraday volatility / volume: high at the open, low at noon, rising into the close."""
    k = np.arange(BARS_PER_DAY) / (BARS_PER_DAY - 1)
    return 0.6 + 1.6 * (k - 0.5) ** 2 * 4 / 2 + 0.8 * np.exp(-k * 25)


def _cents(x: np.ndarray) -> np.ndarray:
    return np.floor(x * 100.0 + 0.5) / 100.0


def minute_bars(
    day: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Minute bars of one instrument for ``D`` days; ``day`` holds raw daily ``open high low close vwap volume``,
    the stored ``factor`` and optionally ``amount`` (each of shape ``(D,)``, NaN on suspended days).

    Returns the stored fields as ``(D*240,)`` arrays.
    """
    o, h, lo, c = day["open"], day["high"], day["low"], day["close"]
    w, v, f = day["vwap"], day["volume"], day["factor"]
    n_days, k = len(c), BARS_PER_DAY
    traded = ~np.isnan(c)
    prof = _profile()
    safe = np.where(traded, 1.0, np.nan)
    o1, h1, l1, c1 = (np.nan_to_num(a, nan=1.0) for a in (o, h, lo, c))
    steps = rng.standard_normal((n_days, k)) * np.sqrt(prof)[None, :]
    walk = np.cumsum(steps, axis=1)
    frac = (np.arange(1, k + 1) / k)[None, :]
    bridge = walk - frac * walk[:, -1:]
    span = np.log(h1) - np.log(l1)
    width = bridge.max(axis=1) - bridge.min(axis=1)
    scale = np.where(width > 0, 0.9 * span / np.maximum(width, 1e-12), 0.0)
    path = np.log(o1)[:, None] + (np.log(c1) - np.log(o1))[:, None] * frac + scale[:, None] * bridge
    closes = np.clip(_cents(np.exp(path)), l1[:, None], h1[:, None])
    closes[:, -1] = c1
    opens = np.concatenate([o1[:, None], closes[:, :-1]], axis=1)
    wiggle = (span / np.sqrt(k))[:, None] * 0.3
    highs = np.minimum(_cents(np.maximum(opens, closes) * np.exp(wiggle * np.abs(rng.standard_normal((n_days, k))))),
                       h1[:, None])  # fmt: skip
    lows = np.maximum(_cents(np.minimum(opens, closes) * np.exp(-wiggle * np.abs(rng.standard_normal((n_days, k))))),
                      l1[:, None])  # fmt: skip
    highs = np.maximum(highs, np.maximum(opens, closes))
    lows = np.minimum(lows, np.minimum(opens, closes))
    rows = np.arange(n_days)
    highs[rows, np.argmax(highs, axis=1)] = h1
    lows[rows, np.argmin(lows, axis=1)] = l1

    vol_day = np.nan_to_num(v, nan=0.0)
    lots = np.floor(vol_day / 100.0).astype(np.int64)
    weights = prof[None, :] * np.exp(0.5 * rng.standard_normal((n_days, k)))
    weights /= weights.sum(axis=1, keepdims=True)
    volumes = rng.multinomial(lots, weights).astype(np.float64) * 100.0
    volumes[:, -1] += vol_day - lots * 100.0

    typical = 0.25 * (opens + highs + lows + closes)
    total = volumes.sum(axis=1)
    path_vwap = np.divide((typical * volumes).sum(axis=1), total, out=c1.copy(), where=total > 0)
    shift = np.nan_to_num(w, nan=0.0) - np.where(traded, path_vwap, 0.0)
    vwaps = np.clip(typical + shift[:, None], lows, highs)
    amounts = vwaps * volumes
    if "amount" in day:  # make the minute amounts add up to the day's amount
        got = amounts.sum(axis=1)
        want = np.nan_to_num(day["amount"], nan=0.0)
        amounts *= np.divide(want, got, out=np.zeros_like(got), where=got > 0)[:, None]

    fac = (f * safe)[:, None]
    out = {
        "open": opens * fac,
        "high": highs * fac,
        "low": lows * fac,
        "close": closes * fac,
        "vwap": vwaps * fac,
        "volume": volumes / fac,
        "amount": amounts * safe[:, None],
        "factor": np.broadcast_to(fac, (n_days, k)).copy(),
    }
    flat = {name: arr.reshape(-1) for name, arr in out.items()}
    close = flat["close"]
    valid = ~np.isnan(close)
    idx = np.where(valid, np.arange(len(close)), -1)
    prev_idx = np.concatenate([[-1], np.maximum.accumulate(idx)[:-1]])
    prev = np.where(prev_idx >= 0, close[np.maximum(prev_idx, 0)], np.nan)
    change = close / prev - 1.0
    change[~valid] = np.nan
    flat["change"] = change
    return flat


def write_minutes(market: SynthMarket, txn: StoreTransaction) -> set[str]:
    """Stage ``calendars/1min.txt`` and every instrument's ``*.1min.bin``; returns the staged feature paths."""
    from qdata_cn.writer import format_calendar

    txn.write_text("calendars/1min.txt", format_calendar(minute_calendar(market.dates), HIGH_FREQ_FORMAT))
    seed = int(market.info["params"]["seed"])
    written: set[str] = set()
    for j, sym in enumerate(market.symbols):
        lo, hi = int(market.first[j]), int(market.last[j])
        day = {name: market.raw[name][lo : hi + 1, j] for name in ("open", "high", "low", "close", "vwap", "volume")}
        day["factor"] = market.raw["factor"][lo : hi + 1, j]
        day["amount"] = market.fields["amount"][lo : hi + 1, j].astype(np.float64)
        bars = minute_bars(day, np.random.default_rng([seed, 1440, j]))
        folder = f"features/{code_to_fname(sym)}"
        for name in FIELDS:
            rel = f"{folder}/{bin_name(name, '1min')}"
            txn.write_bin(rel, lo * BARS_PER_DAY, bars[name])
            written.add(rel)
    return written
