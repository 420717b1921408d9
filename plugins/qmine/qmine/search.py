"""The mining loop: propose, evaluate a whole generation as one engine batch on the train span, score, select,
re-score survivors on the valid span, report the test span only after selection, write the library.

Honesty guards: fitness and selection read the train and valid spans only; the number of candidates evaluated sets
a Bonferroni threshold on the train Rank-IC t statistic, computed on the daily ICs' effective sample size (their
autocorrelation shrinks it), and factors below it are flagged ``lucky``; the best kept factor's daily Rank-IC
Sharpe ratio is deflated for the number of candidates tried (Bailey and López de Prado), and flagged when the
probability that it beats the best of as many skill-less tries is under ``1 - alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from qcore.errors import ConfigError, UnknownComponentError
from qmine.config import BOOK_METRICS, MineConfig
from qmine.grammar import Grammar, size
from qmine.library import read_library, write_library
from qmine.proposers import FactorProposer, Scored
from qmine.scoring import Stats, bonferroni_t, decay, deflated_sharpe, factor_corr, factor_stats, rank_rows, turnover

#: Candidates re-evaluated per kept slot when selection checks correlations.
SHORTLIST = 5


@attrs.frozen
class Candidate:
    """A scored candidate: canonical expression, size, train statistics and fitness (NaN: no usable day)."""

    expression: str
    size: int
    train: Stats
    fitness: float
    generation: int


@attrs.frozen
class MineResult:
    """What a search produced: the library written, the factors kept, and the honesty report."""

    library: Any
    kept: tuple[dict[str, Any], ...]
    evaluated: int
    rejected: int
    threshold_t: float
    best_fitness: tuple[float, ...]


def _spans_panels(engine: Any, texts: Mapping[str, str], universe: str, span: tuple[Any, Any]) -> dict[str, Any]:
    """Evaluate ``texts`` as one batch on ``span``: name → float64 panel, NaN off the universe."""
    plan = engine.plan(dict(texts))
    panel, mask = engine.evaluate_panel(plan, universe, span[0], span[1])
    out = {}
    for i, name in enumerate(texts):
        values = panel.data[f"e{i}"].astype(np.float64)
        values[~mask] = np.nan
        out[name] = values
    return out


def _fitness(stats: Stats, metric: str, penalty: float, n: int) -> float:
    value = stats.metric(metric)
    if not math.isfinite(value):
        return math.nan
    # a correlation's sign is the factor's direction; the long–short book already trades in its direction, and a
    # book that loses after costs must score low, not be mirrored
    return (value if metric in BOOK_METRICS else abs(value)) - penalty * n


def _book(config: MineConfig) -> tuple[float, float] | None:
    """The long–short book's (quantile, cost) when the fitness metric scores it, else None (not computed)."""
    return (config.quantile, config.cost) if config.metric in BOOK_METRICS else None


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _t_eff(stats: Stats) -> float:
    """The autocorrelation-aware t statistic, or the plain one when the effective size is unknown."""
    return stats.rank_ic_t_eff if math.isfinite(stats.rank_ic_t_eff) else stats.rank_ic_t


def _ic_threshold(stats: Stats, threshold: float) -> float | None:
    """The mean Rank IC the factor needed to pass ``threshold`` given its IC volatility and effective size."""
    t = _t_eff(stats)
    value = threshold * abs(stats.rank_ic) / abs(t) if math.isfinite(t) and t != 0 else math.nan
    return round(value, 6) if math.isfinite(value) else None


def _deflated(config: MineConfig, evaluated: Mapping[str, Candidate],
              kept: Sequence[tuple[str, Candidate, Stats]]) -> dict[str, Any] | None:  # fmt: skip
    """The deflated Sharpe test of the best kept factor's daily train Rank IC (None when nothing was kept)."""
    if not kept:
        return None
    best = kept[0][1].train
    sharpes = np.array([c.train.rank_icir for c in evaluated.values()], dtype=float)
    sharpes = sharpes[np.isfinite(sharpes)]
    variance = float(sharpes.var(ddof=1)) if len(sharpes) > 1 else 0.0
    sign = 1.0 if best.rank_icir >= 0 else -1.0
    n = best.n_eff if math.isfinite(best.n_eff) else float(best.days)
    sr0, prob = deflated_sharpe(abs(best.rank_icir), n, sign * best.skew, best.kurtosis, max(len(evaluated), 1),
                                variance)  # fmt: skip
    return {"sharpe": round(abs(best.rank_icir), 6), "expected_max": round(sr0, 6), "trials": len(evaluated),
            "variance": round(variance, 8), "n_eff": round(n, 2),
            "probability": None if not math.isfinite(prob) else round(prob, 6),
            "flagged": not (prob >= 1.0 - config.alpha)}  # fmt: skip


def _proposer(config: MineConfig, kernel: Any) -> FactorProposer:
    """The configured proposer; bad arguments are a :class:`ConfigError` at ``search.proposer``."""
    where = "search.proposer.kwargs" if config.proposer_kwargs else "search.proposer"
    try:
        return kernel.create("factor_proposer", config.proposer, **dict(config.proposer_kwargs))
    except UnknownComponentError as exc:
        raise config.error(str(exc), "search.proposer") from None
    except ConfigError as exc:
        raise config.error(exc.message, where) from None
    except TypeError as exc:
        raise config.error(f"invalid arguments for factor_proposer {config.proposer!r}: {exc}", where) from None


def mine(config: MineConfig, kernel: Any, echo: Callable[[str], None] = print) -> MineResult:
    """Run the search of ``config`` with the kernel's providers, operators and proposers; write the library."""
    from qcore.expr.engine import ExpressionEngine

    if config.provider is None or config.universe is None or not {"train", "valid"} <= set(config.spans):
        raise config.error("needs a provider, a universe and train and valid spans", "data")
    if config.if_exists == "reuse" and config.library.exists():
        factors = tuple(read_library(config.library)["factors"])
        echo(f"library: {config.library} exists ({len(factors)} factor(s)); reused, nothing mined")
        return MineResult(config.library, factors, 0, 0, math.nan, ())
    proposer = _proposer(config, kernel)  # its arguments checked before any data is read
    provider = kernel.create("data_provider", config.provider, **dict(config.provider_kwargs))
    store_fields = sorted(f.lower() for f in provider.fields("day"))
    fields = config.fields or tuple(store_fields)
    absent = [f for f in fields if f.lower() not in store_fields]
    if absent:
        raise config.error(f"the store has no field {absent[0]!r} (it has {', '.join(store_fields)})", "search.fields")
    try:
        grammar = Grammar.build(kernel.registry("operator"), [f.lower() for f in fields], config.windows,
                                names=config.operators, max_depth=config.max_depth, max_size=config.max_size)
    except ConfigError as exc:
        raise config.error(exc.message, exc.path or "search") from None
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    try:
        engine.plan({"label": config.label})
    except (ValueError, TypeError) as exc:
        raise config.error(f"invalid label: {exc}", "data.label") from None
    proposer.reset(grammar, config.seed)
    existing = read_library(config.library) if config.if_exists == "append" and config.library.exists() else None
    library_factors = list(existing["factors"]) if existing else []

    train = config.spans["train"]
    label = _spans_panels(engine, {"label": config.label}, config.universe, train)["label"]
    history: list[Scored] = []
    evaluated: dict[str, Candidate] = {}
    rejected = 0
    best: list[float] = []
    for gen in range(config.generations):
        batch: dict[str, str] = {}
        for text in proposer.propose(history, config.population)[: config.population]:
            try:
                canonical = str(grammar.parse(text))
            except (ValueError, TypeError):  # a malformed or unsafe proposal: counted, never stops the search
                rejected += 1
                continue
            if canonical not in evaluated and canonical not in batch.values():
                batch[f"c{len(batch)}"] = canonical
        if batch:
            panels = _spans_panels(engine, batch, config.universe, train)
            for name, text in batch.items():
                stats = factor_stats(panels[name], label, long_short_book=_book(config))
                n = size(grammar.parse(text))
                cand = Candidate(text, n, stats, _fitness(stats, config.metric, config.complexity_penalty, n), gen)
                evaluated[text] = cand
                history.append(Scored(text, cand.fitness, gen))
            del panels
        scores = np.array([c.fitness for c in evaluated.values() if c.generation == gen], dtype=float)
        scores = scores[np.isfinite(scores)]
        top = max((c.fitness for c in evaluated.values() if math.isfinite(c.fitness)), default=math.nan)
        best.append(top)
        median = float(np.median(scores)) if len(scores) else math.nan
        echo(f"generation {gen + 1}/{config.generations}: {len(batch)} evaluated ({len(evaluated)} in all), "
             f"best {top:.4f}, median {median:.4f}")  # fmt: skip
    return _select(config, engine, evaluated, library_factors, existing, rejected, best, label, echo)


def _select(config: MineConfig, engine: Any, evaluated: Mapping[str, Candidate],
            library_factors: Sequence[dict[str, Any]], existing: Mapping[str, Any] | None, rejected: int,
            best: Sequence[float], train_label: np.ndarray, echo: Callable[[str], None]) -> MineResult:  # fmt: skip
    """Greedy de-correlated selection on train, re-scoring on valid, the test report, the library file."""
    tries = len(evaluated)
    threshold = bonferroni_t(max(tries, 1), config.alpha)
    ranked = sorted((c for c in evaluated.values() if math.isfinite(c.fitness)), key=lambda c: -c.fitness)
    shortlist = ranked[: SHORTLIST * config.keep]
    train, valid = config.spans["train"], config.spans["valid"]
    lib_exprs = {f"l{i}": f["expression"] for i, f in enumerate(library_factors)}
    texts = {**{f"s{i}": c.expression for i, c in enumerate(shortlist)}, **lib_exprs}
    panels = _spans_panels(engine, texts, config.universe, train) if texts else {}
    step = max(1, len(train_label) // 250)  # correlation on at most ~250 days
    ranks = {k: rank_rows(v[::step]) for k, v in panels.items()}
    accepted: list[tuple[str, Candidate]] = []
    for i, cand in enumerate(shortlist):
        key = f"s{i}"
        others = [*lib_exprs, *(k for k, _ in accepted)]
        if all(abs(factor_corr(ranks[key], ranks[o])) <= config.max_correlation for o in others):
            accepted.append((key, cand))
        if len(accepted) >= config.keep:
            break
    del panels
    valid_label = _spans_panels(engine, {"label": config.label}, config.universe, valid)["label"]
    vpanels = _spans_panels(engine, {k: c.expression for k, c in accepted}, config.universe, valid) if accepted \
        else {}  # fmt: skip
    kept: list[tuple[str, Candidate, Stats]] = []
    for key, cand in accepted:
        vstats = factor_stats(vpanels[key], valid_label, long_short_book=_book(config),
                              direction=cand.train.direction)
        tv, vv = cand.train.metric(config.metric), vstats.metric(config.metric)
        if config.metric in BOOK_METRICS:  # the book traded in the train span's direction must still earn
            holds = math.isfinite(vv) and vv > 0 and vv >= config.valid_keep_ratio * tv
        else:
            holds = math.isfinite(vv) and np.sign(vv) == np.sign(tv) and abs(vv) >= config.valid_keep_ratio * abs(tv)
        if holds:
            kept.append((key, cand, vstats))
    echo(f"selection: {len(accepted)} de-correlated on train, {len(kept)} held up on valid "
         f"({tries} candidates evaluated, {rejected} proposals refused)")  # fmt: skip
    test_stats: dict[str, Stats] = {}
    if "test" in config.spans and kept:  # reported only: selection is final before the test span is read
        test = config.spans["test"]
        test_label = _spans_panels(engine, {"label": config.label}, config.universe, test)["label"]
        tpanels = _spans_panels(engine, {k: c.expression for k, c, _ in kept}, config.universe, test)
        test_stats = {k: factor_stats(tpanels[k], test_label, long_short_book=_book(config),
                                      direction=c.train.direction) for k, c, _ in kept}
    vranks = {k: rank_rows(vpanels[k]) for k, _, _ in kept}
    honesty = _deflated(config, evaluated, kept)
    start = len(library_factors)
    names = {k: f"MINED{start + i}" for i, (k, _, _) in enumerate(kept)}
    factors: list[dict[str, Any]] = []
    for key, cand, vstats in kept:
        corr = {names[o]: round(factor_corr(vranks[key], vranks[o]), 4) for o, _, _ in kept if o != key}
        factors.append({
            "name": names[key], "expression": cand.expression, "size": cand.size,
            "direction": cand.train.direction if config.metric in BOOK_METRICS else
            (1 if cand.train.metric(config.metric) > 0 else -1), "fitness": round(cand.fitness, 6),
            "generation": cand.generation, "train": cand.train.as_dict(), "valid": vstats.as_dict(),
            "test": test_stats[key].as_dict() if key in test_stats else None,
            "turnover": round(turnover(vpanels[key]), 6), "correlation": corr,
            "decay": [None if not math.isfinite(v) else round(v, 6) for v in decay(vpanels[key], valid_label)],
            "ic_threshold": _ic_threshold(cand.train, threshold),
            "lucky": not (abs(_t_eff(cand.train)) >= threshold),
        })  # fmt: skip
    if factors and honesty is not None:
        factors[0]["deflated_sharpe"] = honesty["probability"]
    provenance = {
        "config": config.source, "seed": config.seed, "proposer": config.proposer,
        "data": {"provider": config.provider, **{k: str(v) for k, v in config.provider_kwargs.items()},
                 "version": str(engine.provider.version)},
        "label": config.label, "universe": config.universe, "metric": config.metric,
        "spans": {k: [str(a.date()), str(b.date())] for k, (a, b) in config.spans.items()},
        "candidates_evaluated": tries, "proposals_refused": rejected,
        "bonferroni": {"alpha": config.alpha, "t_threshold": round(threshold, 4),
                       "t_statistic": "mean daily Rank IC over its standard error on the effective sample size"},
        "deflated_sharpe": honesty,
    }  # fmt: skip
    runs = list(existing.get("runs", [])) if existing else []
    doc = {"runs": [*runs, provenance], "factors": [*library_factors, *factors]}
    path = write_library(config.library, doc)
    lucky = sum(f["lucky"] for f in factors)
    echo(f"{tries} candidates evaluated: Bonferroni t threshold {threshold:.2f} (alpha {config.alpha}, on the "
         f"daily ICs' effective sample size); "
         f"{lucky} of {len(factors)} kept factor(s) below it flagged lucky")  # fmt: skip
    if honesty is not None:
        echo(f"best factor: daily Rank-IC Sharpe {honesty['sharpe']:.4f} against {honesty['expected_max']:.4f} "
             f"expected from the best of {tries} skill-less tries; deflated Sharpe probability "
             f"{_shown(honesty['probability'])}{' (flagged)' if honesty['flagged'] else ''}")  # fmt: skip
    echo(f"library: {path} ({len(doc['factors'])} factor(s))")
    return MineResult(path, tuple(factors), tries, rejected, threshold, tuple(best))
