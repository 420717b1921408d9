"""Property tests: windows of a load are slices of the full panel; CSV floats round-trip for any float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from qdata_cn.binstore import QlibBinProvider
from qdata_cn.exporter import format_float32

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden_market"
_PROVIDER = QlibBinProvider(GOLDEN)
_CAL = _PROVIDER.calendar()
_SYMBOLS = sorted(_PROVIDER.universe("all"))
_FULL = _PROVIDER.load(["close", "volume"], _SYMBOLS)


@settings(max_examples=60, deadline=None)
@given(
    lo=st.integers(0, len(_CAL) - 1),
    width=st.integers(0, len(_CAL)),
    picks=st.lists(st.sampled_from(_SYMBOLS), min_size=1, max_size=6),
)
def test_any_window_is_a_slice_of_the_full_panel(lo: int, width: int, picks: list[str]) -> None:
    hi = min(lo + width, len(_CAL) - 1)
    part = _PROVIDER.load(["$close", "volume"], picks, _CAL[lo], _CAL[hi])
    cols = [_SYMBOLS.index(s) for s in picks]
    for field in ("close", "volume"):
        expected = _FULL[field][lo : hi + 1][:, cols]
        assert np.array_equal(part[field].view("<u4"), expected.view("<u4"))


@settings(max_examples=200, deadline=None)
@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=50))
def test_csv_text_reads_back_to_the_same_float32(bits: list[int]) -> None:
    values = np.array(bits, dtype=np.uint32).view(np.float32)
    values = values[~np.isnan(values)]
    text = format_float32(values)
    back = np.array([float(t) for t in text], dtype=np.float64).astype(np.float32)
    assert np.array_equal(back.view(np.uint32), values.view(np.uint32))
