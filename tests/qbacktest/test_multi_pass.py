"""MultiPassPortAnaRecord: Qlib's multi-pass backtest (shuffled first-day scores, mean/std of return and IR), from a
Qlib YAML through ``qcore.run`` and the CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qbacktest.records import MultiPassPortAnaRecord, shuffled_first_date

import qcore
from qcore.checks import check_components
from qcore.cli import cli
from qcore.config import read_workflow
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.recorders.local import LocalRecorder
from tests.kernel.test_workflow import QLIB_YAML, STORE

MULTI = "backtest.multi_pass"


def _yaml(tmp_path: Path, record_kwargs: str) -> Path:
    """The workflow YAML of the kernel tests with a ridge model and MultiPassPortAnaRecord given ``record_kwargs``
    (``key: value`` lines, comma-separated)."""
    text = textwrap.dedent(QLIB_YAML).format(store=STORE)
    text = text.replace("class: LGBModel", "class: LinearModel").replace(
        "kwargs: {loss: mse, num_threads: 2}", "kwargs: {estimator: ridge, alpha: 1.0}")
    lines = "".join(f"            {item.strip()}\n" for item in record_kwargs.split(","))
    text = text.replace("        - class: PortAnaRecord\n          module_path: qlib.workflow.record_temp\n"
                        "          kwargs:\n", "        - class: MultiPassPortAnaRecord\n          module_path: "
                        f"qlib.workflow.record_temp\n          kwargs:\n{lines}")
    assert "MultiPassPortAnaRecord" in text and "LinearModel" in text
    path = tmp_path / "multi_pass.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[qcore.RunResult, Path]]:
    """Three runs of the same YAML: shuffled (twice, for reproducibility) and unshuffled, 3 passes each."""
    tmp = tmp_path_factory.mktemp("multi")
    out = {}
    for name, kwargs in (("shuffled", "pass_num: 3"), ("again", "pass_num: 3"),
                         ("plain", "pass_num: 3, shuffle_init_score: false")):
        folder = tmp / name
        folder.mkdir()
        path = _yaml(folder, kwargs)
        out[name] = (qcore.run(path, overrides=["recorder.name=local", f"recorder.kwargs.uri={folder / 'runs'}"]),
                     folder)
    return out


def test_shuffled_passes_differ_and_are_summarised(runs: dict) -> None:
    result, folder = runs["shuffled"]
    metrics = result.metrics
    assert metrics[f"{MULTI}.passes"] == 3
    for key in ("excess", "excess_cost"):
        for stat in ("annualized_return", "information_ratio"):
            mean, std = metrics[f"{MULTI}.{key}.{stat}.mean"], metrics[f"{MULTI}.{key}.{stat}.std"]
            assert std > 0  # random first portfolios give different paths
            assert metrics[f"{MULTI}.{key}.{stat}.mean_std"] == pytest.approx(mean / std)
    stored = LocalRecorder(folder / "runs").get_run(result.run_id)
    art = Path(stored["path"]) / "artifacts"
    passes = pd.read_parquet(art / "multi_pass_runs_1day.parquet")
    assert sorted(passes["pass"].unique()) == [0, 1, 2] and len(passes) == 3 * 2 * 2
    table = pd.read_parquet(art / "multi_pass_port_analysis_1day.parquet")
    assert list(table.columns) == ["mean", "std", "mean_std"] and len(table) == 4
    ir = passes[(passes.series == "excess_cost") & (passes.statistic == "information_ratio")]["value"]
    assert metrics[f"{MULTI}.excess_cost.information_ratio.mean"] == pytest.approx(ir.mean())
    assert metrics[f"{MULTI}.excess_cost.information_ratio.std"] == pytest.approx(ir.std(ddof=1))


def test_passes_are_reproducible_and_without_shuffle_identical(runs: dict) -> None:
    shuffled, again, plain = (runs[k][0].metrics for k in ("shuffled", "again", "plain"))
    assert {k: v for k, v in shuffled.items() if k.startswith(MULTI)} == \
        {k: v for k, v in again.items() if k.startswith(MULTI)}
    assert plain[f"{MULTI}.excess_cost.information_ratio.std"] == 0.0
    assert f"{MULTI}.excess_cost.information_ratio.mean_std" not in plain  # mean / 0 is not logged


def test_shuffle_permutes_only_the_first_backtest_date() -> None:
    dates = pd.bdate_range("2020-01-01", periods=4, name="datetime")
    index = pd.MultiIndex.from_product([dates, [f"S{i}" for i in range(50)]], names=["datetime", "instrument"])
    pred = pd.Series(np.arange(len(index), dtype=float), index=index, name="score")
    out = shuffled_first_date(pred, dates[1], np.random.default_rng(0))
    changed = out.ne(pred).groupby(level="datetime").sum()
    assert changed[dates[1]] > 40 and changed.drop(dates[1]).eq(0).all()
    assert sorted(out.loc[dates[1]]) == sorted(pred.loc[dates[1]]) and out.name == "score"


def test_bad_options_are_refused_at_validate(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "pass_num: 0")
    kernel = Kernel.load(use_env=False)
    with pytest.raises(ConfigError, match="pass_num must be a whole number >= 1") as info:
        check_components(read_workflow(path).validate(kernel), kernel)
    assert info.value.line is not None
    with pytest.raises(ConfigError, match="unsupported option"):
        MultiPassPortAnaRecord(pass_nums=3)


def test_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _yaml(tmp_path, "pass_num: 2")
    result = CliRunner().invoke(cli, ["run", str(path), "--set", "recorder.name=local", "--set",
                                      f"recorder.kwargs.uri={tmp_path / 'runs'}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Multi-pass information ratio (with cost), mean" in result.output
