#!/usr/bin/env python
"""Point-in-time benchmark: ``P(...)`` expressions with qcore's vectorised collapse and with Qlib's ``D.features``.

    python benchmarks/bench_pit.py [--instruments 300] [--days 2500] [--qlib-instruments 30] [--no-qlib] [--json OUT]

A cached synthetic store (``.bench/stores/synth_<N>x<D>_s0``) gets quarterly reports for every instrument (10 years,
30-120 day publication lags, amendments; ``qcore data import-pit`` into ``financial/``). qcore evaluates
:data:`EXPRESSIONS` on every instrument and day (best of ``--repeat``). Qlib 0.9.7 (its own environment, a fresh
process, no caches) evaluates them on the first ``--qlib-instruments`` instruments only: its ``P`` loops over every
day and instrument in Python and would take hours on the whole store. The ratio is therefore per instrument-day
(Qlib's seconds per cell / ours), and Qlib's values are compared with ours on the cells it returns.
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
import pandas as pd
from _common import default_qlib_python, ensure_store, store_path

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
    """Ten years of quarterly EPS for every instrument, imported with ``import_pit`` (skipped when present)."""
    if (store / "financial").is_dir():
        return
    from qdata_cn.pit_import import import_pit

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--qlib-instruments", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-qlib", action="store_true")
    parser.add_argument("--qlib-python", default=default_qlib_python())
    parser.add_argument("--json", dest="json_out", default=None)
    args = parser.parse_args()

    import qcore
    from qcore.expr.engine import ExpressionEngine

    store = ensure_store(store_path(args.instruments, args.days, 0), args.instruments, args.days, 0)
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
    result: dict[str, object] = {"store": str(store), "cells": cells, "qcore_s": min(times),
                                 "qcore_us_per_cell": min(times) / cells * 1e6}  # fmt: skip
    if not args.no_qlib:
        symbols = sorted(provider.universe("all"))[: args.qlib_instruments]
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
                   "ratio_per_cell": per_cell / result["qcore_us_per_cell"], "values_equal": True}  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
