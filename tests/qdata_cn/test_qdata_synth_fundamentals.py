"""Synthetic point-in-time fundamentals: layout, publication lags, amendments, determinism, signal, store check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qdata_cn.binstore import QlibBinProvider
from qdata_cn.check import check_store
from qdata_cn.pit import read_pit
from qdata_cn.synth import INDEX_SYMBOL, SynthParams, generate, synthesize
from qdata_cn.synth_fundamentals import ANNUAL, QUARTERLY, generate_fundamentals
from qdata_testutil import tree_bytes

import qcore
from qcore.expr.engine import ExpressionEngine


@pytest.fixture(scope="module")
def market():
    """A 40-stock, 1200-day market (late listings and a delisting included) and its reports."""
    m = generate(SynthParams(instruments=40, days=1200, seed=7, start="2015-01-05"))
    reports, summary = generate_fundamentals(m, 7)
    return m, reports, summary


def _frame(reports, field: str) -> pd.DataFrame:
    rows = [pd.DataFrame({"symbol": s, "date": r["date"], "period": r["period"], "value": r["value"]})
            for (s, f), r in reports.items() if f == field]  # fmt: skip
    out = pd.concat(rows, ignore_index=True)
    out["day"] = pd.to_datetime(out["date"].astype(str), format="%Y%m%d")
    return out


def _period_end(period: pd.Series, quarterly: bool) -> pd.Series:
    if quarterly:
        return pd.PeriodIndex.from_fields(year=period // 100, quarter=period % 100, freq="Q").to_timestamp(how="end")
    return pd.to_datetime((period * 10000 + 1231).astype(str), format="%Y%m%d")


def test_every_stock_reports_every_field_but_the_index_none(market) -> None:
    m, reports, summary = market
    stocks = {s for s in m.symbols if s != INDEX_SYMBOL}
    assert summary["fields"] == [*QUARTERLY, *ANNUAL]
    early = {s for j, s in enumerate(m.symbols) if s != INDEX_SYMBOL and m.first[j] == 0}
    having = {field: {s for s, f in reports if f == field} for field in (*QUARTERLY, *ANNUAL)}
    for field in QUARTERLY:
        assert early <= having[field] == having["eps_q"] <= stocks
    for field in ANNUAL:  # stocks listed late in the calendar may not have reached a year's end yet
        assert early <= having[field] == having["eps_a"] <= having["eps_q"]
    assert not any(s == INDEX_SYMBOL for s, _ in reports)
    assert summary["reports"] > 40 * 12 and 0 < summary["amendments"] < 0.15 * summary["reports"]


def test_publication_lags(market) -> None:
    m, reports, _ = market
    q = _frame(reports, "eps_q")
    first = q.sort_values("day").drop_duplicates(["symbol", "period"])  # the first publication of each report
    lag = (first["day"] - _period_end(first["period"], True).normalize().to_numpy()).dt.days
    fourth = (first["period"] % 100 == 4).to_numpy()
    assert lag[~fourth].between(30, 90).all() and lag[~fourth].std() > 5  # quarters one to three
    assert lag[fourth].between(60, 120).all()  # with the annual report, by the end of April
    a = _frame(reports, "eps_a").sort_values("day").drop_duplicates(["symbol", "period"])
    assert (a["day"].dt.month <= 4).all() and (a["day"].dt.year == a["period"] + 1).all()
    # the fourth quarter and the year are one report: published the same day
    q4 = first[fourth].set_index(["symbol", "period"])["date"]
    a_days = a.set_index(["symbol", "period"])["date"]
    a_days.index = a_days.index.set_levels(a_days.index.levels[1] * 100 + 4, level=1)
    assert (q4.reindex(a_days.index) == a_days).all()
    # nothing published after the calendar, or after a delisted stock's last day; nothing before listing
    assert q["day"].max() <= m.dates[-1]
    for j, s in enumerate(m.symbols):
        if s == INDEX_SYMBOL:
            continue
        mine = q[q["symbol"] == s]
        if mine.empty:  # listed too late to publish anything
            assert m.dates[-1] - m.dates[m.first[j]] < pd.Timedelta(days=92 + 90)
            continue
        assert mine["day"].max() <= m.dates[m.last[j]]
        assert _period_end(mine["period"], True).min() >= m.dates[m.first[j]] - pd.Timedelta(days=92)


def test_amendments_are_later_revisions_of_one_period(market) -> None:
    _, reports, _ = market
    for field in ("eps_q", "revenue_a"):
        frame = _frame(reports, field)
        revised = frame[frame.duplicated(["symbol", "period"], keep=False)]
        assert len(revised) > 0
        for _, group in revised.groupby(["symbol", "period"]):
            assert len(group) == 2
            days, values = group["day"].to_numpy(), group["value"].to_numpy()
            assert 20 <= (days[1] - days[0]) / np.timedelta64(1, "D") <= 200 and values[0] != values[1]
    for records in reports.values():
        assert (np.diff(records["date"].astype(np.int64)) >= 0).all()  # publication order


def test_figures_are_consistent(market) -> None:
    _, reports, _ = market
    first = {f: _frame(reports, f).drop_duplicates(["symbol", "period"]).set_index(["symbol", "period"])["value"]
             for f in (*QUARTERLY, *ANNUAL)}  # fmt: skip
    np.testing.assert_allclose(first["roe_q"], first["eps_q"] / first["bps_q"], rtol=1e-12)
    np.testing.assert_allclose(first["roe_a"], first["eps_a"] / first["bps_a"], rtol=1e-12)
    assert (first["bps_q"] > 0).all() and (first["revenue_q"] > 0).all()
    assert 0 < (first["eps_q"] < 0).mean() < 0.1  # rare loss quarters
    # a year sums its quarters; its book value is the fourth quarter's
    quarters = first["eps_q"].reset_index()
    quarters["year"] = quarters["period"] // 100
    full = quarters.groupby(["symbol", "year"]).filter(lambda g: len(g) == 4).groupby(["symbol", "year"])["value"]
    summed = full.sum()
    annual = first["eps_a"].reindex(summed.index)
    np.testing.assert_allclose(annual.to_numpy(), summed.to_numpy(), rtol=1e-9)
    q4 = first["bps_q"].reset_index()
    q4 = q4[q4["period"] % 100 == 4].assign(year=lambda d: d["period"] // 100).set_index(["symbol", "year"])
    np.testing.assert_allclose(first["bps_a"].to_numpy(), q4["value"].reindex(first["bps_a"].index).to_numpy())


def test_written_store_reads_back_and_passes_check(tmp_path: Path) -> None:
    out = tmp_path / "s"
    summary = synthesize(out, instruments=8, days=300, seed=2)
    m = generate(SynthParams(instruments=8, days=300, seed=2))
    reports, _ = generate_fundamentals(m, 2)
    assert summary["files"] == 9 * 9 and summary["pit_files"] == 2 * len(reports) >= 2 * 8 * 4
    provider = QlibBinProvider(out)
    assert provider.pit_fields() == sorted([*QUARTERLY, *ANNUAL])
    for (symbol, field), records in reports.items():
        stored = read_pit(out / "financial" / symbol.lower(), field)
        assert stored is not None and (stored == records).all()
    assert [f for f in check_store(out) if f.severity != "info"] == []
    assert not list(out.rglob("*.tmp*")) and not (out / ".qcore.journal").exists()


def test_deterministic_prices_unchanged_and_overwrite_replaces(tmp_path: Path) -> None:
    synthesize(tmp_path / "a", instruments=6, days=200, seed=3)
    synthesize(tmp_path / "b", instruments=6, days=200, seed=3)
    synthesize(tmp_path / "c", instruments=6, days=200, seed=3, fundamentals=False)
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert b"fundamentals" in a["synth_info.json"] and b"fundamentals" not in c.pop("synth_info.json")
    assert {k: v for k, v in a.items() if k.startswith(("features/", "calendars/", "instruments/"))} == c
    assert not any(k.startswith("financial/") for k in c)
    synthesize(tmp_path / "a", instruments=3, days=200, seed=4, overwrite=True)
    left = {p.parent.name for p in (tmp_path / "a" / "financial").glob("*/*.data")}
    assert len(left) == 3  # the replaced market's reports are gone
    synthesize(tmp_path / "a", instruments=3, days=200, seed=4, overwrite=True, fundamentals=False)
    assert not list((tmp_path / "a" / "financial").glob("*/*"))


def _rank_ic(store: Path, expression: str) -> float:
    kernel = qcore.load_kernel(["qdata_cn", "qops"], autoload=False)
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    engine = ExpressionEngine(provider, kernel.registry("operator"), num_threads=1)
    symbols = [s for s in provider.universe("all") if s != INDEX_SYMBOL]
    frame = engine.evaluate({"x": expression, "fwd": "Ref($close, -20)/$close - 1"}, symbols).dropna()
    ranks = frame.groupby(level="datetime").rank()
    counts = frame.groupby(level="datetime")["x"].transform("size")
    ranks = ranks[counts >= 20]
    return float(ranks.groupby(level="datetime").apply(lambda d: d["x"].corr(d["fwd"])).mean())


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_value_factors_carry_a_modest_signal(tmp_path: Path, seed: int) -> None:
    """Rank IC against forward 20-day returns, 120 stocks x 750 days. Measured: earnings yield on the raw price
    0.041/0.059/0.088 on seeds 0/2/3 (0.044/0.043 on seeds 1/4), book-to-price 0.029/0.060/0.062; P($$eps_q)/$close
    0.031 on seed 0 (0.001 on seed 1: Qlib's adjusted close starts at 1 at listing, so that ratio is no yield)."""
    store = tmp_path / "s"
    synthesize(store, instruments=120, days=750, seed=seed)
    assert _rank_ic(store, "P($$eps_q)/($close/$factor)") > 0.02
    assert _rank_ic(store, "P($$bps_q)/($close/$factor)") > 0.015
    assert _rank_ic(store, "P($$eps_q)/($close/$factor)") < 0.2  # modest, not a giveaway
    if seed == 0:
        assert _rank_ic(store, "P($$eps_q)/$close") > 0.01


def test_cli_writes_fundamentals_by_default_and_not_with_the_opt_out(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qcore.cli import cli

    runner = CliRunner()
    for flag, expected in (([], True), (["--no-fundamentals"], False)):
        out = tmp_path / f"m{len(flag)}"
        result = runner.invoke(cli, ["data", "synth", "--out", str(out), "--instruments", "12", "--days", "400", *flag])
        assert result.exit_code == 0, result.output
        assert (out / "financial").is_dir() is expected
        assert bool(QlibBinProvider(out).pit_fields()) is expected
