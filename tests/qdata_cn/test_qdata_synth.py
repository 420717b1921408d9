"""The synthetic A-share market: deterministic, realistic, weakly predictable, consistent with Qlib's conventions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qdata_cn.binstore import QlibBinProvider
from qdata_cn.check import check_store
from qdata_cn.rules import board_of, limit_ratios
from qdata_cn.synth import FIELDS, INDEX_SYMBOL, synthesize
from qdata_testutil import tree_bytes

from qcore.types import Span, membership_mask

TICK_TOL = 1e-6


def _stocks(symbols) -> list[int]:
    return [j for j, s in enumerate(symbols) if s != INDEX_SYMBOL]


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", instruments=12, days=60, seed=3)
    synthesize(tmp_path / "b", instruments=12, days=60, seed=3)
    synthesize(tmp_path / "c", instruments=12, days=60, seed=4)
    assert a["files"] == 13 * 9
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert tree_bytes(tmp_path / "a") != tree_bytes(tmp_path / "c")


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    from qcore.errors import DataError

    synthesize(tmp_path / "s", instruments=3, days=10)
    with pytest.raises(DataError, match="--overwrite"):
        synthesize(tmp_path / "s", instruments=3, days=10)
    synthesize(tmp_path / "s", instruments=2, days=10, seed=1, overwrite=True)
    assert len(list((tmp_path / "s" / "features").iterdir())) == 3
    assert check_store(tmp_path / "s")[0].severity == "info"


def test_store_layout(synth_small: Path) -> None:
    provider = QlibBinProvider(synth_small)
    assert provider.markets() == ["all", "csi300", "st"]
    assert provider.fields() == list(FIELDS)
    cal = provider.calendar()
    assert len(cal) == 420 and cal[0] == pd.Timestamp("2019-06-03")
    assert cal.day_of_week.max() <= 4
    assert pd.Timestamp("2019-10-01") not in cal and pd.Timestamp("2020-01-01") not in cal
    uni = provider.universe("all")
    assert INDEX_SYMBOL in uni and len(uni) == 61
    info = json.loads((synth_small / "synth_info.json").read_text())
    assert info["params"]["seed"] == 11


def test_check_passes(synth_small: Path) -> None:
    findings = check_store(synth_small)
    assert [f for f in findings if f.severity != "info"] == []


def test_first_close_is_one_and_adjustment_convention(synth_market) -> None:
    m = synth_market
    f = m.fields
    cols = np.arange(len(m.symbols))
    assert (f["close"][m.first, cols] == 1.0).all()
    raw_close = f["close"].astype(np.float64) / f["factor"]
    ok = ~np.isnan(raw_close)
    cents = raw_close[ok] * 100
    stocks = np.zeros_like(ok)
    stocks[:, _stocks(m.symbols)] = True
    off_tick = np.abs(cents - np.round(cents)) / (1e-4 + 1e-6 * cents)
    assert off_tick[stocks[ok]].max() < 1  # raw prices sit on the 0.01 tick (up to float32 rounding)
    shares = f["volume"].astype(np.float64) * f["factor"]
    lots = shares[ok & stocks] / 100
    np.testing.assert_allclose(lots, np.round(lots), rtol=1e-6, atol=1e-3)
    amount = f["vwap"].astype(np.float64) * f["volume"]
    np.testing.assert_allclose(amount[ok & stocks], f["amount"][ok & stocks], rtol=1e-5)  # the index sums members
    assert (f["high"][ok] >= f["low"][ok]).all()
    assert (f["high"][ok] >= f["close"][ok]).all() and (f["close"][ok] >= f["low"][ok]).all()
    assert (f["vwap"][ok] <= f["high"][ok] * (1 + 1e-6)).all() and (f["vwap"][ok] >= f["low"][ok] * (1 - 1e-6)).all()


def test_change_is_on_forward_filled_close(synth_market) -> None:
    m = synth_market
    close = m.fields["close"].astype(np.float64)
    change = m.fields["change"]
    for j in _stocks(m.symbols)[:50]:
        col = pd.Series(close[:, j])
        expected = col / col.ffill().shift(1) - 1
        expected[col.isna()] = np.nan
        expected.iloc[m.first[j]] = np.nan
        np.testing.assert_allclose(change[:, j], expected.to_numpy(), rtol=1e-5, atol=1e-6)


def test_factor_steps_on_ex_dates(synth_market) -> None:
    factor = synth_market.fields["factor"].astype(np.float64)
    steps = np.abs(np.diff(pd.DataFrame(factor).ffill().to_numpy(), axis=0)) > 1e-7 * np.nanmax(factor)
    assert steps.sum() > 100
    ratio = pd.DataFrame(factor).ffill().pct_change(fill_method=None).to_numpy()
    assert np.nanmax(ratio) > 0.15  # bonus shares (ratios 1.2-2.0) as well as cash dividends
    assert np.nanmin(ratio) > -1e-6  # the cumulative factor only grows


def test_price_limits_by_board_and_st(synth_small: Path) -> None:
    provider = QlibBinProvider(synth_small)
    uni = provider.universe("all")
    symbols = sorted(uni)
    cal = provider.calendar()
    panel = provider.load(["close", "factor", "change", "high", "low", "open"], symbols)
    st = membership_mask(provider.universe("st"), cal, symbols)
    limits = limit_ratios(symbols, cal, st)
    raw_close = panel["close"].astype(np.float64) / panel["factor"]
    prev = pd.DataFrame(raw_close).ffill().shift(1).to_numpy()
    tol = 0.005 / prev + 1e-5
    change = panel["change"].astype(np.float64)
    with np.errstate(invalid="ignore"):
        over = np.abs(change) > limits + tol
    assert not over[:, [j for j, s in enumerate(symbols) if s != INDEX_SYMBOL]].any()
    boards = np.array([board_of(s) for s in symbols])
    with np.errstate(invalid="ignore"):
        big = np.abs(change) > 0.105
    reform = np.asarray(cal >= pd.Timestamp("2020-08-24"))
    growth = np.isin(boards, ("chinext", "star"))
    assert big[:, growth].any()  # ±20% boards move beyond 10%
    assert not big[~reform][:, boards == "chinext"].any()  # ChiNext was ±10% before the reform
    assert not big[:, boards == "main"].any()
    main_st = st & (boards == "main")[None, :]
    assert main_st.any()
    st_moves = np.where(main_st, np.abs(change), np.nan)
    assert np.nanmax(st_moves) <= 0.05 + np.nanmax(np.where(main_st, tol, np.nan))
    hits_up = (change >= limits - tol) & (limits < 1)
    assert hits_up.sum() > 20
    # a limit-up close is the day's high, a limit-down close the day's low
    np.testing.assert_array_equal(panel["close"][hits_up], panel["high"][hits_up])
    hits_dn = (change <= -limits + tol) & (limits < 1)
    np.testing.assert_array_equal(panel["close"][hits_dn], panel["low"][hits_dn])
    # STAR names list after the board opened
    for j in np.flatnonzero(boards == "star"):
        assert uni[symbols[j]][0].start >= pd.Timestamp("2019-07-22")


def test_limit_runs_and_one_word_boards(synth_market) -> None:
    m = synth_market
    up = m.raw["limit_up"]
    assert up.sum() > 100 and m.raw["limit_down"].sum() > 100
    runs = up[1:] & up[:-1]
    assert runs.sum() > 10  # consecutive limit-up days
    f = m.fields
    one_word = (f["open"] == f["high"]) & (f["high"] == f["low"]) & (f["low"] == f["close"]) & up
    assert one_word.sum() > 10
    np.testing.assert_array_equal(f["close"][up], f["high"][up])


def test_suspensions_are_all_nan_runs(synth_market) -> None:
    m = synth_market
    close = m.fields["close"]
    t = np.arange(close.shape[0])[:, None]
    inside = (t >= m.first[None, :]) & (t <= m.last[None, :])
    suspended = np.isnan(close) & inside
    assert suspended.sum() > 200
    for name in FIELDS:
        assert np.isnan(m.fields[name][suspended]).all(), name
        assert not np.isnan(m.fields[name][~np.isnan(close) & inside & (name != "change")]).any()
    runs = suspended[1:] & suspended[:-1]
    assert runs.sum() > 50
    # outside the listing range nothing is stored
    assert np.isnan(close[~inside]).all()
    assert (m.first > 0).sum() >= 10


def test_delistings_and_late_listings(synth_market) -> None:
    m = synth_market
    info = m.info
    assert len(info["late_listed"]) >= 10
    assert len(info["delisted"]) >= 1
    for sym, day in info["delisted"].items():
        j = m.symbols.index(sym)
        assert m.dates[m.last[j]] == pd.Timestamp(day)
        assert m.last[j] < len(m.dates) - 1


def test_csi300_membership_changes(synth_market) -> None:
    m = synth_market
    spans = m.csi300
    dates = m.dates
    symbols = [s for s in m.symbols if s != INDEX_SYMBOL]
    universe = {k: tuple(Span(a, b) for a, b in v) for k, v in spans.items()}
    mask = membership_mask(universe, dates, symbols)
    counts = mask.sum(axis=1)
    assert counts.min() >= 80 and counts.max() <= 100
    changes = np.flatnonzero((mask[1:] != mask[:-1]).any(axis=1)) + 1
    rebalance_days = {dates.get_loc(pd.Timestamp(d)) for d in m.info["rebalances"]}
    joins_leaves = set(changes) & rebalance_days
    assert len(joins_leaves) >= 3
    assert len(spans) > counts.max()  # names leave and join over time
    assert INDEX_SYMBOL not in spans
    st = m.st
    for sym, st_spans in st.items():
        if sym in spans:
            for a, b in st_spans:
                for c, _ in spans[sym]:
                    # an ST name is not selected at a rebalance inside its ST span
                    assert not (a <= c <= b and c in [dates[k] for k in rebalance_days])


def test_index_tracks_members(synth_market) -> None:
    m = synth_market
    j = m.symbols.index(INDEX_SYMBOL)
    close = m.fields["close"][:, j]
    assert close[0] == 1.0 and not np.isnan(close).any()
    assert m.first[j] == 0 and m.last[j] == len(m.dates) - 1
    stocks = _stocks(m.symbols)
    returns = np.nan_to_num(m.fields["change"][:, stocks].astype(np.float64))
    avg = returns.mean(axis=1)[1:]
    index_ret = m.fields["change"][1:, j]
    assert np.corrcoef(avg, index_ret)[0, 1] > 0.9


def test_fat_tails_and_volatility_clustering(synth_market) -> None:
    m = synth_market
    j = m.symbols.index(INDEX_SYMBOL)
    r = m.fields["change"][1:, j].astype(np.float64)
    assert pd.Series(r).kurt() > 1.0
    a = np.abs(r - r.mean())
    assert np.corrcoef(a[1:], a[:-1])[0, 1] > 0.1
    stocks = m.fields["change"][:, _stocks(m.symbols)].astype(np.float64)
    assert pd.Series(stocks[~np.isnan(stocks)]).kurt() > 2.0


def test_sector_structure(synth_market) -> None:
    m = synth_market
    sectors = m.info["sectors"]
    syms = [s for s in m.symbols if s in sectors]
    returns = pd.DataFrame(m.fields["change"][:, [m.symbols.index(s) for s in syms]].astype(np.float64), columns=syms)
    corr = returns.corr(min_periods=100).to_numpy()
    same = np.array([[sectors[a] == sectors[b] for b in syms] for a in syms])
    off = ~np.eye(len(syms), dtype=bool)
    assert np.nanmean(corr[same & off]) > np.nanmean(corr[~same]) + 0.05


def _mean_rank_ic(signal: np.ndarray, target: np.ndarray, min_names: int = 30) -> float:
    ics = []
    for t in range(signal.shape[0]):
        ok = ~np.isnan(signal[t]) & ~np.isnan(target[t])
        if ok.sum() >= min_names:
            a = pd.Series(signal[t][ok]).rank().to_numpy()
            b = pd.Series(target[t][ok]).rank().to_numpy()
            ics.append(np.corrcoef(a, b)[0, 1])
    return float(np.mean(ics))


def test_weak_reversal_predictability(synth_market) -> None:
    """-(5-day return) predicts the 2-day-ahead label (Alpha158's LABEL0) a little: 0.01 < rank IC < 0.15."""
    m = synth_market
    close = m.fields["close"][:, _stocks(m.symbols)].astype(np.float64)
    reversal = np.full_like(close, np.nan)
    reversal[5:] = -(close[5:] / close[:-5] - 1)
    label = np.full_like(close, np.nan)
    label[:-2] = close[2:] / close[1:-1] - 1
    ic = _mean_rank_ic(reversal, label)
    assert 0.01 < ic < 0.15, ic
    # the planted signal itself: a small positive IC against the next day's return, not a fake-looking one
    nxt = np.full_like(close, np.nan)
    nxt[:-1] = close[1:] / close[:-1] - 1
    planted = m.raw["planted"][:, _stocks(m.symbols)]
    assert 0.02 < _mean_rank_ic(planted, nxt) < 0.08


def test_one_minute_bars_consistent_with_days(tmp_path: Path) -> None:
    summary = synthesize(tmp_path / "m", instruments=5, days=5, seed=2, freq="1min")
    assert summary["freqs"] == ["day", "1min"]
    provider = QlibBinProvider(tmp_path / "m")
    assert provider.freqs() == ["1min", "day"]
    mcal = provider.calendar("1min")
    assert len(mcal) == 5 * 240
    times = mcal[:240].strftime("%H:%M:%S")
    assert times[0] == "09:30:00" and times[119] == "11:29:00" and times[120] == "13:00:00" and times[-1] == "14:59:00"
    assert (tmp_path / "m" / "calendars" / "1min.txt").read_text().splitlines()[0] == f"{mcal[0]:%Y-%m-%d} 09:30:00"
    symbols = sorted(provider.universe("all"))
    day = provider.load(list(FIELDS), symbols)
    minute = provider.load(list(FIELDS), symbols, freq="1min")
    t = len(day.dates)

    def per_day(name: str) -> np.ndarray:
        return minute[name].reshape(t, 240, -1)

    traded = ~np.isnan(day["close"])
    assert np.array_equal(per_day("open")[:, 0][traded], day["open"][traded])
    assert np.array_equal(per_day("close")[:, -1][traded], day["close"][traded])
    assert np.array_equal(per_day("high").max(axis=1)[traded], day["high"][traded])
    assert np.array_equal(per_day("low").min(axis=1)[traded], day["low"][traded])
    np.testing.assert_allclose(per_day("volume").astype(np.float64).sum(axis=1)[traded], day["volume"][traded],
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(per_day("amount").astype(np.float64).sum(axis=1)[traded], day["amount"][traded],
                               rtol=1e-5)  # fmt: skip
    raw_shares = minute["volume"].astype(np.float64) * minute["factor"]
    ok = ~np.isnan(raw_shares)
    np.testing.assert_allclose(raw_shares[ok] / 100, np.round(raw_shares[ok] / 100), atol=0.1)  # whole lots
    assert (minute["high"][ok] >= minute["low"][ok]).all()
    assert np.isnan(per_day("close").transpose(0, 2, 1)[~traded]).all()
    assert check_store(tmp_path / "m", "1min")[0].severity == "info"


def test_one_minute_suspended_days_are_nan(tmp_path: Path) -> None:
    synthesize(tmp_path / "m", instruments=30, days=40, seed=8, freq="1min")
    provider = QlibBinProvider(tmp_path / "m")
    symbols = sorted(provider.universe("all"))
    day = provider.load(["close"], symbols)
    minute = provider.load(["close", "volume"], symbols, freq="1min")
    suspended = np.isnan(day["close"])
    assert suspended.any()
    assert np.isnan(minute["close"].reshape(40, 240, -1).transpose(0, 2, 1)[suspended]).all()


@pytest.mark.slow
def test_default_size_is_clean(tmp_path: Path) -> None:
    """The default 300 x 2500 market passes `qcore data check` (its write speed is benchmarks/bench_minute_store.py's
    and the README's business, not a unit test's)."""
    summary = synthesize(tmp_path / "big", instruments=300, days=2500, seed=0)
    assert summary["instruments"] == 301 and summary["days"] == 2500
    assert not [f for f in check_store(tmp_path / "big") if f.severity == "error"]
