"""Long–short portfolios end to end: the optimisers' budgets and lending lists, and backtests that hold the shorts,
pay the borrow fee and keep the gross/net limits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from qportfolio.optimizer.enhanced import EnhancedIndexingOptimizer
from qportfolio.optimizer.portfolio import PortfolioOptimizer
from qportfolio.optimizer.solve import SolveError

from qcore.errors import ConfigError

LS = {"gross": 1.6, "net": 1.0, "max_short": 0.05}


def _factor_case(n: int = 60, k: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    wb = np.zeros(n)
    wb[: n // 2] = rng.uniform(0.5, 1.5, n // 2)
    return {"r": rng.normal(size=n), "F": rng.normal(size=(n, k)), "cov_b": np.diag(rng.uniform(0.5, 2, k)),
            "var_u": rng.uniform(1, 6, n), "wb": wb / wb.sum()}  # fmt: skip


def _cov(n: int = 12, seed: int = 1) -> pd.DataFrame:
    # one strong market factor with betas 0.5..2 and small specific risk: the minimum variance shorts high betas
    rng = np.random.default_rng(seed)
    beta = np.linspace(0.5, 2.0, n)
    cov = np.outer(beta, beta) * 4e-4 + np.diag(rng.uniform(0.5, 1.0, n) * 4e-5)
    names = [f"S{i}" for i in range(n)]
    return pd.DataFrame(cov, index=names, columns=names)


# -- optimisers ----------------------------------------------------------------------------------------------


def test_enhanced_indexing_long_short_keeps_the_budget_and_the_lending_list() -> None:
    case = _factor_case()
    opt = EnhancedIndexingOptimizer(long_short=LS, b_dev=0.05, delta=None)
    w = opt(case["r"], case["F"], case["cov_b"], case["var_u"], None, case["wb"])
    assert (w < 0).sum() >= 3 and w.min() >= -0.05 - 1e-7
    assert w.sum() == pytest.approx(1.0, abs=1e-6) and np.abs(w).sum() <= 1.6 + 1e-6
    shortable = np.zeros(len(w), dtype=bool)
    shortable[::3] = True  # only every third name may be lent
    w2 = opt(case["r"], case["F"], case["cov_b"], case["var_u"], None, case["wb"], shortable=shortable)
    assert (w2 < 0).any() and (w2[~shortable] >= -1e-9).all()
    with pytest.raises(Exception, match="shortable has shape"):
        opt(case["r"], case["F"], case["cov_b"], case["var_u"], None, case["wb"], shortable=shortable[:5])


def test_a_tight_b_dev_keeps_benchmark_names_long() -> None:
    # why a long-short run can show few shorts: b_dev bounds w >= wb - b_dev, so only names lighter than b_dev in
    # the benchmark (or outside it) can go short
    case = _factor_case()
    w = EnhancedIndexingOptimizer(long_short=LS, b_dev=0.01, delta=None)(
        case["r"], case["F"], case["cov_b"], case["var_u"], None, case["wb"])  # fmt: skip
    inside = case["wb"] > 0.01
    assert (w[inside] >= case["wb"][inside] - 0.01 - 1e-7).all() and (w[inside] > 0).all()


def test_long_short_infeasible_budget_names_the_bounds() -> None:
    case = _factor_case()
    opt = EnhancedIndexingOptimizer(long_short={"gross": 1.2, "net": 1.0, "max_short": 0.05}, b_dev=0.001,
                                    delta=None, max_weight=0.01)  # fmt: skip
    with pytest.raises(SolveError, match="upper bounds sum to"):
        opt(case["r"], case["F"], case["cov_b"], case["var_u"], None, case["wb"])


@pytest.mark.parametrize("method", ["gmv", "mvo"])
def test_portfolio_optimizer_long_short(method: str) -> None:
    cov = _cov()
    r = pd.Series(np.linspace(-1, 1, len(cov)), index=cov.index)
    opt = PortfolioOptimizer(method=method, lamb=1.0, long_short={"gross": 1.5, "net": 1.0, "max_short": 0.1})
    w = opt(cov, r if method == "mvo" else None)
    assert isinstance(w, pd.Series) and (w < -1e-6).any()
    assert w.sum() == pytest.approx(1.0, abs=1e-6) and w.abs().sum() <= 1.5 + 1e-6 and w.min() >= -0.1 - 1e-7
    shortable = np.arange(len(cov)) % 2 == 0
    w2 = opt(cov, r if method == "mvo" else None, shortable=shortable)
    assert (w2[~shortable] >= -1e-9).all() and (w2[shortable] < -1e-6).any()
    long_only = PortfolioOptimizer(method=method, lamb=1.0)(cov, r if method == "mvo" else None)
    assert (long_only >= 0).all() and long_only.sum() == pytest.approx(1.0)


def test_portfolio_optimizer_long_short_methods_and_values() -> None:
    with pytest.raises(ConfigError, match="long_short works with gmv and mvo, not rp"):
        PortfolioOptimizer(method="rp", long_short=LS)
    with pytest.raises(ConfigError, match="cannot exceed gross"):
        PortfolioOptimizer(method="gmv", long_short={"gross": 1.0, "net": 1.5})
    with pytest.raises(ConfigError, match="unknown key 'leverage'"):
        PortfolioOptimizer(method="gmv", long_short={"leverage": 2})


# -- backtests on the small store ----------------------------------------------------------------------------


def _backtest(store_setup: dict[str, Any], strategy: Any, pkernel: Any, short: Any) -> Any:
    from qbacktest.backtest import run_backtest

    cal = store_setup["calendar"]
    return run_backtest(store_setup["provider"], strategy, start=cal[301], end=cal[340], account=1e8,
                        benchmark="SH000300", kernel=pkernel, short=short,
                        exchange_kwargs={"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
                                         "close_cost": 0.0015, "min_cost": 5})  # fmt: skip


def _members(store_setup: dict[str, Any]) -> list[str]:
    return sorted(store_setup["provider"].universe("csi300"))


@pytest.fixture(scope="module")
def long_short_run(store_setup: dict[str, Any], pkernel: Any) -> dict[str, Any]:
    eligible = _members(store_setup)[::2]  # half the members may be lent
    strategy = pkernel.create("strategy", "EnhancedIndexing", signal=store_setup["scores"],
                              riskmodel_root=store_setup["root"], benchmark={"market": "csi300", "cap": None},
                              optimizer_kwargs={"delta": None, "b_dev": 0.06, "long_short": LS})  # fmt: skip
    short = {"enabled": True, "borrow_rate": 0.1, "margin": 0.5, "eligible": eligible, "max_gross": 1.6}
    result = _backtest(store_setup, strategy, pkernel, short)
    return {"strategy": strategy, "result": result, "eligible": eligible}


def test_enhanced_indexing_long_short_backtest_holds_shorts(long_short_run: dict[str, Any]) -> None:
    result, strategy = long_short_run["result"], long_short_run["strategy"]
    diag = strategy.diagnostics
    assert (diag["status"] == "optimal").all() and (diag["shorts"] > 0).all()
    assert (diag["gross"] <= 1.6 + 1e-6).all() and np.allclose(diag["net"], 1.0, atol=1e-9)
    positions = result.positions
    shorts = positions[positions["amount"] < 0]
    assert len(shorts) > 0
    # only names on the lending list are ever short
    assert set(shorts.index.get_level_values("instrument")) <= set(long_short_run["eligible"])
    # the book's gross and net exposure (of the account value) stay within the limits × risk_degree, with slack
    # for lot rounding and the day's price moves
    by_day = positions["weight"].groupby(level=0)
    assert (by_day.apply(lambda w: w.abs().sum()) <= 1.6 * 0.95 + 0.03).all()
    net = by_day.sum().iloc[1:]
    # net at most the target; below it on a day a buy is blocked at the price limit
    assert (net <= 0.95 + 0.03).all() and abs(net.median() - 0.95) < 0.02


def test_the_borrow_fee_is_paid_every_day_a_short_is_held(long_short_run: dict[str, Any]) -> None:
    result = long_short_run["result"]
    borrow = result.account.total_borrow
    positions = result.positions
    short_value = (-(positions["amount"] * positions["price"]).clip(upper=0)).groupby(level=0).sum()
    # the fee is charged on each bar end's short value at 10% / 252 a bar
    assert borrow == pytest.approx(float(short_value.sum()) * 0.1 / 252, rel=1e-6)
    held = short_value[short_value > 0].index
    assert borrow > 0 and len(held) >= len(result.report) - 2 and (result.report.loc[held, "cost"] > 0).all()


def test_long_short_needs_the_backtest_short_option(store_setup: dict[str, Any], pkernel: Any) -> None:
    strategy = pkernel.create("strategy", "EnhancedIndexing", signal=store_setup["scores"],
                              riskmodel_root=store_setup["root"], benchmark={"market": "csi300", "cap": None},
                              optimizer_kwargs={"delta": None, "b_dev": 0.06, "long_short": LS})  # fmt: skip
    with pytest.raises(ConfigError, match=r"backtest holds no short positions: set backtest.short"):
        _backtest(store_setup, strategy, pkernel, None)


def test_optimized_weights_long_short_backtest(store_setup: dict[str, Any], pkernel: Any) -> None:
    eligible = _members(store_setup)
    budget = {"gross": 1.5, "net": 1.0, "max_short": 0.15}
    strategy = pkernel.create("strategy", "OptimizedWeights", signal=store_setup["scores"], method="mvo", topk=8,
                              bottomk=8, optimizer_kwargs={"lamb": 2.0, "long_short": budget})  # fmt: skip
    result = _backtest(store_setup, strategy, pkernel, {"enabled": True, "borrow_rate": 0.05, "eligible": eligible,
                                                        "max_gross": 1.5})  # fmt: skip
    diag = strategy.diagnostics
    assert (diag["status"] == "optimal").all() and (diag["shorts"] > 0).any()
    assert (diag["gross"] <= 1.5 + 1e-6).all() and diag["names"].max() <= 16
    assert (result.positions["amount"] < 0).any() and result.account.total_borrow > 0


def test_qcore_backtest_runs_a_long_short_config(store_setup: dict[str, Any], small_store: Any,
                                                 tmp_path: Any) -> None:  # fmt: skip
    import textwrap

    from click.testing import CliRunner

    from qcore.cli import cli

    cal = store_setup["calendar"]
    scores = store_setup["scores"]
    scores = scores[scores.index.get_level_values(0) <= cal[330]]
    scores.to_frame("score").to_parquet(tmp_path / "score.parquet")
    eligible = _members(store_setup)[1::2]
    config = tmp_path / "bt.yaml"
    config.write_text(textwrap.dedent(f"""\
        strategy:
          class: EnhancedIndexingStrategy
          kwargs:
            riskmodel_root: {store_setup["root"]}
            benchmark: {{market: csi300, cap: null}}
            optimizer_kwargs: {{delta: null, b_dev: 0.06, long_short: {{gross: 1.4, net: 1.0, max_short: 0.03}}}}
        backtest:
          start_time: {cal[302].date()}
          account: 100000000
          benchmark: SH000300
          exchange_kwargs: {{limit_threshold: 0.095, deal_price: close, open_cost: 0.0005, close_cost: 0.0015,
                            min_cost: 5}}
          short: {{enabled: true, borrow_rate: 0.08, eligible: [{", ".join(eligible)}], max_gross: 1.4}}
        """))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["backtest", "--provider-uri", str(small_store), "--score",
                                      str(tmp_path / "score.parquet"), "--config", str(config), "--out", str(out),
                                      "--no-html"])  # fmt: skip
    assert result.exit_code == 0, result.output
    positions = pd.read_parquet(out / "positions.parquet")
    shorts = positions[positions["amount"] < 0]
    assert len(shorts) > 0 and set(shorts.index.get_level_values("instrument")) <= set(eligible)
    assert positions["weight"].abs().groupby(level=0).sum().max() <= 1.4 * 0.95 + 0.03
    # without the short option the same config is refused before trading, naming the option
    config.write_text(config.read_text().replace("enabled: true", "enabled: false"))
    refused = CliRunner().invoke(cli, ["backtest", "--provider-uri", str(small_store), "--score",
                                       str(tmp_path / "score.parquet"), "--config", str(config), "--out",
                                       str(tmp_path / "out2"), "--no-html"])  # fmt: skip
    assert refused.exit_code not in (0, 70) and "backtest.short" in refused.output, refused.output
