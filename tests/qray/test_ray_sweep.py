"""qcore sweep on the session's Ray cluster: the ray backend and Ray Tune's ASHA scheduler give the serial sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qcore.recorders.local import LocalRecorder
from qcore.sweep import make_spec, parse_grid_option, run_sweep
from tests.kernel.test_sweep import tiny_workflow

pytestmark = pytest.mark.slow

COLUMNS = ["model.kwargs.alpha", "model.kwargs.estimator", "signal.IC"]


def spec(**kwargs: Any) -> Any:
    return make_spec([parse_grid_option("model.kwargs.alpha=0.00001,1000000"),
                      parse_grid_option("model.kwargs.estimator=ridge,lasso")], **kwargs)  # fmt: skip


def test_sweeps_on_ray_and_tune_equal_the_serial_one(ray_session: Any, tmp_path: Path) -> None:
    from qray.backend import RayBackend

    serial = run_sweep(tiny_workflow(tmp_path / "s"), spec())
    with RayBackend(address="auto") as backend:
        on_ray = run_sweep(tiny_workflow(tmp_path / "r"), spec(), backend=backend)
    pd.testing.assert_frame_equal(on_ray.table[COLUMNS], serial.table[COLUMNS], check_exact=True)
    tuned = run_sweep(tiny_workflow(tmp_path / "t"), spec(scheduler="asha"))
    pd.testing.assert_frame_equal(tuned.table[COLUMNS], serial.table[COLUMNS], check_exact=True)
    assert serial.best == on_ray.best == tuned.best == 1
    for folder in ("r", "t"):
        runs = LocalRecorder(tmp_path / folder / "runs").list_runs("sw")
        assert sorted(r["run_id"] for r in runs) == sorted(tuned.table["run_id"] if folder == "t"
                                                           else on_ray.table["run_id"])  # fmt: skip
