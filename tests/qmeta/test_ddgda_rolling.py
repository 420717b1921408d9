"""DDG-DA in rolling runs: causal per-window weights that reach the model, `qcore ddgda` side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from qmeta.compare import arm_configs
from qmeta.ddgda import DDGDA, TimeWeights

import qcore
from qcore import hookimpl
from qcore.cli import ExitCode, cli
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.rolling.window import WindowJob, train_window
from tests.qmeta.conftest import DDGDA_KWARGS, SHIFT, rolling_workflow


class SpyDDGDA(DDGDA):
    """DDG-DA that keeps what each window gave it and what it learned."""

    seen: ClassVar[list[tuple[Any, pd.DataFrame, TimeWeights]]] = []

    def for_window(self, window: Any, frame: pd.DataFrame) -> TimeWeights:
        weights = super().for_window(window, frame)
        SpyDDGDA.seen.append((window, frame, weights))
        return weights


class SpyPlugin:
    @hookimpl
    def qcore_register_reweighters(self, register: Any) -> None:
        register("spy_ddgda", SpyDDGDA)


@pytest.fixture(scope="module")
def spy_run(regime_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Kernel, dict[str, Any], Any]:
    SpyDDGDA.seen.clear()
    kernel = Kernel.load(extra={"spy": SpyPlugin()}, use_env=False)
    runs = tmp_path_factory.mktemp("spy")
    config = rolling_workflow(regime_store, runs, reweighter={"name": "spy_ddgda", "kwargs": DDGDA_KWARGS})
    return kernel, config, qcore.run(config, kernel=kernel)


pytestmark = pytest.mark.slow


def test_each_window_learns_only_from_its_train_span(spy_run) -> None:
    assert len(SpyDDGDA.seen) >= 6
    for window, frame, weights in SpyDDGDA.seen:
        train_start, train_end = window.train
        test_start = window.segments["test"][0]
        dates = frame.index.get_level_values("datetime")
        assert dates.min() >= train_start and dates.max() <= train_end < test_start
        assert weights.weights.index.max() <= train_end
        assert weights.result is not None and weights.result.tasks > 0
    ends = [w.train[1] for w, _, _ in SpyDDGDA.seen]
    assert ends == sorted(ends)  # expanding: every window learns afresh from a longer span


def test_window_weights_ignore_everything_after_the_train_span(spy_run) -> None:
    """Scrambling the rows after a window's train end (its valid/test rows) changes nothing in its weights."""
    window, _, weights = SpyDDGDA.seen[3]
    kernel, config, _ = spy_run
    from qcore.dataset import build_dataset
    from qcore.expr.engine import ExpressionEngine

    provider = kernel.create("data_provider", "qlib_bin", **config["data"]["provider"]["kwargs"])
    feature_set = kernel.create("feature_set", "qlib_data_loader", **config["dataset"]["features"]["kwargs"])
    raw = build_dataset(ExpressionEngine(provider, kernel.registry("operator")), feature_set, instruments="all",
                        segments={"span": (window.train[0], window.segments["test"][1])}).frame("raw")  # fmt: skip
    later = raw.index.get_level_values("datetime") > window.train[1]
    scrambled = raw.copy()
    noise = np.random.default_rng(0).standard_normal((int(later.sum()), raw.shape[1]))
    scrambled.loc[later] = noise.astype(raw.dtypes.iloc[0])
    learned = []

    class Keep(DDGDA):
        def for_window(self, window: Any, frame: pd.DataFrame) -> TimeWeights:
            learned.append(super().for_window(window, frame))
            return learned[-1]

    for data in (raw, scrambled):
        job = WindowJob(window=window, frame=data, infer_processors=(), learn_processors=(),
                        model=kernel.create("model", "linear", estimator="ridge", alpha=10.0),
                        reweighter=Keep(**DDGDA_KWARGS))  # fmt: skip
        train_window(job)
    pd.testing.assert_series_equal(learned[0].weights, learned[1].weights)
    pd.testing.assert_series_equal(learned[0].weights, weights.weights)


def test_the_weights_reach_the_model(spy_run, regime_store: Path, tmp_path: Path) -> None:
    kernel, _, weighted = spy_run
    plain_config = rolling_workflow(regime_store, tmp_path)
    plain = qcore.run(plain_config, kernel=kernel)
    a = pd.read_parquet(weighted.artifacts["pred"])["score"]
    b = pd.read_parquet(plain.artifacts["pred"])["score"]
    assert a.index.equals(b.index)
    assert not np.allclose(a, b)


def test_qcore_ddgda_prints_both_arms(regime_store: Path, tmp_path: Path) -> None:
    config = rolling_workflow(regime_store, tmp_path, reweighter={"name": "ddgda", "kwargs": DDGDA_KWARGS})
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["ddgda", str(path), "--since", SHIFT, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output[result.output.index("{"):])
    assert set(figures) == {"rolling", "ddgda"}
    for arm in figures.values():
        assert np.isfinite([arm["IC"], arm["IC since"], arm["Rank IC since"]]).all()
    assert figures["rolling"]["IC since"] != figures["ddgda"]["IC since"]
    assert (tmp_path / "checkpoint" / "rolling").is_dir() and (tmp_path / "checkpoint" / "ddgda").is_dir()
    table = CliRunner().invoke(cli, ["ddgda", str(path)])  # both arms resume from their own checkpoints
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert "IC" in lines[0] and lines[1].startswith("rolling") and lines[2].startswith("ddgda")
    assert f"{figures['ddgda']['IC']:.4f}" in lines[2] and f"{figures['rolling']['IC']:.4f}" in lines[1]


def test_qcore_ddgda_needs_a_rolling_workflow(regime_store: Path, tmp_path: Path) -> None:
    config = rolling_workflow(regime_store, tmp_path)
    del config["rolling"]
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["ddgda", str(path)])
    assert result.exit_code == ExitCode.CONFIG and "needs a 'rolling:' section" in result.output
    with pytest.raises(ConfigError, match="other reweighter"):
        arm_configs({**rolling_workflow(regime_store, tmp_path), "reweighter": "late_days"})


def test_a_single_run_with_ddgda_is_refused(regime_store: Path, tmp_path: Path) -> None:
    config = rolling_workflow(regime_store, tmp_path, reweighter={"name": "ddgda", "kwargs": DDGDA_KWARGS})
    del config["rolling"]
    config["dataset"]["segments"] = {"train": ["2015-03-02", "2015-08-31"], "test": ["2015-09-01", "2016-04-15"]}
    with pytest.raises(ConfigError, match="per rolling window"):
        qcore.run(config)
