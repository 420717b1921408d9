"""Strategies on small in-memory markets, including the edge cases of the issue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qbacktest.strategies import OrderReplay, SoftTopk, TargetWeight, TopkDropout
from qbacktest.strategies.base import desc_order

from qcore.errors import DataError

from .conftest import make_market, recompute_change, run_memory

STOCKS = ["SH600000", "SH600001", "SH600002", "SH600003", "SH600004", "SH600005"]


def fixed_scores(dates, ranking: dict[str, float]) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([pd.DatetimeIndex(dates), sorted(ranking)], names=["datetime", "instrument"])
    values = [ranking[inst] for _, inst in index]
    return pd.DataFrame({"score": values}, index=index)


RANKING = {s: float(len(STOCKS) - i) for i, s in enumerate(STOCKS)}  # SH600000 best


@pytest.mark.parametrize("seed", range(20))
def test_desc_order_is_pandas_sort_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, 40).astype(float)
    values[rng.random(40) < 0.2] = np.nan
    expected = pd.Series(values).sort_values(ascending=False).index.to_numpy()
    assert desc_order(values).tolist() == expected.tolist()


def test_first_bar_has_no_signal_and_scores_trade_the_next_bar(session_kernel) -> None:
    fields = make_market(20, STOCKS)
    dates = fields["close"].index
    scores = fixed_scores(dates[5:], RANKING)
    result = run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=1))
    assert result.report.index[0] == dates[5]  # the run starts at the first score date
    assert result.report["turnover"].iloc[0] == 0.0  # ...but trades one bar later
    first = result.fills.groupby("datetime").size()
    assert first.index[0] == dates[6]
    held = result.positions.xs(dates[6], level="datetime")
    assert sorted(held.index) == ["SH600000", "SH600001"]


def test_all_candidates_limit_up_buys_nothing(session_kernel) -> None:
    fields = make_market(20, STOCKS)
    dates = fields["close"].index
    fields["change"].iloc[6] = 0.1  # every stock closes at the limit on the first trading bar
    result = run_memory(session_kernel, fields, TopkDropout(signal=fixed_scores(dates[5:], RANKING), topk=3,
                                                              n_drop=1))  # fmt: skip
    assert result.report.loc[dates[6], "value"] == 0.0 and result.report.loc[dates[6], "cost"] == 0.0
    assert (result.fills["datetime"] == dates[6]).sum() == 0  # untradable buys are not even placed
    assert result.report.loc[dates[7], "value"] > 0


def _delisting_market() -> tuple[dict[str, pd.DataFrame], dict[str, tuple[object, object]]]:
    fields = make_market(60, STOCKS)
    dates = fields["close"].index
    fields["close"].iloc[20:35, 0] = np.nan  # SH600000 suspended for three weeks...
    for key in fields:
        if key != "close":
            fields[key].iloc[20:35, 0] = np.nan
    recompute_change(fields)
    return fields, {"SH600000": (dates[0], dates[34])}  # ...then delisted


def test_held_stock_suspended_then_delisted_is_never_sold(session_kernel) -> None:
    fields, spans = _delisting_market()
    dates = fields["close"].index
    scores = pd.concat([fixed_scores(dates[:20], RANKING),  # SH600000 loses its score once suspended
                        fixed_scores(dates[20:], {k: v for k, v in RANKING.items() if k != "SH600000"})])
    result = run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=1), spans=spans)
    held = result.positions.xs("SH600000", level="instrument")
    last_price = held.loc[dates[19], "price"]
    assert held.index[-1] == result.report.index[-1]  # still held at the end, long after delisting
    assert (held.loc[dates[20]:, "price"] == last_price).all()  # valued at its last close
    assert held["count_day"].is_monotonic_increasing
    sizes = result.positions.groupby(level="datetime").size()
    assert sizes.loc[dates[20]:].max() == 3  # Qlib #809: the planned sell fails, the buy still happens
    sold = result.fills[(result.fills["instrument"] == "SH600000") & (result.fills["direction"] == "sell")]
    assert sold.empty


def test_strict_topk_fixes_issue_809(session_kernel) -> None:
    fields, spans = _delisting_market()
    dates = fields["close"].index
    scores = pd.concat([fixed_scores(dates[:20], RANKING),
                        fixed_scores(dates[20:], {k: v for k, v in RANKING.items() if k != "SH600000"})])
    result = run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=1, strict_topk=True),
                        spans=spans)  # fmt: skip
    sizes = result.positions.groupby(level="datetime").size()
    assert sizes.max() == 2


def test_cash_too_small_for_one_lot(session_kernel) -> None:
    fields = make_market(15, STOCKS, price=50.0)
    dates = fields["close"].index
    result = run_memory(session_kernel, fields, TopkDropout(signal=fixed_scores(dates, RANKING), topk=2, n_drop=1),
                        account=3000.0)  # fmt: skip
    assert result.positions.empty
    assert (result.report["account"] == 3000.0).all() and (result.report["total_cost"] == 0.0).all()
    orders = result.fills
    assert len(orders) and (orders["deal_amount"] == 0).all() and (orders["amount"] == 0).all()


def test_min_cost_binds_on_small_orders(session_kernel) -> None:
    fields = make_market(15, STOCKS, price=10.0)
    dates = fields["close"].index
    result = run_memory(session_kernel, fields, TopkDropout(signal=fixed_scores(dates, RANKING), topk=2, n_drop=1),
                        account=20_000.0)  # fmt: skip
    bought = result.fills[result.fills["value"] > 0]
    assert len(bought) == 2 and (bought["value"] * 0.0005 < 5).all()
    assert (bought["cost"] == 5.0).all()


def test_empty_score_day_means_no_trade(session_kernel) -> None:
    fields = make_market(20, STOCKS)
    dates = fields["close"].index
    ranking_b = {s: -v for s, v in RANKING.items()}  # reversed ranking: would trade every bar
    scores = pd.concat([fixed_scores(dates[i : i + 1], RANKING if i % 2 else ranking_b) for i in range(20) if i != 8])
    result = run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=2))
    traded = set(result.fills["datetime"])
    assert dates[9] not in traded and dates[8] in traded and dates[11] in traded


def test_unknown_instruments_are_kept_untradable_dropped_or_rejected(session_kernel, caplog) -> None:
    fields = make_market(15, STOCKS)
    dates = fields["close"].index
    scores = fixed_scores(dates, {**RANKING, "SZ999999": 100.0})
    kept = run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=1))
    assert "SZ999999" in caplog.text
    first = kept.positions.xs(dates[1], level="datetime")
    assert list(first.index) == ["SH600000"]  # the unknown name takes a buy slot and is never bought (Qlib)
    from qbacktest.signal import Signal

    dropped = run_memory(session_kernel, fields, TopkDropout(signal=Signal(scores, unknown="drop"), topk=2, n_drop=1))
    assert sorted(dropped.positions.xs(dates[1], level="datetime").index) == ["SH600000", "SH600001"]
    with pytest.raises(DataError, match="SZ999999"):
        run_memory(session_kernel, fields, TopkDropout(signal=Signal(scores, unknown="error"), topk=2, n_drop=1))


def test_scores_outside_the_calendar_are_an_error(session_kernel) -> None:
    fields = make_market(15, STOCKS)
    dates = fields["close"].index
    scores = fixed_scores([*dates, dates[-1] + pd.Timedelta(days=30)], RANKING)
    with pytest.raises(DataError, match="outside the store's calendar"):
        run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=1), start=dates[0],
                   end=dates[-2])  # fmt: skip


def test_hold_thresh_and_only_tradable(session_kernel) -> None:
    fields = make_market(20, STOCKS)
    dates = fields["close"].index
    day_a = {s: v for s, v in RANKING.items()}
    day_b = {s: -v for s, v in RANKING.items()}
    scores = pd.concat([fixed_scores(dates[i : i + 1], day_a if i < 3 else day_b) for i in range(20)])
    slow = run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=2, hold_thresh=5))
    sells = slow.fills[slow.fills["direction"] == "sell"]
    assert sells["datetime"].min() >= dates[6]  # bought on bar 1, sellable after 5 bar ends
    fields["change"].iloc[4, 5] = 0.1  # the best new name is limit-up on bar 4
    tradable = run_memory(session_kernel, fields, TopkDropout(signal=scores, topk=2, n_drop=2, only_tradable=True))
    bought = tradable.fills[(tradable.fills["datetime"] == dates[4]) & (tradable.fills["direction"] == "buy")]
    assert sorted(bought["instrument"]) == ["SH600003", "SH600004"]


def test_target_weight_strategy_reaches_its_weights(session_kernel) -> None:
    fields = make_market(15, STOCKS)
    dates = fields["close"].index
    weights = fixed_scores(dates, {"SH600000": 0.5, "SH600001": 0.3, "SH600002": 0.0})
    result = run_memory(session_kernel, fields, TargetWeight(signal=weights, risk_degree=0.9))
    last = result.positions.xs(dates[-2], level="datetime")
    assert sorted(last.index) == ["SH600000", "SH600001"]
    assert last.loc["SH600000", "weight"] == pytest.approx(0.45, abs=0.01)
    assert last.loc["SH600001", "weight"] == pytest.approx(0.27, abs=0.01)
    interact = run_memory(session_kernel, fields, TargetWeight(signal=weights, order_generator="OrderGenWInteract"))
    # with interaction the tradable value is spread over the tradable targets (weights renormalised), as in Qlib
    assert interact.positions.xs(dates[-2], level="datetime")["weight"].sum() == pytest.approx(0.95, abs=0.01)


def test_soft_topk_holds_the_top_names(session_kernel) -> None:
    fields = make_market(15, STOCKS)
    dates = fields["close"].index
    result = run_memory(session_kernel, fields, SoftTopk(signal=fixed_scores(dates, RANKING), topk=3))
    last = result.positions.xs(dates[-2], level="datetime")
    assert sorted(last.index) == ["SH600000", "SH600001", "SH600002"]
    assert last["weight"].to_numpy() == pytest.approx([0.95 / 3] * 3, abs=0.01)


def test_order_replay_from_a_csv_file(session_kernel, tmp_path, caplog) -> None:
    fields = make_market(10, STOCKS)
    dates = fields["close"].index
    path = tmp_path / "orders.csv"
    path.write_text("datetime,instrument,amount,direction\n"
                    f"{dates[1].date()},SH600000,1000,buy\n{dates[3].date()},SH600000,400,sell\n"
                    f"{dates[3].date()},SH600001,300,BUY\n2021-01-09,SH600001,300,buy\n")  # a Saturday: skipped
    result = run_memory(session_kernel, fields, OrderReplay(file=str(path)), start=dates[0], end=dates[-2])
    assert result.positions.xs(dates[3], level="datetime")["amount"].to_dict() == {"SH600000": 600.0,
                                                                                   "SH600001": 300.0}
    assert "skipped" in caplog.text
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,instrument,amount,direction\n2021-01-05,SH600000,10,hold\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: unknown order direction"):
        OrderReplay(file=str(bad))


def test_parallel_executor_and_cash_settlement(session_kernel) -> None:
    from qbacktest.executor import SimulatorExecutor

    fields = make_market(10, STOCKS)
    fields["close"].iloc[:] = 10.0
    fields["change"].iloc[1:] = 0.0
    dates = fields["close"].index
    orders = pd.DataFrame({"datetime": [dates[1], dates[2], dates[2]], "instrument": ["SH600000", "SH600000",
                           "SH600001"], "amount": [9000, 9000, 9000], "direction": ["buy", "sell", "buy"]})
    kwargs = dict(account=100_000.0, start=dates[0], end=dates[-2])
    serial = run_memory(session_kernel, fields, OrderReplay(file=orders), **kwargs)
    assert serial.positions.xs(dates[2], level="datetime").index.tolist() == ["SH600001"]
    for executor in (SimulatorExecutor(trade_type="parallel"), SimulatorExecutor(settle_type="cash")):
        result = run_memory(session_kernel, fields, OrderReplay(file=orders), executor=executor, **kwargs)
        day = result.fills[result.fills["datetime"] == dates[2]].set_index("instrument")
        assert day.loc["SH600001", "deal_amount"] == 900.0  # only the cash left before the sale (9955), in lots
        assert day.loc["SH600000", "deal_amount"] == 9000.0


def test_t_plus_one_in_market_rules_mode(session_kernel) -> None:
    fields = make_market(10, STOCKS)
    dates = fields["close"].index
    orders = pd.DataFrame({"datetime": [dates[1], dates[1], dates[2]], "instrument": ["SH600000"] * 3,
                           "amount": [1000, 1000, 1000], "direction": ["buy", "sell", "sell"]})
    rules = session_kernel.create("market_rules", "cn")
    result = run_memory(session_kernel, fields, OrderReplay(file=orders), market_rules=rules, start=dates[0],
                        end=dates[-2], benchmark=None)  # fmt: skip
    deals = result.fills["deal_amount"].tolist()
    assert deals == [1000.0, 0.0, 1000.0]  # bought shares are sellable from the next bar
    assert (result.report["bench"] == 0).all()


def test_price_advantage_against_a_base_price(session_kernel) -> None:
    from qbacktest.executor import SimulatorExecutor

    fields = make_market(10, STOCKS)
    fields["vwap"] = fields["close"] * 0.99  # buying at the close pays 1% over the VWAP
    dates = fields["close"].index
    result = run_memory(session_kernel, fields, TopkDropout(signal=fixed_scores(dates, RANKING), topk=2, n_drop=1),
                        executor=SimulatorExecutor(pa_base="$vwap"))  # fmt: skip
    first = result.indicators.loc[dates[1]]
    assert first["pa"] == pytest.approx(-(1 / 0.99 - 1), rel=1e-5) and first["pos"] == 0.0
    assert result.risk()["trades"]["price_advantage"] == pytest.approx(-(1 / 0.99 - 1), rel=1e-5)
    assert result.fills["pa"].notna().all()
