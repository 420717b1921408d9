"""The long–short fitness: the daily book of the factor's top and bottom quantiles after costs, computed by hand on a
small panel, its direction, and a search ranked by it end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from qmine.scoring import factor_stats, long_short

from tests.qmine.test_qmine_mine import _mine


def test_book_return_after_costs_by_hand() -> None:
    # 5 names, quantile 0.2 -> one name per leg. Day 0: long C (f=5), short A (f=1); day 1: long E, short A.
    factor = np.array([[1.0, 2.0, 5.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    label = np.array([[0.00, 0.01, 0.03, 0.01, 0.02], [-0.01, 0.00, 0.01, 0.02, 0.04], [0.0, 0.0, 0.0, 0.0, 0.02]])
    mean, sharpe, direction = long_short(factor, label, quantile=0.2, cost=0.001)
    gross = np.array([0.03 - 0.00, 0.04 - (-0.01), 0.02 - 0.0])
    traded = np.array([2.0, 2.0, 0.0])  # build both legs; day 1 replaces the whole long leg (C -> E); day 2 none
    net = gross - 0.001 * traded
    assert direction == 1
    assert mean == pytest.approx(net.mean())
    assert sharpe == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(252))


def test_a_reversed_factor_is_traded_the_other_way_and_a_fixed_direction_is_kept() -> None:
    rng = np.random.default_rng(0)
    label = rng.normal(0, 0.01, size=(60, 40))
    factor = -label + rng.normal(0, 0.002, size=label.shape)  # predicts the label with the wrong sign
    mean, _, direction = long_short(factor, label, 0.2, 0.0)
    assert direction == -1 and mean > 0.005
    forced, _, kept = long_short(factor, label, 0.2, 0.0, direction=1)
    assert kept == 1 and forced == pytest.approx(-mean)
    stats = factor_stats(factor, label, long_short_book=(0.2, 0.0))
    assert stats.ls_direction == -1 and stats.direction == -1 and stats.ls_return == pytest.approx(mean)
    assert math.isnan(factor_stats(factor, label).ls_return)  # not computed unless asked


def test_costs_can_make_a_fast_factor_lose() -> None:
    rng = np.random.default_rng(1)
    label = rng.normal(0, 0.01, size=(80, 50))
    factor = label + rng.normal(0, 0.05, size=label.shape)  # weak edge, membership changes every day
    cheap, _, _ = long_short(factor, label, 0.2, 0.0)
    dear, _, _ = long_short(factor, label, 0.2, 0.01)
    assert cheap > 0 > dear


@pytest.mark.slow
def test_a_search_ranked_by_the_book_after_costs(tmp_path: Path, planted_store: Path) -> None:
    config_edit = {"proposer": "genetic", "population": 30, "generations": 2}
    result, library = _mine(tmp_path, planted_store, **config_edit,
                            fitness="{metric: ls_return, quantile: 0.2, cost: 0.001, max_correlation: 0.7}")
    assert result.exit_code == 0, result.output
    assert library["factors"], result.output
    for factor in library["factors"]:
        assert factor["train"]["ls_return"] is not None and factor["fitness"] <= factor["train"]["ls_return"]
        assert factor["valid"]["ls_return"] > 0  # kept only when the book still earns on valid
        assert factor["direction"] == factor["train"]["ls_direction"]
