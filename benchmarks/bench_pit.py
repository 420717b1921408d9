#!/usr/bin/env python
"""Point-in-time benchmark: ``P(...)`` expressions with qcore's vectorised collapse and with Qlib's ``D.features``.

    python benchmarks/bench_pit.py [--instruments 300] [--days 2500] [--qlib-instruments 20] [--no-qlib] [--json OUT]

Defaults are the issue's size: 300 instruments (+ the index) x 2500 trading days (2015-01 to 2025-02), each with a
quarterly EPS report for every quarter from the year before the calendar starts to its last year (2014Q1-2025Q4, 48
quarters; 30-120 day publication lags, ~10% amended 5-90 days later: 15,952 records in all). The store is cached as
``.bench/stores/synth_<N>x<D>_s0_pit`` (its own copy: the reports replace whatever ``financial/`` ``qcore data synth``
wrote, and the shared ``synth_<N>x<D>_s0`` store is left alone). qcore evaluates :data:`EXPRESSIONS` on every instrument
and day (best of ``--repeat``). Qlib 0.9.7 (its own environment, a fresh process, no caches, one kernel) evaluates them
on the first ``--qlib-instruments`` instruments only: its ``P`` loops over every day and instrument in Python (about 4.5
s per instrument: 20 take ~90 s) and would take about half an hour on the whole store. The ratio is therefore per
instrument-day cell (Qlib's seconds per cell / ours on the whole store), and also on the same subset (Qlib's seconds /
ours on those instruments); Qlib's values are compared with ours on every cell both return.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import default_qlib_python, ensure_store, store_path

#: Marks a store whose ``financial/`` holds this script's reports (not the synthetic ones ``qcore data synth`` writes).
REPORTS_MARK = "bench_pit_reports.txt"

EXPRESSIONS = ["P($$eps_q)", "P(Mean($$eps_q, 4))", "PRef($$eps_q, 201903)", "P($$eps_q)/$close"]

QLIB_SCRIPT = r"""
import sys, time
store, symbols, exprs, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(";"), sys.argv[4]
import qlib
from qlib.data import D
qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=1)
began = time.perf_counter()
frame = D.features(symbols, exprs, freq="day")
print(time.perf_counter() - began)
frame.to_pickle(out)
"""


def add_reports(store: Path, seed: int = 0) -> None:
    """Quarterly EPS for every instrument and year of the calendar (and the year before), imported with
    ``import_pit`` into a fresh ``financial/`` (skipped when this script already did it)."""
    if (store / REPORTS_MARK).exists():
        return
    from qdata_cn.pit_import import import_pit

    shutil.rmtree(store / "financial", ignore_errors=True)

    calendar = pd.to_datetime((store / "calendars" / "day.txt").read_text().split())
    symbols = sorted(p.name.upper() for p in (store / "features").iterdir() if p.is_dir())
    rng = np.random.default_rng(seed)
    rows = []
    first_year = calendar[0].year - 1
    for symbol in symbols:
        eps = rng.normal(0.5, 0.2)
        for year in range(first_year, calendar[-1].year + 1):
            for quarter in range(1, 5):
                end = pd.Timestamp(year=year, month=3 * quarter, day=1) + pd.offsets.MonthEnd(0)
                published = end + pd.Timedelta(days=int(rng.integers(30, 121)))
                eps *= 1 + rng.normal(0.02, 0.1)
                rows.append((symbol, published, year * 100 + quarter, "eps_q", round(eps, 6)))
                if rng.random() < 0.1:
                    rows.append((symbol, published + pd.Timedelta(days=int(rng.integers(5, 90))), year * 100 + quarter,
                                 "eps_q", round(eps * 1.05, 6)))  # fmt: skip
    frame = pd.DataFrame(rows, columns=["instrument", "date", "period", "field", "value"])
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_csv(Path(tmp) / "reports.csv", index=False)
        import_pit(Path(tmp) / "reports.csv", store)
    (store / REPORTS_MARK).write_text(f"{len(frame)} eps_q records, seed {seed}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--qlib-instruments", type=int, default=20, help="Qlib's subset (~5 s each)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-qlib", action="store_true")
    parser.add_argument("--qlib-python", default=default_qlib_python())
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()

    import qcore
    from qcore.expr.engine import ExpressionEngine

    plain = store_path(args.instruments, args.days, 0)
    store = ensure_store(plain.with_name(plain.name + "_pit"), args.instruments, args.days, 0)
    add_reports(store)
    kernel = qcore.load_kernel(["qdata_cn", "qops"], autoload=False)
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    times = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        ours = engine.evaluate(EXPRESSIONS, "all")
        times.append(time.perf_counter() - began)
    cells = len(ours)
    n_records = sum(len(r) for r in provider.load_pit("eps_q", sorted(provider.universe("all"))).values())
    result: dict[str, object] = {"store": str(store), "instruments": ours.index.get_level_values(1).nunique(),
                                 "eps_q_records": n_records, "cells": cells, "qcore_s": min(times),
                                 "qcore_us_per_cell": min(times) / cells * 1e6}  # fmt: skip
    print(f"store {store}: {result['instruments']} instruments, {n_records} eps_q records, {cells} instrument-days")
    print(f"qcore {len(EXPRESSIONS)} expressions, all instruments: {min(times):.3f} s (best of {args.repeat}) = "
          f"{result['qcore_us_per_cell']:.3f} us per cell")  # fmt: skip
    if not args.no_qlib:
        symbols = sorted(provider.universe("all"))[: args.qlib_instruments]
        subset = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            engine.evaluate(EXPRESSIONS, symbols)
            subset.append(time.perf_counter() - began)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "qlib.pkl"
            run = subprocess.run([args.qlib_python, "-c", QLIB_SCRIPT, str(store), ",".join(symbols),
                                  ";".join(EXPRESSIONS), str(out)], capture_output=True, text=True, check=True)
            qlib_s = float(run.stdout.strip().splitlines()[-1])
            theirs = pd.read_pickle(out).swaplevel().sort_index()
        common = theirs.index.intersection(ours.index)  # Qlib keeps days outside listing for explicit symbols
        mine = ours.loc[common].to_numpy(dtype=np.float64)
        np.testing.assert_allclose(mine, theirs.loc[common].to_numpy(dtype=np.float64), rtol=2e-6, equal_nan=True)
        per_cell = qlib_s / len(theirs) * 1e6
        result |= {"qlib_cells": len(theirs), "qlib_s": qlib_s, "qlib_us_per_cell": per_cell,
                   "ratio_per_cell": per_cell / result["qcore_us_per_cell"], "qcore_subset_s": min(subset),
                   "ratio_same_subset": qlib_s / min(subset), "values_equal": True}  # fmt: skip
        print(f"qlib  {len(EXPRESSIONS)} expressions, {len(symbols)} instruments: {qlib_s:.2f} s = {per_cell:.1f} us "
              f"per cell ({len(theirs)} cells); qcore on the same instruments {min(subset):.3f} s")  # fmt: skip
        print(f"ratio per cell: {result['ratio_per_cell']:.0f}x; on the same {len(symbols)} instruments: "
              f"{result['ratio_same_subset']:.0f}x (target >= 100x); values equal on {len(common)} cells")  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
