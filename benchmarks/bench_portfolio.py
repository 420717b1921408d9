"""Enhanced indexing against Qlib's ``EnhancedIndexingStrategy``: 300 instruments × 500 trading days.

Both engines run the same synthetic store (with a ``$csi300_weight`` field added: the csi300 members weighted by
their 20-day traded value, so Qlib finds its benchmark weights where it looks), the same scores, the same daily
risk data (a 10-factor PCA model over 240 days, built once by ``qcore risk build``'s code as Parquet; the Qlib
worker converts it to the ``.pkl`` files Qlib reads before its clock starts), the same optimiser settings
(``lamb=1, delta=0.2, b_dev=0.01``) and Qlib's benchmark exchange. Qlib runs in its own environment (ECOS
installed: without it Qlib's optimiser silently keeps the current weights); only the ``backtest(...)`` call is
timed there, and only ``run_backtest(...)`` here. Both record their daily target weights. Given the same inputs (Qlib's
holdings each day) the weights must agree to 1e-4; end to end the two runs' holdings drift apart by a lot here and
there (rounding to lots feeds the next day's turnover limit), so that difference is reported, not required.

    .venv/bin/python benchmarks/bench_portfolio.py [--days 500] [--qlib-python PATH] [--skip-qlib]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import default_qlib_python, ensure_store, store_path

ACCOUNT = 1e8
WINDOW = 240
OPTIMIZER = {"lamb": 1.0, "delta": 0.2, "b_dev": 0.01}
EXCHANGE = {"freq": "day", "limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
            "close_cost": 0.0015, "min_cost": 5, "trade_unit": 100}  # fmt: skip
WEIGHT_FIELD = "csi300_weight"


def qlib_worker(store: str, score_path: str, riskdata: str, start: str, end: str, out: str) -> None:
    """Run Qlib's enhanced indexing (in the Qlib environment); write its target weights, report and wall time."""
    import numpy as np
    import pandas as pd
    import qlib
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.strategy.signal_strategy import EnhancedIndexingStrategy

    pkl_root = Path(out) / "riskdata_pkl"  # Qlib reads .pkl (or .csv/.h5): convert before the clock starts
    for day in sorted(Path(riskdata).iterdir()):
        if not (day.is_dir() and day.name.isdigit()):
            continue
        target = pkl_root / day.name
        if (target / "specific_risk.pkl").exists():
            continue
        target.mkdir(parents=True, exist_ok=True)
        pd.read_parquet(day / "factor_exp.parquet").to_pickle(target / "factor_exp.pkl")
        pd.read_parquet(day / "factor_cov.parquet").to_pickle(target / "factor_cov.pkl")
        pd.read_parquet(day / "specific_risk.parquet")["specific_risk"].to_pickle(target / "specific_risk.pkl")
    qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=2)
    score = pd.read_parquet(score_path)
    targets: dict = {}

    class Recording(EnhancedIndexingStrategy):
        def generate_target_weight_position(self, score, current, trade_start_time, trade_end_time):
            out = super().generate_target_weight_position(score, current, trade_start_time, trade_end_time)
            if out is not None:
                targets[pd.Timestamp(trade_start_time)] = dict(out)
            return out

    calls: list = []

    class RecordingOptimizer:
        """Qlib's optimiser, with each day's inputs and output kept (for the same-inputs comparison)."""

        def __init__(self, inner) -> None:
            self.inner = inner

        def __call__(self, **kw):
            w = self.inner(**kw)
            calls.append({k: kw[k] for k in ("r", "w0", "wb", "mfh", "mfs")} | {"w": w})
            return w

    began = time.perf_counter()
    strategy = Recording(signal=score, riskmodel_root=str(pkl_root), market="csi300", risk_degree=0.95,
                         optimizer_kwargs=dict(OPTIMIZER))  # fmt: skip
    strategy.optimizer = RecordingOptimizer(strategy.optimizer)
    executor = SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True)
    portfolio, _ = backtest(start_time=start, end_time=end, strategy=strategy, executor=executor,
                            benchmark="SH000300", account=ACCOUNT, exchange_kwargs=dict(EXCHANGE))  # fmt: skip
    seconds = time.perf_counter() - began
    days = sorted(targets)
    frames = [pd.DataFrame({k: np.ravel(call[k]) for k in ("r", "w0", "wb", "mfh", "mfs", "w")}).assign(day=day)
              for day, call in zip(days, calls, strict=True)]  # fmt: skip
    pd.concat(frames).reset_index(drop=True).to_parquet(Path(out) / "qlib_ei_calls.parquet")
    portfolio["1day"][0].to_parquet(Path(out) / "qlib_ei_report.parquet")
    _weights_frame(targets).to_parquet(Path(out) / "qlib_ei_weights.parquet")
    (Path(out) / "qlib_ei_time.json").write_text(json.dumps({"seconds": seconds}))


def _weights_frame(targets: dict) -> object:
    import pandas as pd

    rows = [(d, n, w) for d, weights in targets.items() for n, w in weights.items()]
    frame = pd.DataFrame(rows, columns=["datetime", "instrument", "weight"])
    return frame.set_index(["datetime", "instrument"]).sort_index()


def add_weight_field(store: Path, target: Path) -> Path:
    """A copy of ``store`` with ``$csi300_weight``: members × Mean($amount, 20), normalised per day."""
    if (target / "features" / "sh000300" / f"{WEIGHT_FIELD}.day.bin").exists():
        return target
    import numpy as np

    from qcore.kernel import Kernel
    from qcore.types import membership_mask

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(store, target)
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(target))
    calendar = provider.calendar()
    universe = provider.universe("csi300")
    names = sorted(provider.universe("all"))
    panel = provider.load(["amount"], names)
    amount = panel["amount"].astype(np.float64)
    mean20 = np.full_like(amount, np.nan)
    csum = np.nancumsum(np.nan_to_num(amount), axis=0)
    mean20[19:] = (csum[19:] - np.vstack([np.zeros((1, len(names))), csum[:-20]])) / 20
    members = membership_mask(universe, calendar, names)
    cap = np.where(members & np.isfinite(mean20) & (mean20 > 0), mean20, 0.0)
    total = cap.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, cap / np.where(total > 0, total, 1), 0.0).astype(np.float32)
    for j, name in enumerate(names):
        header = np.array([0.0], dtype="<f4")
        path = target / "features" / name.lower() / f"{WEIGHT_FIELD}.day.bin"
        path.write_bytes(header.tobytes() + weights[:, j].astype("<f4").tobytes())
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=500, help="trading days of the backtest")
    parser.add_argument("--qlib-python", default=default_qlib_python())
    parser.add_argument("--skip-qlib", action="store_true", help="time qcore only")
    parser.add_argument("--qlib-worker", nargs=6, metavar=("STORE", "SCORE", "RISK", "START", "END", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.qlib_worker:
        qlib_worker(*args.qlib_worker)
        return

    import numpy as np
    import pandas as pd
    from bench_backtest import make_scores
    from qbacktest.backtest import run_backtest
    from qportfolio.optimizer.enhanced import EnhancedIndexingOptimizer
    from qportfolio.risk.build import RiskBuildSpec, build_risk_data
    from qportfolio.strategies.enhanced import EnhancedIndexing

    from qcore.kernel import Kernel

    total_days = WINDOW + args.days + 60
    base = ensure_store(store_path(args.instruments, max(total_days, 1000), 0), args.instruments,
                        max(total_days, 1000), 0)  # fmt: skip
    store = add_weight_field(base, base.parent / f"{base.name}_weights")
    score_path = store.parent / f"{store.name}_score.parquet"
    if not score_path.exists():
        make_scores(store, score_path)
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    calendar = provider.calendar()
    first = WINDOW + 40
    start, end = calendar[first + 1], calendar[first + args.days]
    riskdata = store.parent / f"{store.name}_riskdata"
    began = time.perf_counter()
    built = build_risk_data(provider, kernel.registry("operator"),
                            RiskBuildSpec(root=str(riskdata), universe="csi300", start=calendar[first],
                                          end=calendar[first + args.days - 1], window=WINDOW))  # fmt: skip
    print(f"risk data: {built.written} day(s) built, {built.skipped} kept, {time.perf_counter() - began:.2f} s")
    scores = pd.read_parquet(score_path)
    import cvxpy  # noqa: F401  (imported before the clock, as Qlib's strategy module imports it)

    targets: dict = {}

    class Recording(EnhancedIndexing):
        def target_weights(self, step):
            out = super().target_weights(step)
            if out is not None:
                targets[step.start] = dict(out)
            return out

    began = time.perf_counter()
    strategy = Recording(signal=scores, riskmodel_root=str(riskdata), market="csi300",
                         benchmark={"field": f"${WEIGHT_FIELD}"}, optimizer_kwargs=dict(OPTIMIZER))  # fmt: skip
    result = run_backtest(provider, strategy, start=start, end=end, account=ACCOUNT, benchmark="SH000300",
                          exchange_kwargs=dict(EXCHANGE), kernel=kernel)  # fmt: skip
    ours_seconds = time.perf_counter() - began
    n_bars = len(result.report)
    members = len(strategy.riskdata.get(strategy.riskdata.days[-1])[0].instruments)
    print(f"store {store}: {len(provider.universe('all'))} instruments; {n_bars} bars {start.date()}..{end.date()}; "
          f"enhanced indexing over {members} names a day, {OPTIMIZER}")  # fmt: skip
    print(f"qcore: {ours_seconds:.2f} s ({ours_seconds / n_bars * 1000:.1f} ms a bar; solver "
          f"{strategy.optimizer.solver})")  # fmt: skip
    out = store.parent
    _weights_frame(targets).to_parquet(out / "qcore_ei_weights.parquet")
    if args.skip_qlib:
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCORE_")}
    proc = subprocess.run([args.qlib_python, __file__, "--qlib-worker", str(store), str(score_path), str(riskdata),
                           str(start.date()), str(end.date()), str(out)], env=env, capture_output=True,
                          text=True)  # fmt: skip
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"Qlib run failed with exit code {proc.returncode}")
    qlib_seconds = json.loads((out / "qlib_ei_time.json").read_text())["seconds"]
    theirs = pd.read_parquet(out / "qlib_ei_weights.parquet")["weight"]
    ours = _weights_frame(targets)["weight"]
    both = pd.concat({"ours": ours, "qlib": theirs}, axis=1).fillna(0.0)
    diff = float(np.abs(both["ours"] - both["qlib"]).max())
    days = both.index.get_level_values(0).unique()
    print(f"qlib:  {qlib_seconds:.2f} s ({qlib_seconds / n_bars * 1000:.1f} ms a bar)")
    print(f"speed-up: {qlib_seconds / ours_seconds:.1f}x (target >= 10x)")
    print(f"end to end, target weights on {len(days)} days: max absolute difference {diff:.2e} (the holdings drift "
          "apart through lot rounding, which feeds the next day's turnover limit)")  # fmt: skip
    calls = pd.read_parquet(out / "qlib_ei_calls.parquet")
    same_inputs = 0.0
    calendar_days = provider.calendar()
    solver = EnhancedIndexingOptimizer(**OPTIMIZER)
    for day, call in calls.groupby("day"):
        info = calendar_days[calendar_days.get_loc(pd.Timestamp(day)) - 1]
        risk, _ = strategy.riskdata.get(info)
        w = solver(call["r"].to_numpy(), risk.exposures.to_numpy(), risk.factor_cov.to_numpy(),
                   risk.specific_risk.to_numpy() ** 2, call["w0"].to_numpy(), call["wb"].to_numpy(),
                   call["mfh"].to_numpy(bool), call["mfs"].to_numpy(bool))  # fmt: skip
        same_inputs = max(same_inputs, float(np.abs(w - call["w"].to_numpy()).max()))
    print(f"same inputs (Qlib's holdings each day): max absolute weight difference {same_inputs:.2e} over "
          f"{calls['day'].nunique()} days ({'same within 1e-4' if same_inputs <= 1e-4 else 'DIFFERENT'})")
    report = pd.read_parquet(out / "qlib_ei_report.parquet")
    ret_diff = float(np.abs(result.report["return"].to_numpy() - report["return"].to_numpy()).max())
    print(f"daily returns: max absolute difference {ret_diff:.2e}")
    if same_inputs > 1e-4:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
