"""Each plugin's first registered component works through the kernel, by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qcore.errors import QcoreError
from qcore.kernel import Kernel


class FrameDataset:
    """A dataset over in-memory frames (the minimal :class:`qcore.protocols.Dataset`)."""

    def __init__(self, segments: dict[str, tuple[pd.DataFrame, pd.Series]]) -> None:
        self.segments = segments

    def xy(self, segment: str, data_key: str | None = None):
        return self.segments[segment]


def planted(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([pd.bdate_range("2020-01-01", periods=n // 10), [f"S{i}" for i in range(10)]])
    x = pd.DataFrame(rng.normal(size=(len(index), 3)), index=index, columns=["a", "b", "c"])
    y = pd.Series(0.5 * x["a"] - 2.0 * x["c"] + 0.1 + rng.normal(0, 0.01, len(index)), index=index)
    return x, y


def test_linear_model_recovers_planted_coefficients(kernel: Kernel) -> None:
    train = planted(2000, 0)
    test = planted(500, 1)
    train[0].iloc[3, 1] = np.nan  # incomplete rows are left out of the fit
    model = kernel.create("model", "linear")
    model.fit(FrameDataset({"train": train, "test": test}))
    np.testing.assert_allclose(model.coef_.to_numpy(), [0.5, 0.0, -2.0], atol=0.01)
    assert model.intercept_ == pytest.approx(0.1, abs=0.01)
    pred = model.predict(FrameDataset({"train": train, "test": test}), "test")
    assert np.corrcoef(pred, test[1])[0, 1] > 0.999


def test_ridge_shrinks_and_bad_estimator(kernel: Kernel) -> None:
    data = FrameDataset({"train": planted(500, 2)})
    ols = kernel.create("model", "linear").fit(data)
    ridge = kernel.create("model", "LinearModel", estimator="ridge", alpha=1e4).fit(data)
    assert np.abs(ridge.coef_).sum() < np.abs(ols.coef_).sum()
    with pytest.raises(ValueError, match="estimator must be one of ols, ridge"):
        kernel.create("model", "linear", estimator="lassoo")
    with pytest.raises(QcoreError, match="not fitted"):
        kernel.create("model", "linear").predict(data, "train")


def test_topk_equal_weight(kernel: Kernel) -> None:
    from qbacktest.topk import TopkEqualWeight

    assert "topk_equal_weight" not in kernel.registry("strategy")  # a weights helper, not a strategy
    strategy = TopkEqualWeight(topk=2, risk_degree=0.9)
    scores = pd.Series({"C": 0.3, "A": 0.5, "B": 0.5, "D": np.nan, "E": -1.0})
    weights = strategy.target_weights(scores)
    assert weights.to_dict() == {"A": 0.45, "B": 0.45}
    assert strategy.target_weights(pd.Series([np.nan], index=["X"])).empty
    with pytest.raises(ValueError, match="topk must be >= 1"):
        TopkEqualWeight(topk=0)


def test_twap_schedule(kernel: Kernel) -> None:
    from qrl.twap import TwapExecutor

    assert "twap" not in kernel.registry("executor")  # a schedule, not an executor
    twap = TwapExecutor(n_steps=4, lot_size=100)
    plan = twap.schedule(1050)
    assert plan.tolist() == [300.0, 300.0, 200.0, 250.0]
    assert plan.sum() == 1050
    assert twap.schedule(0).tolist() == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="amount must be"):
        twap.schedule(-1)


def test_mlflow_recorder_sqlite_roundtrip(kernel: Kernel, tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recorder = kernel.create("recorder", "mlflow", tracking_uri=uri, artifact_root=tmp_path / "art")
    run = recorder.start_run("exp", "first")
    run.log_params({"model": {"name": "linear", "kwargs": {"alpha": 0.5}}, "fields": ["a", "b"]})
    run.log_metrics({"ic": 0.05}, step=0)
    run.log_metrics({"ic": 0.07}, step=1)
    run.set_tags({"qcore.version": "test"})
    run.log_artifact("pred", pd.DataFrame({"score": [1.0, 2.0]}))
    run.end()
    stored = recorder.get_run(run.run_id)
    assert stored["status"] == "FINISHED" and stored["run_name"] == "first"
    assert stored["params"] == {"model.name": "linear", "model.kwargs.alpha": "0.5", "fields": '["a", "b"]'}
    assert stored["metrics"] == {"ic": [[0, 0.05], [1, 0.07]]}
    assert stored["tags"]["qcore.version"] == "test"
    assert stored["artifacts"] == ["pred.parquet"]
    assert (tmp_path / "mlflow.db").exists()
    assert [r["run_id"] for r in recorder.list_runs("exp")] == [run.run_id]
    assert recorder.list_runs("missing") == []


def test_mlflow_default_backend_is_sqlite_in_cwd(kernel: Kernel, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    recorder = kernel.create("recorder", "mlflow")
    assert recorder.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
