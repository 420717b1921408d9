"""Golden files of Qlib's nested decision execution (issue 15): Qlib's nested example on a small minute store.

    .venv/bin/python tests/data/nested/make_nested_golden.py [--qlib-python .bench/qlib-baseline-pd2/bin/python]

Step 1 (qcore's environment) writes ``store/``: the synthetic market (8 stocks + SH000300, 8 days from 2020-04-01,
seed 3, 1-minute bars) with the fields Qlib's nested example reads (``close change factor volume``; the daily bars
keep every field), and plants three events on names the strategy trades: a limit-up from 09:30 to 10:29, a
suspension from 13:00 to the close, and a limit-up all day; then ``score.parquet`` (the scores TopkDropout reads).
Step 2 runs Qlib 0.9.7 (pandas < 3: ``../shared/tools/qlib-baseline-env.sh --pandas2``) on it, once per scenario of
``SCENARIOS``, and writes for each level (``1day``, ``30min``, ``5min``): ``<scenario>/report_<freq>.parquet``,
``indicators_<freq>.parquet``, ``positions_<freq>.parquet`` (amount, price, weight, count) and
``orders_<freq>.parquet`` (Qlib's order indicators; Qlib overwrites an inner level's ``trade_price`` with
``deal × price`` while aggregating it, so only the outermost level's is kept). ``golden.json`` records the versions.

Qlib is given the last day's end (``YYYY-MM-DD 23:59:59``) as ``end_time``: with a date there, Qlib loads its minute
quotes up to midnight before the last day, so nothing can trade that day (a Qlib bug; qcore reads a date as the
whole day).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
STORE = HERE / "store"
START, END = "2020-04-01", "2020-04-09"
TOPK, N_DROP = 4, 2
EXCHANGE = {"freq": "1min", "limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005,
            "close_cost": 0.0015, "min_cost": 5}  # fmt: skip
#: scenario -> exchange options on top of EXCHANGE
SCENARIOS = {"example": {}, "volume": {"volume_threshold": ["current", "$volume * 0.02"]}}
MINUTE_FIELDS = ("close", "change", "factor", "volume")


def qlib_executor() -> dict:
    """Qlib's nested example: day → SBBStrategyEMA (1-minute EMA) at 30min → TWAPStrategy at 5min."""
    return {"class": "NestedExecutor", "module_path": "qlib.backtest.executor", "kwargs": {
        "time_per_step": "day", "generate_portfolio_metrics": True, "track_data": True,
        "inner_strategy": {"class": "SBBStrategyEMA", "module_path": "qlib.contrib.strategy.rule_strategy",
                           "kwargs": {"instruments": "csi300", "freq": "1min"}},
        "inner_executor": {"class": "NestedExecutor", "module_path": "qlib.backtest.executor", "kwargs": {
            "time_per_step": "30min", "generate_portfolio_metrics": True,
            "inner_strategy": {"class": "TWAPStrategy", "module_path": "qlib.contrib.strategy.rule_strategy"},
            "inner_executor": {"class": "SimulatorExecutor", "module_path": "qlib.backtest.executor",
                               "kwargs": {"time_per_step": "5min", "generate_portfolio_metrics": True}}}}}}  # fmt: skip


def _qcore_fills(kernel, provider, score):
    """The fills of qcore's run of the example on the store as it is."""
    from qbacktest.backtest import run_backtest

    strategy = kernel.create("strategy", "TopkDropout", topk=TOPK, n_drop=N_DROP, signal=score)
    executor = kernel.create("executor", "NestedExecutor", **qlib_executor()["kwargs"])
    result = run_backtest(provider, strategy, executor, start=START, end=END, account=1e8, benchmark="SH000300",
                          exchange_kwargs=EXCHANGE, kernel=kernel)  # fmt: skip
    fills = result.fills
    return fills[fills["deal_amount"] > 0]


def build_store() -> dict:
    """Step 1: the store, its planted events and the scores (qcore's environment)."""
    import shutil

    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from qcore.kernel import Kernel
    from tests.qbacktest.nested_market import build_store as synth
    from tests.qbacktest.nested_market import patch_minutes, scores

    if STORE.exists():
        shutil.rmtree(STORE)
    synth(STORE, instruments=8, days=8, seed=3)
    for path in STORE.glob("features/*/*.1min.bin"):
        if path.name.split(".")[0] not in MINUTE_FIELDS:
            path.unlink()
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(STORE))
    score = scores(provider, seed=1)
    days = provider.calendar("day")
    fills = _qcore_fills(kernel, provider, score)

    used: set[pd.Timestamp] = set()

    def traded(direction: str) -> tuple[str, pd.Timestamp]:
        """A name the strategy trades in ``direction`` on the first day from the third on not used yet."""
        for day in days[2:-1]:
            on_day = fills[(fills["datetime"].dt.normalize() == day) & (fills["direction"] == direction)]
            if day not in used and len(on_day):
                used.add(day)
                return sorted(set(on_day["instrument"]))[0], day
        raise RuntimeError(f"no day left with a {direction}")

    # the events land on names the strategy trades that day (in a run without them)
    nan = float("nan")
    events = {}
    for event, direction, first, last, fields in (
        ("limit_up_morning", "buy", "09:30", "10:29", {"change": 0.1}),
        ("suspended_afternoon", "sell", "13:00", "14:59", {f: nan for f in MINUTE_FIELDS}),
        ("limit_up_all_day", "buy", "09:30", "14:59", {"change": 0.1}),
    ):
        name, day = traded(direction)
        events[event] = (name, day, first, last, fields)
    for name, day, first, last, fields in events.values():
        patch_minutes(STORE, name, fields, day + pd.Timedelta(f"{first}:00"), day + pd.Timedelta(f"{last}:00"))
    score.to_frame().to_parquet(HERE / "score.parquet")
    return {name: [sym, str(day.date()), first, last] for name, (sym, day, first, last, _) in events.items()} | {
        "_np": np.__version__}


def qlib_worker(out: str) -> None:
    """Step 2: Qlib's nested example on the store, per scenario (Qlib's pandas-2 environment)."""
    import pandas as pd
    import qlib

    qlib.init(provider_uri=str(STORE), region="cn", expression_cache=None, dataset_cache=None, kernels=1)
    from qlib.backtest import backtest

    score = pd.read_parquet(HERE / "score.parquet")["score"]
    for scenario, extra in SCENARIOS.items():
        folder = Path(out) / scenario
        folder.mkdir(parents=True, exist_ok=True)
        exchange = dict(EXCHANGE, **{k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()})
        strategy = {"class": "TopkDropoutStrategy", "module_path": "qlib.contrib.strategy.signal_strategy",
                    "kwargs": {"signal": score, "topk": TOPK, "n_drop": N_DROP}}  # fmt: skip
        portfolio, indicator = backtest(start_time=START, end_time=f"{END} 23:59:59", strategy=strategy,
                                        executor=qlib_executor(), benchmark="SH000300", account=1e8,
                                        exchange_kwargs=exchange)  # fmt: skip
        for freq, (report, positions) in portfolio.items():
            report.to_parquet(folder / f"report_{freq}.parquet")
            count = f"count_{'day' if freq == '1day' else freq}"
            rows = [{"datetime": when, "instrument": code, "amount": float(v["amount"]), "price": float(v["price"]),
                     "weight": float(v["weight"]), "count": float(v.get(count, float("nan")))}
                    for when, position in positions.items() for code, v in position.position.items()
                    if isinstance(v, dict)]  # fmt: skip
            pd.DataFrame(rows).set_index(["datetime", "instrument"]).sort_index().to_parquet(
                folder / f"positions_{freq}.parquet")  # fmt: skip
        for freq, (frame, obj) in indicator.items():
            frame.to_parquet(folder / f"indicators_{freq}.parquet")
            parts = []
            for when, table in obj.order_indicator_his.items():
                data = {k: pd.Series(v.data, index=list(v.index), dtype="float64") for k, v in table.data.items()}
                if not data:
                    continue
                part = pd.DataFrame(data)
                part.index.name = "instrument"
                part["datetime"] = when
                parts.append(part.reset_index())
            orders = pd.concat(parts).set_index(["datetime", "instrument"]).sort_index()
            if freq != "1day":
                orders = orders.drop(columns=["trade_price"])
            orders.to_parquet(folder / f"orders_{freq}.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qlib-python", default=str(ROOT / ".bench" / "qlib-baseline-pd2" / "bin" / "python"))
    parser.add_argument("--qlib-worker", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.qlib_worker:
        qlib_worker(args.qlib_worker)
        return
    events = build_store()
    numpy_version = events.pop("_np")
    subprocess.run([args.qlib_python, __file__, "--qlib-worker", str(HERE)], check=True)
    versions = subprocess.run([args.qlib_python, "-c", "import qlib, pandas, numpy; print(qlib.__version__, "
                               "pandas.__version__, numpy.__version__)"], check=True, capture_output=True,
                              text=True).stdout.split()  # fmt: skip
    golden = {"qlib": versions[0], "pandas": versions[1], "numpy": versions[2], "qcore_numpy": numpy_version,
              "start": START, "end": END, "topk": TOPK, "n_drop": N_DROP, "exchange": EXCHANGE,
              "scenarios": SCENARIOS, "events": events}  # fmt: skip
    (HERE / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
