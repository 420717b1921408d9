"""Nested decision execution (issue 15): day → 30min → 5min executors on one account, each level's report,
Qlib's ``skip_empty_decision``/``align_range_limit``/``track_data``, trade ranges by clock time and by index, and the
execution strategies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qbacktest.backtest import run_backtest
from qbacktest.nested import NestedExecutor

from qcore.errors import ConfigError

from .nested_market import QLIB_EXCHANGE, build_store, healthy, orders_file, scores

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory, session_kernel):
    store = build_store(tmp_path_factory.mktemp("nested") / "store")
    return session_kernel.create("data_provider", "qlib_bin", provider_uri=str(store))


def _nested(kernel, inner_strategy="TWAPStrategy", *, middle: dict | None = None, **kwargs) -> NestedExecutor:
    """Qlib's nested example: day → SBB-EMA at 30min → TWAP at 5min (or day → ``inner_strategy`` at 30min)."""
    if middle is None:
        inner = {"class": "SimulatorExecutor", "kwargs": {"time_per_step": "30min"}}
        return kernel.create("executor", "NestedExecutor", time_per_step="day", inner_executor=inner,
                             inner_strategy=inner_strategy, **kwargs)  # fmt: skip
    inner = {"class": "NestedExecutor", "kwargs": {"time_per_step": "30min", **middle,
             "inner_executor": {"class": "SimulatorExecutor", "kwargs": {"time_per_step": "5min"}},
             "inner_strategy": {"class": "TWAPStrategy"}}}  # fmt: skip
    return kernel.create("executor", "NestedExecutor", time_per_step="day", inner_executor=inner,
                         inner_strategy=inner_strategy, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def example(provider, session_kernel):
    """TopkDropout → SBB-EMA (1-minute EMA) at 30 minutes → TWAP at 5 minutes, Qlib's exchange."""
    strategy = session_kernel.create("strategy", "TopkDropout", topk=4, n_drop=2, signal=scores(provider))
    executor = _nested(session_kernel, {"class": "SBBStrategyEMA", "kwargs": {"instruments": "csi300", "freq": "1min"}},
                       middle={}, track_data=True)  # fmt: skip
    result = run_backtest(provider, strategy, executor, account=1e8, benchmark="SH000300",
                          exchange_kwargs=QLIB_EXCHANGE, kernel=session_kernel)  # fmt: skip
    return result, executor


def test_every_level_reports_at_its_own_frequency(example, provider) -> None:
    result, _ = example
    assert list(result.levels) == ["1day", "30min", "5min"]
    days = provider.calendar("day")
    day = result.levels["1day"].report
    # every day of the store, the calendar's last one included (Qlib's nested loop crashes there, #1623)
    assert list(day.index) == list(days)
    half = result.levels["30min"].report
    five = result.levels["5min"].report
    assert set(half.index.minute) <= {0, 30} and set(five.index.minute % 5) == {0}
    # one position: at each day's last bar every level sees the same account value and cash
    for frame in (half, five):
        last = frame.groupby(frame.index.normalize()).last()
        common = last.index.intersection(day.index)
        assert len(common) >= len(day) - 2
        np.testing.assert_allclose(last.loc[common, "account"], day.loc[common, "account"], rtol=1e-12)
        np.testing.assert_allclose(last.loc[common, "cash"], day.loc[common, "cash"], rtol=1e-12)


def test_the_30_minute_cost_summed_per_day_is_the_daily_cost(example) -> None:
    result, _ = example
    day = result.levels["1day"].report
    half = result.levels["30min"].report
    assert day["total_cost"].iloc[-1] > 0
    # Qlib's check_diff_freq: total_cost resampled to days (last) equals the daily one
    last = half["total_cost"].groupby(half.index.normalize()).last()
    pd.testing.assert_series_equal(last, day["total_cost"].reindex(last.index), check_names=False)
    summed = half["cost"].mul(half["account"].shift(1).fillna(1e8)).groupby(half.index.normalize()).sum()
    traded = day.loc[summed.index]
    np.testing.assert_allclose(summed, traded["cost"] * day["account"].shift(1).fillna(1e8).loc[summed.index],
                               rtol=1e-9, atol=1e-6)  # fmt: skip
    assert result.fills["cost"].sum() == pytest.approx(day["total_cost"].iloc[-1], rel=1e-12)


def test_indicators_per_level(example) -> None:
    result, _ = example
    day = result.levels["1day"]
    five = result.levels["5min"]
    assert list(day.indicators.columns) == ["ffr", "pa", "pos", "deal_amount", "value", "count"]
    # the innermost level has no base price: pa is 0 there (Qlib)
    assert (five.indicators["pa"].dropna() == 0).all()
    traded = day.indicators[day.indicators["count"] > 0]
    assert traded["ffr"].between(0, 1 + 1e-9).all() and traded["pa"].notna().all()
    orders = day.orders.dropna(subset=["amount"])
    # ffr = deal / the outer order's amount; trade value = deal x the deal-weighted price
    np.testing.assert_allclose(orders["ffr"], orders["deal_amount"].fillna(0) / orders["amount"], rtol=1e-12)
    filled = day.orders.dropna(subset=["trade_price"])
    np.testing.assert_allclose(filled["trade_value"], filled["deal_amount"] * filled["trade_price"], rtol=1e-9)
    # pa is positive when the execution beat the base price (sells above it, buys below it)
    sign = np.where(filled["trade_dir"] == 0, 1.0, -1.0)
    np.testing.assert_allclose(filled["pa"], sign * (filled["trade_price"] / filled["base_price"] - 1), rtol=1e-12)
    analysis = day.indicator_analysis("value_weighted")
    weights = day.indicators["value"].abs()
    assert analysis.loc["ffr", "value"] == pytest.approx((day.indicators["ffr"] * weights).sum() / weights.sum())


def test_base_price_is_the_twap_of_the_executed_windows(example, provider) -> None:
    result, _ = example
    half = result.levels["30min"]
    five = result.levels["5min"]
    (when, name), row = next(iter(half.orders.dropna(subset=["trade_price"]).iterrows()))
    executed = five.report.index[(five.report.index >= when) & (five.report.index < when + pd.Timedelta("30min"))]
    minutes = provider.calendar("1min")
    close = provider.load(["close"], [name], when, when + pd.Timedelta("29min"), "1min")["close"][:, 0]
    stamps = minutes[(minutes >= when) & (minutes <= when + pd.Timedelta("29min"))]
    keep = np.zeros(len(stamps), dtype=bool)
    for start in executed:
        keep |= (stamps >= start) & (stamps < start + pd.Timedelta("5min"))
    prices = close[keep].astype(np.float64)
    prices = prices[prices > 1e-8]
    assert row["base_price"] == pytest.approx(prices.mean(), rel=1e-12)
    assert row["base_volume"] == len(prices)


def test_track_data_keeps_the_decisions(example) -> None:
    result, executor = example
    days = result.levels["1day"].report.index
    assert [when for when, _ in executor.decisions] == list(days)
    assert any(decision.orders for _, decision in executor.decisions)


def _replay(kernel, tmp_path: Path, rows: list, **kwargs):
    return kernel.create("strategy", "OrderReplay", file=str(orders_file(tmp_path / "orders.csv", rows)), **kwargs)


def test_an_empty_outer_decision_runs_no_inner_step(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[2])[0]
    rows = [(str(days[2].date()), name, 50000, "buy")]
    out = {}
    for skip in (True, False):
        result = run_backtest(provider, _replay(session_kernel, tmp_path, rows),
                              _nested(session_kernel, skip_empty_decision=skip), start=days[1], end=days[3],
                              benchmark=None, account=1e7, exchange_kwargs=QLIB_EXCHANGE, kernel=session_kernel)
        out[skip] = result.levels["30min"]
    # with skip_empty_decision the days without orders have no 30-minute rows; without it every bar runs
    assert set(out[True].report.index.normalize()) == {days[2]}
    assert len(out[False].report) == 3 * 8
    empty = out[False].indicators[out[False].report.index.normalize() != days[2]]
    assert (empty["count"] == 0).all() and empty["ffr"].isna().all()
    assert len(out[True].report) == 8 and (out[True].indicators["count"] == 1).all()


@pytest.mark.parametrize("trade_range", [("10:00", "10:59"), (1, 2)])
def test_trade_ranges_limit_the_inner_steps(provider, session_kernel, tmp_path: Path, trade_range) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[2])[0]
    rows = [(str(days[2].date()), name, 50000, "buy")]
    result = run_backtest(provider, _replay(session_kernel, tmp_path, rows, trade_range=trade_range),
                          _nested(session_kernel), start=days[2], end=days[2], benchmark=None, account=1e7,
                          exchange_kwargs=QLIB_EXCHANGE, kernel=session_kernel)  # fmt: skip
    half = result.levels["30min"].report
    assert [t.strftime("%H:%M") for t in half.index] == ["10:00", "10:30"]
    fills = result.fills
    assert fills["deal_amount"].sum() == pytest.approx(50000, rel=0.01)
    assert set(fills["datetime"].dt.strftime("%H:%M")) == {"10:00", "10:30"}


def test_a_clock_range_holds_at_every_level(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[2])[0]
    rows = [(str(days[2].date()), name, 50000, "buy")]
    strategy = _replay(session_kernel, tmp_path, rows, trade_range=("13:10", "13:40"))
    result = run_backtest(provider, strategy, _nested(session_kernel, "TWAPStrategy", middle={}), start=days[2],
                          end=days[2], benchmark=None, account=1e7, exchange_kwargs=QLIB_EXCHANGE,
                          kernel=session_kernel)  # fmt: skip
    five = result.levels["5min"].report
    assert [t.strftime("%H:%M") for t in five.index] == ["13:10", "13:15", "13:20", "13:25", "13:30", "13:35",
                                                         "13:40"]  # fmt: skip
    day = result.levels["1day"].orders.loc[(days[2], name)]
    minutes = provider.calendar("1min")
    # the base price covers the executed bars' minutes cut to the range: 13:10 to 13:40 (Qlib's clip_time_range)
    close = provider.load(["close"], [name], days[2] + pd.Timedelta("13:10:00"), days[2] + pd.Timedelta("13:40:00"),
                          "1min")["close"][:, 0]  # fmt: skip
    assert len(minutes) and day["base_price"] == pytest.approx(close.astype(np.float64).mean(), rel=1e-12)


def test_index_ranges_do_not_crash_the_innermost_executor(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[2])[0]
    rows = [(str(days[2].date()), name, 50000, "buy")]
    # Qlib copies the outer index range into the inner decisions, and its SimulatorExecutor raises on it
    strategy = _replay(session_kernel, tmp_path, rows, trade_range=(2, 3))
    result = run_backtest(provider, strategy, _nested(session_kernel, "TWAPStrategy", middle={}), start=days[2],
                          end=days[2], benchmark=None, account=1e7, exchange_kwargs=QLIB_EXCHANGE,
                          kernel=session_kernel)  # fmt: skip
    half = result.levels["30min"].report
    assert [t.strftime("%H:%M") for t in half.index] == ["10:30", "11:00"]
    assert len(result.levels["5min"].report) == 12
    # a range on a decision the daily simulator executes has no inner steps to limit: it is ignored
    daily = run_backtest(provider, _replay(session_kernel, tmp_path, rows, trade_range=(2, 3)), start=days[2],
                         end=days[2], benchmark=None, account=1e7, exchange_kwargs={k: v for k, v in
                         QLIB_EXCHANGE.items() if k != "freq"}, kernel=session_kernel)  # fmt: skip
    assert daily.fills["deal_amount"].sum() > 0


def test_align_range_limit_false_calls_the_inner_strategy_every_step(provider, session_kernel, tmp_path) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[2])[0]
    rows = [(str(days[2].date()), name, 50000, "buy")]
    strategy = _replay(session_kernel, tmp_path, rows, trade_range=("10:00", "10:59"))
    result = run_backtest(provider, strategy, _nested(session_kernel, align_range_limit=False), start=days[2],
                          end=days[2], benchmark=None, account=1e7, exchange_kwargs=QLIB_EXCHANGE,
                          kernel=session_kernel)  # fmt: skip
    half = result.levels["30min"]
    assert len(half.report) == 8
    # TWAP itself keeps to the range: orders only at 10:00 and 10:30
    traded = half.indicators[half.indicators["count"] > 0].index
    assert [t.strftime("%H:%M") for t in traded] == ["10:00", "10:30"]


def test_twap_retargets_shortfalls_and_drops_the_rest(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[2])[0]
    minutes = provider.calendar("1min")
    day_rows = minutes[minutes.normalize() == days[2]]
    volume = provider.load(["volume"], [name], day_rows[0], day_rows[-1], "1min")["volume"][:, 0]
    # an order ten times what the volume limit lets through in the day
    limit = 0.01
    amount = float(np.nansum(volume)) * limit * 10
    rows = [(str(days[2].date()), name, amount, "buy")]
    exchange = {**QLIB_EXCHANGE, "volume_threshold": ("current", f"$volume * {limit}")}
    result = run_backtest(provider, _replay(session_kernel, tmp_path, rows), _nested(session_kernel), start=days[2],
                          end=days[2], benchmark=None, account=1e12, exchange_kwargs=exchange,
                          kernel=session_kernel)  # fmt: skip
    half = result.levels["30min"].orders.xs(name, level="instrument")
    day = result.levels["1day"].indicators.iloc[0]
    assert 0.05 < day["ffr"] < 0.15  # partial fill: about a tenth of the order
    # every step asks for its even share plus what earlier steps missed
    share = amount / 8
    filled = 0.0
    for k, (_, row) in enumerate(half.iterrows()):
        assert row["amount"] == pytest.approx(share * (k + 1) - filled, rel=0.02) if k < 7 else True
        filled += row["deal_amount"]
    assert half["amount"].iloc[-1] == pytest.approx(amount - half["deal_amount"].iloc[:-1].sum(), rel=1e-12)


def test_execution_strategies_shape_their_schedules(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[5])[0]
    rows = [(str(days[5].date()), name, 400000, "sell")]
    shapes = {}
    for spec in ("TWAPStrategy", "VWAP", {"class": "ACStrategy", "kwargs": {"lamb": 1e-2, "eta": 2.5e-6,
                                                                              "freq": "30min", "window_size": 8}}):
        result = run_backtest(provider, _replay(session_kernel, tmp_path, rows), _nested(session_kernel, spec),
                              start=days[5], end=days[5], benchmark=None, account={"cash": 1e6, name: 400000},
                              exchange_kwargs=QLIB_EXCHANGE, kernel=session_kernel)  # fmt: skip
        orders = result.levels["30min"].orders.xs(name, level="instrument")["amount"].abs()
        assert result.fills["deal_amount"].sum() == pytest.approx(400000, rel=1e-6)  # sells finish
        shapes[spec if isinstance(spec, str) else "AC"] = orders.to_numpy()
    twap, vwap, ac = shapes["TWAPStrategy"], shapes["VWAP"], shapes["AC"]
    assert np.ptp(twap) <= 2 * 100 / 0.01  # within lots of an even split
    # VWAP follows the U-shaped volume profile: more at the open and the close than at noon
    assert vwap[0] > vwap[3] and vwap[-1] > vwap[3]
    # a risk-averse Almgren-Chriss schedule front-loads
    assert ac[0] > ac[-2] and ac[0] > twap[0]


def test_qlib_and_qcore_spellings_and_errors(session_kernel) -> None:
    qlib = session_kernel.create("executor", "NestedExecutor", time_per_step="day",
                                 inner_executor={"class": "SimulatorExecutor", "module_path": "qlib.backtest.executor",
                                                 "kwargs": {"time_per_step": "30min"}},
                                 inner_strategy={"class": "TWAPStrategy",
                                                 "module_path": "qlib.contrib.strategy.rule_strategy"})  # fmt: skip
    ours = session_kernel.create("executor", "nested", time_per_step="1day",
                                 inner_executor={"name": "simulator", "kwargs": {"time_per_step": "30minute"}},
                                 inner_strategy={"name": "twap"})  # fmt: skip
    assert qlib.inner_freq == ours.inner_freq == "30min"
    with pytest.raises(ConfigError) as info:
        session_kernel.create("executor", "NestedExecutor", time_per_step="day",
                              inner_executor={"class": "NestedExecutor", "kwargs": {
                                  "time_per_step": "30min", "inner_strategy": "TWAP",
                                  "inner_executor": {"class": "SimulatorExecutor", "kwargs": {"time_per_step": "7x"}}}},
                              inner_strategy="TWAP")  # fmt: skip
    assert info.value.path == "executor.kwargs.inner_executor.kwargs.inner_executor.kwargs.time_per_step"
    with pytest.raises(ConfigError, match="must be shorter") as info:
        session_kernel.create("executor", "NestedExecutor", time_per_step="30min", inner_strategy="TWAP",
                              inner_executor={"class": "SimulatorExecutor", "kwargs": {"time_per_step": "day"}})
    with pytest.raises(ConfigError, match="did you mean") as info:
        session_kernel.create("executor", "NestedExecutor", inner_strategy="TWAPP",
                              inner_executor={"class": "SimulatorExecutor", "kwargs": {"time_per_step": "5min"}})
    assert info.value.path == "executor.kwargs.inner_strategy.class"


def test_an_index_range_at_the_middle_level(provider, session_kernel, tmp_path: Path) -> None:
    days = provider.calendar("day")
    name = healthy(provider, days[2])[0]
    # orders dated on a 30-minute bar, limited to the 2nd and 3rd 5-minute bars of it
    rows = [(str(days[2] + pd.Timedelta("10:30:00")), name, 50000, "buy")]
    inner = {"class": "NestedExecutor", "kwargs": {"time_per_step": "30min", "inner_strategy": "TWAP",
             "inner_executor": {"class": "SimulatorExecutor", "kwargs": {"time_per_step": "5min"}}}}  # fmt: skip
    executor = session_kernel.create("executor", "NestedExecutor", time_per_step="day", skip_empty_decision=False,
                                     inner_executor=inner, inner_strategy=_replay(session_kernel, tmp_path, rows,
                                                                                  trade_range=(1, 2)))  # fmt: skip
    top = _replay(session_kernel, tmp_path, [])
    result = run_backtest(provider, top, executor, start=days[2], end=days[2], benchmark=None, account=1e7,
                          exchange_kwargs=QLIB_EXCHANGE, kernel=session_kernel)  # fmt: skip
    five = result.levels["5min"].report
    assert [t.strftime("%H:%M") for t in five.index] == ["10:35", "10:40"]
    assert result.fills["deal_amount"].sum() == pytest.approx(50000, rel=0.01)
