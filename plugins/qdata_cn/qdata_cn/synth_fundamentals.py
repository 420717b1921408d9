"""Synthetic point-in-time fundamentals for the synthetic market: quarterly and annual reports with publication lags.

For every stock and every calendar quarter that ends while it is listed, a report with four figures:

- ``eps_q``: the quarter's earnings per share (CNY per raw share; a single quarter, not year-to-date);
- ``bps_q``: book value per share at the quarter's end (CNY per raw share);
- ``roe_q``: the quarter's return on equity, ``eps_q / bps_q`` (a fraction);
- ``revenue_q``: the quarter's revenue (CNY, the whole company);

and, with the fourth quarter, the annual report: ``eps_a`` and ``revenue_a`` (sums of the year's quarters), ``bps_a``
(book value at the year's end) and ``roe_a = eps_a / bps_a``.

**Consistent with the prices.** Each stock has a *fair value* per adjusted share at each quarter's end: its adjusted
close then, moved 40% of the way (:data:`LEAD`) towards the mean adjusted close 3 to 9 months later (the generator
knows the future; the market learns the value slowly, so reported figures lead the price).
Earnings are ``fair value x earnings yield / 4`` and book value ``fair value /
price-to-book``, where each stock has its own earnings-yield and price-to-book level (lognormal) and each quarter its
own noise (and, rarely, a loss). Figures are converted to raw per-share terms with the stock's adjustment factor on
the quarter's last trading day (``raw = adjusted / $factor``), so ``P($$eps_q) / ($close / $factor)`` is the
earnings yield on the raw price, and value factors (earnings yield, book-to-price) carry a modest positive signal
about the following weeks' returns.

**Publication.** Quarters one to three are published 30 to 90 calendar days after the quarter's end (each stock has
its own habitual delay, plus noise); the fourth quarter comes with the annual report, 60 to 120 days after the year's
end (China's deadline is April 30). About 6% of reports are amended once, 20 to 200 days later (the same period, a
later date, revised figures; an amended fourth quarter amends the annual figures too). Nothing is published after
the calendar's last day or after a delisted stock's last day.

The draws come from their own random stream (``seed`` and a constant), so adding fundamentals leaves the prices'
bytes unchanged. Deterministic for a seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qcore.protocols import PIT_RECORD

if TYPE_CHECKING:
    from qdata_cn.synth import SynthMarket
    from qdata_cn.writer import StoreTransaction

#: Quarterly fields, then annual ones (what ``qcore data synth`` writes for each stock).
QUARTERLY = ("eps_q", "bps_q", "roe_q", "revenue_q")
ANNUAL = ("eps_a", "bps_a", "roe_a", "revenue_a")
#: Trading days after a quarter's end over which the fair value is averaged.
VALUE_WINDOW = (60, 180)
#: How much of the move to the later price level the fair value anticipates (1: all of it).
LEAD = 0.4
#: Cross-sectional spread (log standard deviation) of the stocks' earnings-yield and price-to-book levels.
LEVEL_SPREAD = 0.45
#: Calendar-day publication lags: quarters one to three, and the fourth quarter with the annual report.
QUARTER_LAG = (30, 90)
ANNUAL_LAG = (60, 120)
#: Share of reports amended once, and the amendment's delay in calendar days.
AMEND_RATE = 0.06
AMEND_DELAY = (20, 200)
_STREAM = 0x50495424  # separates this stream from the price generator's


def _quarter_ends(dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Calendar quarter ends from the first date's quarter to the last date's quarter."""
    first = pd.Timestamp(dates[0]).to_period("Q")
    last = pd.Timestamp(dates[-1]).to_period("Q")
    return pd.period_range(first, last, freq="Q").to_timestamp(how="end").normalize()


def _ffill(x: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs down the rows of a ``(T, N)`` array (leading NaNs stay)."""
    idx = np.where(np.isnan(x), 0, np.arange(x.shape[0])[:, None])
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(x, idx, axis=0)


def _ymd(days: pd.DatetimeIndex | pd.Series) -> np.ndarray:
    days = pd.DatetimeIndex(days)
    return np.asarray(days.year * 10000 + days.month * 100 + days.day, dtype=np.int64)


def generate_fundamentals(market: SynthMarket, seed: int) -> tuple[dict[tuple[str, str], np.ndarray], dict[str, Any]]:
    """Reports for every stock of ``market``: ``(symbol, field) -> PIT records`` and a summary for ``synth_info``."""
    from qdata_cn.synth import INDEX_SYMBOL

    rng = np.random.default_rng([int(seed), _STREAM])
    dates = market.dates
    t_len = len(dates)
    stocks = [j for j, s in enumerate(market.symbols) if s != INDEX_SYMBOL]
    n = len(stocks)
    raw_close = market.raw["close"][:, stocks]
    factor = _ffill(market.raw["factor"][:, stocks])
    adj = _ffill(raw_close * market.raw["factor"][:, stocks])
    shares = _ffill(market.raw["cap"][:, stocks] / raw_close)
    log_adj = np.log(adj)
    cum = np.vstack([np.zeros((1, n)), np.cumsum(np.nan_to_num(log_adj), axis=0)])
    cnt = np.vstack([np.zeros((1, n)), np.cumsum(~np.isnan(log_adj), axis=0)])
    first, last = market.first[stocks], market.last[stocks]

    ends = _quarter_ends(dates)
    q_len = len(ends)
    k_end = np.asarray(dates.searchsorted(ends, side="right"), dtype=np.int64) - 1  # last trading day of each quarter

    # stock levels and per-quarter draws (fixed shapes: the same seed gives the same figures)
    ey = np.exp(rng.normal(np.log(0.06), LEVEL_SPREAD, n))
    pb = np.exp(rng.normal(np.log(1.8), LEVEL_SPREAD, n))
    margin = rng.uniform(0.05, 0.30, n)
    habit = rng.uniform(0.0, 40.0, n)
    z_eps = rng.normal(size=(q_len, n))
    z_bps = rng.normal(size=(q_len, n))
    z_rev = rng.normal(size=(q_len, n))
    loss = rng.random((q_len, n)) < 0.03
    loss_size = rng.uniform(0.2, 1.0, (q_len, n))
    lag_noise = rng.normal(0.0, 8.0, (q_len, n))
    annual_lag = rng.uniform(*ANNUAL_LAG, (q_len, n))
    amend = rng.random((q_len, n)) < AMEND_RATE
    amend_delay = rng.integers(AMEND_DELAY[0], AMEND_DELAY[1] + 1, (q_len, n))
    amend_eps = rng.normal(0.0, 0.10, (q_len, n))
    amend_rev = rng.normal(0.0, 0.03, (q_len, n))
    amend_bps = rng.normal(0.0, 0.02, (q_len, n))

    # fair value per adjusted share on each quarter's last trading day: the mean log price 60..180 days later
    lo = np.clip(k_end[:, None] + VALUE_WINDOW[0], 0, last[None, :])
    hi = np.clip(k_end[:, None] + VALUE_WINDOW[1], 0, last[None, :]) + 1
    cols = np.arange(n)[None, :]
    total = cum[hi, cols] - cum[lo, cols]
    count = cnt[hi, cols] - cnt[lo, cols]
    k_safe = np.clip(k_end, 0, t_len - 1)[:, None]
    now = log_adj[k_safe, cols]
    ahead = np.where(count > 0, total / np.maximum(count, 1), now)
    value = np.exp(now + LEAD * (ahead - now))
    to_raw = 1.0 / factor[k_safe, cols]
    bps = value / pb * np.exp(0.03 * z_bps) * to_raw
    eps = value * ey / 4.0 * (1.0 + 0.15 * z_eps) * to_raw
    eps = np.where(loss, -np.abs(eps) * loss_size, eps)
    revenue = np.abs(value * ey / margin / 4.0 * np.exp(0.05 * z_rev)) * to_raw * shares[k_safe, cols]

    quarter = np.asarray(ends.quarter, dtype=np.int64)
    period = np.asarray(ends.year * 100 + ends.quarter, dtype=np.int64)
    q4 = quarter == 4
    lag = np.where(q4[:, None], annual_lag, np.clip(QUARTER_LAG[0] + habit + lag_noise, *QUARTER_LAG))
    published = ends.to_numpy()[:, None] + pd.to_timedelta(np.round(lag).astype(np.int64).ravel(), "D").to_numpy(
    ).reshape(q_len, n)  # fmt: skip
    pub_day = _ymd(pd.DatetimeIndex(published.ravel())).reshape(q_len, n)
    amend_day = _ymd(pd.DatetimeIndex((published + amend_delay.astype("timedelta64[D]")).ravel())).reshape(q_len, n)
    horizon = _ymd(dates[last])  # nothing published after the stock's last day (the calendar's, if still listed)
    listed = (k_end[:, None] >= first[None, :]) & (k_end[:, None] <= last[None, :]) & (k_end[:, None] >= 0)
    # a quarter ending on or before the calendar's first day is only reported when the stock traded that day
    listed &= ends.to_numpy()[:, None] >= dates[0].to_datetime64()
    shown = listed & (pub_day <= horizon[None, :])
    amended = shown & amend & (amend_day <= horizon[None, :])

    out: dict[tuple[str, str], np.ndarray] = {}
    n_reports = n_amend = 0
    for i, j in enumerate(stocks):
        symbol = market.symbols[j]
        rows = np.flatnonzero(shown[:, i])
        if len(rows) == 0:
            continue
        fix = amended[rows, i]
        e1 = eps[rows, i] * (1.0 + amend_eps[rows, i])
        b1 = bps[rows, i] * (1.0 + amend_bps[rows, i])
        r1 = revenue[rows, i] * (1.0 + amend_rev[rows, i])
        first_q = {"eps_q": eps[rows, i], "bps_q": bps[rows, i], "roe_q": eps[rows, i] / bps[rows, i],
                   "revenue_q": revenue[rows, i]}  # fmt: skip
        second_q = {"eps_q": e1, "bps_q": b1, "roe_q": e1 / b1, "revenue_q": r1}
        for field in QUARTERLY:
            out[(symbol, field)] = _records(pub_day[rows, i], amend_day[rows, i], period[rows], first_q[field],
                                            second_q[field], fix)  # fmt: skip
        n_reports += len(rows)
        n_amend += int(fix.sum())
        q4_rows = rows[q4[rows]]
        if len(q4_rows):
            draws = (amend_eps[:, i], amend_rev[:, i], amend_bps[:, i])
            annual = _annual(q4_rows, period, eps[:, i], revenue[:, i], bps[:, i], shown[:, i], draws)
            for field, (first_v, amended_v) in zip(ANNUAL, annual):
                out[(symbol, field)] = _records(pub_day[q4_rows, i], amend_day[q4_rows, i], period[q4_rows] // 100,
                                                first_v, amended_v, amended[q4_rows, i])  # fmt: skip
    summary = {
        "fields": [*QUARTERLY, *ANNUAL],
        "reports": n_reports,
        "amendments": n_amend,
        "quarter_lag_days": list(QUARTER_LAG),
        "annual_lag_days": list(ANNUAL_LAG),
        "value_window_days": list(VALUE_WINDOW),
    }
    return out, summary


def _records(day: np.ndarray, amend_day: np.ndarray, period: np.ndarray, value: np.ndarray, amended_value: np.ndarray,
             fix: np.ndarray) -> np.ndarray:  # fmt: skip
    """First publications plus the amendments (``fix``), in publication order."""
    n_fix = int(fix.sum())
    rec = np.empty(len(day) + n_fix, dtype=PIT_RECORD)
    rec["date"] = np.concatenate([day, amend_day[fix]])
    rec["period"] = np.concatenate([period, period[fix]])
    rec["value"] = np.concatenate([value, amended_value[fix]])
    return rec[np.argsort(rec["date"], kind="stable")]


def _annual(q4_rows: np.ndarray, period: np.ndarray, eps: np.ndarray, revenue: np.ndarray, bps: np.ndarray,
            shown: np.ndarray, draws: tuple[np.ndarray, np.ndarray, np.ndarray]
            ) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """One stock's annual figures (first published, amended) for each fourth-quarter row, in :data:`ANNUAL` order.

    The year sums the quarters the stock reported (each as first published); an amended fourth quarter amends the
    year by the same change.
    """
    amend_eps, amend_rev, amend_bps = draws
    years = period[q4_rows] // 100
    eps_a = np.empty(len(q4_rows))
    rev_a = np.empty(len(q4_rows))
    for k, r in enumerate(q4_rows):
        quarters = np.arange(max(r - 3, 0), r + 1)
        quarters = quarters[shown[quarters] & (period[quarters] // 100 == years[k])]
        eps_a[k] = eps[quarters].sum()
        rev_a[k] = revenue[quarters].sum()
    bps_a = bps[q4_rows]
    eps_a1 = eps_a + eps[q4_rows] * amend_eps[q4_rows]
    rev_a1 = rev_a + revenue[q4_rows] * amend_rev[q4_rows]
    bps_a1 = bps_a * (1.0 + amend_bps[q4_rows])
    return [(eps_a, eps_a1), (bps_a, bps_a1), (eps_a / bps_a, eps_a1 / bps_a1), (rev_a, rev_a1)]


def write_fundamentals(reports: dict[tuple[str, str], np.ndarray], txn: StoreTransaction) -> set[str]:
    """Stage each ``(symbol, field)``'s ``financial/<inst>/<field>.data`` and ``.index`` in ``txn``; their paths."""
    from qdata_cn.naming import code_to_fname
    from qdata_cn.pit import DATA_SUFFIX, INDEX_SUFFIX, PIT_DIR, encode_pit

    written: set[str] = set()
    for (symbol, field), records in sorted(reports.items()):
        if len(records) == 0:
            continue
        data, index = encode_pit(records, field.endswith("_q"))
        base = f"{PIT_DIR}/{code_to_fname(symbol)}/{field}"
        txn.write_bytes(base + DATA_SUFFIX, data)
        txn.write_bytes(base + INDEX_SUFFIX, index)
        written |= {base + DATA_SUFFIX, base + INDEX_SUFFIX}
    return written
