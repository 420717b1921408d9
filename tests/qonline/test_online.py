"""qonline: predict a date from the rolling checkpoint's serving window, simulate equals the rolling signal,
idempotence, status, and the command line's refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qonline.routine import predict, simulate, status
from qonline.serving import serving_model
from qonline.store import OnlineFolder

import qcore
from qcore import hookimpl
from qcore.cli import cli
from qcore.config import config_from_mapping
from qcore.errors import ConfigError, DataError
from qcore.kernel import Kernel
from qcore.recorders.local import LocalRecorder
from tests.kernel.test_workflow import TinyFeatures, workflow


@pytest.fixture
def kernel() -> Kernel:
    return Kernel.load(extra={"tiny": TinyFeatures()}, use_env=False)


def online_config(tmp_path: Path) -> dict[str, Any]:
    """A sliding rolling workflow: ridge on three features, ZScoreNorm fitted on each window's train span."""
    config = workflow(tmp_path, records=["signal"])
    config["rolling"] = {"step": 20, "window": "sliding", "gap": 2, "checkpoint": str(tmp_path / "ck")}
    config["online"] = {"folder": str(tmp_path / "online")}
    return config


@pytest.fixture
def rolled(tmp_path: Path, kernel: Kernel) -> tuple[Any, pd.Series]:
    """The config after its rolling run, and that run's joined signal."""
    raw = online_config(tmp_path)
    result = qcore.run(raw, kernel=kernel)
    run = LocalRecorder(tmp_path / "runs").get_run(result.run_id)
    pred = pd.read_parquet(Path(run["path"]) / "artifacts" / "pred.parquet")["score"]
    return config_from_mapping(raw, kernel=kernel), pred


def _provider(config: Any, kernel: Kernel) -> Any:
    return kernel.create("data_provider", config.data.provider.name, **config.data.provider.kwargs)


def test_simulate_gives_the_rolling_signal(tmp_path: Path, kernel: Kernel, rolled: tuple[Any, pd.Series]) -> None:
    config, rolling_pred = rolled
    provider = _provider(config, kernel)
    folder = OnlineFolder(tmp_path / "online")
    steps, signal = simulate(config, kernel, provider, folder, pd.Timestamp("2019-01-02"), pd.Timestamp("2019-04-23"))
    assert len({s.model for s in steps}) == 4  # every window served its own days
    assert all(s.computed for s in steps)
    expected = rolling_pred.dropna().sort_index()
    pd.testing.assert_series_equal(signal.dropna().sort_index(), expected, check_names=False, check_exact=True)
    # each day only holds that day: the prediction for D+1 made from data up to D
    for step in steps:
        assert set(folder.read_prediction(step.date).index.get_level_values("datetime")) == {step.date}


def test_predict_is_idempotent_and_forced_again(tmp_path: Path, kernel: Kernel, rolled: tuple[Any, pd.Series]) -> None:
    config, rolling_pred = rolled
    provider = _provider(config, kernel)
    folder = OnlineFolder(tmp_path / "online")
    day = pd.Timestamp("2019-03-01")
    first, _ = predict(config, kernel, provider, folder, day)
    assert first.computed and first.path.name == "2019-03-01.parquet"
    stamp = first.path.stat().st_mtime_ns
    again, _ = predict(config, kernel, provider, folder, day)
    assert not again.computed and again.path.stat().st_mtime_ns == stamp
    forced, _ = predict(config, kernel, provider, folder, day, force=True)
    assert forced.computed
    np.testing.assert_array_equal(folder.read_prediction(day).to_numpy(), rolling_pred.loc[day].to_numpy())
    assert not list((tmp_path / "online" / "predictions").glob("*.tmp*"))


def test_latest_window_serves_and_nothing_before_the_first(tmp_path: Path, kernel: Kernel,
                                                          rolled: tuple[Any, pd.Series]) -> None:  # fmt: skip
    config, _ = rolled
    provider = _provider(config, kernel)
    served = serving_model(config, kernel, provider, pd.Timestamp("2019-04-23"))
    assert served.source == "rolling:window-003"
    assert served.fit_end < pd.Timestamp("2019-04-23")  # trained on data before the day it serves
    with pytest.raises(DataError, match="no model serves 2018-12-28"):
        serving_model(config, kernel, provider, pd.Timestamp("2018-12-28"))
    with pytest.raises(DataError, match="store ends on 2019-04-23"):
        predict(config, kernel, provider, OnlineFolder(tmp_path / "o"), pd.Timestamp("2019-04-24"))


def test_without_a_checkpoint_or_rolling_section(tmp_path: Path, kernel: Kernel) -> None:
    raw = online_config(tmp_path)
    config = config_from_mapping(raw, kernel=kernel)
    provider = _provider(config, kernel)
    with pytest.raises(DataError, match="no finished window-000"):
        serving_model(config, kernel, provider, pd.Timestamp("2019-01-03"))
    del raw["rolling"]
    with pytest.raises(ConfigError, match="rolling"):
        serving_model(config_from_mapping(raw, kernel=kernel), kernel, provider, pd.Timestamp("2019-01-03"))


def test_a_saved_model_folder_serves(tmp_path: Path, kernel: Kernel) -> None:
    raw = workflow(tmp_path)
    result = qcore.run(raw, kernel=kernel)
    run = LocalRecorder(tmp_path / "runs").get_run(result.run_id)
    artifacts = Path(run["path"]) / "artifacts"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for path in artifacts.glob("model-*"):
        (model_dir / path.name.removeprefix("model-")).write_bytes(path.read_bytes())
    raw["online"] = {"folder": str(tmp_path / "online"), "model": str(model_dir)}
    config = config_from_mapping(raw, kernel=kernel)
    provider = _provider(config, kernel)
    day = pd.Timestamp("2019-02-01")
    step, served = predict(config, kernel, provider, OnlineFolder(tmp_path / "online"), day)
    assert served.source == str(model_dir) and step.computed
    pred = pd.read_parquet(artifacts / "pred.parquet")["score"]
    np.testing.assert_allclose(OnlineFolder(tmp_path / "online").read_prediction(day).to_numpy(),
                               pred.loc[day].to_numpy(), rtol=1e-6)  # fmt: skip


def test_cli_predict_simulate_status(tmp_path: Path, kernel: Kernel, rolled: tuple[Any, pd.Series],
                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import yaml

    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(online_config(tmp_path)))
    monkeypatch.setattr("qcore.cli.get_kernel", lambda ctx, extra_selection=None: kernel)
    runner = CliRunner()
    out = runner.invoke(cli, ["online", "predict", str(path), "--date", "2019-02-01"])
    assert out.exit_code == 0, out.output
    assert "2019-02-01.parquet" in out.output and "written" in out.output
    out = runner.invoke(cli, ["online", "simulate", str(path), "--start", "2019-01-30", "--end", "2019-02-04"])
    assert out.exit_code == 0, out.output
    assert "3 days (2 predicted, 1 up to date)" in out.output
    out = runner.invoke(cli, ["online", "status", str(path), "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["predictions"] == 3 and body["last_prediction"] == "2019-02-01"  # the New Year holiday follows
    assert body["store_last_bar"] == "2019-04-23" and body["bars_behind"] > 0
    assert body["model"].startswith("rolling:window-")
    assert status(OnlineFolder(tmp_path / "online"))["predictions"] == 3
    bad = runner.invoke(cli, ["online", "predict", str(path), "--date", "2019-13-01"])
    assert bad.exit_code not in (0, 70) and "--date" in bad.output
    bad = runner.invoke(cli, ["online", "simulate", str(path), "--start", "2019-02-04", "--end", "2019-01-30"])
    assert bad.exit_code not in (0, 70) and "--start" in bad.output


class ResampledFeatures:
    """A test plugin: a feature set with one column resampled from 1-minute bars (a Qlib multi-frequency
    handler's shape)."""

    @hookimpl
    def qcore_register_feature_sets(self, register: Any) -> None:
        from qcore.types import FeatureSet, Resample

        def tiny_minutes() -> FeatureSet:
            return FeatureSet({"RET5": "$close/Ref($close, 5) - 1", "LAST": "$close"},
                              {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}, resample={"LAST": Resample("1min")})

        register("tiny_minutes", tiny_minutes)


def test_a_feature_set_resampled_from_intraday_bars_is_refused_online(tmp_path: Path) -> None:
    from qonline.serving import online_feature_set

    kernel = Kernel.load(extra={"tiny": TinyFeatures(), "minutes": ResampledFeatures()}, use_env=False)
    raw = online_config(tmp_path)
    assert online_feature_set(config_from_mapping(raw, kernel=kernel), kernel).features["VOL"]
    raw["dataset"]["features"] = "tiny_minutes"
    with pytest.raises(ConfigError, match=r"cannot serve columns resampled from intraday bars \(LAST\)") as info:
        online_feature_set(config_from_mapping(raw, kernel=kernel), kernel)
    assert info.value.path == "dataset.features"
