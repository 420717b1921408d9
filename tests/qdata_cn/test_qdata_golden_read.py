"""The golden store (written by Qlib) reads back bit-exactly through QlibBinProvider."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qdata_cn.binstore import QlibBinProvider

from qcore.protocols import DataProvider
from qcore.types import Span, clip_universe, membership_mask

FIELDS = ["open", "high", "low", "close", "vwap", "volume", "amount", "factor", "change"]
GOLDEN_FILES = Path(__file__).resolve().parents[1] / "data" / "golden"
INFO = json.loads((GOLDEN_FILES / "market_info.json").read_text())


@pytest.fixture(scope="module")
def provider(golden: Path) -> QlibBinProvider:
    return QlibBinProvider(golden)


@pytest.fixture(scope="module")
def panel(provider: QlibBinProvider):
    return provider.load(FIELDS, sorted(provider.universe("all")))


def test_satisfies_protocol(provider: QlibBinProvider) -> None:
    assert isinstance(provider, DataProvider)


def test_calendar_matches_file(provider: QlibBinProvider, golden: Path) -> None:
    lines = [x for x in (golden / "calendars" / "day.txt").read_text().splitlines() if x.strip()]
    cal = provider.calendar("day")
    assert len(cal) == 320 == len(lines)
    assert list(cal.strftime("%Y-%m-%d")) == lines
    assert cal.is_monotonic_increasing and cal.name == "datetime"


def test_every_bin_is_bit_exact(provider: QlibBinProvider, panel, golden: Path) -> None:
    """Every value of every bin equals the raw file bytes, NaN payloads included."""
    cal_len = len(provider.calendar())
    checked = 0
    for j, symbol in enumerate(panel.instruments):
        for field in FIELDS:
            path = golden / "features" / symbol.lower() / f"{field}.day.bin"
            raw = np.fromfile(path, dtype="<f4")
            start = int(raw[0])
            values = raw[1:]
            column = panel[field][:, j]
            assert column.dtype == np.float32
            got = column[start : start + len(values)]
            assert np.array_equal(got.view("<u4"), values.view("<u4")), (symbol, field)
            assert np.isnan(column[:start]).all()
            assert np.isnan(column[start + len(values) : cal_len]).all()
            checked += 1
    assert checked == 61 * 9


def test_panel_shape_and_axes(provider: QlibBinProvider, panel) -> None:
    assert panel.shape == (320, 61)
    assert panel.fields == tuple(FIELDS)
    assert panel.dates.equals(provider.calendar())
    assert "SH000300" in panel.instruments
    for values in panel.data.values():
        assert values.flags["C_CONTIGUOUS"]


def test_fields_and_markets(provider: QlibBinProvider) -> None:
    assert provider.fields() == FIELDS
    assert provider.markets() == ["all", "csi_like"]
    assert provider.freqs() == ["day"]


def test_slice_by_dates_reads_only_that_range(provider: QlibBinProvider, panel) -> None:
    part = provider.load(["$Close", "VOLUME"], ["sh600000", "SZ000013"], "2018-03-01", "2018-06-30")
    cal = provider.calendar()
    lo = cal.searchsorted(pd.Timestamp("2018-03-01"))
    hi = cal.searchsorted(pd.Timestamp("2018-06-30"), side="right")
    assert part.dates.equals(cal[lo:hi])
    assert part.instruments == ("SH600000", "SZ000013")
    assert part.fields == ("close", "volume")
    j = panel.instruments.index("SZ000013")
    assert np.array_equal(part["close"][:, 1].view("<u4"), panel["close"][lo:hi, j].view("<u4"))


def test_dates_between_calendar_days_and_empty_ranges(provider: QlibBinProvider) -> None:
    part = provider.load(["close"], ["SH600000"], "2018-01-01", "2018-01-03")  # 01-01 is a holiday
    assert list(part.dates.strftime("%Y-%m-%d")) == ["2018-01-02", "2018-01-03"]
    empty = provider.load(["close"], ["SH600000"], "2020-01-01", "2020-02-01")
    assert empty.shape == (0, 1)


def test_missing_field_and_unknown_instrument_are_nan(provider: QlibBinProvider) -> None:
    part = provider.load(["close", "no_such_field"], ["SH600000", "SH699999"])
    assert np.isnan(part["no_such_field"]).all()
    assert np.isnan(part["close"][:, 1]).all()
    assert not np.isnan(part["close"][:, 0]).all()


def test_multiple_spans_and_membership(provider: QlibBinProvider, golden: Path) -> None:
    uni = provider.universe("csi_like")
    assert len(uni["SZ000013"]) >= 2 and len(uni["SZ000015"]) >= 2
    rows = [line.split("\t") for line in (golden / "instruments" / "csi_like.txt").read_text().splitlines()]
    expected: dict[str, list[Span]] = {}
    for sym, lo, hi in rows:
        expected.setdefault(sym, []).append(Span(lo, hi))
    assert {k: list(v) for k, v in uni.items()} == {k: sorted(v, key=lambda s: s.start) for k, v in expected.items()}
    cal = provider.calendar()
    mask = membership_mask(uni, cal, ["SZ000013", "SZ000015", "SH000300"])
    assert not mask[:, 2].any()
    for j, sym in enumerate(["SZ000013", "SZ000015"]):
        inside = np.zeros(len(cal), dtype=bool)
        for span in uni[sym]:
            inside |= (cal >= span.start) & (cal <= span.end)
        assert np.array_equal(mask[:, j], inside)
        # at least one gap between spans: the mask switches off and on again
        assert np.count_nonzero(np.diff(mask[:, j].astype(int)) == 1) + int(mask[0, j]) >= 2


def test_membership_matches_qlib_rows(provider: QlibBinProvider) -> None:
    """Qlib's D.features(D.instruments('csi_like')) rows are exactly the membership mask cells with data spans."""
    frame = pd.read_parquet(GOLDEN_FILES / "csi_like_values.parquet")
    uni = provider.universe("csi_like")
    cal = provider.calendar()
    symbols = sorted(uni)
    mask = membership_mask(uni, cal, symbols)
    rows = {(inst, pd.Timestamp(dt)) for inst, dt in frame.index}
    ours = {(symbols[j], cal[t]) for t, j in zip(*np.nonzero(mask))}
    # Qlib limits rows to each instrument's data range as well
    all_spans = provider.universe("all")
    ours = {(s, d) for s, d in ours if any(sp.start <= d <= sp.end for sp in all_spans[s])}
    assert rows == ours
    panel = provider.load(["close"], symbols)
    inst_index = {s: j for j, s in enumerate(symbols)}
    t_index = {d: t for t, d in enumerate(cal)}
    for (inst, dt), value in frame["close"].items():
        got = panel["close"][t_index[pd.Timestamp(dt)], inst_index[inst]]
        assert (np.isnan(got) and np.isnan(value)) or got == value


def test_clip_universe(provider: QlibBinProvider) -> None:
    uni = clip_universe(provider.universe("csi_like"), "2018-07-01", "2018-09-30")
    for spans in uni.values():
        for span in spans:
            assert span.start >= pd.Timestamp("2018-07-01") and span.end <= pd.Timestamp("2018-09-30")


def test_late_listings_and_delistings(provider: QlibBinProvider, panel) -> None:
    cal = provider.calendar()
    uni = provider.universe("all")
    for sym, day in INFO["late_listed"].items():
        j = panel.instruments.index(sym)
        k = cal.get_loc(pd.Timestamp(day))
        assert np.isnan(panel["close"][:k, j]).all()
        assert panel["close"][k, j] == 1.0  # every first close is 1.0
        assert uni[sym][0].start == pd.Timestamp(day)
    for sym, day in INFO["delisted"].items():
        j = panel.instruments.index(sym)
        k = cal.get_loc(pd.Timestamp(day))
        assert np.isnan(panel["close"][k + 1 :, j]).all()
        assert uni[sym][-1].end == pd.Timestamp(day)


def test_long_suspension_is_all_nan(provider: QlibBinProvider, panel) -> None:
    j = panel.instruments.index(INFO["long_suspension"])
    rows = np.isnan(panel["close"][:, j])
    for field in FIELDS:
        assert np.isnan(panel[field][rows, j]).all()


def test_version_changes_when_a_file_changes(golden_copy: Path) -> None:
    provider = QlibBinProvider(golden_copy)
    before = provider.version
    assert before == QlibBinProvider(golden_copy).version
    path = golden_copy / "features" / "sh600000" / "close.day.bin"
    data = path.read_bytes()
    path.write_bytes(data[:-4])
    assert provider.version != before
    path.write_bytes(data)
    (golden_copy / "instruments" / "new.txt").write_text("SH600000\t2018-01-02\t2018-02-01\n")
    assert provider.version != before
    assert "new" in provider.markets()


def test_calendar_cache_invalidates(golden_copy: Path) -> None:
    provider = QlibBinProvider(golden_copy)
    assert len(provider.calendar()) == 320
    cal = golden_copy / "calendars" / "day.txt"
    cal.write_text(cal.read_text() + "2019-04-24\n")
    assert len(provider.calendar()) == 321


def test_provider_uri_mapping_and_user_dir(golden: Path) -> None:
    provider = QlibBinProvider({"day": str(golden)})
    assert len(provider.calendar()) == 320
    assert provider.root == golden


def test_single_instrument_many_fields_do_not_share_buffers(provider: QlibBinProvider, golden: Path) -> None:
    panel = provider.load(FIELDS, ["SH000300"])
    for field in FIELDS:
        raw = np.fromfile(golden / "features" / "sh000300" / f"{field}.day.bin", "<f4")[1:]
        assert np.array_equal(panel[field][:, 0].view("<u4"), raw.view("<u4")), field
    assert not np.shares_memory(panel["close"], panel["open"])
