from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qcore
from qcore import hookimpl
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.recorders.local import LocalRecorder


def mapping(tmp_path: Path, **data: Any) -> dict[str, Any]:
    return {
        "experiment": "exp",
        "seed": 1,
        "data": {"provider": {"name": "toy", "kwargs": {"n_instruments": 4, "n_days": 30}}, **data},
        "recorder": {"name": "local", "kwargs": {"uri": str(tmp_path)}},
    }


class Spy:
    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def qcore_before_run(self, context: Any) -> None:
        self.events.append(f"before:{type(context.provider).__name__}")

    @hookimpl
    def qcore_after_run(self, context: Any, result: Any) -> None:
        self.events.append(f"after:{result.metrics['data.instruments']:.0f}")

    @hookimpl
    def qcore_on_run_error(self, context: Any, error: BaseException) -> None:
        self.events.append(f"error:{type(error).__name__}")


def test_run_records_metrics_params_tags_and_hooks(tmp_path: Path) -> None:
    spy = Spy()
    kernel = Kernel.load(extra={"spy": spy}, use_env=False)
    result = qcore.run(mapping(tmp_path, start="2021-01-11", end="2021-02-05"), kernel=kernel)
    assert spy.events == ["before:ToyProvider", "after:4"]
    stored = LocalRecorder(tmp_path).get_run(result.run_id)
    assert stored["status"] == "FINISHED"
    assert stored["params"]["data.provider.kwargs.n_instruments"] == 4
    assert stored["tags"]["plugin.qdata_toy"] == "0.0.1"
    assert stored["metrics"]["data.dates"] == [[0, 20.0]]
    # TOY000 lists on day 5 (2021-01-11, the start); TOY001's last day is 2021-01-29, so 2021-02-01..05 are out.
    cells = 20 * 4 - 5
    assert stored["metrics"]["data.member_cells"] == [[0, float(cells)]]
    assert stored["metrics"]["data.coverage.close"] == [[0, 1.0]]
    assert stored["artifacts"] == ["data_summary.json"]


def test_failed_run_is_marked_and_hooks_fire(tmp_path: Path) -> None:
    spy = Spy()
    kernel = Kernel.load(extra={"spy": spy}, use_env=False)
    with pytest.raises(ConfigError, match="unknown universe 'evn'; did you mean 'even'"):
        qcore.run(mapping(tmp_path, universe="evn"), kernel=kernel)
    assert spy.events == ["before:ToyProvider", "error:ConfigError"]
    (run,) = LocalRecorder(tmp_path).list_runs("exp")
    assert run["status"] == "FAILED"


def test_same_config_same_numbers(tmp_path: Path) -> None:
    kernel = Kernel.load(use_env=False)
    a = qcore.run(mapping(tmp_path), kernel=kernel).metrics
    b = qcore.run(mapping(tmp_path), kernel=kernel).metrics
    assert a == b


def test_market_rules_from_third_party(tmp_path: Path) -> None:
    kernel = Kernel.load(use_env=False)
    rules = kernel.create("market_rules", "toy")
    assert (rules.lot_size, rules.settlement_days) == (1, 0)
    assert np.isnan(rules.price_limits(["TOY000"], kernel.create("data_provider", "toy").calendar())).all()
    cn = kernel.create("market_rules", "cn")
    assert (cn.lot_size, cn.settlement_days) == (100, 1)


def test_local_recorder_artifacts_roundtrip(tmp_path: Path) -> None:
    import pandas as pd

    rec = LocalRecorder(tmp_path)
    run = rec.start_run("e", "named")
    run.log_metrics({"loss": 1.0}, step=0)
    run.log_metrics({"loss": 0.5}, step=1)
    frame = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index(["x", "y"], name="k"))
    path = run.log_artifact("pred", frame)
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    run.log_artifact("notes.txt", "hello")
    src = tmp_path / "model.txt"
    src.write_text("tree")
    run.log_artifact("model.txt", src)
    run.end()
    info = rec.get_run(run.run_id)
    assert info["metrics"]["loss"] == [[0, 1.0], [1, 0.5]]
    assert info["artifacts"] == ["model.txt", "notes.txt", "pred.parquet"]
    assert info["run_name"] == "named"
    assert rec.list_runs()[0]["metrics"] == {"loss": 0.5}
    assert not list(Path(info["path"]).rglob("*.tmp"))
    with pytest.raises(Exception, match="unknown run 'nope'"):
        rec.get_run("nope")
    assert json.loads((Path(info["path"]) / "meta.json").read_text())["status"] == "FINISHED"
