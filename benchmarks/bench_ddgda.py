"""Plain rolling against DDG-DA on the synthetic market with a planted regime shift, over several seeds.

Each seed writes its own regime-shift market (``qcore data synth --regime-shift``: the planted short-term reversal
turns into short-term momentum and the volume effect changes sign on the shift date), then runs the same rolling
workflow twice through ``qmeta.compare.compare`` (what ``qcore ddgda`` runs): equal sample weights, and DDG-DA's
weights learned per window. Reported: each arm's daily IC over the shifted period (from the shift date to the end
of the test span) and over the whole test span, mean ± std over the seeds, and the per-seed margin of DDG-DA over
plain rolling with whether it exceeds the seed noise (mean margin larger than twice its standard error, and larger
than the standard deviation of plain rolling's IC across seeds).

    .venv/bin/python benchmarks/bench_ddgda.py [--seeds 3] [--model ridge|lightgbm] [--instruments 200]
        [--days 1200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SHIFT = "2017-07-03"
FEATURES = {
    "ROC1": "$close/Ref($close,1)-1", "ROC5": "$close/Ref($close,5)-1", "ROC10": "$close/Ref($close,10)-1",
    "ROC20": "$close/Ref($close,20)-1", "MOM": "Ref($close,20)/Ref($close,60)-1", "MA20": "$close/Mean($close,20)-1",
    "MA60": "$close/Mean($close,60)-1", "STD20": "Std($close/Ref($close,1)-1,20)",
    "VABN": "Log($volume+1)-Mean(Log($volume+1),20)", "VMA5": "$volume/Mean($volume,5)-1",
    "HL": "($high-$low)/$close", "KMID": "($close-$open)/$open", "CORR10": "Corr($close,Log($volume+1),10)",
    "RSQR20": "Rsquare($close,20)",
}  # fmt: skip
MODELS = {
    "ridge": {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 10.0}},
    "lightgbm": {"name": "lightgbm", "kwargs": {"num_boost_round": 100, "num_leaves": 31, "learning_rate": 0.05,
                                                "num_threads": 2, "early_stopping_rounds": None,
                                                "dataset_cache": False}},
}  # fmt: skip
#: DDG-DA's settings: Qlib's step (20) and weight clip (2), top 10 of the 14 features by a proxy LightGBM's gain.
DDGDA = {"step": 20, "hist_steps": 6, "top_k": 10, "clip_weight": 2.0}


def workflow(store: Path, out: Path, model: str, test_end: str) -> dict[str, Any]:
    """The rolling workflow: 14 price/volume features, retrained every 20 days on an expanding window."""
    return {
        "experiment": "bench_ddgda",
        "seed": 0,
        "data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(store)}}, "universe": "all"},
        "dataset": {
            "features": {"name": "qlib_data_loader", "kwargs": {"config": {
                "feature": [list(FEATURES.values()), list(FEATURES)],
                "label": [["Ref($close,-2)/Ref($close,-1)-1"], ["LABEL0"]]}}},
            "segments": {"train": ["2015-01-05", "2016-12-30"], "test": ["2017-01-03", test_end]},
            "learn_processors": ["DropnaLabel", {"name": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}],
            "infer_processors": [{"name": "CSZScoreNorm", "kwargs": {"fields_group": "feature"}},
                                 {"name": "Fillna", "kwargs": {"fields_group": "feature"}}],
        },
        "model": MODELS[model],
        "reweighter": {"name": "ddgda", "kwargs": DDGDA},
        "rolling": {"step": 20, "window": "expanding", "gap": 2, "checkpoint": str(out / "checkpoint")},
        "records": ["signal"],
        "recorder": {"name": "local", "kwargs": {"uri": str(out / "runs")}},
    }


def run_seed(seed: int, model: str, instruments: int, days: int, root: Path) -> dict[str, Any]:
    """Write seed ``seed``'s market, run both arms; the IC figures of each arm and the seconds taken."""
    import pandas as pd
    from qdata_cn.synth_regime import RegimeShift, synthesize_regime
    from qmeta.compare import compare

    from qcore.kernel import Kernel

    store = root / f"store{seed}"
    synthesize_regime(store, RegimeShift(SHIFT), instruments=instruments, days=days, seed=seed, fundamentals=False)
    calendar = (store / "calendars" / "day.txt").read_text().split()
    kernel = Kernel.load(use_env=True)
    began = time.perf_counter()
    arms = compare(workflow(store, root / f"out{seed}", model, calendar[-10]), kernel, since=pd.Timestamp(SHIFT))
    return {"seed": seed, "seconds": time.perf_counter() - began, **{a.name: dict(a.figures) for a in arms}}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of each arm's IC (shifted period and whole test), the margin and its verdict."""
    out: dict[str, Any] = {}
    for key in ("IC since", "Rank IC since", "IC", "Rank IC"):
        for arm in ("rolling", "ddgda"):
            values = [r[arm][key] for r in rows]
            out[f"{arm} {key}"] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan)
        margins = [r["ddgda"][key] - r["rolling"][key] for r in rows]
        mean = statistics.fmean(margins)
        std = statistics.stdev(margins) if len(margins) > 1 else math.nan
        noise = out[f"rolling {key}"][1]
        out[f"margin {key}"] = {
            "mean": mean, "std": std, "wins": sum(m > 0 for m in margins), "seeds": len(margins),
            "beyond_noise": bool(len(margins) > 1 and mean > 2 * std / math.sqrt(len(margins)) and mean > noise),
        }
    return out


def table(rows: list[dict[str, Any]], stats: dict[str, Any], model: str) -> str:
    """The README table (markdown)."""
    lines = ["| model | metric | plain rolling | DDG-DA | margin (DDG-DA − rolling) | wins | beyond seed noise |",
             "|---|---|---|---|---|---|---|"]
    for key, label in (("IC since", f"IC from {SHIFT}"), ("Rank IC since", f"Rank IC from {SHIFT}"),
                       ("IC", "IC, whole test"), ("Rank IC", "Rank IC, whole test")):
        r, d, m = stats[f"rolling {key}"], stats[f"ddgda {key}"], stats[f"margin {key}"]
        lines.append(f"| {model} | {label} | {r[0]:.4f} ± {r[1]:.4f} | {d[0]:.4f} ± {d[1]:.4f} | "
                     f"{m['mean']:+.4f} ± {m['std']:.4f} | {m['wins']}/{m['seeds']} | "
                     f"{'yes' if m['beyond_noise'] else 'no'} |")
    lines.append("")
    lines.append("| seed | rolling IC from shift | DDG-DA IC from shift | seconds (both arms) |")
    lines.append("|---|---|---|---|")
    for row in rows:
        lines.append(f"| {row['seed']} | {row['rolling']['IC since']:.4f} | {row['ddgda']['IC since']:.4f} | "
                     f"{row['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--model", choices=sorted(MODELS), default="ridge")
    parser.add_argument("--instruments", type=int, default=200)
    parser.add_argument("--days", type=int, default=1200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (seed noise needs two)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ddgda-") as tmp:
        for seed in range(args.seeds):
            rows.append(run_seed(seed, args.model, args.instruments, args.days, Path(tmp)))
            print(f"seed {seed}: rolling IC since {rows[-1]['rolling']['IC since']:.4f}, DDG-DA "
                  f"{rows[-1]['ddgda']['IC since']:.4f} ({rows[-1]['seconds']:.0f}s)", flush=True)
    stats = summary(rows)
    print(table(rows, stats, args.model))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": stats}, indent=1, default=str))


if __name__ == "__main__":
    main()
