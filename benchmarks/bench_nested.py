"""Nested decision execution against Qlib: Qlib's nested example over a synthetic store with 1-minute bars.

TopkDropout(topk=50, n_drop=5) decides each day; SBB-EMA (its EMA on 1-minute closes, csi300) carries the day's
orders out over 30-minute bars; TWAP each 30-minute order over 5-minute bars; the exchange reads 1-minute bars
(limit 0.095, close price, open 0.0005 / close 0.0015 / min 5, 1e8 cash, SH000300), as in Qlib's
``examples/nested_decision_execution``. Both engines run the same store and scores; Qlib runs in its pandas-2
environment (``../shared/tools/qlib-baseline-env.sh --pandas2 .bench/qlib-baseline-pd2``: its nested path needs
pandas < 3) through this same file (``--qlib-worker``). Only ``qlib.backtest.backtest(...)`` is timed there and only
``run_backtest(...)`` here (both load their quotes inside the timed call). Every level's report, trade indicators
and holdings must agree to 1e-6 relative; peak memory (the process's maximum resident set) is reported for both.

Qlib loads its minute quotes up to ``end_time``: a date there cuts the last day's minutes off (every stock looks
suspended that day), so both runs are given the last day's end (``YYYY-MM-DD 23:59:59``); qcore reads a date ``end``
as the whole day anyway.

    .venv/bin/python benchmarks/bench_nested.py [--instruments 100] [--days 120] [--qlib-python PATH] [--skip-qlib]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import BASELINE_SCRIPT, BENCH_DIR

TOPK, N_DROP = 50, 5
ACCOUNT = 1e8
EXCHANGE = {"freq": "1min", "limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
            "close_cost": 0.0015, "min_cost": 5}  # fmt: skip
LEVELS = ("1day", "30min", "5min")
REPORT = ["account", "return", "total_turnover", "turnover", "total_cost", "cost", "value", "cash", "bench"]
INDICATORS = ["ffr", "pa", "pos", "deal_amount", "value", "count"]


def qlib_executor_config() -> dict:
    """Qlib's nested example executor: day → SBBStrategyEMA at 30min → TWAPStrategy at 5min."""
    return {"class": "NestedExecutor", "module_path": "qlib.backtest.executor", "kwargs": {
        "time_per_step": "day", "generate_portfolio_metrics": True, "track_data": True,
        "inner_strategy": {"class": "SBBStrategyEMA", "module_path": "qlib.contrib.strategy.rule_strategy",
                           "kwargs": {"instruments": "csi300", "freq": "1min"}},
        "inner_executor": {"class": "NestedExecutor", "module_path": "qlib.backtest.executor", "kwargs": {
            "time_per_step": "30min", "generate_portfolio_metrics": True,
            "inner_strategy": {"class": "TWAPStrategy", "module_path": "qlib.contrib.strategy.rule_strategy"},
            "inner_executor": {"class": "SimulatorExecutor", "module_path": "qlib.backtest.executor",
                               "kwargs": {"time_per_step": "5min", "generate_portfolio_metrics": True}}}}}}  # fmt: skip


def peak_mb() -> float:
    """The process's peak resident set size, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def qlib_worker(store: str, score_path: str, start: str, end: str, out: str) -> None:
    """Run Qlib's nested example (in Qlib's pandas-2 environment); write every level's results and the time."""
    import pandas as pd
    import qlib

    qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=1)
    from qlib.backtest import backtest

    score = pd.read_parquet(score_path)["score"]
    strategy = {"class": "TopkDropoutStrategy", "module_path": "qlib.contrib.strategy.signal_strategy",
                "kwargs": {"signal": score, "topk": TOPK, "n_drop": N_DROP}}  # fmt: skip
    before = peak_mb()
    began = time.perf_counter()
    portfolio, indicator = backtest(start_time=start, end_time=end, strategy=strategy, executor=qlib_executor_config(),
                                    benchmark="SH000300", account=ACCOUNT, exchange_kwargs=dict(EXCHANGE))
    seconds = time.perf_counter() - began
    folder = Path(out)
    for freq, (report, positions) in portfolio.items():
        report.to_parquet(folder / f"qlib_report_{freq}.parquet")
        rows = [{"datetime": when, "instrument": code, "amount": float(v["amount"]), "price": float(v["price"]),
                 "weight": float(v["weight"])}
                for when, position in positions.items() for code, v in position.position.items()
                if isinstance(v, dict)]  # fmt: skip
        pd.DataFrame(rows).to_parquet(folder / f"qlib_positions_{freq}.parquet")
    for freq, (frame, _) in indicator.items():
        frame.to_parquet(folder / f"qlib_indicators_{freq}.parquet")
    (folder / "qlib_time.json").write_text(json.dumps({"seconds": seconds, "peak_mb": peak_mb(),
                                                       "peak_mb_before": before}))  # fmt: skip


def ensure_minute_store(instruments: int, days: int, seed: int) -> Path:
    """The cached synthetic store with 1-minute bars (``qcore data synth --freq 1min``)."""
    path = BENCH_DIR / "stores" / f"synth_{instruments}x{days}_s{seed}_1min"
    if (path / "calendars" / "1min.txt").exists():
        return path
    exe = str(Path(sys.executable).with_name("qcore"))
    print(f"building the synthetic minute store {path} ...", file=sys.stderr)
    subprocess.run([exe, "data", "synth", "--freq", "1min", "--out", str(path), "--instruments", str(instruments),
                    "--days", str(days), "--seed", str(seed), *(["--overwrite"] if path.exists() else [])],
                   check=True)  # fmt: skip
    return path


def compare(ours, theirs, columns: list[str]) -> tuple[bool, float]:
    """``(same within rtol 1e-6 / atol 1e-9 with NaN in the same cells, largest relative difference)``; the rows
    must be the same."""
    import numpy as np
    import pandas as pd

    theirs = theirs.copy()
    theirs.index = pd.DatetimeIndex(theirs.index)
    if not pd.DatetimeIndex(ours.index).equals(theirs.index):
        return False, float("inf")
    a, b = ours[columns].to_numpy(dtype=float), theirs[columns].to_numpy(dtype=float)
    same = bool(np.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True))
    big = np.abs(b) >= 1e-9
    rel = float(np.nanmax(np.abs(a - b)[big] / np.abs(b[big]))) if big.any() else 0.0
    return same, rel


def compare_positions(ours, theirs) -> tuple[bool, float]:
    """Holdings (amount, price, weight) at every bar end of a level."""
    import numpy as np

    theirs = theirs.set_index(["datetime", "instrument"]).sort_index()
    if len(ours) != len(theirs) or not ours.index.equals(theirs.index):
        return False, float("inf")
    a = ours[["amount", "price", "weight"]].to_numpy(dtype=float)
    b = theirs[["amount", "price", "weight"]].to_numpy(dtype=float)
    rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-9))) if len(a) else 0.0
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-9)), rel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--qlib-python", default=os.environ.get("QLIB_PYTHON_PD2") or
                        str(BENCH_DIR / "qlib-baseline-pd2" / "bin" / "python"))  # fmt: skip
    parser.add_argument("--skip-qlib", action="store_true", help="time qcore only")
    parser.add_argument("--repeat", type=int, default=3, help="qcore runs (the best is reported)")
    parser.add_argument("--qlib-worker", nargs=5, metavar=("STORE", "SCORE", "START", "END", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.qlib_worker:
        qlib_worker(*args.qlib_worker)
        return

    import pandas as pd
    from bench_backtest import make_scores
    from qbacktest.backtest import run_backtest

    from qcore.expr import engine  # noqa: F401  (imported before timing, as Qlib's are)
    from qcore.kernel import Kernel

    store = ensure_minute_store(args.instruments, args.days, args.seed)
    score_path = store.parent / f"{store.name}_score.parquet"
    if not score_path.exists():
        make_scores(store, score_path)
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    calendar = provider.calendar("day")
    start, end = str(calendar[1].date()), f"{calendar[-2].date()} 23:59:59"
    scores = pd.read_parquet(score_path)["score"]
    before = peak_mb()
    best = float("inf")
    result = None
    for _ in range(max(args.repeat, 1)):
        strategy = kernel.create("strategy", "TopkDropout", topk=TOPK, n_drop=N_DROP, signal=scores)
        executor = kernel.create("executor", "NestedExecutor", **qlib_executor_config()["kwargs"])
        began = time.perf_counter()
        result = run_backtest(provider, strategy, executor, start=start, end=end, account=ACCOUNT,
                              benchmark="SH000300", exchange_kwargs=dict(EXCHANGE), kernel=kernel)  # fmt: skip
        best = min(best, time.perf_counter() - began)
    assert result is not None
    ours_peak = peak_mb()
    bars = {freq: len(level.report) for freq, level in result.levels.items()}
    print(f"store {store}: {len(provider.universe('all'))} instruments, {len(calendar)} days of 1-minute bars; "
          f"{start}..{end}; bars per level {bars}")  # fmt: skip
    print(f"qcore: {best:.3f} s (best of {args.repeat}); peak RSS {ours_peak:.0f} MiB (before the runs "
          f"{before:.0f} MiB)")  # fmt: skip
    if args.skip_qlib:
        return
    if not Path(args.qlib_python).exists():
        raise SystemExit(f"no Qlib environment at {args.qlib_python}: build it with {BASELINE_SCRIPT} --pandas2 "
                         f"{BENCH_DIR / 'qlib-baseline-pd2'}")  # fmt: skip
    out = store.parent / f"{store.name}_qlib"
    out.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCORE_")}
    proc = subprocess.run([args.qlib_python, __file__, "--qlib-worker", str(store), str(score_path), start, end,
                           str(out)], env=env, capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"Qlib run failed with exit code {proc.returncode}")
    timing = json.loads((out / "qlib_time.json").read_text())
    print(f"qlib:  {timing['seconds']:.3f} s; peak RSS {timing['peak_mb']:.0f} MiB (before the run "
          f"{timing['peak_mb_before']:.0f} MiB)")  # fmt: skip
    print(f"speed-up: {timing['seconds'] / best:.1f}x (target >= 50x)")
    identical = True
    for freq in LEVELS:
        level = result.levels[freq]
        same_r, rel_r = compare(level.report, pd.read_parquet(out / f"qlib_report_{freq}.parquet"), REPORT)
        same_i, rel_i = compare(level.indicators, pd.read_parquet(out / f"qlib_indicators_{freq}.parquet"),
                                INDICATORS)  # fmt: skip
        same_p, rel_p = compare_positions(level.positions, pd.read_parquet(out / f"qlib_positions_{freq}.parquet"))
        identical &= same_r and same_i and same_p
        print(f"  {freq:>6}: {len(level.report)} bars; report {'same' if same_r else 'DIFFERENT'} "
              f"(max rel {rel_r:.2g}), indicators {'same' if same_i else 'DIFFERENT'} (max rel {rel_i:.2g}), "
              f"holdings {'same' if same_p else 'DIFFERENT'} (max rel {rel_p:.2g})")  # fmt: skip
    print("results: identical within 1e-6 at every level" if identical else "results: DIFFERENT")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
