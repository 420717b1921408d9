"""`qcore data synth --regime-shift`: the planted loadings change on the date, nothing before it does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qdata_cn.synth import SynthParams, generate
from qdata_cn.synth_regime import RegimeShift, generate_regime

from qcore.cli import ExitCode, cli
from qcore.errors import DataError

PARAMS = SynthParams(instruments=120, days=500, seed=4, reversal=0.1, momentum=0.0, volume=0.0)
SHIFT = RegimeShift("2016-01-04", reversal=-0.1, momentum=0.0, volume=0.0)


@pytest.fixture(scope="module")
def markets():
    return generate(PARAMS), generate_regime(PARAMS, SHIFT)


def _reversal_ic(market, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Mean daily rank IC of minus the 5-day return against the next day's return."""
    close = pd.DataFrame(market.fields["close"], index=market.dates)
    ret = close.pct_change(fill_method=None)
    signal = -(close / close.shift(5) - 1)
    nxt = ret.shift(-1)
    keep = (close.index >= start) & (close.index <= end)
    ic = signal[keep].rank(axis=1).corrwith(nxt[keep].rank(axis=1), axis=1)
    return float(ic.mean())


def test_the_market_before_the_shift_is_the_plain_market(markets) -> None:
    plain, shifted = markets
    cut = int(plain.dates.searchsorted(SHIFT.date))
    for name in ("close", "volume", "factor"):
        np.testing.assert_array_equal(plain.fields[name][:cut], shifted.fields[name][:cut])
    assert not np.allclose(plain.fields["close"][cut + 5 :], shifted.fields["close"][cut + 5 :], equal_nan=True)
    assert shifted.info["regime"]["date"] == "2016-01-04"
    assert shifted.info["regime"]["after"]["reversal"] == -0.1


def test_the_planted_reversal_changes_sign_at_the_shift(markets) -> None:
    plain, shifted = markets
    dates = shifted.dates
    before = _reversal_ic(shifted, dates[30], SHIFT.date - pd.Timedelta(days=1))
    after = _reversal_ic(shifted, SHIFT.date + pd.Timedelta(days=10), dates[-2])
    plain_after = _reversal_ic(plain, SHIFT.date + pd.Timedelta(days=10), dates[-2])
    assert before > 0.03 and plain_after > 0.03
    assert after < -0.03


def test_loadings_and_bad_dates() -> None:
    dates = pd.bdate_range("2020-01-01", periods=10)
    loadings = RegimeShift("2020-01-08", 1.0, 2.0, 3.0).loadings(SynthParams(), dates)
    assert loadings.shape == (10, 3)
    np.testing.assert_array_equal(loadings[4], [0.04, 0.015, -0.02])
    np.testing.assert_array_equal(loadings[5], [1.0, 2.0, -3.0])
    with pytest.raises(DataError, match="must fall after the first"):
        RegimeShift("2019-01-01").loadings(SynthParams(), dates)


def test_the_command_line_option(tmp_path: Path) -> None:
    out = tmp_path / "store"
    args = ["data", "synth", "--out", str(out), "--instruments", "10", "--days", "80", "--no-fundamentals"]
    result = CliRunner().invoke(cli, [*args, "--regime-shift", "2015-03-02", "--regime-after", "0.05,0,0.01"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "synth_info.json").read_text())
    assert info["regime"] == {"date": "2015-03-02", "before": {"reversal": 0.04, "momentum": 0.015, "volume": 0.02},
                              "after": {"reversal": 0.05, "momentum": 0.0, "volume": 0.01}}  # fmt: skip
    for bad, message in ((["--regime-shift", "soon"], "--regime-shift"),
                         (["--regime-after", "1,2,3"], "needs --regime-shift"),
                         (["--regime-shift", "2015-03-02", "--regime-after", "1,2"], "three numbers")):
        failed = CliRunner().invoke(cli, [*args, "--overwrite", *bad])
        assert failed.exit_code == ExitCode.USAGE, failed.output
        assert message in failed.output
