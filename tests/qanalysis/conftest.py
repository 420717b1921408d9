"""Two small real runs on the golden store (a linear model, TopkDropout backtests that differ in topk), recorded
locally: what ``qcore runs compare --html``, the report-size and the browser tests read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"


def small_workflow(runs: Path, topk: int, n_drop: int) -> dict[str, Any]:
    """A complete workflow (default records: signal, sig_analysis, analysis, port_analysis) on the golden store."""
    return {
        "experiment": "compare",
        "data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(STORE)}}, "market_rules": "cn",
                 "universe": "csi_like"},
        "dataset": {"features": "alpha158",
                    "segments": {"train": ["2018-01-02", "2018-09-28"], "test": ["2019-01-02", "2019-04-23"]},
                    "infer_processors": [{"name": "ZScoreNorm", "kwargs": {"fields_group": "feature"}},
                                         {"name": "Fillna", "kwargs": {"fields_group": "feature"}}],
                    "learn_processors": ["DropnaLabel"]},
        "model": {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 10.0}},
        "backtest": {"strategy": {"name": "TopkDropout", "kwargs": {"topk": topk, "n_drop": n_drop}},
                     "benchmark": "SH000300", "exchange": {"deal_price": "close", "min_cost": 5}},
        "recorder": {"name": "local", "kwargs": {"uri": str(runs)}},
    }  # fmt: skip


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """The runs folder and the two runs' results (``RunResult``: run_id, metrics, artifact paths)."""
    import qcore

    runs = tmp_path_factory.mktemp("compare") / "runs"
    results = [qcore.run(small_workflow(runs, topk, n_drop)) for topk, n_drop in ((5, 1), (8, 2))]
    return runs, results
