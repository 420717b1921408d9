"""The honesty guards on known inputs: the effective sample size of autocorrelated daily ICs, the expected best
Sharpe ratio of skill-less tries, the deflated Sharpe ratio (a lucky best-of-many is flagged, a real one is not),
the Bonferroni threshold, and IC decay over horizons."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from qmine.scoring import (
    bonferroni_t,
    decay,
    deflated_sharpe,
    effective_size,
    expected_max_sharpe,
    factor_stats,
    moments,  # fmt: skip
)


def _ar1(phi: float, n: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = noise[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + noise[t]
    return out


def test_effective_size_of_independent_and_autocorrelated_series() -> None:
    rng = np.random.default_rng(0)
    iid = rng.standard_normal(4000)
    assert 3400 <= effective_size(iid) <= 4000
    # AR(1) with phi = 0.6: n (1 - phi) / (1 + phi) = n / 4
    n = 20_000
    assert effective_size(_ar1(0.6, n, rng)) == pytest.approx(n / 4, rel=0.15)
    assert effective_size(_ar1(0.9, n, rng)) < n / 8
    assert effective_size(np.ones(50)) == 50 and effective_size(np.array([1.0, 2.0])) == 2
    assert effective_size(np.array([1.0, np.nan, 2.0, 3.0, 1.0, 2.5, np.nan])) <= 5


def test_autocorrelated_ics_lower_the_t_statistic() -> None:
    rng = np.random.default_rng(1)
    days, names = 400, 60
    persistent = _ar1(0.8, days, rng)  # a daily IC that drifts slowly
    label = rng.standard_normal((days, names))
    factor = 0.15 * (1 + persistent[:, None]) * label + rng.standard_normal((days, names))
    stats = factor_stats(factor, label)
    assert stats.days == days and stats.n_eff < days / 2
    assert stats.rank_ic_t_eff == pytest.approx(stats.rank_icir * math.sqrt(stats.n_eff))
    assert stats.rank_ic_t_eff < stats.rank_ic_t / 1.4


def test_expected_max_sharpe_matches_simulated_best_of_n() -> None:
    rng = np.random.default_rng(2)
    simulated = rng.standard_normal((2000, 1000)).max(axis=1).mean()  # best of 1000 skill-less N(0, 1)
    assert expected_max_sharpe(1000, 1.0) == pytest.approx(simulated, abs=0.05)
    assert expected_max_sharpe(1000, 4.0) == pytest.approx(2 * expected_max_sharpe(1000, 1.0))
    assert expected_max_sharpe(1, 1.0) == 0.0 and expected_max_sharpe(10, 0.0) == 0.0
    assert expected_max_sharpe(10, 1.0) < expected_max_sharpe(100, 1.0) < expected_max_sharpe(10_000, 1.0)
    with pytest.raises(ValueError, match="at least 1"):
        expected_max_sharpe(0, 1.0)


def test_deflated_sharpe_known_value_and_monotone_in_trials() -> None:
    # one trial: the probabilistic Sharpe ratio against 0; SR 0.1 over 101 normal observations
    sr0, prob = deflated_sharpe(0.1, 101, 0.0, 3.0, 1, 1.0)
    assert sr0 == 0.0 and prob == pytest.approx(NormalDist().cdf(0.1 * 10 / math.sqrt(1.005)), abs=1e-12)
    assert prob == pytest.approx(0.8407, abs=1e-4)
    probs = [deflated_sharpe(0.3, 250, 0.0, 3.0, n, 0.004)[1] for n in (1, 10, 100, 1000)]
    assert probs == sorted(probs, reverse=True) and probs[0] > 0.99 > probs[-1]
    # negative skew and fat tails make the same Sharpe ratio less convincing
    assert deflated_sharpe(0.1, 101, -1.0, 6.0, 1, 1.0)[1] < prob


def test_lucky_best_of_many_noise_factors_is_flagged_real_one_is_not() -> None:
    rng = np.random.default_rng(3)
    days, tries = 250, 500
    noise = rng.normal(0.0, 0.1, size=(tries, days))  # daily ICs of 500 skill-less factors
    sharpes = noise.mean(axis=1) / noise.std(axis=1, ddof=1)
    best = int(np.argmax(np.abs(sharpes)))
    skew, kurt = moments(noise[best])
    _, lucky = deflated_sharpe(abs(sharpes[best]), days, skew, kurt, tries, float(sharpes.var(ddof=1)))
    assert lucky < 0.95  # flagged
    t_best = abs(sharpes[best]) * math.sqrt(effective_size(noise[best]))
    assert t_best > NormalDist().inv_cdf(0.975)  # naively "significant" ...
    assert t_best < bonferroni_t(tries, 0.05)  # ... but not after the multiple-testing threshold
    real = rng.normal(0.05, 0.1, size=days)  # a factor with a true mean IC of 0.05 (Sharpe 0.5)
    sr = real.mean() / real.std(ddof=1)
    _, prob = deflated_sharpe(sr, days, *moments(real), tries, float(sharpes.var(ddof=1)))
    assert prob > 0.95


def test_bonferroni_threshold() -> None:
    assert bonferroni_t(1, 0.05) == pytest.approx(1.959964, abs=1e-6)
    assert bonferroni_t(10_000, 0.05) == pytest.approx(NormalDist().inv_cdf(1 - 0.05 / 20_000))
    with pytest.raises(ValueError):
        bonferroni_t(0)


def test_decay_peaks_at_the_horizon_the_factor_predicts() -> None:
    rng = np.random.default_rng(4)
    days, names = 300, 50
    factor = rng.standard_normal((days, names))
    label = rng.standard_normal((days, names))
    label[2:] += 2.0 * factor[:-2]  # the factor of day t predicts the label of day t + 2 (horizon 3)
    curve = decay(factor, label, horizons=20)
    assert len(curve) == 20 and int(np.nanargmax(curve)) == 2
    assert curve[2] > 0.8 and abs(curve[0]) < 0.05 and max(abs(v) for v in curve[3:]) < 0.05
    assert decay(factor[:5], label[:5], horizons=8)[-1] is not None and math.isnan(decay(factor[:5], label[:5], 8)[-1])
