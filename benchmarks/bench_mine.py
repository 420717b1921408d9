"""Factor search throughput: candidates evaluated per second by ``qcore mine``'s engine batches against evaluating
the same candidates one by one with Qlib's ``D.features`` on the same store.

What is timed
- qcore (this interpreter, one process): ``--generations`` generations of ``--population`` candidates proposed by the
  seeded genetic search over operators Qlib also has (no cross-sectional ones); each generation is one batch of the
  expression engine over the whole store (every instrument, every day; shared subexpressions computed once), timed
  as evaluation alone and as evaluation + scoring (daily IC and Rank IC against the label, as the search does).
- Qlib 0.9.7 (its own environment, ``.bench/qlib-baseline/bin/python``, a fresh process): after
  ``qlib.init(provider_uri=STORE, region="cn", expression_cache=None, dataset_cache=None, kernels=2)``,
  ``D.features(D.instruments("all"), [expression], start, end)`` for each candidate in turn (the first
  ``--qlib-limit`` of them when given), values only: no scoring.
- ``--check`` compares the values of the first few candidates (qcore's engine against Qlib's frames).

Usage: ``python benchmarks/bench_mine.py [--instruments 300 --days 2500] [--population 60 --generations 3]
[--qlib-limit N] [--skip-qlib] [--check] [--json out.json]``. The store is cached under ``.bench/stores/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import baseline_hint, default_qlib_env, default_qlib_python, ensure_store, store_path

#: Operators the search may use here: every one has the same name and semantics in Qlib.
OPERATORS = ("Mean", "Std", "Ref", "Delta", "Div", "Sub", "Add", "Mul", "Abs", "Max", "Min", "Sum", "EMA", "Slope",
             "Corr", "Greater", "Less")  # fmt: skip
FIELDS = ("open", "high", "low", "close", "volume")
WINDOWS = (5, 10, 20, 60)
LABEL = "Ref($close, -2)/Ref($close, -1) - 1"

QLIB_SCRIPT = r"""
import json, sys, time
store, start, end, path, check_out, n_check = sys.argv[1:7]
import qlib
from qlib.data import D
qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=2)
candidates = json.loads(open(path).read())
times = []
frames = []
for i, expr in enumerate(candidates):
    began = time.perf_counter()
    frame = D.features(D.instruments("all"), [expr], start_time=start, end_time=end)
    times.append(time.perf_counter() - began)
    if i < int(n_check):
        frames.append(frame.iloc[:, 0].rename(f"c{i}"))
if frames and check_out != "-":
    import pandas as pd
    pd.concat(frames, axis=1).to_parquet(check_out)
print("QLIB_RESULT", json.dumps({"seconds": sum(times), "times": times, "candidates": len(candidates)}))
"""


def propose_generations(kernel: object, population: int, generations: int, seed: int) -> list[list[str]]:
    """The candidates of each generation, from the seeded genetic search fed with stand-in fitness (their size):
    the expressions are what the search produces; the fitness only steers which ones."""
    from qmine.grammar import Grammar, size
    from qmine.proposers import GeneticProposer, Scored

    grammar = Grammar.build(kernel.registry("operator"), FIELDS, WINDOWS, names=list(OPERATORS), max_depth=4,
                            max_size=10)  # fmt: skip
    proposer = GeneticProposer()
    proposer.reset(grammar, seed)
    history: list[Scored] = []
    out: list[list[str]] = []
    for gen in range(generations):
        batch = [str(grammar.parse(t)) for t in proposer.propose(history, population)][:population]
        out.append(batch)
        history += [Scored(t, float(size(grammar.parse(t))), gen) for t in batch]
    return out


def run_qcore(store: Path, generations: list[list[str]]) -> dict[str, object]:
    """Evaluate each generation as one engine batch, then score it; the timings and the first values."""
    from qmine.scoring import factor_stats

    from qcore import open_provider
    from qcore.expr.engine import ExpressionEngine
    from qcore.kernel import Kernel

    kernel = Kernel.load(use_env=False)
    engine = ExpressionEngine(open_provider("qlib_bin", provider_uri=str(store), kernel=kernel),
                              kernel.registry("operator"))  # fmt: skip
    plan = engine.plan({"label": LABEL})
    panel, mask = engine.evaluate_panel(plan, "all")
    label = panel.data["e0"].astype(np.float64)
    label[~mask] = np.nan
    eval_s, score_s = [], []
    for batch in generations:
        began = time.perf_counter()
        plan = engine.plan({f"c{i}": t for i, t in enumerate(batch)})
        panel, mask = engine.evaluate_panel(plan, "all")
        values = []
        for i in range(len(batch)):
            v = panel.data[f"e{i}"].astype(np.float64)
            v[~mask] = np.nan
            values.append(v)
        eval_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        for v in values:
            factor_stats(v, label)
        score_s.append(time.perf_counter() - began)
    first = generations[0]
    frame = engine.evaluate({f"c{i}": t for i, t in enumerate(first[:5])}, "all")
    return {"eval_s": eval_s, "score_s": score_s, "frame": frame}


def run_qlib(python: str, store: Path, candidates: list[str], check: int, out: Path) -> dict[str, object]:
    """One fresh Qlib process evaluating ``candidates`` one by one with ``D.features``."""
    calendar = (store / "calendars" / "day.txt").read_text().split()
    path = out / "candidates.json"
    path.write_text(json.dumps(candidates))
    check_out = str(out / "qlib_check.parquet") if check else "-"
    cmd = [python, "-c", QLIB_SCRIPT, str(store), calendar[0], calendar[-1], str(path), check_out, str(check)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"Qlib run failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("QLIB_RESULT"))
    return json.loads(line.split(" ", 1)[1])


def compare(qcore_frame: object, qlib_path: Path) -> dict[str, float]:
    """qcore's values of the checked candidates against Qlib's: the largest relative difference where Qlib's value
    is at least 1e-5 in size, the largest absolute difference, the cells both have a value for and the cells only
    one side has a value for."""
    import pandas as pd

    theirs = pd.read_parquet(qlib_path)
    theirs.index = theirs.index.set_names(["instrument", "datetime"])
    ours = qcore_frame.copy()  # (datetime, instrument)
    ours.index = ours.index.set_names(["datetime", "instrument"])
    ours = ours.swaplevel().sort_index()
    joined = ours.join(theirs, how="inner", lsuffix="_q", rsuffix="_l")
    out = {"max_rel_diff": 0.0, "max_abs_diff": 0.0, "cells": 0, "one_sided": 0}
    for col in theirs.columns:
        a, b = joined[f"{col}_q"].to_numpy(float), joined[f"{col}_l"].to_numpy(float)
        both = np.isfinite(a) & np.isfinite(b)
        out["one_sided"] += int((np.isfinite(a) != np.isfinite(b)).sum())
        out["cells"] += int(both.sum())
        if both.any():
            diff = np.abs(a[both] - b[both])
            big = np.abs(b[both]) >= 1e-5
            out["max_abs_diff"] = max(out["max_abs_diff"], float(diff.max()))
            if big.any():
                out["max_rel_diff"] = max(out["max_rel_diff"], float((diff[big] / np.abs(b[both][big])).max()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store", type=Path, default=None, help="store to use (built if missing)")
    parser.add_argument("--population", type=int, default=60)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--qlib-limit", type=int, default=None, help="time Qlib on the first N candidates only")
    parser.add_argument("--no-qlib", "--skip-qlib", dest="no_qlib", action="store_true", help="skip Qlib")
    parser.add_argument("--check", action="store_true", help="compare the first 5 candidates' values with Qlib's")
    parser.add_argument("--qlib-python", default=default_qlib_python())
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    store = ensure_store(args.store or store_path(args.instruments, args.days, args.seed), args.instruments,
                         args.days, args.seed)  # fmt: skip
    from qcore.kernel import Kernel

    generations = propose_generations(Kernel.load(use_env=False), args.population, args.generations, args.seed)
    candidates = [t for batch in generations for t in batch]
    ours = run_qcore(store, generations)
    eval_s, score_s = sum(ours["eval_s"]), sum(ours["score_s"])
    n = len(candidates)
    result: dict[str, object] = {
        "store": str(store), "candidates": n, "generations": len(generations),
        "qcore_eval_s": eval_s, "qcore_score_s": score_s, "qcore_eval_per_s": n / eval_s,
        "qcore_eval_score_per_s": n / (eval_s + score_s), "qcore_generation_eval_s": ours["eval_s"],
    }  # fmt: skip
    print(f"store {store} ({args.instruments} x {args.days}); {n} candidates in {len(generations)} generations")
    print(f"qcore: engine batches {eval_s:.2f}s ({n / eval_s:.1f} candidates/s; per generation "
          f"{', '.join(f'{s:.2f}s' for s in ours['eval_s'])}); + scoring {score_s:.2f}s -> "
          f"{n / (eval_s + score_s):.1f} candidates/s evaluated and scored")  # fmt: skip
    if not args.no_qlib:
        python = args.qlib_python
        if not Path(python).exists():
            print(f"Qlib baseline not found at {python}: {baseline_hint(default_qlib_env())}", file=sys.stderr)
            return 2
        subset = candidates[: args.qlib_limit] if args.qlib_limit else candidates
        with tempfile.TemporaryDirectory(prefix="bench-mine-") as tmp:
            theirs = run_qlib(python, store, subset, 5 if args.check else 0, Path(tmp))
            if args.check:
                result["check"] = compare(ours["frame"], Path(tmp) / "qlib_check.parquet")
        rate = len(subset) / theirs["seconds"]
        result.update(qlib_s=theirs["seconds"], qlib_candidates=len(subset), qlib_per_s=rate,
                      speedup_eval=result["qcore_eval_per_s"] / rate,
                      speedup_eval_score=result["qcore_eval_score_per_s"] / rate)  # fmt: skip
        print(f"Qlib D.features one by one: {theirs['seconds']:.2f}s for {len(subset)} candidates "
              f"({rate:.2f} candidates/s)")  # fmt: skip
        print(f"speed-up: {result['speedup_eval']:.1f}x evaluation only, {result['speedup_eval_score']:.1f}x with "
              f"qcore's scoring included (Qlib's figure has no scoring)")  # fmt: skip
        if "check" in result:
            c = result["check"]
            print(f"values of the first 5 candidates over {c['cells']} cells: max relative difference "
                  f"{c['max_rel_diff']:.2e} (|Qlib| >= 1e-5), max absolute difference {c['max_abs_diff']:.2e}, "
                  f"{c['one_sided']} cells with a value on one side only")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
