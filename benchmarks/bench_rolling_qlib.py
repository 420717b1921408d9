"""Rolling LightGBM on Alpha158: qcore's ``rolling:`` section against Qlib 0.9.7's ``benchmarks_dynamic`` baseline.

Qlib's baseline (``examples/benchmarks_dynamic/baseline/rolling_benchmark.py`` → ``qlib.contrib.rolling.Rolling``)
rolls a LightGBM/Alpha158 task with ``RollingGen(step=20, trunc_days=horizon + 1)`` (the default ``rtype``,
expanding train window), sets the label to ``Ref($close, -(horizon + 1)) / Ref($close, -1) - 1`` with
``horizon = 20``, builds the handler once (its handler cache), trains every window, joins the windows' test
predictions (``RollingEnsemble``: later windows win on overlap) and reports IC. This script does the same job on
both sides over the same synthetic store:

* **Qlib**: a driver run in Qlib's baseline environment (``.bench/qlib-baseline``) that builds the Alpha158 handler
  once over the whole span, generates the windows with Qlib's own ``RollingGen``, trains ``LGBModel`` per window
  and joins the predictions, then computes IC / Rank IC against the raw label (as ``SigAnaRecord`` does).
* **qcore**: the same config as a workflow with a ``rolling:`` section (``step: 20``, ``window: expanding``,
  ``gap: horizon`` — Qlib's ``trunc_days`` is ``gap + 1``), run through ``qcore.run`` once per seed.

Both sides use the LightGBM hyper-parameters of Qlib's benchmark config, 2 threads, early stopping on the valid
segment, and LightGBM's ``seed`` (qcore trains deterministically). The windows' segments are printed for both
sides and must be identical. The report gives, per side, mean ± std over seeds of IC, ICIR, Rank IC and Rank ICIR,
the window count, and whether the two mean ICs agree within the seed spread (|difference| ≤ 2 × the larger of the
two sides' standard deviations, and at least 2 × the mean standard error of a day's IC when a side has one seed).

The default train start leaves Alpha158 its 60-day warm-up, and Qlib's ``TimeAdjuster.truncate`` asserts that no
segment starts on the calendar's first day.

Alpha158's default processors (DropnaLabel, CSZScoreNorm of the label) have nothing fitted on a time span, so Qlib's
#1620 (processors fitted once on the first window) cannot make the two sides differ in this configuration.

    .venv/bin/python benchmarks/bench_rolling_qlib.py [--store DIR] [--seeds 0 1 2] [--qlib-seeds 0]
        [--train 2015-04-01 2016-12-30] [--valid 2017-01-03 2017-12-29] [--test 2018-01-02 2018-12-14]
        [--horizon 20] [--step 20] [--no-qlib] [--qlib-env DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import baseline_hint, default_qlib_env, ensure_store, store_path

#: LightGBM parameters of Qlib's benchmark config (workflow_config_lightgbm_Alpha158.yaml), 2 threads here.
LGB_PARAMS: dict[str, Any] = {
    "loss": "mse", "colsample_bytree": 0.8879, "learning_rate": 0.2, "subsample": 0.8789, "lambda_l1": 205.6999,
    "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210, "num_threads": 2,
}  # fmt: skip
METRICS = [("IC", "signal.IC"), ("ICIR", "signal.ICIR"), ("Rank IC", "signal.Rank_IC"),
           ("Rank ICIR", "signal.Rank_ICIR")]  # fmt: skip

#: The Qlib-side driver, run in Qlib's environment: argv[1] is a JSON job, argv[2] the JSON result path.
QLIB_DRIVER = r'''
import copy, json, sys, time
import numpy as np, pandas as pd
import qlib
from qlib.contrib.data.handler import Alpha158
from qlib.contrib.model.gbdt import LGBModel
from qlib.data.dataset import DatasetH
from qlib.data.dataset.handler import DataHandlerLP
from qlib.workflow.task.gen import RollingGen, task_generator

job = json.load(open(sys.argv[1]))
qlib.init(provider_uri=job["store"], region="cn", kernels=2, expression_cache=None, dataset_cache=None)
seg = {k: tuple(pd.Timestamp(x) for x in v) for k, v in job["segments"].items()}
began = time.perf_counter()
label = "Ref($close, -{}) / Ref($close, -1) - 1".format(job["horizon"] + 1)
handler = Alpha158(instruments=job["universe"], start_time=seg["train"][0], end_time=job["data_end"],
                   fit_start_time=seg["train"][0], fit_end_time=seg["train"][1], label=([label], ["LABEL0"]))
load_s = time.perf_counter() - began
# The handler is built once and shared, as Rolling's handler cache does; RollingGen only moves the segments.
task = {"model": {"class": "LGBModel"}, "dataset": {"class": "DatasetH", "kwargs": {"handler": "cached",
        "segments": {k: list(v) for k, v in seg.items()}}}}
tasks = task_generator(task, RollingGen(step=job["step"], trunc_days=job["horizon"] + 1))
windows = [{k: [str(pd.Timestamp(a).date()) if a is not None else None for a in v]
            for k, v in t["dataset"]["kwargs"]["segments"].items()} for t in tasks]
label_raw = None
runs = []
for seed in job["seeds"]:
    t0 = time.perf_counter()
    preds = []
    for t in tasks:
        ds = DatasetH(handler, segments=t["dataset"]["kwargs"]["segments"])
        model = LGBModel(**job["lgb"], seed=seed)
        model.fit(ds)
        preds.append((pd.Timestamp(t["dataset"]["kwargs"]["segments"]["test"][0]), model.predict(ds)))
        if label_raw is None:
            full = DatasetH(handler, segments={"test": (seg["test"][0], seg["test"][1])})
            label_raw = full.prepare("test", col_set="label", data_key=DataHandlerLP.DK_R).iloc[:, 0]
    preds.sort(key=lambda p: p[0])
    joined = pd.concat([p for _, p in preds])
    joined = joined[~joined.index.duplicated(keep="last")].sort_index()
    joined = joined.loc[seg["test"][0]:seg["test"][1]]
    frame = pd.DataFrame({"pred": joined, "label": label_raw.reindex(joined.index)}).dropna()
    by_day = frame.groupby(level="datetime")
    ic = by_day.apply(lambda d: d["pred"].corr(d["label"]))
    ric = by_day.apply(lambda d: d["pred"].corr(d["label"], method="spearman"))
    runs.append({"seed": seed, "IC": ic.mean(), "ICIR": ic.mean() / ic.std(), "Rank IC": ric.mean(),
                 "Rank ICIR": ric.mean() / ric.std(), "days": int(ic.notna().sum()),
                 "ic_sem": ic.std() / np.sqrt(ic.notna().sum()),
                 "seconds": time.perf_counter() - t0})
json.dump({"qlib_version": qlib.__version__, "windows": windows, "load_seconds": load_s, "runs": runs},
          open(sys.argv[2], "w"))
'''


def qcore_windows(store: Path, segments: dict[str, list[str]], step: int, gap: int) -> list[dict[str, list]]:
    """qcore's windows for these segments on the store's calendar, in the Qlib driver's format."""
    import pandas as pd

    from qcore.rolling.windows import rolling_windows

    cal = pd.to_datetime((store / "calendars" / "day.txt").read_text().split())
    out = []
    for window in rolling_windows(cal, segments, step, "expanding", gap):
        out.append({k: [None if x is None else str(pd.Timestamp(x).date()) for x in v]
                    for k, v in window.segments.items()})  # fmt: skip
    return out


def qcore_config(store: Path, segments: dict[str, list[str]], args: argparse.Namespace, seed: int,
                 work: Path) -> dict[str, Any]:  # fmt: skip
    """The workflow mapping of qcore's side (no backtest: signal analysis only)."""
    label = f"Ref($close, -{args.horizon + 1}) / Ref($close, -1) - 1"
    return {
        "experiment": "bench_rolling_qlib",
        "seed": seed,
        "data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(store)}}, "market_rules": "cn",
                 "universe": args.universe},
        "dataset": {"features": {"name": "alpha158", "kwargs": {"label": [[label], ["LABEL0"]]}},
                    "segments": segments,
                    "learn_processors": ["DropnaLabel", {"name": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}]},
        "model": {"name": "lightgbm", "kwargs": {**LGB_PARAMS, "seed": seed}},
        "rolling": {"step": args.step, "window": "expanding", "gap": args.horizon, "backend": "serial"},
        "recorder": {"name": "local", "kwargs": {"uri": str(work / f"runs_{seed}")}},
    }  # fmt: skip


def run_qcore(store: Path, segments: dict[str, list[str]], args: argparse.Namespace, work: Path) -> list[dict]:
    import qcore

    kernel = qcore.load_kernel()
    runs = []
    for seed in args.seeds:
        began = time.perf_counter()
        result = qcore.run(qcore_config(store, segments, args, seed, work), kernel=kernel)
        row = {"seed": seed, "seconds": time.perf_counter() - began}
        for label, key in METRICS:
            if key not in result.metrics:
                raise SystemExit(f"qcore's run has no metric {key!r} (metrics: {sorted(result.metrics)})")
            row[label] = float(result.metrics[key])
        print(f"qcore seed {seed}: IC {row['IC']:.4f}, Rank IC {row['Rank IC']:.4f} ({row['seconds']:.0f} s)",
              flush=True)  # fmt: skip
        runs.append(row)
    return runs


def run_qlib(store: Path, segments: dict[str, list[str]], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    python = Path(args.qlib_env) / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"Qlib baseline environment not found at {args.qlib_env}: {baseline_hint(python)}")
    cal = (store / "calendars" / "day.txt").read_text().split()
    job = {"store": str(store), "segments": segments, "horizon": args.horizon, "step": args.step,
           "universe": args.universe, "data_end": cal[-1], "seeds": args.qlib_seeds, "lgb": LGB_PARAMS}  # fmt: skip
    (work / "job.json").write_text(json.dumps(job))
    (work / "driver.py").write_text(QLIB_DRIVER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCORE_")}
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    log = work / "qlib.log"
    with open(log, "wb") as sink:
        code = subprocess.call([str(python), str(work / "driver.py"), str(work / "job.json"),
                                str(work / "qlib.json")], cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT)
    if code != 0:
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"Qlib's rolling driver failed with exit code {code} (log: {log})")
    return json.loads((work / "qlib.json").read_text())


def summary(runs: list[dict]) -> dict[str, tuple[float, float]]:
    """Metric → (mean, std over seeds; 0 with one seed)."""
    out = {}
    for label, _ in METRICS:
        values = np.array([r[label] for r in runs], dtype=float)
        out[label] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, help="Qlib-format store (default: the cached 300 × 1000 store)")
    parser.add_argument("--universe", default="csi300")
    parser.add_argument("--train", nargs=2, default=["2015-04-01", "2016-12-30"])
    parser.add_argument("--valid", nargs=2, default=["2017-01-03", "2017-12-29"])
    parser.add_argument("--test", nargs=2, default=["2018-01-02", "2018-12-14"])
    parser.add_argument("--horizon", type=int, default=20, help="label horizon, as Rolling(horizon=...)")
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="LightGBM seeds on qcore's side")
    parser.add_argument("--qlib-seeds", type=int, nargs="+", default=[0], help="LightGBM seeds on Qlib's side")
    parser.add_argument("--qlib-env", default=str(default_qlib_env()))
    parser.add_argument("--no-qlib", action="store_true")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()

    store = Path(args.store).resolve() if args.store else ensure_store(store_path(300, 1000, 0), 300, 1000, 0)
    segments = {"train": args.train, "valid": args.valid, "test": args.test}
    print(f"store {store}, universe {args.universe}, segments {segments}, step {args.step}, expanding, "
          f"label horizon {args.horizon} (gap {args.horizon}, Qlib trunc_days {args.horizon + 1})", flush=True)
    ours_windows = qcore_windows(store, segments, args.step, args.horizon)
    work = Path(tempfile.mkdtemp(prefix="qcore-bench-rolling-"))
    theirs = None
    if not args.no_qlib:
        began = time.perf_counter()
        theirs = run_qlib(store, segments, args, work)
        print(f"Qlib {theirs['qlib_version']}: {time.perf_counter() - began:.0f} s (handler load "
              f"{theirs['load_seconds']:.0f} s)", flush=True)  # fmt: skip
        for r in theirs["runs"]:
            print(f"Qlib seed {r['seed']}: IC {r['IC']:.4f}, Rank IC {r['Rank IC']:.4f} ({r['seconds']:.0f} s)")
    ours = run_qcore(store, segments, args, work)

    print(f"\nwindows: qcore {len(ours_windows)}" + (f", Qlib {len(theirs['windows'])}" if theirs else ""))
    for i, w in enumerate(ours_windows):
        line = "  ".join(f"{k} {v[0]}..{v[1]}" for k, v in w.items())
        same = ""
        if theirs is not None:
            other = theirs["windows"][i] if i < len(theirs["windows"]) else None
            same = "  = Qlib" if other == w else f"  != Qlib {other}"
        print(f"  {i:2d} {line}{same}")
    identical = theirs is not None and theirs["windows"] == ours_windows
    if theirs is not None:
        print(f"segments identical on both sides: {identical}")

    ours_s = summary(ours)
    theirs_s = summary(theirs["runs"]) if theirs else None
    print(f"\n{'':12}{'qcore (' + str(len(ours)) + ' seeds)':>24}" +
          (f"{'Qlib (' + str(len(theirs['runs'])) + ' seeds)':>24}" if theirs else ""))
    for label, _ in METRICS:
        mean, std = ours_s[label]
        cells = f"{mean:12.4f} ± {std:.4f}"
        if theirs_s:
            tm, ts = theirs_s[label]
            cells += f"{tm:14.4f} ± {ts:.4f}"
        print(f"{label:12}{cells:>48}")
    verdict = None
    if theirs_s:
        spread = max(ours_s["IC"][1], theirs_s["IC"][1])
        sem = float(np.mean([r["ic_sem"] for r in theirs["runs"]]))
        tolerance = 2 * spread
        diff = ours_s["IC"][0] - theirs_s["IC"][0]
        verdict = abs(diff) <= tolerance
        print(f"\nIC difference {diff:+.4f}; seed spread (largest std of IC over seeds) {spread:.4f}; "
              f"agree within 2 × seed spread: {verdict}")
        print(f"(for scale: standard error of the mean daily IC over {theirs['runs'][0]['days']} days: {sem:.4f})")
    if args.out:
        Path(args.out).write_text(json.dumps({"qcore": ours, "qlib": theirs, "qcore_windows": ours_windows,
                                              "identical_windows": identical, "agree": verdict}, indent=1))
    print(f"\nworking directory: {work} (shared machine: timings are indicative only)")


if __name__ == "__main__":
    main()
