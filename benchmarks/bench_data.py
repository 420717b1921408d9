#!/usr/bin/env python
"""Data-layer benchmark: read every field of a synthetic store with qcore, and with Qlib's ``D.features``.

    python benchmarks/bench_data.py [--instruments 300] [--days 2500] [--repeat 3] [--no-qlib] [--json OUT]

1. ``qcore data synth`` timing: the market is generated and written in-process into a fresh folder, and once more
   through the ``qcore`` command (wall time including interpreter start-up).
2. A cached store (the checkout's ``.bench/stores/synth_<N>x<D>_s<seed>``, built when missing) is read whole: all
   fields, all instruments, the full calendar, with ``QlibBinProvider.load`` (first call and best of ``--repeat``).
3. The same read with Qlib (pyqlib 0.9.7, in its own environment: ``--qlib-python``, default ``$QLIB_PYTHON`` or
   the checkout's ``.bench/qlib-baseline/bin/python``):
   ``D.features(D.instruments('all'), ['$open', ..., '$change'], freq='day')`` after
   ``qlib.init(provider_uri=STORE, region="cn", expression_cache=None, dataset_cache=None, kernels=2)``,
   each run in a fresh process (Qlib's in-memory cache would otherwise serve repeats); only the ``D.features`` call
   is timed. Qlib's values are then compared with qcore's for every row Qlib returns.
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

QLIB_SCRIPT = r"""
import sys, time
store, fields, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
import qlib
from qlib.data import D
qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=2)
began = time.perf_counter()
frame = D.features(D.instruments("all"), fields, freq="day")
elapsed = time.perf_counter() - began
if out != "-":
    frame.to_parquet(out)
print("QLIB_SECONDS", elapsed, frame.shape[0], frame.shape[1])
"""


def time_synth(instruments: int, days: int, seed: int) -> dict[str, float]:
    """Seconds to generate and write a store in-process, and through the ``qcore`` command."""
    from qdata_cn.synth import synthesize

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="qcore-bench-synth-") as tmp:
        began = time.perf_counter()
        synthesize(Path(tmp) / "inproc", instruments=instruments, days=days, seed=seed)
        out["synth_in_process_s"] = time.perf_counter() - began
        exe = shutil.which("qcore") or str(Path(sys.executable).with_name("qcore"))
        if Path(exe).exists():
            cmd = [exe, "data", "synth", "--out", str(Path(tmp) / "cli"), "--instruments", str(instruments),
                   "--days", str(days), "--seed", str(seed)]  # fmt: skip
            began = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            out["synth_cli_wall_s"] = time.perf_counter() - began
    return out


def time_qcore(store: Path, repeat: int):
    """(first-call seconds, best seconds, panel) of reading every field of every instrument."""
    from qdata_cn.binstore import QlibBinProvider

    provider = QlibBinProvider(store)
    fields = provider.fields("day")
    instruments = sorted(provider.universe("all"))
    began = time.perf_counter()
    panel = provider.load(fields, instruments, freq="day")
    first = time.perf_counter() - began
    best = first
    for _ in range(repeat):
        provider = QlibBinProvider(store)  # no cached calendar either
        began = time.perf_counter()
        panel = provider.load(provider.fields("day"), sorted(provider.universe("all")), freq="day")
        best = min(best, time.perf_counter() - began)
    return first, best, panel


def time_qlib(python: str, store: Path, fields: list[str], repeat: int, keep: Path | None) -> list[float]:
    """Seconds of ``D.features`` in ``repeat`` fresh Qlib processes (the first run saves its frame to ``keep``)."""
    times = []
    for k in range(repeat):
        out = str(keep) if (keep is not None and k == 0) else "-"
        proc = subprocess.run(
            [python, "-c", QLIB_SCRIPT, str(store), ",".join("$" + f for f in fields), out],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"Qlib run failed:\n{proc.stderr[-3000:]}")
        line = next(x for x in proc.stdout.splitlines() if x.startswith("QLIB_SECONDS"))
        times.append(float(line.split()[1]))
    return times


def compare(frame_path: Path, panel, fields: list[str]) -> dict[str, int]:
    """Compare Qlib's frame with qcore's panel on every row Qlib returned (values must be equal, NaN = NaN)."""
    frame = pd.read_parquet(frame_path)
    inst = frame.index.get_level_values(0).astype(str).to_numpy()
    dates = pd.DatetimeIndex(frame.index.get_level_values(1))
    cols = {s: j for j, s in enumerate(panel.instruments)}
    j = np.array([cols[s] for s in inst])
    t = panel.dates.get_indexer(dates)
    mismatches = 0
    for field in fields:
        ours = panel[field][t, j]
        theirs = frame["$" + field].to_numpy(dtype=np.float32)
        mismatches += int((~((ours == theirs) | (np.isnan(ours) & np.isnan(theirs)))).sum())
    return {"rows": len(frame), "mismatches": mismatches}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="qcore reads (best of) and Qlib processes")
    parser.add_argument("--store", type=Path, default=None, help="store to use (built if missing)")
    parser.add_argument("--no-qlib", action="store_true", help="skip the Qlib comparison")
    parser.add_argument("--no-synth", action="store_true", help="skip timing `qcore data synth`")
    parser.add_argument("--qlib-python", default=default_qlib_python())
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    store = args.store or store_path(args.instruments, args.days, args.seed)
    result: dict[str, object] = {
        "instruments": args.instruments,
        "days": args.days,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    if not args.no_synth:
        result.update(time_synth(args.instruments, args.days, args.seed))
        print(f"qcore data synth {args.instruments}x{args.days}: {result['synth_in_process_s']:.2f}s in-process"
              + (f", {result['synth_cli_wall_s']:.2f}s via the CLI (wall)" if "synth_cli_wall_s" in result else ""))
    ensure_store(store, args.instruments, args.days, args.seed)
    first, best, panel = time_qcore(store, args.repeat)
    fields = list(panel.fields)
    cells = panel.shape[0] * panel.shape[1] * len(fields)
    result.update({"store": str(store), "fields": fields, "cells": cells, "qcore_first_s": first, "qcore_best_s": best})
    print(f"store {store}: {panel.shape[1]} instruments x {panel.shape[0]} days x {len(fields)} fields "
          f"({cells / 1e6:.2f}M values)")  # fmt: skip
    print(f"qcore QlibBinProvider.load: first {first * 1000:.1f} ms, best of {args.repeat} {best * 1000:.1f} ms")

    if not args.no_qlib:
        if not Path(args.qlib_python).exists():
            print(f"Qlib baseline not found at {args.qlib_python}; build it with qlib-baseline-env.sh or pass "
                  "--qlib-python (skipping the comparison)")  # fmt: skip
        else:
            with tempfile.TemporaryDirectory(prefix="qcore-bench-qlib-") as tmp:
                keep = Path(tmp) / "qlib.parquet"
                times = time_qlib(args.qlib_python, store, fields, args.repeat, keep)
                check = compare(keep, panel, fields)
            qlib_best = min(times)
            result.update({"qlib_times_s": times, "qlib_best_s": qlib_best, "speedup_best": qlib_best / best,
                           "qlib_rows": check["rows"], "value_mismatches": check["mismatches"]})  # fmt: skip
            print(f"Qlib D.features (kernels=2): {', '.join(f'{x:.2f}s' for x in times)}; best {qlib_best:.2f}s; "
                  f"{check['rows']} rows, {check['mismatches']} values differ from qcore's")  # fmt: skip
            print(f"speed-up (best vs best): {qlib_best / best:.0f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
