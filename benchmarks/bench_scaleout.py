#!/usr/bin/env python
"""Scale-out benchmark: what the execution backends cost and what sharding buys on this machine.

    python benchmarks/bench_scaleout.py [--instruments 300] [--days 1000] [--tasks 200] [--mb 64] [--no-ray]
                                        [--shards 4] [--minute] [--json OUT]

Four measurements, each printed as a table row (and written to ``--json``):

1. **Per-task overhead**: ``backend.map`` of a function that returns at once over ``--tasks`` items, after a
   warm-up (workers started, imports done): wall time per task for ``serial``, ``processes`` (2 workers) and ``ray``
   (a private local Ray with 2 CPUs).
2. **put/get per MB**: a ``--mb`` MB float64 array: ``put`` (serial: a copy; processes: an Arrow IPC file;
   ray: the object store), ``get`` in the driver, and one task that reads every byte through the reference (the
   task's time less the per-task overhead), in ms per MB.
3. **1 -> 2 workers, sharded Alpha158**: Alpha158 + label on a ``--instruments`` x ``--days`` synthetic store
   (``.bench/stores``), by instrument shards (``--shards``) on ``processes`` with 1 and then 2 workers, one engine
   thread per task, the output frame gathered in the driver (indexed by instrument, as ``qcore features`` writes
   it); next to one process with one thread and with all threads. Workers are warmed (kernel loaded) before
   timing.
4. ``--minute``: the documented 1-minute example (Alpha158 on 100 instruments x 120 days of 1-minute bars): the
   peak memory of one process evaluating it whole, against shards writing their own Parquet parts
   (``out_dir``) on 2 workers, each process's peak resident memory reported (``ru_maxrss``).

Timings are wall-clock, best of three where cheap; the machine may be shared (say so when quoting them).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ensure_store, store_path

ROOT = Path(__file__).resolve().parents[1]


def noop(x: Any) -> Any:
    """A task that does nothing."""
    return x


def touch(x: Any, values: Any) -> float:
    """A task that reads every byte of a shared array."""
    return float(np.add.reduce(values, axis=None))


def warm(x: Any) -> int:
    """Load the kernel's operators in a worker (what a shard task does first), and stay long enough for the other
    worker to take the next warm-up item."""
    from qcore.expr import sharding

    sharding._operators((), None)
    time.sleep(0.5)
    return os.getpid()


def best(fn: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def backends(use_ray: bool) -> list[tuple[str, Any]]:
    from qcore.backends import ProcessesBackend, SerialBackend

    out: list[tuple[str, Any]] = [("serial", SerialBackend()), ("processes", ProcessesBackend(max_workers=2))]
    if use_ray:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private in-process cluster on loopback
        from qray.backend import RayBackend

        out.append(("ray", RayBackend(address="local", num_cpus=2, object_store_memory=512 * 1024 * 1024)))
    return out


def overhead_and_transfer(tasks: int, mb: int, use_ray: bool) -> list[dict[str, Any]]:
    rows = []
    array = np.random.default_rng(0).standard_normal(mb * 1024 * 1024 // 8)
    for name, backend in backends(use_ray):
        with backend:
            dict(backend.map(warm, range(2)))
            dict(backend.map(noop, range(8)))
            per_task = best(lambda: dict(backend.map(noop, range(tasks)))) / tasks  # noqa: B023
            t0 = time.perf_counter()
            ref = backend.put(array)
            put = time.perf_counter() - t0
            got = best(lambda: backend.get(ref))  # noqa: B023
            expected = float(np.add.reduce(array))
            task = best(lambda: dict(backend.map(touch, [0], args=(ref,))))  # noqa: B023
            assert dict(backend.map(touch, [0], args=(ref,)))[0] == expected
            rows.append({"backend": name, "per_task_ms": per_task * 1e3, "put_ms_per_mb": put * 1e3 / mb,
                         "get_ms_per_mb": got * 1e3 / mb,
                         "task_read_ms_per_mb": max(task - per_task, 0.0) * 1e3 / mb})  # fmt: skip
            print(f"{name:>10}: {per_task * 1e3:8.3f} ms/task   put {rows[-1]['put_ms_per_mb']:7.3f} ms/MB   "
                  f"get {rows[-1]['get_ms_per_mb']:7.4f} ms/MB   task read {rows[-1]['task_read_ms_per_mb']:7.3f} "
                  "ms/MB", flush=True)  # fmt: skip
    return rows


def speedup(instruments: int, days: int, shards: int) -> dict[str, Any]:
    import qcore
    from qcore.backends import ProcessesBackend
    from qcore.expr.engine import ExpressionEngine
    from qcore.expr.sharding import evaluate_sharded

    path = ensure_store(store_path(instruments, days, 0), instruments, days, 0)
    kernel = qcore.load_kernel()
    store = qcore.open_provider("qlib_bin", provider_uri=str(path), kernel=kernel)
    definition = kernel.create("feature_set", "alpha158")
    exprs = {**dict(definition.features), **dict(definition.labels)}
    one = ExpressionEngine(store, kernel.registry("operator"), num_threads=1, missing_fields="nan")
    threads = ExpressionEngine(store, kernel.registry("operator"), num_threads=0, missing_fields="nan")
    out: dict[str, Any] = {"store": f"{instruments}x{days}", "expressions": len(exprs), "shards": shards}
    out["one_thread_s"] = best(lambda: one.evaluate(exprs, "all", index="instrument"), 2)
    out["all_threads_s"] = best(lambda: threads.evaluate(exprs, "all", index="instrument"), 2)
    frame = threads.evaluate(exprs, "all", index="instrument")
    out["frame_mb"] = frame.memory_usage(deep=True).sum() / 2**20
    print(f"  one process: 1 thread {out['one_thread_s']:.2f} s, all threads {out['all_threads_s']:.2f} s "
          f"(frame {out['frame_mb']:.0f} MB)", flush=True)  # fmt: skip
    for workers in (1, 2):
        with ProcessesBackend(max_workers=workers) as backend:
            dict(backend.map(warm, range(workers)))

            def job() -> Any:
                return evaluate_sharded(exprs, store, instruments="all", backend=backend, shards=shards,
                                        missing_fields="nan", num_threads=1, index="instrument")  # fmt: skip

            out[f"processes_{workers}_s"] = best(job, 2)
            result = job()
        assert result.frame is not None and result.frame.equals(frame)
        print(f"  processes, {workers} worker(s), {shards} shards: {out[f'processes_{workers}_s']:.2f} s", flush=True)
    out["speedup_1_to_2"] = out["processes_1_s"] / out["processes_2_s"]
    print(f"  1 -> 2 workers: {out['speedup_1_to_2']:.2f}x (equal frames)", flush=True)
    return out


MINUTE_SCRIPT = r"""
import json, resource, sys, time
import qcore
from qcore.expr.engine import ExpressionEngine
from qcore.expr.sharding import evaluate_sharded
from qcore.backends import ProcessesBackend
store_dir, mode, out_dir, shards = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kernel = qcore.load_kernel()
store = qcore.open_provider("qlib_bin", provider_uri=store_dir, kernel=kernel)
d = kernel.create("feature_set", "alpha158")
exprs = {**dict(d.features), **dict(d.labels)}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == "one":
    frame = ExpressionEngine(store, kernel.registry("operator"), freq="1min", missing_fields="nan").evaluate(exprs)
    rows, files = len(frame), 1
else:
    with ProcessesBackend(max_workers=2) as backend:
        res = evaluate_sharded(exprs, store, backend=backend, shards=shards, freq="1min", missing_fields="nan",
                               num_threads=1, out_dir=out_dir)
    rows, files = None, len(res.files)
wall = time.perf_counter() - t0
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"mode": mode, "wall_s": wall, "rows": rows, "files": files, "peak_mb": me / 1024,
                  "import_mb": base / 1024, "worker_peak_mb": kids / 1024}))
"""


def minute(shards: int) -> list[dict[str, Any]]:
    store = ROOT / ".bench" / "stores" / "synth_100x120_s0_1min"
    if not (store / "calendars" / "1min.txt").exists():
        subprocess.run([str(Path(sys.executable).with_name("qcore")), "data", "synth", "--freq", "1min", "--out",
                        str(store), "--instruments", "100", "--days", "120"], check=True)  # fmt: skip
    rows = []
    for mode in ("shards", "one"):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", MINUTE_SCRIPT, str(store), mode, f"{tmp}/parts", str(shards)],
                                 capture_output=True, text=True, cwd=ROOT)  # fmt: skip
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"the {mode} run failed")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            if mode == "shards":
                import pandas as pd

                row["rows"] = sum(len(pd.read_parquet(f, columns=["KMID"])) for f in Path(f"{tmp}/parts").glob("*"))
            rows.append(row)
            print(f"  minute Alpha158, {mode}: {row['wall_s']:.1f} s, {row['rows']} rows, driver peak "
                  f"{row['peak_mb']:.0f} MB, worker peak {row['worker_peak_mb']:.0f} MB", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-speedup", action="store_true")
    parser.add_argument("--minute", action="store_true", help="Also run the 1-minute memory example.")
    parser.add_argument("--minute-shards", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print("per-task overhead and transfer", flush=True)
    report["backends"] = overhead_and_transfer(args.tasks, args.mb, not args.no_ray)
    if not args.no_speedup:
        print("sharded Alpha158, 1 -> 2 workers", flush=True)
        report["speedup"] = speedup(args.instruments, args.days, args.shards)
    if args.minute:
        print("1-minute Alpha158: one process vs shards writing their parts", flush=True)
        report["minute"] = minute(args.minute_shards)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
