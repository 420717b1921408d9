"""Risk models beyond Qlib's golden cases: NaN options, units, OAS, argument checks and the fundamental model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qportfolio.risk.base import CovarianceEstimator, FactorRisk
from qportfolio.risk.fundamental import FundamentalRiskModel, ewma_covariance, ewma_weights
from qportfolio.risk.poet import POETCovEstimator
from qportfolio.risk.registry import make_risk_model
from qportfolio.risk.shrink import ShrinkCovEstimator
from qportfolio.risk.structured import StructuredCovEstimator

from qcore.errors import ConfigError, DataError


def _returns(t: int = 200, p: int = 12, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.01, (t, 1)) + rng.normal(0, 0.02, (t, p))


def test_sample_covariance_is_biased_and_centred() -> None:
    x = _returns()
    got = CovarianceEstimator().predict(x, is_price=False)
    np.testing.assert_allclose(got, np.cov(x.T, ddof=0), rtol=1e-12)
    assert CovarianceEstimator(assume_centered=True).predict(x, is_price=False) == pytest.approx(x.T @ x / len(x))


def test_percent_units_scale_by_ten_thousand() -> None:
    x = _returns()
    plain = CovarianceEstimator().predict(x, is_price=False)
    pct = CovarianceEstimator(scale_return=True).predict(x, is_price=False)
    np.testing.assert_allclose(pct, plain * 1e4, rtol=1e-12)


def test_nan_options() -> None:
    x = _returns()
    x[5, 2] = np.nan
    with pytest.raises(DataError, match="nan_option"):
        CovarianceEstimator().predict(x, is_price=False)
    masked = CovarianceEstimator(nan_option="mask").predict(x, is_price=False)
    # pairwise: the pair (2, 3) uses the 199 days both have; (0, 1) all 200
    ok = ~np.isnan(x[:, 2])
    a, b = x[ok, 2] - x[ok, 2].mean(), x[ok, 3] - x[:, 3].mean()
    assert masked[2, 3] == pytest.approx(a @ b / ok.sum())
    assert masked[0, 1] == pytest.approx(np.cov(x[:, :2].T, ddof=0)[0, 1])
    filled = CovarianceEstimator(nan_option="fill").predict(x, is_price=False)
    y = np.nan_to_num(x)
    np.testing.assert_allclose(filled, np.cov(y.T, ddof=0), rtol=1e-12)


def test_bad_inputs_are_data_errors() -> None:
    prices = np.abs(_returns()) + 1
    prices[10, 1] = 0.0
    with pytest.raises(DataError, match="infinite return"):
        CovarianceEstimator().predict(prices)
    with pytest.raises(DataError, match="at least 2 observations"):
        CovarianceEstimator().predict(np.ones((1, 3)), is_price=False)
    with pytest.raises(ConfigError, match="nan_option"):
        CovarianceEstimator(nan_option="drop")


def test_oas_published_formula_and_qlib_variant() -> None:
    x = _returns(t=30, p=25)
    n, p = x.shape
    s = np.cov(x.T, ddof=0)
    tr_s2, tr2_s = np.sum(s * s), np.trace(s) ** 2
    published = ((1 - 2 / p) * tr_s2 + tr2_s) / ((n + 1 - 2 / p) * (tr_s2 - tr2_s / p))
    model = ShrinkCovEstimator(alpha="oas")
    got = model.predict(x, is_price=False)
    assert model.last_alpha == pytest.approx(min(1.0, published))
    mu = np.trace(s) / p
    np.testing.assert_allclose(got, (1 - model.last_alpha) * s + model.last_alpha * mu * np.eye(p), rtol=1e-12)
    qlib = ShrinkCovEstimator(alpha="oas", oas_variant="qlib")
    qlib.predict(x, is_price=False)
    assert qlib.last_alpha == pytest.approx((1 - 2 / p) * (tr_s2 + tr2_s) / ((n + 1 - 2 / p) * (tr_s2 + tr2_s / p)))
    assert qlib.last_alpha != pytest.approx(model.last_alpha)


def test_oas_is_clipped_to_one_when_the_truth_is_the_target() -> None:
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(200, 10)))
    model = ShrinkCovEstimator(alpha="oas", assume_centered=True)
    got = model.predict(q, is_price=False)  # S is a multiple of the identity: the target itself
    assert model.last_alpha == 1.0
    np.testing.assert_allclose(got, np.eye(10) / 200, atol=1e-15)
    x = np.random.default_rng(2).normal(size=(1000, 40))  # i.i.d.: shrink almost all the way
    model.predict(x, is_price=False)
    assert model.last_alpha > 0.99
    qlib = ShrinkCovEstimator(alpha="oas", oas_variant="qlib")
    qlib.predict(x, is_price=False)
    assert qlib.last_alpha < 0.1  # Qlib's variant barely shrinks towards the true covariance


@pytest.mark.parametrize("target", ["const_var", "const_corr", "single_factor"])
def test_ledoit_wolf_intensity_in_unit_interval_and_shrinks(target: str) -> None:
    x = _returns(t=40, p=30)
    model = ShrinkCovEstimator(alpha="lw", target=target)
    got = model.predict(x, is_price=False)
    assert 0.0 < model.last_alpha <= 1.0
    s = np.cov(x.T, ddof=0)
    assert np.linalg.eigvalsh(got)[0] > np.linalg.eigvalsh(s)[0]  # better conditioned than the sample
    if target != "const_var":  # these targets keep the sample variances
        np.testing.assert_allclose(np.diag(got), np.diag(s), rtol=1e-12)


def test_shrink_argument_checks() -> None:
    with pytest.raises(ConfigError, match="const_var target only"):
        ShrinkCovEstimator(alpha="oas", target="const_corr")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        ShrinkCovEstimator(alpha=1.5)
    with pytest.raises(ConfigError, match="square"):
        ShrinkCovEstimator(alpha=0.5, target=np.ones((2, 3)))
    with pytest.raises(ConfigError, match="oas_variant"):
        ShrinkCovEstimator(alpha="oas", oas_variant="sklearn")


def test_poet_and_structured_checks() -> None:
    with pytest.raises(ConfigError, match="thresh_method"):
        POETCovEstimator(thresh_method="medium")
    with pytest.raises(ConfigError, match="nan_option"):
        POETCovEstimator(nan_option="mask")
    with pytest.raises(DataError, match="below the number of observations"):
        POETCovEstimator(num_factors=5).predict(_returns(t=5, p=8), is_price=False)
    with pytest.raises(ConfigError, match="only nan_option='fill'"):
        StructuredCovEstimator(nan_option="mask")
    with pytest.raises(DataError, match="exceeds"):
        StructuredCovEstimator(num_factors=20).predict(_returns(t=50, p=12), is_price=False)
    with pytest.raises(ConfigError, match="no factor decomposition"):
        ShrinkCovEstimator().predict(_returns(), is_price=False, return_decomposed_components=True)


def test_structured_factor_risk_round_trips_to_the_covariance() -> None:
    x = pd.DataFrame(_returns(), columns=[f"S{i}" for i in range(12)])
    model = StructuredCovEstimator(num_factors=3)
    risk = model.factor_risk(x)
    assert list(risk.exposures.columns) == ["f0", "f1", "f2"] and risk.instruments == list(x.columns)
    np.testing.assert_allclose(risk.covariance().to_numpy(), model.predict(x, is_price=False).to_numpy(), rtol=1e-10)


def test_factor_risk_checks_shapes() -> None:
    exp = pd.DataFrame(np.ones((3, 2)), index=list("abc"))
    with pytest.raises(DataError, match="factor_cov"):
        FactorRisk(exp, pd.DataFrame(np.eye(3)), pd.Series(np.ones(3)))
    with pytest.raises(DataError, match="specific_risk"):
        FactorRisk(exp, pd.DataFrame(np.eye(2)), pd.Series(np.ones(2)))


def test_registry_names_and_qlib_units() -> None:
    assert isinstance(make_risk_model("ledoit_wolf"), ShrinkCovEstimator)
    assert make_risk_model("ShrinkCovEstimator").scale_return is True
    assert make_risk_model("shrink").scale_return is False
    with pytest.raises(ConfigError, match="did you mean 'shrink'"):
        make_risk_model("shrnk")
    with pytest.raises(ConfigError, match=r"risk_model\.kwargs\.alpha"):
        make_risk_model({"name": "shrink", "kwargs": {"alpha": 2}})


def test_ewma_and_newey_west() -> None:
    w = ewma_weights(5, 2.0)
    assert w[-1] == 1.0 and w[-3] == pytest.approx(0.5)
    rng = np.random.default_rng(4)
    f = rng.normal(size=(300, 3))
    plain = ewma_covariance(f, 1e9)
    np.testing.assert_allclose(plain, np.cov(f.T, ddof=0), rtol=1e-6)
    ar = np.zeros_like(f)  # positively autocorrelated returns: Newey-West raises the variance
    for t in range(1, len(f)):
        ar[t] = 0.6 * ar[t - 1] + f[t]
    assert np.all(np.diag(ewma_covariance(ar, 1e9, 5)) > np.diag(ewma_covariance(ar, 1e9, 0)))


def test_fundamental_model_with_industries(memory_store, pkernel) -> None:
    from qcore.expr.engine import ExpressionEngine

    engine = ExpressionEngine(memory_store, pkernel.registry("operator"))
    model = FundamentalRiskModel(window=120, min_observations=20, half_life=60)
    days = memory_store.dates[-3:]
    out = model.estimate(engine, "csi300", days)
    assert list(out) == list(days)
    risk = out[days[-1]]
    cols = list(risk.exposures.columns)
    assert cols[:3] == ["industry_1", "industry_2", "industry_3"]
    assert {"size", "beta", "momentum", "volatility", "liquidity"} <= set(cols) and "market" not in cols
    assert len(risk.instruments) == 18  # the csi300 members
    exp = risk.exposures
    np.testing.assert_allclose(exp[cols[:3]].sum(axis=1), 1.0)
    np.testing.assert_allclose(exp["beta"].mean(), 0.0, atol=1e-9)  # z-scored over the members
    assert np.linalg.eigvalsh(risk.factor_cov.to_numpy())[0] > -1e-12
    assert (risk.specific_risk > 0).all()
    cov = risk.covariance().to_numpy()
    # percent units: daily variances around (1.5% .. 2.5%)^2
    assert 1.0 < np.sqrt(np.median(np.diag(cov))) < 4.0


def test_fundamental_model_uses_no_future_data(memory_store, pkernel) -> None:
    from qcore.expr.engine import ExpressionEngine
    from tests.qportfolio.conftest import MemoryStore

    engine = ExpressionEngine(memory_store, pkernel.registry("operator"))
    day = memory_store.dates[-40]
    model = FundamentalRiskModel(window=120, min_observations=20, industry=None)
    before = model.estimate(engine, "csi300", [day])[day]
    changed = {k: v.copy() for k, v in memory_store.data.items()}
    changed["close"].iloc[-39:] *= 3.0  # the future is different
    other = MemoryStore(changed, {"csi300": memory_store._markets["csi300"]})
    after = model.estimate(ExpressionEngine(other, pkernel.registry("operator")), "csi300", [day])[day]
    assert before.exposures.columns[0] == "market"
    pd.testing.assert_frame_equal(before.exposures, after.exposures)
    pd.testing.assert_frame_equal(before.factor_cov, after.factor_cov)


def test_fundamental_model_errors(memory_store, pkernel) -> None:
    from qcore.expr.engine import ExpressionEngine

    engine = ExpressionEngine(memory_store, pkernel.registry("operator"))
    with pytest.raises(ConfigError, match=r"no field \$sector"):
        FundamentalRiskModel(industry="sector").estimate(engine, "csi300", memory_store.dates[-1:])
    with pytest.raises(DataError, match="not trading days"):
        FundamentalRiskModel().estimate(engine, "csi300", [pd.Timestamp("2021-01-09")])
    with pytest.raises(ConfigError, match="styles"):
        FundamentalRiskModel(styles={"size": ""})
