"""Cross-sectional operators give the same cells whatever the query start (issue #12).

Before the query start the engine loads history rows for the windows; a rank over those rows must include every
member of the market on them, also the stocks that left before the query start, or a later start ranks over
fewer stocks and changes the window's values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qcore import api

#: Cells that copy a cross-section from the history rows: equal bit for bit.
COPIES = {
    "lagged_rank": "Ref(CSRank($close), 20)",
    "lagged_zscore": "Ref(CSZScore($volume), 30)",
    "lagged_quantile": "Ref(CSQuantile($close, 0.8), 10)",
}
#: Windows over cross-sections (float64 values that float32 cannot hold exactly): equal to the last bits of float32
#: (the rolling kernels' sums are exact only for float32 inputs; see qops.kernels).
WINDOWS = {
    "mean_rank": "Mean(CSRank($close), 60)",
    "demeaned_sum": "Sum(CSDemean($close / Ref($close, 1) - 1), 20)",
    "quantile_mean": "Mean(CSQuantile($close, 0.8), 10)",
}
EXPRESSIONS = {**COPIES, **WINDOWS}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 stocks × 420 days; market ``idx``: every other stock leaves on day 200, the rest stay throughout."""
    from qdata_cn.synth import synthesize

    out = tmp_path_factory.mktemp("cs_start") / "store"
    synthesize(out, instruments=24, days=420, seed=5)
    calendar = [line for line in (out / "calendars" / "day.txt").read_text().splitlines() if line]
    symbols = sorted(p.name.upper() for p in (out / "features").iterdir())
    lines = []
    for j, symbol in enumerate(symbols):
        span = (calendar[0], calendar[200]) if j % 2 else (calendar[0], calendar[-1])
        lines.append(f"{symbol}\t{span[0]}\t{span[1]}")
    (out / "instruments" / "idx.txt").write_text("\n".join(lines) + "\n")
    return out


def test_cross_sectional_cells_do_not_depend_on_the_query_start(store: Path, kernel) -> None:
    provider = api.open_provider("qlib_bin", kernel=kernel, provider_uri=str(store))
    calendar = provider.calendar()
    full = api.evaluate(EXPRESSIONS, provider, instruments="idx", kernel=kernel)
    late = api.evaluate(EXPRESSIONS, provider, instruments="idx", start=calendar[225], kernel=kernel)
    assert len(late) > 0 and late.notna().any().all()
    expected = full.loc[late.index]
    # the leavers are not rows of the late query, yet they shaped its first windows
    assert set(late.index.get_level_values("instrument")) < set(full.index.get_level_values("instrument"))
    for column in COPIES:
        np.testing.assert_array_equal(late[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    for column in WINDOWS:
        np.testing.assert_allclose(late[column].to_numpy(), expected[column].to_numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=column)  # fmt: skip


def test_explicit_symbol_lists_rank_over_the_list(store: Path, kernel) -> None:
    """With a list of symbols the cross-section is the list itself, whatever the start."""
    provider = api.open_provider("qlib_bin", kernel=kernel, provider_uri=str(store))
    calendar = provider.calendar()
    symbols = sorted(provider.universe("all"))[:6]
    full = api.evaluate(["CSRank($close)"], provider, instruments=symbols, kernel=kernel)
    late = api.evaluate(["CSRank($close)"], provider, instruments=symbols, start=calendar[300], kernel=kernel)
    pd.testing.assert_frame_equal(late, full.loc[late.index])
    assert full.groupby(level="datetime").size().max() == 6
