"""The weight strategies: Qlib's enhanced-indexing semantics bar by bar, and whole backtests on a small store."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from qportfolio.risk.base import FactorRisk
from qportfolio.risk.riskdata import write_day
from qportfolio.strategies.enhanced import EnhancedIndexing
from qportfolio.strategies.optimized import OptimizedWeights

from qcore.errors import ConfigError, DataError
from qcore.trading import BarCalendar, Step, TradingInfra, WeightStrategy

NAMES = ["A", "B", "C", "D", "E", "F"]
CAL = pd.bdate_range("2024-01-01", periods=8)


class FakeExchange:
    def __init__(self, volume: np.ndarray) -> None:
        self.instruments = NAMES
        self._volume = volume

    def col(self, name: str) -> int | None:
        return NAMES.index(name) if name in NAMES else None

    def field(self, expression: str) -> np.ndarray:
        assert expression == "$volume"
        return self._volume


class FakePosition:
    def __init__(self, weights: dict[str, float]) -> None:
        self._w = weights

    def weights(self, only_stock: bool = False) -> dict[str, float]:
        return dict(self._w)


class FakeAccount:
    def __init__(self, weights: dict[str, float]) -> None:
        self.position = FakePosition(weights)


def day_risk(names: list[str], seed: int) -> FactorRisk:
    rng = np.random.default_rng(seed)
    return FactorRisk(pd.DataFrame(rng.normal(size=(len(names), 2)), index=names, columns=["f0", "f1"]),
                      pd.DataFrame(np.diag([0.5, 0.3]), index=["f0", "f1"], columns=["f0", "f1"]),
                      pd.Series(rng.uniform(1, 2, len(names)), index=names))  # fmt: skip


class Spy:
    """Stands in for the optimiser: records its inputs, returns the benchmark."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.last = None

    def __call__(self, r, F, cov_b, var_u, w0, wb, mfh, mfs, factor_names=None):
        self.calls.append({"r": r, "F": F, "w0": w0, "wb": wb, "mfh": mfh, "mfs": mfs, "var_u": var_u})
        return wb


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    root = tmp_path / "risk"
    write_day(root, CAL[1], day_risk(["A", "B", "C", "D"], 1), blacklist=["C"])
    write_day(root, CAL[2], day_risk(["A", "B", "C", "D", "E"], 2))  # CAL[3] has no risk data
    weights = tmp_path / "bench.csv"
    weights.write_text("date,instrument,weight\n2024-01-01,A,0.5\n2024-01-01,B,0.3\n2024-01-01,E,0.2\n")
    idx = pd.MultiIndex.from_product([CAL[:6], ["A", "B", "D", "F"]], names=["datetime", "instrument"])
    scores = pd.Series(np.arange(len(idx), dtype=float), index=idx)
    volume = np.ones((6, len(NAMES)))
    volume[1, NAMES.index("B")] = 0.0  # B does not trade on CAL[2]
    return {"root": str(root), "bench": str(weights), "scores": scores, "volume": volume}


def make(setup: dict[str, Any], held: dict[str, float] | None = None, **kwargs: Any) -> tuple[EnhancedIndexing, Spy]:
    strategy = EnhancedIndexing(signal=setup["scores"], riskmodel_root=setup["root"], benchmark=setup["bench"],
                                **kwargs)  # fmt: skip
    spy = Spy()
    strategy.optimizer = spy
    infra = TradingInfra(FakeExchange(setup["volume"]), FakeAccount(held or {}), BarCalendar(CAL, 1, 6))
    strategy.reset(infra)
    return strategy, spy


def step(i: int) -> Step:
    return Step(i, CAL[1 + i], CAL[2 + i])


def test_is_a_weight_strategy(setup: dict[str, Any]) -> None:
    strategy, _ = make(setup)
    assert isinstance(strategy, WeightStrategy) and strategy.risk_degree == 0.95
    assert strategy.order_generator == "without_interact"
    assert strategy.instruments() == ["A", "B", "D", "E", "F"]


def test_trade_date_uses_the_previous_days_risk_and_scores(setup: dict[str, Any]) -> None:
    strategy, spy = make(setup, held={"A": 0.19, "C": 0.095})
    target = strategy.target_weights(step(0))  # trades CAL[1]: reads CAL[0], which has no risk data
    assert target is None and not spy.calls
    target = strategy.target_weights(step(1))  # trades CAL[2]: risk, scores and benchmark of CAL[1]
    call = spy.calls[-1]
    assert len(call["r"]) == 4  # the universe of CAL[1]'s risk data: A, B, C, D
    day_scores = setup["scores"].loc[CAL[1]]
    # C has no score: it gets the day's lowest (Qlib)
    np.testing.assert_array_equal(call["r"], [day_scores["A"], day_scores["B"], day_scores.min(), day_scores["D"]])
    np.testing.assert_allclose(call["w0"], [0.2, 0.0, 0.1, 0.0])  # holdings over the risk degree
    # E is not in the risk universe: its weight is dropped, the rest is not rescaled (Qlib)
    np.testing.assert_allclose(call["wb"], [0.5, 0.3, 0.0, 0.0])
    assert call["mfs"].tolist() == [False, False, True, False]  # C is blacklisted
    assert call["mfh"].tolist() == [False, False, False, False]
    assert target == pytest.approx({"A": 0.5, "B": 0.3})


def test_no_volume_means_hold(setup: dict[str, Any]) -> None:
    strategy, spy = make(setup)
    strategy.target_weights(step(2))  # trades CAL[3], information date CAL[2]: B had no volume then
    call = spy.calls[-1]
    assert call["mfh"].tolist() == [False, True, False, False, False]
    assert not call["mfs"].any()


def test_missing_risk_day_skips_or_fails(setup: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    strategy, spy = make(setup)
    with caplog.at_level(logging.WARNING, logger="qportfolio.strategy"):
        assert strategy.target_weights(step(3)) is None  # information date CAL[3] has no folder
    assert "no risk data for 2024-01-04" in caplog.text and not spy.calls
    strict, _ = make(setup, missing_risk="error")
    with pytest.raises(DataError, match="no risk data for 2024-01-04"):
        strict.target_weights(step(3))


def test_reset_refuses_risk_data_that_covers_no_bar(setup: dict[str, Any], tmp_path: Path) -> None:
    strategy = EnhancedIndexing(signal=setup["scores"], riskmodel_root=str(tmp_path / "nothing"),
                                benchmark=setup["bench"])  # fmt: skip
    infra = TradingInfra(FakeExchange(setup["volume"]), FakeAccount({}), BarCalendar(CAL, 1, 6))
    with pytest.raises(DataError, match="does not exist"):
        strategy.reset(infra)
    late = TradingInfra(FakeExchange(setup["volume"]), FakeAccount({}), BarCalendar(CAL, 5, 2))
    strategy = EnhancedIndexing(signal=setup["scores"], riskmodel_root=setup["root"], benchmark=setup["bench"])
    with pytest.raises(DataError, match="no risk data for any information date"):
        strategy.reset(late)


def test_argument_errors(setup: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"optimizer_kwargs\.b_dev"):
        EnhancedIndexing(signal=setup["scores"], riskmodel_root="x", benchmark=setup["bench"],
                         optimizer_kwargs={"b_dev": -1})  # fmt: skip
    with pytest.raises(ConfigError, match="unknown argument 'topk'"):
        EnhancedIndexing(signal=setup["scores"], riskmodel_root="x", benchmark=setup["bench"], topk=3)
    with pytest.raises(ConfigError, match="placeholder"):
        EnhancedIndexing(signal="<PRED>", riskmodel_root="x", benchmark=setup["bench"])
    # Qlib's infrastructure arguments are accepted and ignored
    strategy = EnhancedIndexing(signal=setup["scores"], riskmodel_root="x", benchmark=setup["bench"],
                                model="<MODEL>", dataset="<DATASET>", order_generator_cls_or_obj="OrderGenWInteract")
    assert strategy.order_generator == "with_interact"


# -- whole backtests on a small synthetic store ---------------------------------------------------------------


def _run(store_setup: dict[str, Any], strategy: Any, pkernel: Any) -> Any:
    from qbacktest.backtest import run_backtest

    cal = store_setup["calendar"]
    return run_backtest(store_setup["provider"], strategy, start=cal[301], end=cal[355], account=1e8,
                        benchmark="SH000300", kernel=pkernel,
                        exchange_kwargs={"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
                                         "close_cost": 0.0015, "min_cost": 5})  # fmt: skip


def test_enhanced_indexing_backtest(store_setup: dict[str, Any], pkernel: Any) -> None:
    strategy = pkernel.create("strategy", "EnhancedIndexingStrategy", signal=store_setup["scores"],
                              riskmodel_root=store_setup["root"], benchmark={"market": "csi300", "cap": None},
                              optimizer_kwargs={"delta": 0.3, "b_dev": 0.02})  # fmt: skip
    result = _run(store_setup, strategy, pkernel)
    diag = strategy.diagnostics
    assert len(diag) == len(result.report) and (diag["status"] == "optimal").all()
    assert diag["fallback"].isna().all() and (diag["ex_ante_te"] > 0).all()
    held = result.positions.groupby(level=0).size()
    members = len(store_setup["provider"].universe("csi300"))
    assert held.iloc[-1] >= members // 2  # an index-like book, not a handful of names
    assert result.report["turnover"].iloc[5:].max() < 0.3  # the turnover limit (one side of it) holds
    excess = result.report["return"] - result.report["bench"]
    assert excess.std() < 0.01  # it tracks the benchmark


def test_optimized_weights_backtest(store_setup: dict[str, Any], pkernel: Any) -> None:
    strategy = pkernel.create("strategy", "OptimizedWeights", signal=store_setup["scores"], method="mvo", topk=10,
                              optimizer_kwargs={"lamb": 2.0, "max_weight": 0.2})  # fmt: skip
    result = _run(store_setup, strategy, pkernel)
    diag = strategy.diagnostics
    assert (diag["status"] == "optimal").all() and diag["names"].max() <= 10
    last = result.positions.xs(result.positions.index.get_level_values(0)[-1], level=0)
    assert 5 <= len(last) <= 10
    factor_root = OptimizedWeights(signal=store_setup["scores"], method="gmv", riskmodel_root=store_setup["root"])
    result = _run(store_setup, factor_root, pkernel)
    assert (factor_root.diagnostics["status"] == "optimal").all() and len(result.positions) > 0


# -- the "done when" edge cases at the strategy level ------------------------------------------------


def test_nan_scores_get_the_days_lowest_and_an_all_nan_day_is_skipped(setup: dict[str, Any],
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    scores = setup["scores"].copy()
    scores.loc[(CAL[1], "B")] = np.nan  # a NaN score, as a model leaves for a name without features
    strategy, spy = make({**setup, "scores": scores})
    strategy.target_weights(step(1))
    day = scores.loc[CAL[1]]
    np.testing.assert_array_equal(spy.calls[-1]["r"], [day["A"], day.min(), day.min(), day["D"]])
    scores.loc[CAL[2]] = np.nan
    strategy, spy = make({**setup, "scores": scores})
    with caplog.at_level(logging.WARNING, logger="qportfolio.strategy"):
        assert strategy.target_weights(step(2)) is None
    assert "no score for 2024-01-03" in caplog.text and not spy.calls


def test_optimized_weights_drops_nan_scores_and_skips_days_without_risk(setup: dict[str, Any],
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    scores = setup["scores"].copy()
    scores.loc[(CAL[1], "D")] = np.nan
    strategy = OptimizedWeights(signal=scores, method="gmv", riskmodel_root=setup["root"])
    strategy.reset(TradingInfra(FakeExchange(setup["volume"]), FakeAccount({}), BarCalendar(CAL, 1, 6)))
    target = strategy.target_weights(step(1))  # information date CAL[1]: A, B, D scored; D is NaN
    assert set(target) == {"A", "B"} and sum(target.values()) == pytest.approx(1.0)
    with caplog.at_level(logging.WARNING, logger="qportfolio.strategy"):
        assert strategy.target_weights(step(3)) is None  # CAL[3] has no risk data
    assert "no risk data for 2024-01-04" in caplog.text


def test_portfolio_optimizer_nan_returns_and_infeasible_caps() -> None:
    from qportfolio.optimizer.portfolio import PortfolioOptimizer
    from qportfolio.optimizer.solve import SolveError

    cov = np.diag([0.04, 0.09, 0.01])
    with pytest.raises(DataError, match="r has 1 NaN or infinite values"):
        PortfolioOptimizer("mvo", lamb=1.0)(cov, np.array([0.01, np.nan, 0.02]))
    with pytest.raises(SolveError, match=r"gmv over 3 names found no optimal portfolio.*status 'infeasible'"):
        PortfolioOptimizer("gmv", max_weight=0.2)(cov)  # 3 × 0.2 < 1
