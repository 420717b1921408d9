"""A whole workflow through the runner: data → dataset → model → records, and Qlib config translation."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import qcore
from qcore import hookimpl
from qcore.config import load_config
from qcore.errors import ConfigError, RunError
from qcore.kernel import Kernel
from qcore.recorders.local import LocalRecorder
from qcore.types import FeatureSet

STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"


class TinyFeatures:
    """A test plugin: a three-feature set."""

    @hookimpl
    def qcore_register_feature_sets(self, register: Any) -> None:
        def tiny(label: dict[str, str] | None = None) -> FeatureSet:
            """Three features and the usual label."""
            return FeatureSet(
                {"RET5": "$close/Ref($close, 5) - 1", "VOL": "Log($volume + 1)", "MA": "Mean($close, 10)/$close"},
                label or {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"},
            )

        register("tiny", tiny)


def workflow(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "experiment": "wf",
        "data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(STORE)}}, "universe": "csi_like"},
        "dataset": {
            "features": "tiny",
            "segments": {"train": ["2018-01-02", "2018-09-28"], "valid": ["2018-10-08", "2018-12-28"],
                         "test": ["2019-01-02", "2019-04-23"]},
            "infer_processors": [{"name": "ZScoreNorm", "kwargs": {"fields_group": "feature"}},
                                 {"name": "Fillna", "kwargs": {"fields_group": "feature"}}],
            "learn_processors": ["DropnaLabel"],
        },
        "model": {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 1.0}},
        "records": ["signal"],
        "recorder": {"name": "local", "kwargs": {"uri": str(tmp_path / "runs")}},
    }
    config.update(extra)
    return config


@pytest.fixture
def kernel() -> Kernel:
    return Kernel.load(extra={"tiny": TinyFeatures()}, use_env=False)


def test_workflow_runs_every_step(tmp_path: Path, kernel: Kernel) -> None:
    result = qcore.run(workflow(tmp_path), kernel=kernel)
    assert result.metrics["dataset.features"] == 3.0
    assert result.metrics["dataset.rows.test"] > 0
    stored = LocalRecorder(tmp_path / "runs").get_run(result.run_id)
    assert {"pred.parquet", "label.parquet", "data_summary.json", "model-model.json"} <= set(stored["artifacts"])
    pred = pd.read_parquet(Path(stored["path"]) / "artifacts" / "pred.parquet")
    assert list(pred.columns) == ["score"]
    dates = pred.index.get_level_values("datetime")
    assert dates.min() >= pd.Timestamp("2019-01-02") and dates.max() <= pd.Timestamp("2019-04-23")
    assert pred["score"].notna().all()


def test_workflow_is_deterministic(tmp_path: Path, kernel: Kernel) -> None:
    first = qcore.run(workflow(tmp_path), kernel=kernel)
    second = qcore.run(workflow(tmp_path), kernel=kernel)
    a = LocalRecorder(tmp_path / "runs").get_run(first.run_id)
    b = LocalRecorder(tmp_path / "runs").get_run(second.run_id)
    pa = pd.read_parquet(Path(a["path"]) / "artifacts" / "pred.parquet")
    pb = pd.read_parquet(Path(b["path"]) / "artifacts" / "pred.parquet")
    pd.testing.assert_frame_equal(pa, pb)


def test_model_without_dataset_and_records_without_model(tmp_path: Path, kernel: Kernel) -> None:
    config = workflow(tmp_path)
    config.pop("dataset")
    with pytest.raises(ConfigError, match="model: a model needs a dataset section"):
        qcore.run(config, kernel=kernel)
    config = workflow(tmp_path)
    config.pop("model")
    with pytest.raises(RunError, match="signal record needs a model's predictions"):
        qcore.run(config, kernel=kernel)


def test_unknown_processor_named_at_its_key(tmp_path: Path, kernel: Kernel) -> None:
    config = workflow(tmp_path)
    config["dataset"]["learn_processors"] = ["DropnaLable"]
    with pytest.raises(ConfigError, match=r"dataset\.learn_processors\.0: unknown processor 'DropnaLable'; "
                                          r"did you mean 'DropnaLabel'"):
        qcore.run(config, kernel=kernel)


QLIB_YAML = """
qlib_init:
    provider_uri: "{store}"
    region: cn
    kernels: 2
market: &market csi_like
benchmark: &benchmark SH000300
data_handler_config: &data_handler_config
    start_time: 2018-01-02
    end_time: 2019-04-23
    fit_start_time: 2018-01-02
    fit_end_time: 2018-09-28
    instruments: *market
port_analysis_config: &port_analysis_config
    strategy:
        class: TopkDropoutStrategy
        module_path: qlib.contrib.strategy
        kwargs:
            signal: [<MODEL>, <DATASET>]
            topk: 20
            n_drop: 4
    backtest:
        start_time: 2019-01-02
        end_time: 2019-04-22
        account: 100000000
        benchmark: *benchmark
        exchange_kwargs:
            limit_threshold: 0.095
            deal_price: close
            open_cost: 0.0005
            close_cost: 0.0015
            min_cost: 5
task:
    model:
        class: LGBModel
        module_path: qlib.contrib.model.gbdt
        kwargs: {{loss: mse, num_threads: 2}}
    dataset:
        class: DatasetH
        module_path: qlib.data.dataset
        kwargs:
            handler:
                class: Alpha158
                module_path: qlib.contrib.data.handler
                kwargs: *data_handler_config
            segments:
                train: [2018-01-02, 2018-09-28]
                valid: [2018-10-08, 2018-12-28]
                test: [2019-01-02, 2019-04-23]
    record:
        - class: SignalRecord
          module_path: qlib.workflow.record_temp
          kwargs: {{model: <MODEL>, dataset: <DATASET>}}
        - class: SigAnaRecord
          module_path: qlib.workflow.record_temp
          kwargs: {{ana_long_short: False, ann_scaler: 252}}
        - class: PortAnaRecord
          module_path: qlib.workflow.record_temp
          kwargs:
            config: *port_analysis_config
"""


def test_qlib_yaml_translates(tmp_path: Path) -> None:
    path = tmp_path / "qlib.yaml"
    path.write_text(textwrap.dedent(QLIB_YAML).format(store=STORE))
    cfg = load_config(path)
    assert cfg.data.provider.kwargs["provider_uri"] == str(STORE)
    assert cfg.data.market_rules.name == "cn" and cfg.data.universe == "csi_like"
    assert cfg.model.name == "LGBModel" and cfg.model.kwargs["num_threads"] == 2
    assert cfg.dataset.features.name == "Alpha158"
    assert [p.name for p in cfg.dataset.learn_processors] == ["DropnaLabel", "CSZScoreNorm"]
    assert cfg.dataset.infer_processors == ()
    assert cfg.dataset.fit_end == pd.Timestamp("2018-09-28")
    assert [r.name for r in cfg.records] == ["SignalRecord", "SigAnaRecord", "PortAnaRecord"]
    assert dict(cfg.records[1].kwargs) == {"ana_long_short": False, "ann_scaler": 252}
    backtest = cfg.sections["backtest"]
    assert backtest.strategy.name == "TopkDropoutStrategy"
    assert dict(backtest.strategy.kwargs) == {"topk": 20, "n_drop": 4}
    assert backtest.exchange_kwargs["min_cost"] == 5
    assert backtest.start == pd.Timestamp("2019-01-02")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("    kernels: 2", "    redis_url: x"), "qlib_init.redis_url: unsupported qlib_init key 'redis_url'"),
        (("                class: Alpha158", "                class: Alpha158\n                extra: 1"),
         "task.dataset.kwargs.handler: unsupported key(s) extra"),
        (("    end_time: 2019-04-23\n", "    end_time: 2019-04-23\n    filter_pipe: []\n"),
         "unsupported key(s) filter_pipe"),
        (("        class: DatasetH", "        class: FancyDatasetH"), "unsupported dataset class 'FancyDatasetH'"),
    ],
)
def test_qlib_yaml_unsupported_keys_are_named(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = tmp_path / "qlib.yaml"
    text = textwrap.dedent(QLIB_YAML).format(store=STORE)
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)
