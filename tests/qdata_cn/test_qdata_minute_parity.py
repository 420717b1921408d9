"""Qlib reads our minute stores and we read Qlib's (issue 15).

Golden files in ``tests/data/minute`` (``make_golden.py`` there regenerates them; see its README): what Qlib 0.9.7
returned for a small synthetic store with 1-minute and daily bars (calendars at 1min/5min/30min/day, instrument lists,
``D.features`` of the fields and of expressions over the minute series), a store Qlib's ``dump_bin`` wrote from
collector-format CSV files, and what Qlib read from that one. Qlib's ``TResample`` is not compared: our engine has no
such operator, and Qlib's own fails on stores (``D.features`` hands it a RangeIndex).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qdata_cn.binstore import QlibBinProvider
from qdata_cn.importer import import_data
from qdata_testutil import tree_bytes

from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from tests.parity import compare, load_script

MINUTE = Path(__file__).resolve().parents[1] / "data" / "minute"
GOLDEN = json.loads((MINUTE / "golden.json").read_text())
_script = load_script(MINUTE / "make_golden.py", "minute_make_golden")
store_digest, write_synth = _script.store_digest, _script.write_synth


def _golden_frame(name: str) -> pd.DataFrame:
    frame = pd.read_parquet(MINUTE / name)
    frame.index = frame.index.set_names(["instrument", "datetime"])
    frame.index = frame.index.set_levels(frame.index.levels[1].astype("datetime64[ns]"), level="datetime")
    return frame.sort_index()


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parity") / "synth"
    write_synth(root)
    return root


def test_the_store_is_the_one_qlib_read(synth: Path) -> None:
    assert store_digest(synth) == GOLDEN["synth_digest"], (
        "the synthetic minute store changed: regenerate tests/data/minute with make_golden.py (see its README)")


def test_qlib_calendars_and_instrument_lists_are_ours(synth: Path) -> None:
    provider = QlibBinProvider(synth)
    for freq, stamps in GOLDEN["qlib_reads_ours"]["calendars"].items():
        assert provider.calendar(freq).equals(pd.DatetimeIndex(stamps, name="datetime")), freq
    symbols = sorted(provider.universe("all"))
    assert GOLDEN["qlib_reads_ours"]["instruments"] == {"1min": symbols, "day": symbols}


def test_qlib_reads_our_minute_and_daily_bars(synth: Path) -> None:
    """Qlib's values of every field are our stored float32 values, bit for bit, on the same rows (Qlib keeps each
    span's last day of minute bars: the spans end at the day's last bar)."""
    provider = QlibBinProvider(synth)
    fields = GOLDEN["fields"]
    for freq, name in (("1min", "qlib_reads_ours.parquet"), ("day", "qlib_reads_ours_day.parquet")):
        theirs = _golden_frame(name)
        symbols = sorted(theirs.index.get_level_values("instrument").unique())
        panel = provider.load(fields, symbols, freq=freq)
        assert len(theirs) == len(panel.dates) * len(symbols), freq  # every bar of every instrument
        for field in fields:
            ours = pd.DataFrame(panel[field], index=panel.dates, columns=list(panel.instruments)).stack(
                future_stack=True).swaplevel().sort_index()  # fmt: skip
            mine = ours.reindex(theirs.index).to_numpy(np.float32)
            want = theirs[field].to_numpy(np.float32)
            assert np.array_equal(mine, want, equal_nan=True), (freq, field)


def test_qlib_expressions_over_minutes_equal_ours(synth: Path) -> None:
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(synth))
    engine = ExpressionEngine(provider, kernel.registry("operator"), freq="1min")
    exprs = GOLDEN["expressions"]
    mine = engine.evaluate(exprs, "all").swaplevel().sort_index()
    theirs = _golden_frame("qlib_reads_ours.parquet")
    assert mine.index.equals(theirs.index)
    for name in exprs:
        mismatches, finite, share = compare(mine[name].to_numpy(), theirs[name].to_numpy())
        assert mismatches == 0 and finite > 1000 and share == 1.0, (name, mismatches, share)


def test_we_read_the_store_qlib_wrote() -> None:
    provider = QlibBinProvider(MINUTE / "qlib_store")
    info = GOLDEN["qlib_reads_qlib"]
    for freq, stamps in info["calendars"].items():
        assert provider.calendar(freq).equals(pd.DatetimeIndex(stamps, name="datetime")), freq
    assert sorted(provider.universe("all")) == info["instruments"]["1min"]
    theirs = _golden_frame("qlib_reads_qlib.parquet")
    panel = provider.load(GOLDEN["fields"], info["instruments"]["1min"], freq="1min")
    for field in GOLDEN["fields"]:
        ours = pd.DataFrame(panel[field], index=panel.dates, columns=list(panel.instruments)).stack(
            future_stack=True).swaplevel().sort_index()  # fmt: skip
        assert np.array_equal(ours.reindex(theirs.index).to_numpy(np.float32), theirs[field].to_numpy(np.float32),
                              equal_nan=True), field  # fmt: skip
    gap = GOLDEN["collector"]["gap"]
    assert theirs.loc[gap, "close"].isna().sum() == 15  # the minutes its file lacks are NaN in Qlib's reading too


def test_our_import_of_collector_files_equals_dump_bin(tmp_path: Path) -> None:
    """The same CSV files through ``qcore data import --freq 1min`` and Qlib's ``dump_bin``: the same calendar and
    bins, byte for byte. Only the spans differ on purpose: ours start at midnight (sessions.span_bounds)."""
    src = tmp_path / "collector"
    shutil.copytree(MINUTE / "collector", src)
    import_data(src, tmp_path / "store", freq="1min")
    ours, theirs = tree_bytes(tmp_path / "store"), tree_bytes(MINUTE / "qlib_store")
    bins = [k for k in theirs if k.startswith(("calendars/", "features/"))]
    assert len(bins) == 19 and {k: ours[k] for k in bins} == {k: theirs[k] for k in bins}
    assert sorted(k for k in ours if k.startswith(("calendars/", "features/"))) == sorted(bins)
    spans = QlibBinProvider(tmp_path / "store").universe("all")
    for symbol, items in QlibBinProvider(MINUTE / "qlib_store").universe("all").items():
        assert spans[symbol][0].start == items[0].start.normalize() and spans[symbol][0].end == items[0].end
