"""Rolling runs: per-window processor fitting (Qlib #1620), joined signal, child runs, resume, backends, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import qcore
from qcore import hookimpl
from qcore.kernel import Kernel
from qcore.recorders.local import LocalRecorder
from tests.kernel.test_workflow import TinyFeatures, workflow

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "tests" / "data" / "golden_market"


class SpyModel:
    """Ridge by least squares; records every fit (window train span, train feature means) in a class list and
    raises on the fit number ``fail_at`` (counted over the process) when set."""

    fits: ClassVar[list[dict[str, Any]]] = []
    fail_at: ClassVar[int | None] = None

    def fit(self, dataset: Any) -> None:
        if SpyModel.fail_at is not None and len(SpyModel.fits) == SpyModel.fail_at:
            raise RuntimeError("interrupted")
        x, y = dataset.xy("train")
        dates = x.index.get_level_values("datetime")
        SpyModel.fits.append({"train": (dates.min(), dates.max()), "mean": x.mean().to_numpy(),
                              "std": x.std(ddof=0).to_numpy(), "segment": dataset.segments["train"]})  # fmt: skip
        a = np.c_[x.to_numpy(), np.ones(len(x))]
        self.coef = np.linalg.lstsq(a, y.to_numpy(), rcond=None)[0]

    def save(self, folder: Path) -> None:
        np.save(Path(folder) / "coef.npy", self.coef)

    def restore(self, folder: Path) -> None:
        self.coef = np.load(Path(folder) / "coef.npy")

    def predict(self, dataset: Any, segment: str = "test") -> pd.Series:
        x, _ = dataset.xy(segment)
        return pd.Series(np.c_[x.to_numpy(), np.ones(len(x))] @ self.coef, index=x.index)


class SpyPlugin(TinyFeatures):
    @hookimpl
    def qcore_register_models(self, register: Any) -> None:
        register("spy", SpyModel)


@pytest.fixture
def kernel() -> Kernel:
    SpyModel.fits.clear()
    SpyModel.fail_at = None
    return Kernel.load(extra={"tiny": SpyPlugin()}, use_env=False)


def rolling_config(tmp_path: Path, **rolling: Any) -> dict[str, Any]:
    config = workflow(tmp_path, model="spy", records=["signal", "sig_analysis"])
    config["dataset"]["learn_processors"] = ["DropnaLabel"]
    config["rolling"] = {"step": 20, "window": "sliding", "gap": 2, "checkpoint": str(tmp_path / "ck"), **rolling}
    return config


def test_each_window_normalises_with_its_own_train_span(tmp_path: Path, kernel: Kernel) -> None:
    result = qcore.run(rolling_config(tmp_path), kernel=kernel)
    n = int(result.metrics["rolling.windows"])
    assert n == 4 and len(SpyModel.fits) == n
    starts = set()
    for fit in SpyModel.fits:
        seg = fit["segment"]
        assert seg.start <= fit["train"][0] and fit["train"][1] <= seg.end  # the model saw its own train span
        # ZScoreNorm fitted on this window's train span: its train features have mean 0 and std 1 there
        np.testing.assert_allclose(fit["mean"], 0.0, atol=0.05)
        np.testing.assert_allclose(fit["std"], 1.0, atol=0.05)
        starts.add(seg.start)
    assert len(starts) == n  # sliding: every window trains on another span
    # a processor fitted once on the first window (Qlib #1620) would leave later windows off-centre
    dataset_first = SpyModel.fits[0]["segment"]
    assert SpyModel.fits[-1]["segment"].start > dataset_first.start


def test_joined_signal_child_runs_and_records(tmp_path: Path, kernel: Kernel) -> None:
    result = qcore.run(rolling_config(tmp_path), kernel=kernel)
    recorder = LocalRecorder(tmp_path / "runs")
    parent = recorder.get_run(result.run_id)
    pred = pd.read_parquet(Path(parent["path"]) / "artifacts" / "pred.parquet")
    assert not pred.index.has_duplicates
    dates = pred.index.get_level_values("datetime")
    assert dates.min() == pd.Timestamp("2019-01-02") and dates.max() == pd.Timestamp("2019-04-23")
    assert "signal.IC" in result.metrics
    summary = json.loads((Path(parent["path"]) / "artifacts" / "rolling.json").read_text())
    assert [w["name"] for w in summary["windows"]] == [f"window-{i:03d}" for i in range(4)]
    children = [r for r in recorder.list_runs("wf") if r["run_id"] != result.run_id]
    assert len(children) == 4
    total = 0
    for child in children:
        info = recorder.get_run(child["run_id"])
        assert info["tags"]["qcore.parent_run_id"] == result.run_id
        window = next(w for w in summary["windows"] if w["run_id"] == child["run_id"])
        assert info["tags"]["qcore.rolling.window"] == window["name"]
        own = pd.read_parquet(Path(info["path"]) / "artifacts" / "pred.parquet")
        own_dates = own.index.get_level_values("datetime")
        assert own_dates.min() >= pd.Timestamp(window["predict"][0])
        assert own_dates.max() <= pd.Timestamp(window["predict"][1])
        pd.testing.assert_frame_equal(own, pred.loc[own.index])
        total += len(own)
    assert total == len(pred)


def test_interrupted_run_resumes_without_retraining_finished_windows(tmp_path: Path, kernel: Kernel) -> None:
    config = rolling_config(tmp_path)
    SpyModel.fail_at = 2  # the third window's fit raises: two windows finished
    with pytest.raises(RuntimeError, match="interrupted"):
        qcore.run(config, kernel=kernel)
    assert len(SpyModel.fits) == 2
    assert sorted(p.name for p in (tmp_path / "ck").glob("*.json")) == ["window-000.json", "window-001.json"]
    SpyModel.fail_at = None
    resumed = qcore.run(config, kernel=kernel)
    assert len(SpyModel.fits) == 4  # only windows 2 and 3 were trained again
    assert resumed.metrics["rolling.windows_resumed"] == 2.0
    SpyModel.fits.clear()
    fresh = qcore.run({**config, "rolling": {**config["rolling"], "checkpoint": str(tmp_path / "ck2")}},
                      kernel=kernel)  # fmt: skip
    assert len(SpyModel.fits) == 4
    a = pd.read_parquet(resumed.artifacts["pred"])
    b = pd.read_parquet(fresh.artifacts["pred"])
    pd.testing.assert_frame_equal(a, b)


def test_resume_false_retrains_everything(tmp_path: Path, kernel: Kernel) -> None:
    qcore.run(rolling_config(tmp_path), kernel=kernel)
    qcore.run(rolling_config(tmp_path, resume=False), kernel=kernel)
    assert len(SpyModel.fits) == 8


def test_processes_backend_gives_the_serial_signal(tmp_path: Path, kernel: Kernel) -> None:
    config = rolling_config(tmp_path, step="1M", backend={"name": "processes", "kwargs": {"max_workers": 2}})
    config["model"] = {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 1.0}}  # installed: spawn finds it
    config_serial = {**config, "rolling": {**config["rolling"], "backend": "serial",
                                           "checkpoint": str(tmp_path / "ck-serial")}}  # fmt: skip
    parallel = qcore.run(config, kernel=kernel)
    serial = qcore.run(config_serial, kernel=kernel)
    assert parallel.metrics["rolling.windows_trained"] == 4.0
    expected = pd.read_parquet(serial.artifacts["pred"])
    pd.testing.assert_frame_equal(pd.read_parquet(parallel.artifacts["pred"]), expected)


def test_cli_rolling_runs_the_example_on_a_small_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qcore.cli import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QCORE_DATA", str(STORE))
    args = ["rolling", str(ROOT / "examples" / "workflow_rolling_lightgbm.yaml"),
            "--set", "data.universe=csi_like", "--set", "rolling.step=1M",
            "--set", "dataset.segments={train: [2018-01-02, 2018-09-28], valid: [2018-10-08, 2018-12-14], "
                     "test: [2019-01-02, 2019-03-29]}",
            "--set", "backtest.end=2019-03-28", "--set", "backtest.strategy.kwargs.topk=10",
            "--set", "backtest.strategy.kwargs.n_drop=2",
            "--set", "model.kwargs={num_leaves: 8, max_depth: 3, num_threads: 1, num_boost_round: 20}"]
    out = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "rolling.windows" in out.output and "IC" in out.output
    runs = LocalRecorder(tmp_path / "runs").list_runs("rolling_lightgbm_alpha158")
    assert len(runs) == 1 + 3


def test_cli_rolling_without_a_rolling_section_is_refused(tmp_path: Path) -> None:
    from qcore.cli import cli

    out = CliRunner().invoke(cli, ["rolling", str(ROOT / "examples" / "workflow_lightgbm_alpha158.yaml")])
    assert out.exit_code not in (0, 70)
    assert "rolling:" in out.output


def test_mlflow_nests_a_window_run_under_its_parent(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from qrecorder_mlflow.recorder import MlflowRecorder

    recorder = MlflowRecorder(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "art")
    parent = recorder.start_run("wf")
    child = recorder.start_run("wf", "window-000")
    child.set_tags({"qcore.parent_run_id": parent.run_id, "qcore.rolling.window": "window-000"})
    child.end()
    parent.end()
    from mlflow.tracking import MlflowClient

    assert recorder.get_run(child.run_id)["tags"]["qcore.parent_run_id"] == parent.run_id
    tags = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(child.run_id).data.tags  # qcore hides mlflow.*
    assert tags["mlflow.parentRunId"] == parent.run_id
