"""Write Qlib's daily reports for the variant backtests of ``qlib_variants.json`` (run with Qlib's own Python).

    .bench/qlib-baseline/bin/python tests/qbacktest/data/make_qlib_variants.py

Every variant is the golden backtest (golden store and scores, 2018-10-17..2019-04-22, SH000300, 0.095 limit,
close price, costs 0.0005/0.0015/5, lots of 100, 1e8 cash) with the strategy/exchange/executor/account changes the
JSON lists. pyqlib 0.9.7 wrote the committed files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import qlib
from qlib.backtest import backtest
from qlib.backtest.executor import SimulatorExecutor
from qlib.contrib.strategy.signal_strategy import TopkDropoutStrategy

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "data"
BASE = {"freq": "day", "limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005, "close_cost": 0.0015,
        "min_cost": 5, "trade_unit": 100}


def main() -> None:
    qlib.init(provider_uri=str(DATA / "golden_market"), region="cn", expression_cache=None, dataset_cache=None,
              kernels=1)
    score = pd.read_parquet(DATA / "golden" / "backtest" / "score.parquet")
    variants = json.loads((HERE / "qlib_variants.json").read_text())
    for name, spec in variants.items():
        exchange = dict(BASE, **spec.get("exchange", {}))
        for key in ("deal_price", "limit_threshold", "volume_threshold"):
            if isinstance(exchange.get(key), list):
                exchange[key] = tuple(exchange[key])
        strategy = TopkDropoutStrategy(signal=score, **spec["strategy"])
        executor = SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True, **spec.get("executor", {}))
        portfolio, _ = backtest(start_time="2018-10-17", end_time="2019-04-22", strategy=strategy, executor=executor,
                                benchmark="SH000300", account=spec.get("account", 1e8), exchange_kwargs=exchange)
        portfolio["1day"][0].to_parquet(HERE / "qlib_variants" / f"{name}.parquet")


if __name__ == "__main__":
    main()
