"""The optimisers' behaviour: DPP re-solves, failures and fallbacks, the constraints Qlib lacks, solver choice."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from qportfolio.optimizer.enhanced import EnhancedIndexingOptimizer
from qportfolio.optimizer.portfolio import PortfolioOptimizer
from qportfolio.optimizer.solve import SolveError, choose_solver, installed_solvers

from qcore.errors import ConfigError, DataError


def problem(n: int = 40, k: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    wb = rng.uniform(0.5, 1.5, n)
    wb /= wb.sum()
    f = rng.normal(size=(n, k))
    f[:, 0] = (np.arange(n) % 2 == 0).astype(float)  # an "industry" dummy
    return {"r": rng.normal(size=n), "F": f, "cov_b": np.diag(rng.uniform(0.2, 1.0, k)),
            "var_u": rng.uniform(0.5, 2.0, n), "wb": wb}  # fmt: skip


def solve(opt: EnhancedIndexingOptimizer, p: dict[str, np.ndarray], w0=None, **kw) -> np.ndarray:
    return opt(p["r"], p["F"], p["cov_b"], p["var_u"], w0, p["wb"], **kw)


def test_problem_is_built_once_and_re_solved() -> None:
    p = problem()
    opt = EnhancedIndexingOptimizer(delta=0.3)
    w = solve(opt, p)
    assert len(opt._problems) == 1  # no turnover on the first day (nothing held)
    for seed in range(1, 4):
        p["r"] = np.random.default_rng(seed).normal(size=len(p["r"]))
        w_next = solve(opt, p, w0=w)
        assert np.abs(w_next - w).sum() <= 0.3 + 1e-6
        w = w_next
    assert len(opt._problems) == 2  # ... then one problem with turnover, reused
    problem_obj = next(iter(v for k, v in opt._problems.items() if k[3]))
    assert problem_obj.problem.is_dcp(dpp=True)


def test_infeasible_bounds_raise_with_status_and_reason() -> None:
    p = problem()
    opt = EnhancedIndexingOptimizer(b_dev=0.001)
    sell = np.zeros(len(p["wb"]), dtype=bool)
    sell[:20] = True  # half the benchmark must go, the rest cannot grow enough
    with pytest.raises(SolveError, match="upper bounds sum to") as err:
        solve(opt, p, mfs=sell)
    assert err.value.status.startswith("infeasible") and err.value.solver == opt.solver


def test_fallbacks_are_explicit_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    p = problem()
    sell = np.zeros(len(p["wb"]), dtype=bool)
    sell[:20] = True
    w0 = p["wb"].copy()
    with caplog.at_level(logging.WARNING, logger="qportfolio.optimizer"):
        held = solve(EnhancedIndexingOptimizer(b_dev=0.001, fallback="hold"), p, w0=w0, mfs=sell)
        bench = solve(EnhancedIndexingOptimizer(b_dev=0.001, fallback=["benchmark"]), p, w0=w0, mfs=sell)
    np.testing.assert_array_equal(held, w0)
    np.testing.assert_array_equal(bench, p["wb"])
    assert "fallback 'hold'" in caplog.text and "fallback 'benchmark'" in caplog.text


def test_drop_turnover_is_qlibs_second_trial(caplog: pytest.LogCaptureFixture) -> None:
    p = problem()
    w0 = np.zeros(len(p["wb"]))
    w0[:5] = 0.2  # far from the benchmark: within b_dev of it is more than delta away
    with pytest.raises(SolveError, match="infeasible"):
        solve(EnhancedIndexingOptimizer(delta=0.1), p, w0=w0)
    opt = EnhancedIndexingOptimizer(delta=0.1, fallback="qlib")
    with caplog.at_level(logging.WARNING, logger="qportfolio.optimizer"):
        w = solve(opt, p, w0=w0)
    assert "without the turnover limit" in caplog.text
    assert opt.last.fallback == "drop_turnover" and np.abs(w - p["wb"]).max() <= 0.01 + 1e-6


def test_nan_scores_and_bad_risk_are_errors() -> None:
    p = problem()
    p["r"][3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        solve(EnhancedIndexingOptimizer(), p)
    p = problem()
    p["cov_b"] = -np.eye(4)
    with pytest.raises(DataError, match="not positive semidefinite"):
        solve(EnhancedIndexingOptimizer(), p)
    with pytest.raises(DataError, match="shape"):
        EnhancedIndexingOptimizer()(np.ones(3), np.ones((4, 2)), np.eye(2), np.ones(4), None, np.ones(4) / 4)


def test_constant_scores_track_the_benchmark(caplog: pytest.LogCaptureFixture) -> None:
    p = problem()
    p["r"] = np.ones_like(p["r"])
    with caplog.at_level(logging.WARNING, logger="qportfolio.optimizer"):
        w = solve(EnhancedIndexingOptimizer(), p)
    assert "no spread" in caplog.text
    np.testing.assert_allclose(w, p["wb"], atol=1e-6)


def test_singular_factor_covariance_is_accepted() -> None:
    p = problem()
    p["cov_b"] = np.ones((4, 4))  # rank one
    w = solve(EnhancedIndexingOptimizer(), p)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()


def test_industry_neutral_cash_max_weight_and_te_cap() -> None:
    p = problem()
    names = ["industry_a", "size", "beta", "mom"]
    loose = EnhancedIndexingOptimizer(b_dev=0.05, lamb=0.05)
    w = solve(loose, p, factor_names=names)
    assert abs((w - p["wb"]) @ p["F"][:, 0]) > 1e-3  # not neutral by itself
    neutral = EnhancedIndexingOptimizer(b_dev=0.05, lamb=0.05, industry_neutral=True)
    w = solve(neutral, p, factor_names=names)
    assert abs((w - p["wb"]) @ p["F"][:, 0]) < 1e-7
    capped = EnhancedIndexingOptimizer(b_dev=0.05, lamb=0.05, max_weight=0.03)
    assert solve(capped, p).max() <= 0.03 + 1e-7
    cash = EnhancedIndexingOptimizer(b_dev=None, lamb=0.05, cash=0.2)
    p_bear = dict(p, r=-np.abs(p["r"]) - 1)  # everything looks bad: hold cash
    w = solve(cash, p_bear)
    assert 0.8 - 1e-6 <= w.sum() < 1.0 - 1e-3

    def te(w: np.ndarray) -> float:
        d = w - p["wb"]
        v = d @ p["F"]
        return float(np.sqrt(v @ p["cov_b"] @ v + p["var_u"] @ (d * d)))

    free = solve(loose, p)
    te_opt = EnhancedIndexingOptimizer(b_dev=0.05, lamb=0.05, te_cap=te(free) / 2)
    assert te(solve(te_opt, p)) <= te(free) / 2 * (1 + 1e-6)


def test_transaction_cost_penalty_reduces_turnover() -> None:
    p = problem()
    w0 = p["wb"].copy()
    base = solve(EnhancedIndexingOptimizer(b_dev=0.05, delta=None, lamb=0.1), p, w0=w0)
    costly = solve(EnhancedIndexingOptimizer(b_dev=0.05, delta=None, lamb=0.1, tc_penalty=0.5), p, w0=w0)
    assert np.abs(costly - w0).sum() < np.abs(base - w0).sum() - 1e-3


def test_long_short_budget() -> None:
    p = problem()
    opt = EnhancedIndexingOptimizer(b_dev=None, lamb=0.05, long_short={"gross": 1.6, "net": 1.0, "max_short": 0.02})
    w = solve(opt, p)
    assert w.sum() == pytest.approx(1.0, abs=1e-6) and np.abs(w).sum() <= 1.6 + 1e-6
    assert w.min() < -1e-3 and w.min() >= -0.02 - 1e-7
    with pytest.raises(ConfigError, match="cannot exceed gross"):
        EnhancedIndexingOptimizer(long_short={"gross": 1.0, "net": 1.5})


def test_solver_choice() -> None:
    assert choose_solver("auto", cones=False) in installed_solvers()
    with pytest.raises(ConfigError, match="not installed"):
        choose_solver("GUROBI_NOT_HERE", cones=False)
    if "OSQP" in installed_solvers():
        with pytest.raises(ConfigError, match="OSQP solves quadratic programs only"):
            EnhancedIndexingOptimizer(solver="OSQP", te_cap=0.5)
        p = problem()
        a = solve(EnhancedIndexingOptimizer(solver="OSQP"), p)
        b = solve(EnhancedIndexingOptimizer(solver="CLARABEL"), p)
        np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(ConfigError, match="unknown fallback"):
        EnhancedIndexingOptimizer(fallback="pray")


def test_portfolio_methods() -> None:
    rng = np.random.default_rng(3)
    cov = np.cov(rng.normal(size=(200, 8)).T)
    r = rng.normal(0, 0.01, 8)
    gmv = PortfolioOptimizer("gmv")(cov)
    assert gmv @ cov @ gmv <= np.full(8, 1 / 8) @ cov @ np.full(8, 1 / 8)
    sharpe = PortfolioOptimizer("max_sharpe", scale_return=False)
    w = sharpe(cov, r)
    best = (w @ r) / np.sqrt(w @ cov @ w)
    for _ in range(200):  # no random long-only portfolio has a better Sharpe ratio
        x = rng.dirichlet(np.ones(8))
        assert (x @ r) / np.sqrt(x @ cov @ x) <= best + 1e-9
    capped = PortfolioOptimizer("max_sharpe", scale_return=False, max_weight=0.3)(cov, r)
    assert capped.max() <= 0.3 + 1e-6
    with pytest.raises(SolveError, match="above risk_free"):
        PortfolioOptimizer("max_sharpe", scale_return=False)(cov, -np.abs(r))
    with pytest.raises(ConfigError, match="needs expected returns"):
        PortfolioOptimizer("mvo")(cov)
    with pytest.raises(ConfigError, match="alpha and max_weight do not apply"):
        PortfolioOptimizer("rp", alpha=0.1)


def test_singular_covariance_warns_and_non_psd_fails(caplog: pytest.LogCaptureFixture) -> None:
    x = np.random.default_rng(1).normal(size=(5, 8))
    cov = np.cov(x.T)  # rank 4 of 8
    with caplog.at_level(logging.WARNING, logger="qportfolio.optimizer"):
        w = PortfolioOptimizer("gmv")(cov)
    assert "singular" in caplog.text and w.sum() == pytest.approx(1.0)
    assert PortfolioOptimizer("gmv", alpha=0.01)(cov).sum() == pytest.approx(1.0)
    bad = np.eye(3)
    bad[0, 1] = bad[1, 0] = 2.0
    with pytest.raises(DataError, match="not positive semidefinite"):
        PortfolioOptimizer("gmv")(bad)
    zero = np.diag([1.0, 0.0, 2.0])
    with pytest.raises(DataError, match="positive variances"):
        PortfolioOptimizer("inv")(zero)
