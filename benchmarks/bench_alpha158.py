#!/usr/bin/env python
"""Alpha158 benchmark: qcore's feature set + label over a synthetic store, against Qlib's ``Alpha158`` handler.

    python benchmarks/bench_alpha158.py [--instruments 300] [--days 2500] [--repeat 3] [--store DIR] [--no-qlib]
                                        [--check] [--no-cli] [--market all] [--json OUT] [--no-profile]
                                        [--no-alpha360]

Each side runs in a fresh process of its own, so its peak resident memory (``ru_maxrss``) is its own:

- qcore (this interpreter): ``Kernel.load``, the ``qlib_bin`` provider, ``ExpressionEngine``, the ``alpha158``
  feature set, then ``engine.evaluate(features + label, "all")`` over the whole calendar; the timed span is all of
  it, end to end (best of ``--repeat`` processes). Memory: the ``ru_maxrss`` growth over the process's state after
  importing numpy, pandas and qcore, and (in one more process) the ``tracemalloc`` peak, both set against the size
  of the output frame (values + index).
- Qlib (pyqlib 0.9.7 in its own environment: ``--qlib-python``, default ``$QLIB_PYTHON`` or the checkout's
  ``.bench/qlib-baseline/bin/python``): after ``qlib.init(provider_uri=STORE, region="cn", expression_cache=None,
  dataset_cache=None, kernels=2)``, ``Alpha158(instruments="all", start_time, end_time, infer_processors=[],
  learn_processors=[]).fetch(col_set="__all", data_key="raw")`` is timed (handler construction + fetch, one run).

Command-line mode (unless ``--no-cli``): what a user waits for, each side a whole process timed from outside
(interpreter start-up, imports, store, evaluation, writing the file), best of ``--repeat`` for qcore, one run for
Qlib:

- qcore: ``qcore features alpha158 --provider-uri STORE --instruments MARKET --out X.parquet``;
- Qlib: ``qlib.init(...)``, ``Alpha158(instruments=MARKET, ...).fetch(col_set="__all", data_key="raw")`` and
  ``to_parquet`` (pandas' defaults), as a Python script in Qlib's environment.

The ratio is reported next to the in-process one. One more in-process run splits qcore's command into its phases
(start-up, store open, evaluation, frame ordering, file write) and sets the command's wall time against its
evaluation time (target: within 1.5x).

The store (``.bench/stores/synth_<N>x<D>_s<seed>`` in the checkout unless ``--store``) is built when missing, with
``qcore data synth`` when that command exists, else ``qdata_cn.synth.synthesize``. ``--check`` also compares every
column of the two frames by the golden parity rule (identical NaN/inf positions, 99.9% of finite cells within
``1e-4*|qlib| + 1e-6``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import default_qlib_python, ensure_store, store_path

QCORE_SCRIPT = r"""
import json, resource, sys, time
store, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
feature_set = sys.argv[4] if len(sys.argv) > 4 else "alpha158"
import numpy as np
import pandas as pd
import qcore.kernel
import qcore.expr.engine
import qops.features
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "tracemalloc":
    import tracemalloc
    tracemalloc.start()
began = time.perf_counter()
cpu0 = time.process_time()
kernel = qcore.kernel.Kernel.load(use_env=False)
provider = kernel.create("data_provider", "qlib_bin", provider_uri=store)
engine = qcore.expr.engine.ExpressionEngine(provider, kernel.registry("operator"))
features = kernel.create("feature_set", feature_set)
ready = time.perf_counter()
frame = engine.evaluate({**features.features, **features.labels}, "all")
done = time.perf_counter()
cpu = time.process_time() - cpu0
peak = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else 0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = {
    "seconds": done - began, "setup_s": ready - began, "evaluate_s": done - ready, "cpu_s": cpu,
    "rows": frame.shape[0], "columns": frame.shape[1],
    "frame_bytes": int(frame.memory_usage(index=True, deep=True).sum()),
    "values_bytes": int(frame.shape[0] * frame.shape[1] * 4),
    "rss_before_kib": rss0, "rss_peak_kib": rss1, "tracemalloc_peak_bytes": peak,
}
if out != "-":
    frame.to_parquet(out)
print("QCORE_RESULT", json.dumps(result))
"""

QLIB_SCRIPT = r"""
import json, resource, sys, time
store, out, start, end = sys.argv[1:5]
import qlib
from qlib.contrib.data import handler as handlers
Alpha158 = getattr(handlers, sys.argv[5] if len(sys.argv) > 5 else "Alpha158")
qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=2)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def cpu():  # this process and its reaped workers (Qlib's multiprocessing pool is joined after each call)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)
cpu0 = cpu()
began = time.perf_counter()
handler = Alpha158(instruments="all", start_time=start, end_time=end, infer_processors=[], learn_processors=[])
frame = handler.fetch(col_set="__all", data_key="raw")
elapsed = time.perf_counter() - began
cpu_s = cpu() - cpu0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if out != "-":
    if frame.columns.nlevels > 1:
        frame.columns = frame.columns.get_level_values(-1)
    frame.to_parquet(out)
print("QLIB_RESULT", json.dumps({"seconds": elapsed, "cpu_s": cpu_s, "rows": frame.shape[0], "columns": frame.shape[1],
                                 "rss_before_kib": rss0, "rss_peak_kib": rss1}))
"""


QLIB_CLI_SCRIPT = r"""
import sys
store, out, market, start, end = sys.argv[1:6]
import qlib
from qlib.contrib.data.handler import Alpha158
qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=2)
handler = Alpha158(instruments=market, start_time=start, end_time=end, infer_processors=[], learn_processors=[])
frame = handler.fetch(col_set="__all", data_key="raw")
if frame.columns.nlevels > 1:
    frame.columns = frame.columns.get_level_values(-1)
frame.to_parquet(out)
print(out, frame.shape)
"""

#: qcore's ``features`` command split into its phases, in one process, the way :mod:`qcore.cli` runs it.
QCORE_PHASES_SCRIPT = r"""
import json, sys, time
began = time.perf_counter()
store, out, market = sys.argv[1:4]
from qcore import api
from qcore.kernel import Kernel
from qcore import tables
kernel = Kernel.load(use_env=False)
features = kernel.create("feature_set", "alpha158")
loaded = time.perf_counter()
provider = api.open_provider("qlib_bin", kernel=kernel, provider_uri=store)
provider.calendar("day")
provider.markets()
opened = time.perf_counter()
frame = api.evaluate({**features.features, **features.labels}, provider, instruments=market, kernel=kernel,
                     index="instrument")
evaluated = ordered = time.perf_counter()  # gathered straight into (instrument, datetime) order
tables.write_table(frame, out)
written = time.perf_counter()
print("QCORE_PHASES", json.dumps({"startup_s": loaded - began, "open_s": opened - loaded,
      "evaluate_s": evaluated - opened, "order_s": ordered - evaluated, "write_s": written - ordered,
      "rows": frame.shape[0], "columns": frame.shape[1]}))
"""


#: One more qcore process (one evaluation thread, so each span is attributable) that times the stages of an
#: evaluation: raw field loads, each operator family's kernel calls (batched sibling calls under their operator),
#: output assembly into the frame's block, and the rest (planning, dtype conversions, scheduling).
QCORE_PROFILE_SCRIPT = r"""
import json, sys, time
from collections import defaultdict
store, feature_set = sys.argv[1], sys.argv[2]
import attrs
import qcore.kernel
import qcore.expr.engine
import qcore.expr.evaluation as evaluation
spent = defaultdict(float)
cpu = defaultdict(float)
calls = defaultdict(int)
def timed(key, fn):
    def wrapper(*args, **kwargs):
        began, began_cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - began
            cpu[key] += time.thread_time() - began_cpu
            calls[key] += 1
    return wrapper
kernel = qcore.kernel.Kernel.load(use_env=False)
provider = kernel.create("data_provider", "qlib_bin", provider_uri=store)
provider.load = timed("stage:load", provider.load)
registry = kernel.registry("operator")
operators = {}
for name in registry.names(include_aliases=True):
    op = registry.get(name)
    changes = {"compute": timed("op:" + op.name, op.compute)}
    if getattr(op, "batch", None) is not None:
        changes["batch"] = timed("op:" + op.name, op.batch)
    operators[name] = attrs.evolve(op, **changes)
evaluation.FrameGather.emit = timed("stage:assemble", evaluation.FrameGather.emit)
evaluation.FrameGather.frame = timed("stage:assemble", evaluation.FrameGather.frame)
engine = qcore.expr.engine.ExpressionEngine(provider, operators, num_threads=1)
features = kernel.create("feature_set", feature_set)
began = time.perf_counter()
cpu0 = time.process_time()
frame = engine.evaluate({**features.features, **features.labels}, "all")
total = time.perf_counter() - began
print("QCORE_PROFILE", json.dumps({"total_s": total, "cpu_s": time.process_time() - cpu0, "spent": spent, "cpu": cpu,
                                   "calls": calls, "shape": list(frame.shape)}))
"""


def run_profile(store: Path, feature_set: str) -> dict[str, object]:
    """The stage and operator-family profile of one single-threaded evaluation of ``feature_set`` + label."""
    return _run([sys.executable, "-c", QCORE_PROFILE_SCRIPT, str(store), feature_set], "QCORE_PROFILE")


def print_profile(profile: dict[str, object], feature_set: str, top: int = 12) -> None:
    """Where an evaluation's time goes (CPU seconds of the evaluating thread, which a loaded machine barely
    changes): stages, then the costliest operator families."""
    spent: dict[str, float] = profile["cpu"]  # type: ignore[assignment]
    calls: dict[str, int] = profile["calls"]  # type: ignore[assignment]
    total = float(profile["cpu_s"])  # type: ignore[arg-type]
    ops = {k[3:]: v for k, v in spent.items() if k.startswith("op:")}
    load, assemble = spent.get("stage:load", 0.0), spent.get("stage:assemble", 0.0)
    evaluate = sum(ops.values())
    other = total - load - assemble - evaluate
    print(f"profile {feature_set} (one evaluation thread; CPU seconds): {total:.2f}s CPU "
          f"({float(profile['total_s']):.2f}s wall) = load {load:.2f}s + operators {evaluate:.2f}s + assemble "
          f"{assemble:.2f}s + other (planning, dtype conversions, blanking, scheduling) {other:.2f}s")  # fmt: skip
    ranked = sorted(ops.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{name} {sec:.3f}s/{calls['op:' + name]}" for name, sec in ranked[:top])
    rest = sum(sec for _, sec in ranked[top:])
    others = f"; {len(ranked) - top} others {rest:.3f}s" if len(ranked) > top else ""
    print(f"  operators (CPU seconds/calls): {shown}{others}")


def _qcore_exe() -> str:
    """The ``qcore`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("qcore")
    return str(beside) if beside.exists() else (shutil.which("qcore") or "qcore")


def _wall(cmd: list[str], tag: str) -> float:
    """Wall seconds of one whole process (start-up included); raises with its stderr when it fails."""
    began = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{tag} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def run_cli(store: Path, market: str, out: Path, repeat: int, qlib_python: str | None) -> dict[str, object]:
    """Command-line mode: ``qcore features alpha158`` against Qlib's handler + fetch + ``to_parquet``, whole processes.

    :param qlib_python: Qlib's interpreter, or ``None`` to time qcore alone.
    """
    cmd = [_qcore_exe(), "features", "alpha158", "--provider-uri", str(store), "--instruments", market,
           "--out", str(out / "qcore_cli.parquet")]  # fmt: skip
    times = [_wall(cmd, "qcore features") for _ in range(max(1, repeat))]
    phases = _run([sys.executable, "-c", QCORE_PHASES_SCRIPT, str(store), str(out / "phases.parquet"), market],
                  "QCORE_PHASES")  # fmt: skip
    result: dict[str, object] = {"market": market, "qcore_s": min(times), "qcore_times_s": times, "phases": phases}
    result["qcore_wall_over_evaluate"] = min(times) / phases["evaluate_s"]
    if qlib_python is not None:
        calendar = (store / "calendars" / "day.txt").read_text().split()
        qlib_cmd = [qlib_python, "-c", QLIB_CLI_SCRIPT, str(store), str(out / "qlib_cli.parquet"), market,
                    calendar[0], calendar[-1]]  # fmt: skip
        result["qlib_s"] = _wall(qlib_cmd, "Qlib handler + to_parquet")
        result["speedup"] = result["qlib_s"] / result["qcore_s"]
    return result


def print_cli(cli: dict[str, object], in_process: float | None) -> None:
    """The command-line figures, next to the in-process ratio."""
    p = cli["phases"]
    times = ", ".join(f"{t:.2f}s" for t in cli["qcore_times_s"])
    print(f"CLI qcore features alpha158 --instruments {cli['market']}: {times}; best {cli['qcore_s']:.2f}s = "
          f"{cli['qcore_wall_over_evaluate']:.2f}x its evaluation (target <= 1.5x)")  # fmt: skip
    print(f"  phases (one process): start-up {p['startup_s']:.2f}s, store open {p['open_s']:.2f}s, evaluation "
          f"{p['evaluate_s']:.2f}s, instrument-major order {p['order_s']:.2f}s, Parquet write {p['write_s']:.2f}s "
          f"({p['rows']} rows x {p['columns']} columns)")  # fmt: skip
    if "qlib_s" in cli:
        shown = f"{in_process:.1f}x" if in_process is not None else "n/a"
        print(f"CLI Qlib Alpha158 handler + fetch + to_parquet: {cli['qlib_s']:.2f}s -> speed-up {cli['speedup']:.1f}x "
              f"end to end (in-process {shown})")  # fmt: skip


def _run(cmd: list[str], tag: str) -> dict[str, float]:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{tag} run failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith(tag))
    return json.loads(line.split(" ", 1)[1])


def run_qcore(store: Path, out: str = "-", mode: str = "time", feature_set: str = "alpha158") -> dict[str, float]:
    """One fresh qcore process computing a feature set (Alpha158 by default) + label; its figures."""
    return _run([sys.executable, "-c", QCORE_SCRIPT, str(store), out, mode, feature_set], "QCORE_RESULT")


def run_qlib(python: str, store: Path, out: str = "-", handler: str = "Alpha158") -> dict[str, float]:
    """One fresh Qlib process building a handler (Alpha158 by default) over the whole calendar; its figures."""
    calendar = (store / "calendars" / "day.txt").read_text().split()
    return _run([python, "-c", QLIB_SCRIPT, str(store), out, calendar[0], calendar[-1], handler], "QLIB_RESULT")


def compare_frames(ours_path: Path, theirs_path: Path) -> dict[str, object]:
    """Column-by-column parity of qcore's frame with Qlib's on Qlib's rows (the golden rule)."""
    ours = pd.read_parquet(ours_path)
    theirs = pd.read_parquet(theirs_path)
    theirs.index = theirs.index.set_levels(theirs.index.levels[0].astype("datetime64[ns]"), level=0)
    ours.index = ours.index.set_levels(ours.index.levels[0].astype("datetime64[ns]"), level=0)
    ours = ours.reindex(theirs.index)
    failed = []
    for column in theirs.columns:
        a = ours[column].to_numpy(np.float64)
        b = theirs[column].to_numpy(np.float64)
        special = int((~np.isfinite(a) != ~np.isfinite(b)).sum())
        finite = np.isfinite(a) & np.isfinite(b)
        share = float((np.abs(a[finite] - b[finite]) <= 1e-4 * np.abs(b[finite]) + 1e-6).mean()) if finite.any() else 1
        if special or share < 0.999:
            failed.append(f"{column} ({special} NaN/inf positions differ, {share:.4%} agree)")
    return {"columns_same": list(ours.columns) == list(theirs.columns), "rows": len(theirs), "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="qcore processes (best of)")
    parser.add_argument("--store", type=Path, default=None, help="store to use (built if missing)")
    parser.add_argument("--no-qlib", "--skip-qlib", dest="no_qlib", action="store_true", help="skip Qlib")
    parser.add_argument("--no-profile", action="store_true", help="skip the stage/operator profile")
    parser.add_argument("--no-alpha360", action="store_true", help="skip the Alpha360 timing")
    parser.add_argument("--check", action="store_true", help="compare every column with Qlib's")
    parser.add_argument("--qlib-python", default=default_qlib_python())
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line mode")
    parser.add_argument("--market", default="all", help="universe of the command-line mode (all, csi300...)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    store = args.store or store_path(args.instruments, args.days, args.seed)
    ensure_store(store, args.instruments, args.days, args.seed)
    result: dict[str, object] = {"store": str(store), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    result["loadavg_1m_start"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="qcore-bench-a158-") as tmp:
        keep = Path(tmp)
        runs = [run_qcore(store, str(keep / "qcore.parquet") if (args.check and k == 0) else "-")
                for k in range(max(1, args.repeat))]  # fmt: skip
        best = min(runs, key=lambda r: r["seconds"])
        traced = run_qcore(store, mode="tracemalloc")
        grew = max(r["rss_peak_kib"] - r["rss_before_kib"] for r in runs) * 1024
        frame = best["frame_bytes"]
        result["qcore"] = {**best, "times_s": [r["seconds"] for r in runs], "rss_growth_bytes": grew,
                           "tracemalloc_peak_bytes": traced["tracemalloc_peak_bytes"]}  # fmt: skip
        print(f"store {store}: {best['rows']} rows x {best['columns']} columns (158 features + LABEL0)")
        times = ", ".join(f"{r['seconds']:.2f}s" for r in runs)
        print(
            f"qcore Alpha158 end to end: {times}; best "
            f"{best['seconds']:.2f}s (setup {best['setup_s']:.2f}s, evaluate + frame {best['evaluate_s']:.2f}s; "
            f"{best['cpu_s']:.2f}s CPU, all threads)"
        )
        # the output block is an anonymous memory map (see qcore.expr.evaluation.output_block), which
        # tracemalloc does not see: it is added to the traced peak
        traced_peak = traced["tracemalloc_peak_bytes"] + best["values_bytes"]
        print(f"qcore memory: peak RSS growth {grew / 2**20:.0f} MiB, tracemalloc peak + output block "
              f"{traced_peak / 2**20:.0f} MiB; output frame {frame / 2**20:.0f} MiB "
              f"-> {grew / frame:.2f}x (RSS), {traced_peak / frame:.2f}x (tracemalloc + block); "
              f"target <= 1.5x")  # fmt: skip
        if not args.no_alpha360:
            a360 = [run_qcore(store, feature_set="alpha360") for _ in range(max(1, args.repeat))]
            best360 = min(a360, key=lambda r: r["seconds"])
            result["qcore_alpha360"] = {**best360, "times_s": [r["seconds"] for r in a360]}
            shown360 = ", ".join(f"{r['seconds']:.2f}s" for r in a360)
            print(f"qcore Alpha360 end to end: {shown360}; best "
                  f"{best360['seconds']:.2f}s (evaluate + frame {best360['evaluate_s']:.2f}s; {best360['cpu_s']:.2f}s "
                  f"CPU), {best360['rows']} rows x {best360['columns']} columns")  # fmt: skip
        if not args.no_profile:
            result["profile"] = {}
            for name in ("alpha158",) if args.no_alpha360 else ("alpha158", "alpha360"):
                profile = run_profile(store, name)
                result["profile"][name] = profile
                print_profile(profile, name)

        if not args.no_qlib:
            if not Path(args.qlib_python).exists():
                print(f"Qlib baseline not found at {args.qlib_python}; build it with qlib-baseline-env.sh or pass "
                      "--qlib-python (skipping Qlib)")  # fmt: skip
            else:
                qlib = run_qlib(args.qlib_python, store, str(keep / "qlib.parquet") if args.check else "-")
                ratio = qlib["seconds"] / best["seconds"]
                qlib_rss = (qlib["rss_peak_kib"] - qlib["rss_before_kib"]) * 1024
                result["qlib"] = qlib
                result["speedup"] = ratio
                print(
                    f"Qlib Alpha158 handler (kernels=2): {qlib['seconds']:.2f}s ({qlib['cpu_s']:.1f}s CPU with its "
                    f"workers), {qlib['rows']} rows x "
                    f"{qlib['columns']} columns; main-process peak RSS growth {qlib_rss / 2**20:.0f} MiB"
                )
                cpu_ratio = qlib["cpu_s"] / best["cpu_s"]
                result["cpu_speedup"] = cpu_ratio
                # the ratio target moves with Qlib's own speed on the machine: say what it asks of qcore here
                print(f"speed-up: {ratio:.1f}x wall (target >= 40x: {qlib['seconds'] / 40:.2f}s on this machine), "
                      f"{cpu_ratio:.1f}x CPU time")  # fmt: skip
                if not args.no_alpha360:
                    qlib360 = run_qlib(args.qlib_python, store, handler="Alpha360")
                    result["qlib_alpha360"] = qlib360
                    result["speedup_alpha360"] = qlib360["seconds"] / best360["seconds"]
                    print(f"Qlib Alpha360 handler (kernels=2): {qlib360['seconds']:.2f}s ({qlib360['cpu_s']:.1f}s CPU) "
                          f"-> speed-up {result['speedup_alpha360']:.1f}x wall, "
                          f"{qlib360['cpu_s'] / best360['cpu_s']:.1f}x CPU time")  # fmt: skip
                if args.check:
                    check = compare_frames(keep / "qcore.parquet", keep / "qlib.parquet")
                    result["check"] = check
                    print(f"parity with Qlib: columns {'identical' if check['columns_same'] else 'DIFFER'}, "
                          f"{check['rows']} rows, {len(check['failed'])} columns differ"
                          + "".join(f"\n  {f}" for f in check["failed"]))  # fmt: skip
        if not args.no_cli:
            qlib_python = None if args.no_qlib or not Path(args.qlib_python).exists() else args.qlib_python
            cli = run_cli(store, args.market, keep, args.repeat, qlib_python)
            result["cli"] = cli
            print_cli(cli, result.get("speedup"))
    result["loadavg_1m_end"] = os.getloadavg()[0]
    load = f"{result['loadavg_1m_start']:.1f} -> {result['loadavg_1m_end']:.1f}"
    print(f"1-minute load average {load} on {os.cpu_count()} CPUs (other work on the machine slows both sides)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
