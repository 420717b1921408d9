"""Fixtures of the qmeta tests: a small regime-shift market and a rolling workflow over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SHIFT = "2015-10-27"
FEATURES = {
    "ROC1": "$close/Ref($close,1)-1", "ROC5": "$close/Ref($close,5)-1", "ROC20": "$close/Ref($close,20)-1",
    "MOM": "Ref($close,20)/Ref($close,60)-1", "MA20": "$close/Mean($close,20)-1",
    "VABN": "Log($volume+1)-Mean(Log($volume+1),20)", "HL": "($high-$low)/$close",
}  # fmt: skip


@pytest.fixture(scope="session")
def regime_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 stocks × 320 days; the planted reversal turns into momentum on 2015-10-27 (day 200)."""
    from qdata_cn.synth_regime import RegimeShift, synthesize_regime

    path = tmp_path_factory.mktemp("regime") / "store"
    synthesize_regime(path, RegimeShift(SHIFT, reversal=-0.1, momentum=0.0, volume=0.0), instruments=80, days=320,
                      seed=1, fundamentals=False)  # fmt: skip
    return path


def rolling_workflow(store: Path, runs: Path, **extra: Any) -> dict[str, Any]:
    """Ridge on seven price/volume features, retrained every 20 days on an expanding window."""
    config: dict[str, Any] = {
        "experiment": "ddgda_test",
        "data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(store)}}, "universe": "all"},
        "dataset": {
            "features": {"name": "qlib_data_loader", "kwargs": {"config": {
                "feature": [list(FEATURES.values()), list(FEATURES)],
                "label": [["Ref($close,-2)/Ref($close,-1)-1"], ["LABEL0"]]}}},
            "segments": {"train": ["2015-03-02", "2015-08-31"], "test": ["2015-09-01", "2016-04-15"]},
            "learn_processors": ["DropnaLabel", {"name": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}],
            "infer_processors": [{"name": "CSZScoreNorm", "kwargs": {"fields_group": "feature"}},
                                 {"name": "Fillna", "kwargs": {"fields_group": "feature"}}],
        },
        "model": {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 10.0}},
        "rolling": {"step": 20, "window": "expanding", "gap": 2, "checkpoint": str(runs / "checkpoint")},
        "records": ["signal"],
        "recorder": {"name": "local", "kwargs": {"uri": str(runs / "runs")}},
    }
    config.update(extra)
    return config


#: DDG-DA settings sized for the small market (periods of 10 days, 3 periods of history, every feature).
DDGDA_KWARGS = {"step": 10, "hist_steps": 3, "proxy_model": None, "clip_weight": 4.0, "epochs": 100}
