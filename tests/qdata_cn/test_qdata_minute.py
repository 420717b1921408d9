"""Minute bars (issue 15): Qlib's bar-start stamps, exact aggregation to the daily bars, derived calendars, restamping
of stores older qcore versions wrote, and minute stores as one provider with the daily bars."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qdata_cn.binstore import QlibBinProvider, read_bin
from qdata_cn.check import check_store
from qdata_cn.restamp import restamp_store
from qdata_cn.sessions import (
    bar_end_shift,
    minute_calendar,
    off_session,
    resample_minute_calendar,
    session_minutes,
    span_bounds,
)
from qdata_cn.synth import SynthParams, generate, write_market
from qdata_cn.synth_intraday import FIELDS, rounded_sums
from qdata_testutil import tree_bytes

from qcore.cli import cli
from qcore.errors import DataError

#: 20 stocks x 80 days from 2020-04-01 (seed 8): suspensions, limit-up/-down and one-word days, late listings and
#: ex-dates (factor changes) all occur.
PARAMS = SynthParams(instruments=20, days=80, seed=8, start="2020-04-01")
CN_MORNING = [f"{h:02d}:{m:02d}" for h in (9, 10, 11) for m in range(60) if (9, 30) <= (h, m) < (11, 30)]
CN_AFTERNOON = [f"{h:02d}:{m:02d}" for h in (13, 14) for m in range(60)]


@pytest.fixture(scope="module")
def market():
    return generate(PARAMS)


@pytest.fixture(scope="module")
def minute_store(tmp_path_factory: pytest.TempPathFactory, market) -> Path:
    """The synthetic market with one-minute bars (read-only)."""
    out = tmp_path_factory.mktemp("minute") / "store"
    write_market(market, out, intraday=True)
    return out


@pytest.fixture(scope="module")
def bars(minute_store: Path):
    """Daily panel, minute fields as ``(T, N, 240)`` and the symbols."""
    provider = QlibBinProvider(minute_store)
    symbols = sorted(provider.universe("all"))
    day = provider.load(list(FIELDS), symbols)
    minute = provider.load(list(FIELDS), symbols, freq="1min")
    t_len, n = len(day.dates), len(symbols)
    per_day = {k: minute[k].reshape(t_len, 240, n).transpose(0, 2, 1) for k in FIELDS}
    return day, per_day, symbols


# -- stamps -------------------------------------------------------------------------------------------------------


def test_sessions_are_qlibs_bar_starts() -> None:
    """Qlib's get_min_cal for cn/us/tw: bar starts, the session close excluded."""
    cn = pd.to_timedelta(session_minutes("cn"))
    assert [f"{int(t.total_seconds()) // 3600:02d}:{int(t.total_seconds()) // 60 % 60:02d}" for t in cn] == \
        CN_MORNING + CN_AFTERNOON  # fmt: skip
    assert len(session_minutes("us")) == 390 and len(session_minutes("tw")) == 270
    assert pd.Timedelta(session_minutes("cn", shift=1)[0]) == pd.Timedelta("09:29:00")
    cal = minute_calendar(pd.DatetimeIndex(["2020-01-02", "2020-01-03"]))
    assert len(cal) == 480 and not off_session(cal).any() and not bar_end_shift(cal)
    ends = cal + pd.Timedelta(minutes=1)
    assert off_session(ends).sum() == 4 and bar_end_shift(ends)  # 11:30 and 15:00 of each day are not bar starts
    assert not off_session(minute_calendar(cal.normalize().unique(), "30min"), "30min").any()


def test_resampled_calendars_follow_cal_sam_minute() -> None:
    cal = minute_calendar(pd.DatetimeIndex(["2020-01-02", "2020-01-03"]))
    thirty = resample_minute_calendar(cal, "30min")
    assert list(thirty[:8].strftime("%H:%M")) == ["09:30", "10:00", "10:30", "11:00", "13:00", "13:30", "14:00",
                                                  "14:30"]  # fmt: skip
    assert len(thirty) == 16 and len(resample_minute_calendar(cal, "5min")) == 96
    assert resample_minute_calendar(cal[:300], "30min").equals(thirty[:10])  # day 2 up to 10:29
    with pytest.raises(ValueError, match="not a minute frequency"):
        resample_minute_calendar(cal, "day")


def test_synthetic_minute_store_uses_bar_starts(minute_store: Path, market) -> None:
    provider = QlibBinProvider(minute_store)
    cal = provider.calendar("1min")
    assert len(cal) == 240 * len(market.dates)
    lines = (minute_store / "calendars" / "1min.txt").read_text().splitlines()
    assert lines[:2] == ["2020-04-01 09:30:00", "2020-04-01 09:31:00"] and lines[-1].endswith(" 14:59:00")
    assert list(cal[118:122].strftime("%H:%M")) == ["11:28", "11:29", "13:00", "13:01"]
    assert cal.normalize().unique().equals(provider.calendar("day").rename("datetime"))
    assert not [f for f in check_store(minute_store, "1min") if f.severity != "info"]


def test_spans_keep_the_daily_and_minute_bars_of_every_day(minute_store: Path, market) -> None:
    """Spans run from midnight of the first day to the last bar of the last day, in every instrument file."""
    provider = QlibBinProvider(minute_store)
    for name in ("all", "csi300"):  # (this market has no ST stock: st.txt is empty)
        first_line = (minute_store / "instruments" / f"{name}.txt").read_text().splitlines()[0]
        assert first_line.split("\t")[1].endswith(" 00:00:00") and first_line.endswith(" 14:59:00")
    spans = provider.universe("all")
    for j, symbol in enumerate(market.symbols):
        (span,) = spans[symbol]
        assert (span.start, span.end) == span_bounds(market.dates[market.first[j]], market.dates[market.last[j]])
    assert span_bounds("2020-01-02 09:30", "2020-01-03") == (pd.Timestamp("2020-01-02"),
                                                              pd.Timestamp("2020-01-03 14:59"))  # fmt: skip


def test_derived_calendars_and_their_missing_bars(minute_store: Path) -> None:
    provider = QlibBinProvider(minute_store)
    assert provider.source_freq("30min") == "1min" and provider.source_freq("1min") is None
    thirty = provider.calendar("30min")
    assert len(thirty) == 8 * len(provider.calendar("day"))
    assert thirty.equals(resample_minute_calendar(provider.calendar("1min"), "30min"))
    with pytest.raises(DataError, match="no 30min bars: its 30min calendar is derived from the 1min one"):
        provider.load(["close"], ["SH000300"], freq="30min")
    with pytest.raises(DataError, match=r"calendar file for freq 'week' not found \(available freqs: 1min, day\)"):
        provider.calendar("week")


# -- exact aggregation --------------------------------------------------------------------------------------------


def _fsum32(values: np.ndarray) -> np.float32:
    return np.float32(math.fsum(values.astype(np.float64).tolist()))


def test_minutes_aggregate_exactly_to_days(bars, market) -> None:
    """Every instrument and day: first open, last close, max high, min low bit for bit; volume and amount the
    exact sums of the minutes rounded once to float32; vwap the volume-weighted minute vwap rounded once."""
    day, m, symbols = bars
    traded = ~np.isnan(day["close"])
    assert (~traded).sum() >= 6 and traded.sum() > 1000
    assert np.array_equal(m["open"][:, :, 0][traded], day["open"][traded])
    assert np.array_equal(m["close"][:, :, -1][traded], day["close"][traded])
    assert np.array_equal(m["high"].max(axis=2)[traded], day["high"][traded])
    assert np.array_equal(m["low"].min(axis=2)[traded], day["low"][traded])
    assert np.array_equal(m["factor"][traded], np.broadcast_to(day["factor"][:, :, None], m["factor"].shape)[traded])
    for t, j in zip(*np.nonzero(traded)):
        vol = m["volume"][t, j]
        assert _fsum32(vol) == day["volume"][t, j], (t, symbols[j])
        assert _fsum32(m["amount"][t, j]) == day["amount"][t, j], (t, symbols[j])
        if day["volume"][t, j] > 0:  # (the index trades nothing on a few days: its vwap has no weights there)
            weighted = math.fsum((m["vwap"][t, j].astype(np.float64) * vol.astype(np.float64)).tolist())
            assert np.float32(weighted / math.fsum(vol.astype(np.float64).tolist())) == day["vwap"][t, j]
    ok = traded[:, :, None] & np.ones(240, bool)
    assert (m["low"][ok] <= m["vwap"][ok]).all() and (m["vwap"][ok] <= m["high"][ok]).all()
    assert (m["low"][ok] <= np.minimum(m["open"], m["close"])[ok]).all()
    assert (np.maximum(m["open"], m["close"])[ok] <= m["high"][ok]).all()
    # stocks: whole lots per bar, adding up to the day's lots; amount = vwap x volume (raw CNY)
    stocks = np.array([s != "SH000300" for s in symbols])
    ok_stock = ok & stocks[None, :, None]
    raw_lots = m["volume"].astype(np.float64) * m["factor"] / 100
    lots = np.round(raw_lots)
    off = np.abs(raw_lots - lots)[ok_stock]  # float32 resolves a busy day's volume to about half a lot
    assert off.max() < 0.25 and np.median(off) < 1e-3
    day_lots = np.round(day["volume"].astype(np.float64) * day["factor"] / 100)
    assert np.array_equal(lots.sum(axis=2)[:, stocks][traded[:, stocks]], day_lots[:, stocks][traded[:, stocks]])
    value = m["vwap"].astype(np.float64) * m["volume"]
    busy = ok_stock & (m["volume"] > 0)
    np.testing.assert_allclose(m["amount"][busy], value[busy], rtol=1e-5)


def test_suspended_days_are_nan_and_one_word_days_flat(bars, market) -> None:
    day, m, symbols = bars
    suspended = np.isnan(day["close"]) & ~np.isnan(day["factor"])  # listed, not traded
    listed_nan = np.isnan(day["close"])
    assert suspended.sum() + listed_nan.sum() > 0
    for name in FIELDS:
        assert np.isnan(m[name][listed_nan]).all(), name
    stocks = np.array([s != "SH000300" for s in symbols])
    flat = (day["open"] == day["high"]) & (day["low"] == day["close"]) & (day["high"] == day["close"]) & stocks
    assert flat.sum() >= 5  # the one-word limit days
    for name in ("open", "high", "low", "close", "vwap"):
        assert (m[name][flat] == day["close"][flat][:, None]).all(), name
    assert (m["volume"][flat] >= 0).all() and (m["volume"][flat].sum(axis=1) > 0).all()


def test_minute_change_is_against_the_previous_close(bars, market) -> None:
    """$change of a bar is close / previous day's close - 1: the last bar's is the day's (bit for bit), and the bars
    of a limit-up close are at the limit."""
    day, m, symbols = bars
    traded = ~np.isnan(day["close"])
    last = m["change"][:, :, -1]
    both = traded & ~np.isnan(day["change"])
    assert np.array_equal(last[both], day["change"][both])
    assert np.isnan(last[traded & np.isnan(day["change"])]).all()  # a listing day has no previous close
    order = [market.symbols.index(s) for s in symbols]
    limit_up = market.raw["limit_up"][:, order]
    assert limit_up.sum() >= 10
    at_close = m["close"] == day["close"][:, :, None]
    assert (m["change"][limit_up[:, :, None] & at_close] >= 0.095).all()
    prev = day["close"][:, :, None] / (1 + day["change"][:, :, None])
    np.testing.assert_allclose((m["close"] / prev - 1)[both], m["change"][both], rtol=1e-5, atol=1e-6)


def test_rounded_sums_are_exact() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((50, 240)) * np.exp(rng.uniform(-30, 30, (50, 240)))).astype(np.float32)
    x[3] = np.nan
    got = rounded_sums(x)
    for row in range(50):
        want = math.fsum(x[row].astype(np.float64).tolist()) if row != 3 else np.nan
        assert got[row] == want or (np.isnan(want) and np.isnan(got[row]))


def test_minute_bars_do_not_depend_on_the_other_instruments(tmp_path: Path, market, minute_store: Path) -> None:
    """Batching instruments together changes nothing: a store of the same market written alone is the same."""
    import qdata_cn.synth_intraday as intraday

    old = intraday._BATCH_ROWS
    intraday._BATCH_ROWS = 1
    try:
        write_market(market, tmp_path / "one_by_one", intraday=True)
    finally:
        intraday._BATCH_ROWS = old
    assert tree_bytes(tmp_path / "one_by_one") == tree_bytes(minute_store)


# -- stores older qcore versions wrote ----------------------------------------------------------------------------


def _old_style(store: Path, tmp_path: Path) -> Path:
    """A copy of ``store`` as qcore wrote minute stores before: bar-end stamps and date-only spans."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(store, old)
    cal = pd.DatetimeIndex(pd.read_csv(old / "calendars" / "1min.txt", header=None)[0])
    (old / "calendars" / "1min.txt").write_text("".join(f"{d:%Y-%m-%d %H:%M:%S}\n" for d in
                                                        cal + pd.Timedelta(minutes=1)))  # fmt: skip
    for path in (old / "instruments").glob("*.txt"):
        rows = [line.split("\t") for line in path.read_text().splitlines()]
        path.write_text("".join(f"{s}\t{a[:10]}\t{b[:10]}\n" for s, a, b in rows))
    return old


def test_check_names_bar_end_stores_and_restamp_fixes_them(tmp_path: Path, minute_store: Path) -> None:
    old = _old_style(minute_store, tmp_path)
    errors = [f for f in check_store(old, "1min") if f.severity == "error"]
    assert [f.check for f in errors] == ["stamps"]
    assert "stamps 1min bars by their end" in errors[0].detail and "qcore data restamp" in errors[0].detail
    spans = [f for f in check_store(old, "1min") if f.check == "spans"]
    assert {f.target for f in spans} == {"instruments/all.txt", "instruments/csi300.txt"}
    checked = CliRunner().invoke(cli, ["data", "check", str(old), "--freq", "1min"])
    assert checked.exit_code == 1 and "qcore data restamp" in checked.output
    bins = {k: v for k, v in tree_bytes(old).items() if k.startswith("features/")}
    result = CliRunner().invoke(cli, ["data", "restamp", str(old)])
    assert result.exit_code == 0, result.output
    assert "19200 1min stamps moved to bar starts" in result.output and "all.txt, csi300.txt" in result.output
    assert tree_bytes(old) == tree_bytes(minute_store)  # calendar and spans as the current writer's, bins untouched
    assert {k: v for k, v in tree_bytes(old).items() if k.startswith("features/")} == bins
    again = restamp_store(old)
    assert again["calendar"] == 0 and again["instrument_files"] == []
    assert tree_bytes(old) == tree_bytes(minute_store)


def test_restamp_refuses_stamps_it_cannot_place(tmp_path: Path, minute_store: Path) -> None:
    old = _old_style(minute_store, tmp_path)
    text = (old / "calendars" / "1min.txt").read_text().replace(" 09:31:00\n", " 09:25:00\n", 1)
    (old / "calendars" / "1min.txt").write_text(text)
    before = tree_bytes(old)
    with pytest.raises(DataError, match="neither bar starts nor bar ends") as info:
        restamp_store(old)
    assert info.value.row == 1
    assert tree_bytes(old) == before
    errors = [f for f in check_store(old, "1min") if f.severity == "error"]
    assert errors[0].check == "stamps" and "09:25:00, line 1" in errors[0].detail
    with pytest.raises(DataError, match="not a minute frequency"):
        restamp_store(old, "day")


# -- reading a store with both frequencies --------------------------------------------------------------------------


def test_one_provider_for_both_frequencies(minute_store: Path, bars) -> None:
    provider = QlibBinProvider(minute_store)
    assert provider.freqs() == ["1min", "day"]
    assert provider.fields("1min") == list(FIELDS) == provider.fields("day")
    panel = provider.load(["close"], ["SH000300"], start="2020-04-02", end="2020-04-02", freq="1min")
    assert len(panel.dates) == 240 and panel.dates[0] == pd.Timestamp("2020-04-02 09:30")
    start, values = read_bin(minute_store / "features" / "sh000300" / "close.1min.bin")
    assert start == 0 and np.array_equal(panel["close"][:, 0], values[240:480])
    window = provider.load(["close"], ["SH000300"], start="2020-04-02 10:00", end="2020-04-02 10:29", freq="1min")
    assert len(window.dates) == 30 and np.array_equal(window["close"][:, 0], values[270:300])


def test_date_only_spans_keep_their_last_day_of_minutes(tmp_path: Path, minute_store: Path, golden: Path) -> None:
    """Instrument files written for daily bars (ends at midnight) still cover the last day's minute bars, in one
    store or with Qlib's ``{freq: folder}`` layout; a store without minute bars keeps its spans as they are."""
    old = _old_style(minute_store, tmp_path)
    (old / "calendars" / "1min.txt").write_bytes((minute_store / "calendars" / "1min.txt").read_bytes())
    provider = QlibBinProvider(old)
    (span,) = provider.universe("all")["SH000300"]
    last = provider.calendar("day")[-1]
    assert (span.start, span.end) == (pd.Timestamp("2020-04-01"), last + pd.Timedelta("14:59:00"))
    assert (minute_store / "instruments" / "all.txt").read_text() != (old / "instruments" / "all.txt").read_text()
    split = QlibBinProvider({"day": str(golden), "1min": str(old)})
    assert all(s.end.strftime("%H:%M") == "14:59" for items in split.universe("all").values() for s in items)
    assert all(s.end == s.end.normalize() for items in QlibBinProvider(golden).universe("all").values() for s in items)
