"""``index="instrument"`` gathers the result straight into (instrument, datetime) order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qcore import api

STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"
EXPRESSIONS = {"close": "$close", "ma5": "Mean($close, 5)", "rank": "CSRank($volume)"}


@pytest.mark.parametrize("instruments", ["all", "csi_like"])
def test_instrument_index_equals_the_sorted_swap(kernel, instruments: str) -> None:
    provider = api.open_provider("qlib_bin", kernel=kernel, provider_uri=str(STORE))
    by_date = api.evaluate(EXPRESSIONS, provider, instruments=instruments, start="2018-06-01", kernel=kernel)
    by_symbol = api.evaluate(EXPRESSIONS, provider, instruments=instruments, start="2018-06-01", kernel=kernel,
                             index="instrument")  # fmt: skip
    assert by_symbol.index.names == ["instrument", "datetime"]
    assert by_symbol.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(by_symbol, by_date.swaplevel().sort_index())


def test_unknown_index_is_refused(kernel) -> None:
    provider = api.open_provider("qlib_bin", kernel=kernel, provider_uri=str(STORE))
    with pytest.raises(ValueError, match="index must be 'datetime' or 'instrument'"):
        api.evaluate(["$close"], provider, kernel=kernel, index="symbol")
