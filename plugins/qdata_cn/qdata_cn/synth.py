"""A synthetic China A-share market, written as a Qlib bin store: qcore's embedded default data.

The market is generated day by day with vector operations across all stocks (deterministic per seed):

- returns = GARCH market factor (t4 shocks, a few crash/rally days) + sector factors (t5) + GARCH idiosyncratic
  t4 noise + rare jumps, plus a weak planted expected return: short-term reversal (minus the 5-day return),
  intermediate momentum (days t-60..t-20) and an abnormal-volume effect, each scaled to the stock's volatility
  (a daily cross-sectional IC of about 0.03-0.05 between the planted signal and the next day's return);
- raw prices on a 0.01 CNY tick, clipped to the board's daily limit (main board ±10%, ST ±5%, ChiNext ±20% from
  2020-08-24, STAR ±20%); moves beyond the limit carry over (decayed), so limit runs occur; a limit close sets
  close=high (up) or close=low (down), strong ones are one-word boards (open=high=low=close);
- late listings (an IPO day at +44% followed by limit-up runs on the main board; STAR names list after 2019-07-22),
  delistings (ST for a year first, some ending with a 10-day suspension), suspension runs where all fields are
  NaN, and missed moves caught up after resumption;
- cash dividends and bonus shares on ex-dates; Qlib's adjusted-price convention: with raw price P, raw volume V and
  cumulative adjustment F (1 at listing), ``$factor = F/c0`` (c0 = first raw close), price fields = ``P*$factor``,
  ``$volume = V/$factor``, ``$amount`` raw CNY; ``$change`` on the forward-filled stored close;
- ``SH000300``: the value-weighted index of a ``csi300``-like universe (half the stocks, semi-annual rebalances on
  the first trading day after the second Friday of June and December, ST and soon-delisted names excluded);
- ``instruments/st.txt`` lists ST spans (read by :class:`qdata_cn.rules.CNMarketRules`), and ``synth_info.json``
  the generator's ground truth;
- point-in-time fundamentals under ``financial/`` (quarterly and annual EPS, ROE, revenue and book value, published
  with lags and amended now and then, consistent with the prices): :mod:`qdata_cn.synth_fundamentals`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError
from qdata_cn.calendar_cn import cn_trading_days
from qdata_cn.naming import DAY_FORMAT, HIGH_FREQ_FORMAT, bin_name, code_to_fname
from qdata_cn.rules import STAR_OPENED, board_of, limit_ratios
from qdata_cn.sessions import span_bounds

FIELDS = ("open", "high", "low", "close", "vwap", "volume", "amount", "factor", "change")
INDEX_SYMBOL = "SH000300"
SECTORS = (
    "banks", "property", "technology", "consumer", "healthcare",
    "energy", "materials", "industrials", "utilities", "media",
)  # fmt: skip


@attrs.frozen
class SynthParams:
    """Parameters of the synthetic market.

    :ivar instruments: number of stocks (the index comes on top).
    :ivar days: number of trading days.
    :ivar seed: random seed; the same parameters give byte-identical stores.
    :ivar start: first calendar date (moved to the next trading day).
    :ivar reversal: planted short-term reversal, in units of the stock's daily volatility per cross-sectional
        standard deviation of the signal.
    :ivar momentum: planted intermediate momentum, same units.
    :ivar volume: planted abnormal-volume effect (high volume → lower next return), same units.
    """

    instruments: int = 300
    days: int = 2500
    seed: int = 0
    start: str = "2015-01-05"
    reversal: float = 0.04
    momentum: float = 0.015
    volume: float = 0.02

    def __attrs_post_init__(self) -> None:
        if self.instruments < 1:
            raise ValueError("instruments must be at least 1")
        if self.days < 2:
            raise ValueError("days must be at least 2")


@attrs.define
class SynthMarket:
    """A generated market in memory: stored fields as ``(T, N)`` arrays plus the universes and ground truth."""

    dates: pd.DatetimeIndex
    symbols: list[str]
    first: np.ndarray
    last: np.ndarray
    fields: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    csi300: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]
    st: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]
    info: dict[str, Any]

    def spans(self) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
        """``all.txt`` spans: each instrument's first and last bin date."""
        return {s: [(self.dates[f], self.dates[e])] for s, f, e in zip(self.symbols, self.first, self.last)}


def _rhu(x: np.ndarray) -> np.ndarray:
    """Round half up to whole cents (prices are kept in cents)."""
    return np.floor(x + 0.5 + 1e-7)


def _zscores(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Row-wise cross-sectional z-scores of ``x`` over ``mask`` (clipped to ±3; 0 outside the mask)."""
    weight = mask.astype(np.float64)
    count = weight.sum(axis=1, keepdims=True)
    safe = np.maximum(count, 1.0)
    mean = (x * weight).sum(axis=1, keepdims=True) / safe
    dev = (x - mean) * weight
    sd = np.sqrt((dev * dev).sum(axis=1, keepdims=True) / safe)
    z = np.divide(dev, sd, out=np.zeros_like(dev), where=(sd > 0) & (count >= 3))
    return np.minimum(np.maximum(z, -3.0), 3.0)


def _t_shocks(rng: np.random.Generator, df: float, shape: Any) -> np.ndarray:
    """Student-t shocks scaled to unit variance."""
    return rng.standard_t(df, size=shape) / np.sqrt(df / (df - 2.0))


def _make_symbols(rng: np.random.Generator, n: int, dates: pd.DatetimeIndex) -> list[str]:
    star_ok = dates[-1] > STAR_OPENED + pd.Timedelta(days=90)
    probs = np.array([0.45, 0.30, 0.15, 0.10 if star_ok else 0.0])
    counts = rng.multinomial(n, probs / probs.sum())
    pools = [
        ("SH", np.concatenate([np.arange(600000, 604000), np.arange(605000, 605500)])),
        ("SZ", np.arange(1, 4000)),
        ("SZ", np.arange(300001, 301000)),
        ("SH", np.arange(688001, 688800)),
    ]
    out: list[str] = []
    for (exchange, pool), k in zip(pools, counts):
        codes = np.sort(rng.choice(pool, size=int(k), replace=False))
        out += [f"{exchange}{c:06d}" for c in codes]
    return sorted(out)


def _rebalance_days(dates: pd.DatetimeIndex) -> list[int]:
    """Index 0 plus the first trading day after the second Friday of June and December."""
    days = [0]
    for year in range(dates[0].year, dates[-1].year + 1):
        for month in (6, 12):
            first = pd.Timestamp(year=year, month=month, day=1)
            fridays = pd.date_range(first, first + pd.Timedelta(days=20), freq="W-FRI")
            k = int(dates.searchsorted(fridays[1], side="right"))
            if 0 < k < len(dates) and k not in days:
                days.append(k)
    return sorted(days)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end]`` index pairs of the True runs of a 1-d boolean array."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def generate(params: SynthParams, loadings: np.ndarray | None = None) -> SynthMarket:
    """Simulate the market described by ``params`` (no files are written).

    ``loadings``: a ``(days, 3)`` array of the planted (reversal, momentum, volume) coefficients of each day, in
    place of the params' constant ones (a regime shift: :mod:`qdata_cn.synth_regime`).
    """
    rng = np.random.default_rng(params.seed)
    dates = cn_trading_days(params.start, count=params.days)
    t_len, n = len(dates), params.instruments
    symbols = _make_symbols(rng, n, dates)
    boards = np.array([board_of(s) for s in symbols])

    # ---- listings, delistings, ST, suspensions ------------------------------------------------------------
    first = np.zeros(n, dtype=np.int64)
    last = np.full(n, t_len - 1, dtype=np.int64)
    late_max = int(0.85 * t_len)
    if late_max > 2:
        late = rng.random(n) < 0.18
        first[late] = rng.integers(1, late_max, size=int(late.sum()))
    star = boards == "star"
    if star.any():
        k0 = int(dates.searchsorted(STAR_OPENED))
        first[star] = rng.integers(min(k0, t_len - 2), max(min(k0, t_len - 2) + 1, t_len - 40), size=int(star.sum()))
    delisted = np.zeros(n, dtype=bool)
    final_suspension = np.zeros(n, dtype=bool)
    if t_len >= 400:
        cand = (boards == "main") & (first < 0.5 * t_len) & (rng.random(n) < 0.05)
        for i in np.flatnonzero(cand):
            lo = max(int(first[i]) + 250, int(0.35 * t_len))
            if lo < t_len - 6:
                last[i] = rng.integers(lo, t_len - 5)
                delisted[i] = True
                final_suspension[i] = rng.random() < 0.5

    st = np.zeros((t_len, n), dtype=bool)
    for i in np.flatnonzero(delisted):
        st[max(int(first[i]) + 20, int(last[i]) - 250) : last[i] + 1, i] = True
    st_cand = np.flatnonzero(np.isin(boards, ("main", "chinext")) & ~delisted & (rng.random(n) < 0.05))
    for i in st_cand:
        span = int(rng.integers(120, 500))
        lo_i = int(first[i]) + 20
        if lo_i < t_len - 30:
            a = int(rng.integers(lo_i, t_len - 20))
            st[a : min(a + span, t_len), i] = True
    listed = (np.arange(t_len)[:, None] >= first[None, :]) & (np.arange(t_len)[:, None] <= last[None, :])
    st &= listed

    susp = np.zeros((t_len, n), dtype=bool)
    for i in range(n):
        span = int(last[i] - first[i])
        if span < 5:
            continue
        for _ in range(rng.poisson(3.0 * span / 2500)):
            a = int(first[i]) + int(rng.integers(1, span + 1))
            susp[a : min(a + int(rng.geometric(0.35)), last[i] + 1), i] = True
        if rng.random() < 0.04 and span > 200:
            a = int(first[i]) + int(rng.integers(20, span - 10))
            susp[a : min(a + int(rng.integers(30, 120)), last[i] + 1), i] = True
        if final_suspension[i]:
            susp[max(int(first[i]) + 1, int(last[i]) - 9) : last[i] + 1, i] = True
    susp[first, np.arange(n)] = False
    susp &= listed

    limits = limit_ratios(symbols, dates, st)
    limits = np.where(np.isnan(limits), 9.0, limits)

    # ---- corporate actions ------------------------------------------------------------------------------------
    ex_yield = np.zeros((t_len, n))
    ex_ratio = np.ones((t_len, n))
    for year in range(dates[0].year, dates[-1].year + 1):
        base = int(dates.searchsorted(pd.Timestamp(year=year, month=6, day=10)))
        if base >= t_len:
            continue
        offsets = rng.integers(0, 30, size=n)
        div = rng.random(n) < 0.65
        bonus = rng.random(n) < 0.12
        yields = rng.uniform(0.003, 0.03, size=n)
        ratios = rng.choice([1.2, 1.3, 1.5, 2.0], size=n)
        for i in np.flatnonzero(div | bonus):
            k = base + int(offsets[i])
            if first[i] + 60 <= k <= last[i]:
                ex_yield[k, i] = yields[i] if div[i] else 0.0
                ex_ratio[k, i] = ratios[i] if bonus[i] else 1.0

    # ---- stock parameters ---------------------------------------------------------------------------------
    sector = rng.integers(0, len(SECTORS), size=n)
    beta = np.clip(rng.normal(1.0, 0.2, n), 0.4, 1.8)
    gamma = np.clip(rng.normal(1.0, 0.3, n), 0.2, 2.0)
    sigma = rng.uniform(0.014, 0.028, n)
    tau = np.clip(np.exp(rng.normal(np.log(0.012), 0.6, n)), 0.002, 0.08)
    shares = np.round(np.clip(np.exp(rng.normal(np.log(1.5e9), 1.0, n)), 1e8, 5e10), -4)
    price0 = _rhu(100 * np.clip(np.exp(rng.normal(np.log(12.0), 0.6, n)), 3.0, 150.0))
    n_ipo_limits = rng.integers(1, 6, size=n)
    ipo_pop = rng.uniform(0.3, 2.0, size=n)
    ipo_open = rng.uniform(0.1, 1.0, size=n)

    # ---- common factors -------------------------------------------------------------------------------------
    var_m, a_m, b_m = 0.013**2, 0.09, 0.89
    z_m = _t_shocks(rng, 4.0, t_len)
    r_m = np.empty(t_len)
    h_m = np.empty(t_len)
    h = var_m
    for t in range(t_len):
        h_m[t] = h
        r_m[t] = np.sqrt(h) * z_m[t]
        h = var_m * (1 - a_m - b_m) + a_m * r_m[t] ** 2 + b_m * h
    shock_days = rng.choice(np.arange(1, t_len), size=min(max(1, t_len // 800), t_len - 1), replace=False)
    r_m[shock_days] += rng.choice([-0.075, -0.065, 0.05, 0.06], size=len(shock_days))
    r_m += 0.0003
    r_s = 0.008 * np.sqrt(h_m / var_m)[:, None] * _t_shocks(rng, 5.0, (t_len, len(SECTORS)))

    z_i = _t_shocks(rng, 4.0, (t_len, n))
    jumps = (rng.random((t_len, n)) < 0.002) * rng.normal(0.0, 0.05, (t_len, n))
    z_vol = rng.normal(size=(t_len, n))
    z_open = rng.normal(size=(t_len, n))
    z_high = np.abs(rng.normal(size=(t_len, n)))
    z_low = np.abs(rng.normal(size=(t_len, n)))
    z_vwap = rng.normal(size=(t_len, n))

    # ---- day-by-day simulation (vector operations across stocks) ------------------------------------------
    a_i, b_i = 0.07, 0.90
    omega = sigma**2 * (1 - a_i - b_i)
    h_i = sigma**2.0
    price = price0.copy()  # previous raw close (ex-date adjusted), cents
    factor_cum = np.ones(n)
    shr = shares.copy()
    carry = np.zeros(n)
    missed = np.zeros(n)
    vol_state = np.zeros(n)
    alpha = np.zeros(n)
    pend_yield = np.zeros(n)
    pend_ratio = np.ones(n)
    anchor = np.log(price0)
    coef = np.array([params.reversal, params.momentum, -params.volume])[:, None]
    trading = listed & ~susp
    ipo_day = np.zeros((t_len, n), dtype=bool)
    ipo_day[first, np.arange(n)] = first > 0
    has_action = ((ex_yield > 0) | (ex_ratio != 1.0)).any(axis=1)
    fixed_ipo = np.isin(boards, ("main", "bshare"))[None, :] | (
        (boards == "chinext")[None, :] & np.asarray(dates < pd.Timestamp("2020-08-24"))[:, None]
    )
    cum_r = np.zeros((t_len + 1, n))
    cum_lv = np.zeros((t_len + 1, n))
    cum_n = np.zeros((t_len + 1, n))
    shape = (t_len, n)
    o_raw, h_raw, l_raw, c_raw, w_raw, v_raw = (np.empty(shape) for _ in range(6))
    prev_ref, f_raw, cap, planted = (np.empty(shape) for _ in range(4))
    limit_up = np.zeros(shape, dtype=bool)
    limit_down = np.zeros(shape, dtype=bool)
    one_word = np.zeros(shape, dtype=bool)
    sig_stack = np.empty((3, n))
    mask_stack = np.empty((3, n), dtype=bool)
    rhu = _rhu

    for t in range(t_len):
        lst = listed[t]
        act = trading[t]
        ipo = ipo_day[t]
        if has_action[t] or pend_yield.any() or (pend_ratio != 1.0).any():
            # corporate actions, deferred to the next trading day when suspended
            pend_yield += ex_yield[t]
            pend_ratio *= ex_ratio[t]
            do = act & ~ipo & ((pend_yield > 0) | (pend_ratio != 1.0))
            if do.any():
                ref = np.maximum(rhu(price[do] * (1.0 - pend_yield[do]) / pend_ratio[do]), 1.0)
                factor_cum[do] *= price[do] / ref
                shr[do] *= pend_ratio[do]
                price[do] = ref
                pend_yield[do] = 0.0
                pend_ratio[do] = 1.0
        prev_ref[t] = price
        common = beta * r_m[t] + gamma * r_s[t, sector]
        sig = np.sqrt(h_i)
        move = common + sig * z_i[t] + jumps[t]
        drift = alpha + move + carry + missed
        lim = limits[t]
        up = rhu(price * (1.0 + lim))
        dn = np.maximum(rhu(price * (1.0 - lim)), 1.0)
        close = np.minimum(np.maximum(rhu(price * (1.0 + drift)), dn), up)
        ret = close / price - 1.0
        hit_up = (close >= up) & (drift > 0)
        hit_dn = (close <= dn) & (drift < 0)
        ow = (hit_up & (drift > 1.6 * lim)) | (hit_dn & (drift < -1.6 * lim))
        opn = np.minimum(np.maximum(rhu(price * (1.0 + 0.35 * ret + 0.35 * sig * z_open[t])), dn), up)
        high = np.minimum(rhu(np.maximum(opn, close) * (1.0 + 0.5 * sig * z_high[t])), up)
        low = np.maximum(rhu(np.minimum(opn, close) * (1.0 - 0.5 * sig * z_low[t])), dn)
        if ow.any():
            opn = np.where(ow, close, opn)
            high = np.where(ow, close, high)
            low = np.where(ow, close, low)
        new_carry = 0.55 * (drift - ret)
        if ipo.any():
            ipx = price[ipo]
            fixed = fixed_ipo[t, ipo]
            pop = ipo_pop[ipo]
            c_ipo = np.where(fixed, rhu(ipx * 1.44), rhu(ipx * (1.0 + pop)))
            o_ipo = np.where(fixed, rhu(ipx * 1.2), rhu(ipx * (1.0 + ipo_open[ipo] * pop)))
            close[ipo] = c_ipo
            opn[ipo] = o_ipo
            high[ipo] = np.where(fixed, c_ipo, rhu(np.maximum(o_ipo, c_ipo) * (1.0 + 0.1 * z_high[t, ipo])))
            low[ipo] = np.where(fixed, o_ipo, rhu(np.minimum(o_ipo, c_ipo) * (1.0 - 0.05 * z_low[t, ipo])))
            new_carry[ipo] = np.where(fixed, n_ipo_limits[ipo] * lim[ipo] * 1.8, 0.0)
            ret[ipo] = 0.0
            hit_up[ipo] = hit_dn[ipo] = ow[ipo] = False
        vwap = np.minimum(np.maximum(0.25 * (opn + high + low + close) * (1.0 + 0.15 * sig * z_vwap[t]), low), high)
        vol_state = np.where(act, 0.75 * vol_state + 0.4 * z_vol[t], vol_state)
        turn = tau * np.exp(vol_state) * (1.0 + 12.0 * np.abs(ret))
        turn = np.where(ow, turn * 0.08, np.where(hit_up | hit_dn, turn * 0.7, turn))
        if ipo.any():
            turn = np.where(ipo, np.where(fixed_ipo[t], 0.002, 0.15), turn)
        volume = np.maximum(np.round(turn * shr * 0.01), 1.0) * 100.0

        # state updates (only traded stocks move; suspended ones accumulate the moves they miss)
        resid = ret - alpha - common
        h_i = np.where(act & ~ipo, omega + a_i * np.minimum(resid * resid, 0.04) + b_i * h_i, h_i)
        carry = np.where(act, new_carry, carry)
        missed = np.where(act, 0.0, np.where(lst, missed + move, missed))
        c_raw[t] = close
        o_raw[t] = opn
        h_raw[t] = high
        l_raw[t] = low
        w_raw[t] = vwap
        v_raw[t] = volume
        f_raw[t] = factor_cum
        cap[t] = close * shr
        limit_up[t] = hit_up
        limit_down[t] = hit_dn
        one_word[t] = ow
        price = np.where(act, close, price)

        # the planted expected return of the next day
        r_obs = np.where(act & ~ipo, ret, 0.0)
        cum_r[t + 1] = cum_r[t] + r_obs
        log_v = np.where(act, np.log(volume), 0.0)
        cum_lv[t + 1] = cum_lv[t] + log_v
        cum_n[t + 1] = cum_n[t] + act
        k20 = max(t - 20, 0)
        cnt = cum_n[t] - cum_n[k20]
        mean_lv = (cum_lv[t] - cum_lv[k20]) / np.maximum(cnt, 1.0)
        sig_stack[0] = cum_r[max(t - 4, 0)] - cum_r[t + 1]
        sig_stack[1] = cum_r[max(t - 19, 0)] - cum_r[max(t - 59, 0)]
        sig_stack[2] = np.where(act & (cnt >= 5), log_v - mean_lv, 0.0)
        mask_stack[0] = lst
        mask_stack[1] = lst
        mask_stack[2] = act
        signal = ((coef if loadings is None else loadings[t][:, None]) * _zscores(sig_stack, mask_stack)).sum(axis=0)
        planted[t] = signal
        anchor += 0.0002
        alpha = np.sqrt(h_i) * signal - 0.0004 * (np.log(price * factor_cum) - anchor)

    nan = np.nan
    for arr in (o_raw, h_raw, l_raw, c_raw, w_raw, v_raw, prev_ref, cap):
        arr[~trading] = nan
    f_raw[~listed] = nan
    planted[~listed] = nan
    cap *= 0.01
    limit_up &= trading
    limit_down &= trading
    one_word &= trading

    # ---- stored fields ----------------------------------------------------------------------------------------
    c0 = c_raw[first, np.arange(n)] / 100.0
    factor = f_raw / c0
    trade = ~np.isnan(c_raw)
    factor = np.where(trade, factor, np.nan)
    stored: dict[str, np.ndarray] = {
        "open": o_raw / 100.0 * factor,
        "high": h_raw / 100.0 * factor,
        "low": l_raw / 100.0 * factor,
        "close": c_raw / 100.0 * factor,
        "vwap": w_raw / 100.0 * factor,
        "volume": v_raw / factor,
        "amount": w_raw / 100.0 * v_raw,
        "factor": factor,
    }
    stored["change"] = _change(stored["close"], first)

    # ---- csi300 membership and the index ----------------------------------------------------------------------
    members, rebalances = _membership(dates, n, t_len, first, last, listed, st, susp, cap, delisted)
    index = _index(stored, members, cap, o_raw, h_raw, l_raw, c_raw, prev_ref, v_raw, stored["amount"])

    order = sorted(range(n + 1), key=lambda j: symbols[j] if j < n else INDEX_SYMBOL)
    all_symbols = [*symbols, INDEX_SYMBOL]
    out_symbols = [all_symbols[j] for j in order]
    first_all = np.concatenate([first, [0]])[order]
    last_all = np.concatenate([last, [t_len - 1]])[order]
    fields = {
        name: np.concatenate([stored[name], index[name][:, None]], axis=1)[:, order].astype(np.float32)
        for name in FIELDS
    }
    raw = {
        "open": o_raw / 100.0, "high": h_raw / 100.0, "low": l_raw / 100.0, "close": c_raw / 100.0,
        "vwap": w_raw / 100.0, "volume": v_raw, "factor": factor,
    }  # fmt: skip
    raw = {k: np.concatenate([v, index["raw_" + k][:, None]], axis=1)[:, order] for k, v in raw.items()}

    def spans_of(mask: np.ndarray) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
        out: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
        for j, sym in enumerate(symbols):
            runs = _runs(mask[:, j])
            if runs:
                out[sym] = [(dates[a], dates[b]) for a, b in runs]
        return out

    fmt = DAY_FORMAT
    info = {
        "generator": "qdata_cn.synth",
        "params": attrs.asdict(params),
        "calendar": [dates[0].strftime(fmt), dates[-1].strftime(fmt), t_len],
        "index": INDEX_SYMBOL,
        "boards": {s: str(b) for s, b in zip(symbols, boards)},
        "sectors": {s: SECTORS[k] for s, k in zip(symbols, sector)},
        "late_listed": {s: dates[first[j]].strftime(fmt) for j, s in enumerate(symbols) if first[j] > 0},
        "delisted": {s: dates[last[j]].strftime(fmt) for j, s in enumerate(symbols) if delisted[j]},
        "final_suspension": [s for j, s in enumerate(symbols) if final_suspension[j]],
        "suspended_days": int(susp.sum()),
        "st_days": int(st.sum()),
        "ex_dates": int(((ex_yield > 0) | (ex_ratio != 1)).sum()),
        "limit_up_days": int(limit_up.sum()),
        "limit_down_days": int(limit_down.sum()),
        "one_word_days": int(one_word.sum()),
        "shock_days": sorted(dates[k].strftime(fmt) for k in shock_days),
        "rebalances": [dates[k].strftime(fmt) for k in rebalances],
        "planted": {"reversal": params.reversal, "momentum": params.momentum, "volume": params.volume},
    }
    market = SynthMarket(
        dates=dates,
        symbols=out_symbols,
        first=first_all,
        last=last_all,
        fields=fields,
        raw=raw,
        csi300=spans_of(members),
        st=spans_of(st),
        info=info,
    )
    market.raw["planted"] = np.concatenate([planted, np.full((t_len, 1), np.nan)], axis=1)[:, order]
    market.raw["limit_up"] = np.concatenate([limit_up, np.zeros((t_len, 1), bool)], axis=1)[:, order]
    market.raw["limit_down"] = np.concatenate([limit_down, np.zeros((t_len, 1), bool)], axis=1)[:, order]
    market.raw["cap"] = np.concatenate([cap, np.full((t_len, 1), np.nan)], axis=1)[:, order]  # CNY, raw
    return market


def _change(close: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``close/prev_close - 1`` on the forward-filled close; NaN on untraded days and each first day."""
    t_len = close.shape[0]
    valid = ~np.isnan(close)
    idx = np.where(valid, np.arange(t_len)[:, None], -1)
    last_valid = np.maximum.accumulate(idx, axis=0)
    prev_idx = np.vstack([np.full((1, close.shape[1]), -1), last_valid[:-1]])
    prev = np.take_along_axis(close, np.maximum(prev_idx, 0), axis=0)
    prev = np.where(prev_idx >= 0, prev, np.nan)
    out = close / prev - 1.0
    out[~valid] = np.nan
    out[first, np.arange(close.shape[1])] = np.nan
    return out


def _membership(
    dates: pd.DatetimeIndex,
    n: int,
    t_len: int,
    first: np.ndarray,
    last: np.ndarray,
    listed: np.ndarray,
    st: np.ndarray,
    susp: np.ndarray,
    cap: np.ndarray,
    delisted: np.ndarray,
) -> tuple[np.ndarray, list[int]]:
    """csi300-like membership ``(T, N)``: half the stocks by average market cap, rebalanced semi-annually."""
    size = max(1, min(300, round(0.5 * n)))
    rebalances = _rebalance_days(dates)
    members = np.zeros((t_len, n), dtype=bool)
    current = np.zeros(n, dtype=bool)
    for k, r in enumerate(rebalances):
        nxt = rebalances[k + 1] if k + 1 < len(rebalances) else t_len
        window = cap[max(0, r - 60) : r] if r > 0 else cap[:1]
        with np.errstate(all="ignore"):
            counts = (~np.isnan(window)).sum(axis=0)
            avg = np.where(counts > 0, np.nansum(window, axis=0) / np.maximum(counts, 1), 0.0)
        seasoned = (r - first >= 60) | ((first == 0) & (r == 0))
        leaves = delisted & (last < nxt + 20)
        eligible = listed[r] & seasoned & ~st[r] & ~susp[r] & ~leaves & (avg > 0)
        rank = np.full(n, n, dtype=np.int64)
        cand = np.flatnonzero(eligible)
        rank[cand[np.argsort(-avg[cand], kind="stable")]] = np.arange(len(cand))
        keep = current & eligible & (rank < 1.2 * size)
        chosen = list(np.flatnonzero(keep)[np.argsort(rank[keep], kind="stable")])
        chosen = chosen[:size]
        for j in cand[np.argsort(rank[cand], kind="stable")]:
            if len(chosen) >= size:
                break
            if j not in chosen:
                chosen.append(j)
        current = np.zeros(n, dtype=bool)
        current[chosen] = True
        members[r:nxt] = current
    members &= listed
    return members, rebalances


def _index(
    stored: Mapping[str, np.ndarray],
    members: np.ndarray,
    cap: np.ndarray,
    o_raw: np.ndarray,
    h_raw: np.ndarray,
    l_raw: np.ndarray,
    c_raw: np.ndarray,
    prev_ref: np.ndarray,
    v_raw: np.ndarray,
    amount: np.ndarray,
) -> dict[str, np.ndarray]:
    """The value-weighted index of the members (previous-day market cap weights), normalised like a stock."""
    t_len = cap.shape[0]
    valid = ~np.isnan(cap)
    idx = np.where(valid, np.arange(t_len)[:, None], 0)
    cap_ff = np.take_along_axis(np.nan_to_num(cap), np.maximum.accumulate(idx, axis=0), axis=0)
    weights = np.vstack([cap_ff[:1], cap_ff[:-1]]) * members
    total = weights.sum(axis=1)
    total = np.where(total > 0, total, 1.0)

    def wavg(raw: np.ndarray) -> np.ndarray:
        rel = np.nan_to_num(raw / prev_ref - 1.0)
        return (weights * rel).sum(axis=1) / total

    r_c, r_o, r_h, r_l = wavg(c_raw), wavg(o_raw), wavg(h_raw), wavg(l_raw)
    level_prev = 3000.0 * np.concatenate([[1.0], np.cumprod(1.0 + r_c)[:-1]])
    close = np.round(level_prev * (1.0 + r_c), 2)
    opn = np.round(level_prev * (1.0 + r_o), 2)
    high = np.maximum(np.round(level_prev * (1.0 + r_h), 2), np.maximum(opn, close))
    low = np.minimum(np.round(level_prev * (1.0 + r_l), 2), np.minimum(opn, close))
    vol = np.nansum(np.where(members, v_raw, np.nan), axis=1)
    amt = np.nansum(np.where(members, amount, np.nan), axis=1)
    factor = np.full(t_len, 1.0 / close[0])
    out = {
        "open": opn * factor,
        "high": high * factor,
        "low": low * factor,
        "close": close * factor,
        "volume": vol / factor,
        "amount": amt,
        "factor": factor,
    }
    out["vwap"] = (out["high"] + out["low"] + out["close"]) / 3.0
    out["change"] = _change(out["close"][:, None], np.zeros(1, dtype=np.int64))[:, 0]
    raw = {"open": opn, "high": high, "low": low, "close": close, "vwap": out["vwap"] / factor, "volume": vol}
    out.update({f"raw_{k}": v for k, v in raw.items()})
    out["raw_factor"] = factor
    return out


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def _existing_store(out: Path) -> bool:
    return (out / "calendars").is_dir() or (out / "features").is_dir() or (out / "instruments").is_dir()


def write_market(
    market: SynthMarket,
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    intraday: bool = False,
    fundamentals: bool = True,
    lock_timeout: float = 0.0,
) -> dict[str, Any]:
    """Write ``market`` as a Qlib bin store under ``out`` in one transaction; returns a summary.

    :param overwrite: replace an existing store (its other files for the written frequencies are removed).
    :param intraday: also write one-minute bars (``calendars/1min.txt``, ``*.1min.bin``) consistent with the days;
        the instrument files' spans then run from midnight of their first day to the last bar of their last day.
    :param fundamentals: also write point-in-time quarterly and annual reports under ``financial/``
        (:mod:`qdata_cn.synth_fundamentals`).
    """
    from qdata_cn.writer import StoreTransaction, format_calendar, format_instruments

    out = Path(out).expanduser()
    if _existing_store(out) and not overwrite:
        raise DataError("a store already exists here; pass --overwrite to replace it", path=str(out))
    reports: dict[tuple[str, str], np.ndarray] = {}
    info = dict(market.info)
    if fundamentals:
        from qdata_cn.synth_fundamentals import generate_fundamentals

        reports, info["fundamentals"] = generate_fundamentals(market, int(market.info["params"]["seed"]))
    freqs = ["day", "1min"] if intraday else ["day"]
    with StoreTransaction(out, lock_timeout=lock_timeout) as txn:
        if _existing_store(out) and not overwrite:  # again under the lock: another writer may have been first
            raise DataError("another writer created a store here meanwhile; pass --overwrite to replace it",
                            path=str(out))  # fmt: skip
        written: set[str] = set()
        dates = market.dates
        txn.write_text("calendars/day.txt", format_calendar(dates, DAY_FORMAT))
        for j, sym in enumerate(market.symbols):
            lo, hi = int(market.first[j]), int(market.last[j])
            folder = f"features/{code_to_fname(sym)}"
            for name in FIELDS:
                rel = f"{folder}/{bin_name(name, 'day')}"
                txn.write_bin(rel, lo, market.fields[name][lo : hi + 1, j])
                written.add(rel)
        if intraday:
            from qdata_cn.synth_intraday import write_minutes

            written |= write_minutes(market, txn)
        for name, spans in (("all", market.spans()), ("csi300", market.csi300), ("st", market.st)):
            if intraday:  # spans that keep the last day's minute bars in Qlib (see sessions.span_bounds)
                spans = {s: [span_bounds(a, b) for a, b in items] for s, items in spans.items()}
            txn.write_text(f"instruments/{name}.txt", format_instruments(spans, HIGH_FREQ_FORMAT if intraday
                                                                         else DAY_FORMAT))  # fmt: skip
        pit_written: set[str] = set()
        if reports:
            from qdata_cn.synth_fundamentals import write_fundamentals

            pit_written = write_fundamentals(reports, txn)
        txn.write_text("synth_info.json", json.dumps(info, indent=1, sort_keys=True) + "\n")
        if overwrite and (out / "features").is_dir():
            suffixes = tuple(f".{f}.bin" for f in freqs)
            for path in (out / "features").glob("*/*.bin"):
                rel = path.relative_to(out).as_posix()
                if path.name.endswith(suffixes) and rel not in written:
                    txn.delete(rel)
        if overwrite and (out / "financial").is_dir():  # the replaced market's reports go with it
            for path in (out / "financial").glob("*/*"):
                rel = path.relative_to(out).as_posix()
                if path.suffix in (".data", ".index") and rel not in pit_written:
                    txn.delete(rel)
    return {
        "path": str(out),
        "instruments": len(market.symbols),
        "days": len(market.dates),
        "start": market.dates[0].strftime(DAY_FORMAT),
        "end": market.dates[-1].strftime(DAY_FORMAT),
        "freqs": freqs,
        "files": len(written),
        "pit_files": len(pit_written),
    }


def synthesize(
    out: str | os.PathLike[str],
    *,
    instruments: int = 300,
    days: int = 2500,
    seed: int = 0,
    start: str = "2015-01-05",
    freq: str = "day",
    overwrite: bool = False,
    fundamentals: bool = True,
) -> dict[str, Any]:
    """Generate and write a synthetic market (``qcore data synth``); returns a summary with the timing.

    ``freq="1min"`` writes the daily bars and one-minute bars consistent with them; ``fundamentals`` (on by default)
    adds point-in-time quarterly and annual reports (``financial/``, read with ``P($$eps_q)``).
    """
    if freq not in ("day", "1min"):
        raise DataError(f"synth writes freq 'day' or '1min', not {freq!r}")
    began = time.perf_counter()
    params = SynthParams(instruments=instruments, days=days, seed=seed, start=start)
    market = generate(params)
    summary = write_market(market, out, overwrite=overwrite, intraday=freq == "1min", fundamentals=fundamentals)
    summary["seconds"] = round(time.perf_counter() - began, 3)
    return summary
