#!/usr/bin/env python
"""Minute-store benchmark: write the synthetic market with one-minute bars, check it, read it back.

    python benchmarks/bench_minute_store.py [--instruments 100] [--days 120] [--seed 0] [--repeat 3] [--json OUT]

1. ``qcore data synth --freq 1min`` in-process into a fresh folder (best of ``--repeat``): the daily market is
   generated, the one-minute bars are derived from it (exact aggregation, :mod:`qdata_cn.synth_intraday`) and every
   bin is written in one transaction. The minute bars' arithmetic is also timed alone (no files).
2. ``QlibBinProvider.load`` of every 1min field, all instruments, the whole calendar.
3. ``qcore data check --freq 1min`` of the store.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


class _NoFiles:
    """A transaction stand-in that discards what it is given (times the arithmetic alone)."""

    def write_text(self, *args: object) -> None:
        pass

    def write_bin(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from qdata_cn.binstore import QlibBinProvider
    from qdata_cn.check import check_store
    from qdata_cn.synth import SynthParams, generate, synthesize
    from qdata_cn.synth_intraday import write_minutes

    work = Path(tempfile.mkdtemp(prefix="bench_minute_"))
    store = work / "store"
    try:
        def write() -> None:
            shutil.rmtree(store, ignore_errors=True)
            synthesize(store, instruments=args.instruments, days=args.days, seed=args.seed, freq="1min")

        synth_s = _best(write, args.repeat)
        market = generate(SynthParams(instruments=args.instruments, days=args.days, seed=args.seed))
        bars_s = _best(lambda: write_minutes(market, _NoFiles()), args.repeat)
        provider = QlibBinProvider(store)
        fields = provider.fields("1min")
        symbols = sorted(provider.universe("all"))
        read_s = _best(lambda: provider.load(fields, symbols, freq="1min"), args.repeat)
        began = time.perf_counter()
        findings = check_store(store, "1min")
        check_s = time.perf_counter() - began
        size = sum(p.stat().st_size for p in store.rglob("*.1min.bin"))
        bars = len(provider.calendar("1min"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "instruments": args.instruments + 1,
        "days": args.days,
        "bars_per_instrument": bars,
        "minute_bins_mb": round(size / 2**20, 1),
        "synth_1min_s": round(synth_s, 3),
        "minute_bars_arithmetic_s": round(bars_s, 3),
        "load_all_1min_fields_s": round(read_s, 3),
        "check_1min_s": round(check_s, 3),
        "check_errors": sum(f.severity == "error" for f in findings),
        "machine": platform.platform(),
    }
    for key, value in result.items():
        print(f"{key:<28} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
