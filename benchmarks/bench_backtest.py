"""Backtest speed against Qlib: TopkDropout(topk=50, n_drop=5) over a synthetic 300-stock × 1000-day market.

Both engines run the same store, the same scores and Qlib's benchmark exchange settings (limit 0.095, close price,
open 0.0005 / close 0.0015 / min 5, lots of 100, 1e8 cash, SH000300). Qlib runs in its own environment (see
``../shared/tools/qlib-baseline-env.sh``) through this same file (``--qlib-worker``); only the
``qlib.backtest.backtest(...)`` call is timed there, and only ``run_backtest(...)`` here (both load their quotes
inside the timed call). The reports must agree to 1e-6 relative on every column and date.

    .venv/bin/python benchmarks/bench_backtest.py [--store DIR] [--qlib-python PATH] [--skip-qlib]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import default_qlib_python, ensure_store, store_path

TOPK, N_DROP = 50, 5
ACCOUNT = 1e8
EXCHANGE = {"freq": "day", "limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
            "close_cost": 0.0015, "min_cost": 5, "trade_unit": 100}  # fmt: skip
COLUMNS = ["account", "return", "total_turnover", "turnover", "total_cost", "cost", "value", "cash", "bench"]


def qlib_worker(store: str, score_path: str, start: str, end: str, out: str) -> None:
    """Run Qlib's backtest (in the Qlib environment) and write its report and wall time."""
    import pandas as pd
    import qlib
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.strategy.signal_strategy import TopkDropoutStrategy

    qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=2)
    score = pd.read_parquet(score_path)
    began = time.perf_counter()
    strategy = TopkDropoutStrategy(signal=score, topk=TOPK, n_drop=N_DROP, risk_degree=0.95)
    executor = SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True)
    portfolio, _ = backtest(start_time=start, end_time=end, strategy=strategy, executor=executor,
                            benchmark="SH000300", account=ACCOUNT, exchange_kwargs=dict(EXCHANGE))  # fmt: skip
    seconds = time.perf_counter() - began
    report, _ = portfolio["1day"]
    report.to_parquet(Path(out) / "qlib_report.parquet")
    (Path(out) / "qlib_time.json").write_text(json.dumps({"seconds": seconds}))


def make_scores(store: Path, path: Path, seed: int = 0, a: float = 0.09) -> None:
    """A noisy function of the future return, like the golden score: ``a*u + N(0, 1)`` with
    ``u = (rank pct of Ref($close,-2)/Ref($close,-1)-1 per date - 0.5) * sqrt(12)`` (NaN label → 0)."""
    import numpy as np
    import pandas as pd

    from qcore.kernel import Kernel

    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    from qcore.expr.engine import ExpressionEngine

    stocks = sorted(s for s in provider.universe("all") if not s.startswith("SH000"))
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    label = engine.evaluate({"label": "Ref($close, -2)/Ref($close, -1) - 1"}, stocks)["label"].astype("float64")
    u = (label.groupby(level="datetime").rank(pct=True) - 0.5) * np.sqrt(12)
    u = u.fillna(0.0)
    rng = np.random.default_rng(seed * 7919 + 3)
    score = a * u + rng.standard_normal(len(u))
    frame = pd.DataFrame({"score": score.to_numpy()}, index=u.index).sort_index()
    frame.to_parquet(path)


def compare(ours, theirs) -> tuple[bool, float, float]:
    """``(same within rtol 1e-6 / atol 1e-12, largest relative difference where |qlib| >= 1e-9, largest absolute
    difference where |qlib| < 1e-9)``; columns and dates must be identical."""
    import numpy as np
    import pandas as pd

    if list(ours.columns) != COLUMNS or list(theirs.columns) != COLUMNS:
        raise AssertionError(f"columns differ: {list(ours.columns)} vs {list(theirs.columns)}")
    if not pd.DatetimeIndex(ours.index).as_unit("ns").equals(pd.DatetimeIndex(theirs.index).as_unit("ns")):
        raise AssertionError("dates differ")
    a, b = ours.to_numpy(dtype=float), theirs.to_numpy(dtype=float)
    big = np.abs(b) >= 1e-9
    rel = float(np.max(np.abs(a - b)[big] / np.abs(b[big]))) if big.any() else 0.0
    tiny = float(np.max(np.abs(a - b)[~big])) if (~big).any() else 0.0
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-12)), rel, tiny


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=None, help="store to use (built if missing)")
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--qlib-python", default=default_qlib_python())
    parser.add_argument("--skip-qlib", action="store_true", help="time qcore only")
    parser.add_argument("--repeat", type=int, default=3, help="qcore runs (the best is reported)")
    parser.add_argument("--qlib-worker", nargs=5, metavar=("STORE", "SCORE", "START", "END", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.qlib_worker:
        qlib_worker(*args.qlib_worker)
        return

    import pandas as pd
    from qbacktest.backtest import run_backtest
    from qbacktest.strategies import TopkDropout

    from qcore.kernel import Kernel

    store = Path(args.store) if args.store else store_path(args.instruments, args.days, 0)
    ensure_store(store, args.instruments, args.days, 0)
    score_path = store.parent / f"{store.name}_score.parquet"
    if not score_path.exists():
        make_scores(store, score_path)
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    calendar = provider.calendar()
    start, end = str(calendar[1].date()), str(calendar[-2].date())
    scores = pd.read_parquet(score_path)
    best = float("inf")
    result = None
    for _ in range(max(args.repeat, 1)):
        began = time.perf_counter()
        strategy = TopkDropout(signal=scores, topk=TOPK, n_drop=N_DROP, risk_degree=0.95)
        result = run_backtest(provider, strategy, start=start, end=end, account=ACCOUNT, benchmark="SH000300",
                              exchange_kwargs=dict(EXCHANGE), kernel=kernel)  # fmt: skip
        best = min(best, time.perf_counter() - began)
    assert result is not None
    n_bars = len(result.report)
    print(f"store {store}: {len(provider.universe('all'))} instruments, {len(calendar)} days; {n_bars} bars "
          f"{start}..{end}; TopkDropout(topk={TOPK}, n_drop={N_DROP})")  # fmt: skip
    print(f"qcore: {best:.3f} s (best of {args.repeat})")
    if args.skip_qlib:
        return
    out = store.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCORE_")}
    proc = subprocess.run([args.qlib_python, __file__, "--qlib-worker", str(store), str(score_path), start, end,
                           str(out)], env=env, capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"Qlib run failed with exit code {proc.returncode}")
    qlib_seconds = json.loads((out / "qlib_time.json").read_text())["seconds"]
    theirs = pd.read_parquet(out / "qlib_report.parquet")
    same, rel, tiny = compare(result.report, theirs)
    print(f"qlib:  {qlib_seconds:.3f} s")
    print(f"speed-up: {qlib_seconds / best:.1f}x (target >= 30x)")
    print(f"reports: same columns and dates; max relative difference {rel:.3g} (values >= 1e-9), max absolute "
          f"difference {tiny:.3g} (values < 1e-9): {'identical within 1e-6' if same else 'DIFFERENT'}")  # fmt: skip
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
