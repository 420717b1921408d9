"""The search's typed grammar, proposers and scoring: every generated tree parses back, is well-typed, inside its
limits and never constant-only; variation keeps those properties; scoring matches pandas on known panels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from qmine.grammar import Grammar, depth, size
from qmine.proposers import GeneticProposer, RandomProposer, Scored
from qmine.scoring import bonferroni_t, factor_corr, factor_stats, rank_rows, row_corr, turnover

from qcore.errors import ConfigError
from qcore.expr import Call, Const, Field, parse, walk
from qcore.kernel import Kernel


@pytest.fixture(scope="module")
def grammar() -> Grammar:
    kernel = Kernel.load(use_env=False)
    return Grammar.build(kernel.registry("operator"), ["close", "volume"], [5, 10, 20], max_depth=4, max_size=9)


def _well_formed(grammar: Grammar, node) -> None:
    assert grammar.check(node) is None
    assert parse(str(node)) == node
    assert depth(node) <= grammar.max_depth and size(node) <= grammar.max_size
    for sub in walk(node):
        if isinstance(sub, Call):
            sig = grammar.signatures[sub.op]
            assert all(isinstance(a, (Call, Field)) for a in sub.args[: sig.arity])  # no constant-only subtree
            if sig.windowed:
                assert sub.args[-1].value in grammar.windows


def test_default_grammar_takes_fitting_operators_and_leaves_logic_out(grammar: Grammar) -> None:
    assert {"Mean", "Ref", "Corr", "Div", "CSRank"} <= set(grammar.signatures)
    assert not {"ChangeInstrument", "Mask", "Quantile", "CSQuantile", "Gt", "And", "Power"} & set(grammar.signatures)
    assert grammar.signatures["Corr"].arity == 2 and grammar.signatures["Corr"].windowed


def test_named_operator_that_cannot_be_generated_is_refused() -> None:
    kernel = Kernel.load(use_env=False)
    with pytest.raises(ConfigError, match="Quantile"):
        Grammar.build(kernel.registry("operator"), ["close"], [5], names=["Quantile"])
    with pytest.raises(ConfigError, match="unknown operator 'Nope'"):
        Grammar.build(kernel.registry("operator"), ["close"], [5], names=["Nope"])


def test_generation_and_variation_stay_typed_and_inside_limits(grammar: Grammar) -> None:
    rng = np.random.default_rng(0)
    trees = [grammar.random_tree(rng) for _ in range(200)]
    for tree in trees:
        _well_formed(grammar, tree)
    changed = 0
    for i, tree in enumerate(trees):
        for kind in ("subtree", "point", "window", "hoist"):
            child = grammar.mutate(tree, rng, kind)
            _well_formed(grammar, child)
            changed += child != tree
        _well_formed(grammar, grammar.crossover(tree, trees[-i - 1], rng))
    assert changed > 300  # most mutations do change the tree


def test_check_refuses_constants_unknown_names_and_look_ahead(grammar: Grammar) -> None:
    assert "constant" in grammar.check(parse("Mean($close, 5) + 1"))
    assert "unknown field" in grammar.check(parse("Mean($vwap, 5)"))
    assert "window" in grammar.check(parse("Ref($close, -1)"))
    with pytest.raises(ConfigError, match="not in the search's grammar"):
        grammar.parse("Power($close, 2)")
    with pytest.raises(ValueError):
        grammar.parse("__import__('os').system('true')")


def test_proposers_are_seeded_and_genetic_builds_on_history(grammar: Grammar) -> None:
    def run(seed: int) -> list[str]:
        p = GeneticProposer()
        p.reset(grammar, seed)
        first = p.propose([], 20)
        history = [Scored(t, float(i), 0) for i, t in enumerate(first)]
        return first + p.propose(history, 20)

    assert run(3) == run(3) and run(3) != run(4)
    out = run(3)
    assert len(out) == 40 and len(set(out)) == 40  # already-scored expressions are not proposed again
    r = RandomProposer()
    r.reset(grammar, 1)
    assert all(grammar.check(parse(t)) is None for t in r.propose([], 30))
    with pytest.raises(ConfigError):
        GeneticProposer(mutations=(1.0, 1.0))


def test_scoring_matches_pandas() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=(60, 30))
    x = 0.3 * y + rng.normal(size=(60, 30))
    x[0, :] = np.nan
    x[5, 3] = np.nan
    stats = factor_stats(x, y)
    ics = [pd.Series(x[t]).corr(pd.Series(y[t])) for t in range(1, 60)]
    rics = [pd.Series(x[t]).corr(pd.Series(y[t]), method="spearman") for t in range(1, 60)]
    assert stats.days == 59
    assert stats.ic == pytest.approx(np.mean(ics), rel=1e-9)
    assert stats.rank_ic == pytest.approx(np.mean(rics), rel=1e-9)
    assert stats.rank_icir == pytest.approx(np.mean(rics) / np.std(rics, ddof=1), rel=1e-9)
    assert math.isnan(row_corr(np.ones((1, 30)), y[:1])[0])  # no variance: no IC that day
    assert factor_corr(rank_rows(x), rank_rows(x)) == pytest.approx(1.0)
    assert turnover(np.tile(np.arange(10.0), (20, 1))) == pytest.approx(0.0)
    assert bonferroni_t(1) == pytest.approx(1.959964, abs=1e-5)
    assert bonferroni_t(10_000) > bonferroni_t(100) > bonferroni_t(1)


def test_kind_and_components_are_registered() -> None:
    kernel = Kernel.load(use_env=False)
    assert set(kernel.registry("factor_proposer").names()) >= {"genetic", "random_search"}
    assert isinstance(kernel.create("factor_proposer", "random_search"), RandomProposer)
    assert "mined" in kernel.registry("feature_set").names()
    assert Const(5) == parse("5")
