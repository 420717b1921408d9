"""Parity with Qlib 0.9.7's nested decision execution (issue 15): Qlib's nested example (TopkDropout daily →
SBB-EMA at 30 minutes → TWAP at 5 minutes, 1-minute exchange) on a small minute store with planted events; every
level's report, trade indicators, holdings and order indicators equal Qlib's to 1e-6 (``tests/data/nested``, made
by ``make_nested_golden.py`` there)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qbacktest.backtest import run_backtest

from qcore.trading import Direction

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "nested"
CONFIG = json.loads((GOLDEN / "golden.json").read_text())
LEVELS = ("1day", "30min", "5min")


def _executor(kernel):
    """Qlib's spelling of its nested example's executor."""
    return kernel.create("executor", "NestedExecutor", time_per_step="day", generate_portfolio_metrics=True,
                         track_data=True,
                         inner_strategy={"class": "SBBStrategyEMA", "kwargs": {"instruments": "csi300",
                                                                               "freq": "1min"}},
                         inner_executor={"class": "NestedExecutor", "module_path": "qlib.backtest.executor",
                                         "kwargs": {"time_per_step": "30min", "generate_portfolio_metrics": True,
                                                    "inner_strategy": {"class": "TWAPStrategy"},
                                                    "inner_executor": {"class": "SimulatorExecutor", "kwargs": {
                                                        "time_per_step": "5min"}}}})  # fmt: skip


@pytest.fixture(scope="module", params=sorted(CONFIG["scenarios"]))
def scenario(request, session_kernel):
    name = request.param
    provider = session_kernel.create("data_provider", "qlib_bin", provider_uri=str(GOLDEN / "store"))
    score = pd.read_parquet(GOLDEN / "score.parquet")["score"]
    strategy = session_kernel.create("strategy", "TopkDropout", topk=CONFIG["topk"], n_drop=CONFIG["n_drop"],
                                     signal=score)  # fmt: skip
    extra = {k: tuple(v) if isinstance(v, list) else v for k, v in CONFIG["scenarios"][name].items()}
    result = run_backtest(provider, strategy, _executor(session_kernel), start=CONFIG["start"], end=CONFIG["end"],
                          account=1e8, benchmark="SH000300", exchange_kwargs={**CONFIG["exchange"], **extra},
                          kernel=session_kernel)  # fmt: skip
    return name, result


def _stamps(index: pd.Index) -> pd.Index:
    """The index with its timestamps in nanoseconds (Qlib's files keep milliseconds)."""
    if isinstance(index, pd.MultiIndex):
        return index.set_levels(pd.DatetimeIndex(index.levels[0]).as_unit("ns"), level=0)
    return pd.DatetimeIndex(index).as_unit("ns")


def _same(ours: pd.DataFrame, theirs: pd.DataFrame, columns: list[str], what: str) -> None:
    assert _stamps(ours.index).equals(_stamps(theirs.index)), f"{what}: rows differ"
    a, b = ours[columns].to_numpy(dtype=float), theirs[columns].to_numpy(dtype=float)
    close = np.isclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True)
    if not close.all():
        row, col = np.argwhere(~close)[0]
        raise AssertionError(f"{what}: {columns[col]} at {ours.index[row]}: ours {a[row, col]!r}, Qlib {b[row, col]!r}")


def test_reports_match_qlib(scenario) -> None:
    name, result = scenario
    assert list(result.levels) == list(LEVELS)
    for freq in LEVELS:
        theirs = pd.read_parquet(GOLDEN / name / f"report_{freq}.parquet")
        theirs.index = pd.DatetimeIndex(theirs.index, name="datetime")
        _same(result.levels[freq].report, theirs, list(theirs.columns), f"{name} report_{freq}")


def test_trade_indicators_match_qlib(scenario) -> None:
    name, result = scenario
    for freq in LEVELS:
        theirs = pd.read_parquet(GOLDEN / name / f"indicators_{freq}.parquet")
        theirs.index = pd.DatetimeIndex(theirs.index, name="datetime")
        _same(result.levels[freq].indicators, theirs, list(theirs.columns), f"{name} indicators_{freq}")


def test_holdings_match_qlib(scenario) -> None:
    name, result = scenario
    for freq in LEVELS:
        theirs = pd.read_parquet(GOLDEN / name / f"positions_{freq}.parquet")
        ours = result.levels[freq].positions.rename(columns=lambda c: "count" if c.startswith("count_") else c)
        _same(ours, theirs, ["amount", "price", "weight", "count"], f"{name} positions_{freq}")


def test_order_indicators_match_qlib(scenario) -> None:
    name, result = scenario
    for freq in LEVELS:
        theirs = pd.read_parquet(GOLDEN / name / f"orders_{freq}.parquet")
        ours = result.levels[freq].orders
        _same(ours, theirs, list(theirs.columns), f"{name} orders_{freq}")


def test_the_planted_events_are_traded(scenario) -> None:
    name, result = scenario
    fills = result.fills
    dealt = fills[fills["deal_amount"] > 0]
    events = CONFIG["events"]
    # limit-up from 09:30 to 10:29: the buys start at 10:30
    symbol, day, *_ = events["limit_up_morning"]
    buys = dealt[(dealt["instrument"] == symbol) & (dealt["datetime"].dt.normalize() == pd.Timestamp(day))]
    assert len(buys) and buys["datetime"].min() == pd.Timestamp(f"{day} 10:30")
    # suspended from 13:00: the sells stop there
    symbol, day, *_ = events["suspended_afternoon"]
    sells = dealt[(dealt["instrument"] == symbol) & (dealt["datetime"].dt.normalize() == pd.Timestamp(day))]
    assert len(sells) and sells["datetime"].max() < pd.Timestamp(f"{day} 13:00")
    # limit-up all day: the day is not buyable, nothing is bought
    symbol, day, *_ = events["limit_up_all_day"]
    exchange = result.exchange
    t = int(exchange.dates.get_loc(pd.Timestamp(day)))
    assert not exchange.is_tradable(t, exchange.col(symbol), Direction.BUY)
    assert not len(dealt[(dealt["instrument"] == symbol) & (dealt["datetime"].dt.normalize() == pd.Timestamp(day))])
    if name == "volume":  # the volume limit leaves orders partly filled
        assert (result.levels["1day"].indicators["ffr"] < 0.999).any()
