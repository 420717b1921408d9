"""Parity with Qlib beyond the golden settings: variants of the golden backtest whose Qlib reports were written by
pyqlib 0.9.7 (``data/make_qlib_variants.py``): no limit lock-out, only-tradable ranking, per-side deal prices with
impact cost, parallel execution with a holding threshold and a small account, expression limits with a volume cap,
delayed cash settlement, and an account too small for most lots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qbacktest.backtest import run_backtest
from qbacktest.executor import SimulatorExecutor
from qbacktest.strategies import TopkDropout

HERE = Path(__file__).resolve().parent / "data"
VARIANTS = json.loads((HERE / "qlib_variants.json").read_text())
BASE = {"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005, "close_cost": 0.0015, "min_cost": 5,
        "trade_unit": 100}  # fmt: skip


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_matches_qlib(name: str, golden_provider, session_kernel, golden_scores) -> None:
    spec = VARIANTS[name]
    exchange = dict(BASE, **spec.get("exchange", {}))
    for key in ("deal_price", "limit_threshold", "volume_threshold"):
        if isinstance(exchange.get(key), list):
            exchange[key] = tuple(exchange[key])
    result = run_backtest(golden_provider, TopkDropout(signal=golden_scores, **spec["strategy"]),
                          SimulatorExecutor(**spec.get("executor", {})), start="2018-10-17", end="2019-04-22",
                          account=spec.get("account", 1e8), benchmark="SH000300", exchange_kwargs=exchange,
                          kernel=session_kernel)  # fmt: skip
    qlib = pd.read_parquet(HERE / "qlib_variants" / f"{name}.parquet")
    assert list(result.report.columns) == list(qlib.columns)
    assert result.report.index.as_unit("ns").equals(qlib.index.as_unit("ns"))
    np.testing.assert_allclose(result.report.to_numpy(), qlib.to_numpy(), rtol=1e-6, atol=1e-12)
