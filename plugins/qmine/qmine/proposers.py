"""Proposers: what suggests the next candidate expressions (the ``factor_proposer`` component kind).

A proposer is told the grammar and seed once (:meth:`FactorProposer.reset`), then asked for ``n`` expression texts
at a time given every candidate scored so far (:meth:`FactorProposer.propose`). It returns text: the search parses
every proposal with the kernel's safe parser and checks it against the grammar, so nothing proposed is executed as
code, and a third-party proposer (a human list, a language model) plugs in through the same two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs
import numpy as np

from qcore.errors import ConfigError
from qcore.expr import Node, parse
from qmine.grammar import Grammar

#: The mutation kinds of the genetic search.
MUTATIONS = ("subtree", "point", "window", "hoist")


@attrs.frozen
class Scored:
    """One evaluated candidate as proposers see it: its canonical expression and train fitness (NaN: unusable)."""

    expression: str
    fitness: float
    generation: int


@runtime_checkable
class FactorProposer(Protocol):
    """Suggests candidate expressions from the history of scored ones."""

    def reset(self, grammar: Grammar, seed: int) -> None:
        """Start a search over ``grammar`` with ``seed`` (the same seed and history give the same proposals)."""

    def propose(self, history: Sequence[Scored], n: int) -> list[str]:
        """Up to ``n`` expression texts (already-scored ones are dropped by the search)."""


class _Base:
    grammar: Grammar
    rng: np.random.Generator

    def reset(self, grammar: Grammar, seed: int) -> None:
        """Keep the grammar and seed a private generator."""
        self.grammar = grammar
        self.rng = np.random.default_rng(seed)

    def _fresh(self, n: int, seen: set[str]) -> list[str]:
        out: list[str] = []
        for _ in range(n * 20):
            if len(out) >= n:
                break
            text = str(self.grammar.random_tree(self.rng))
            if text not in seen:
                seen.add(text)
                out.append(text)
        return out


class RandomProposer(_Base):
    """The baseline: fresh random trees every generation, history ignored."""

    def propose(self, history: Sequence[Scored], n: int) -> list[str]:
        """``n`` new random trees."""
        return self._fresh(n, {h.expression for h in history})


class GeneticProposer(_Base):
    """Genetic programming: tournament selection over the last generation's fitness, crossover and the four
    mutations, the best ``elite`` kept as parents (the search never re-scores them), a few fresh trees each
    generation against premature convergence.

    :param crossover: probability that a child comes from crossover (else from one mutation).
    :param tournament: candidates drawn per tournament.
    :param fresh: share of each generation that is new random trees.
    :param mutations: relative weights of ``subtree``, ``point``, ``window`` and ``hoist``.
    """

    def __init__(self, crossover: float = 0.5, tournament: int = 3, fresh: float = 0.1,
                 mutations: Sequence[float] = (0.4, 0.25, 0.25, 0.1)) -> None:  # fmt: skip
        if not 0.0 <= crossover <= 1.0 or not 0.0 <= fresh < 1.0:
            raise ConfigError("crossover must be in [0, 1] and fresh in [0, 1)")
        if tournament < 1:
            raise ConfigError("tournament must be at least 1")
        weights = np.asarray(mutations, dtype=float)
        if weights.shape != (len(MUTATIONS),) or (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError(f"mutations needs {len(MUTATIONS)} non-negative weights ({', '.join(MUTATIONS)})")
        self.crossover_rate = float(crossover)
        self.tournament = int(tournament)
        self.fresh = float(fresh)
        self.weights = weights / weights.sum()

    def propose(self, history: Sequence[Scored], n: int) -> list[str]:
        """Children of the best-scored candidates, or random trees before anything was scored."""
        seen = {h.expression for h in history}
        pool = [h for h in history if np.isfinite(h.fitness)]
        if not pool:
            return self._fresh(n, seen)
        pool.sort(key=lambda h: -h.fitness)
        parents: list[tuple[Node, float]] = [(parse(h.expression), h.fitness) for h in pool[: max(4 * n, 8)]]
        out = self._fresh(round(n * self.fresh), seen)
        for _ in range(n * 20):
            if len(out) >= n:
                break
            a = self._select(parents)
            if self.rng.random() < self.crossover_rate:
                child = self.grammar.crossover(a, self._select(parents), self.rng)
            else:
                kind = MUTATIONS[int(self.rng.choice(len(MUTATIONS), p=self.weights))]
                child = self.grammar.mutate(a, self.rng, kind)
            text = str(child)
            if text not in seen:
                seen.add(text)
                out.append(text)
        return out

    def _select(self, parents: Sequence[tuple[Node, float]]) -> Node:
        picks = self.rng.integers(len(parents), size=self.tournament)
        return parents[int(min(picks))][0]  # parents are sorted best first
