"""Hyper-parameter sweeps (qcore.sweep, qcore sweep): the grid's points, one recorded run each, the best pick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import qcore
from qcore.backends import ProcessesBackend
from qcore.errors import ConfigError
from qcore.recorders.local import LocalRecorder
from qcore.sweep import make_spec, parse_grid_option, parse_section, points, run_sweep

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "tests" / "data" / "golden_market"


def tiny_workflow(tmp_path: Path) -> dict[str, Any]:
    """A linear model on three installed-plugin features (so spawned workers can run it too)."""
    features = {"feature": [["$close/Ref($close, 5) - 1", "Log($volume + 1)", "Mean($close, 10)/$close"],
                            ["RET5", "VOL", "MA"]],
                "label": [["Ref($close, -2)/Ref($close, -1) - 1"], ["LABEL0"]]}  # fmt: skip
    return {
        "experiment": "sw",
        "data": {"provider": {"name": "qlib_bin", "kwargs": {"provider_uri": str(STORE)}}, "universe": "csi_like"},
        "dataset": {
            "features": {"name": "qlib_data_loader", "kwargs": {"config": features}},
            "segments": {"train": ["2018-01-02", "2018-09-28"], "valid": ["2018-10-08", "2018-12-28"],
                         "test": ["2019-01-02", "2019-04-23"]},
            "infer_processors": [{"name": "ZScoreNorm", "kwargs": {"fields_group": "feature"}},
                                 {"name": "Fillna", "kwargs": {"fields_group": "feature"}}],
            "learn_processors": ["DropnaLabel"],
        },
        "model": {"name": "linear", "kwargs": {"estimator": "ridge", "alpha": 1.0}},
        "records": ["signal", "sig_analysis"],
        "recorder": {"name": "local", "kwargs": {"uri": str(tmp_path / "runs")}},
    }  # fmt: skip


@pytest.fixture(scope="module")
def kernel() -> Any:
    return qcore.load_kernel()


def test_grid_options_and_points() -> None:
    alpha = parse_grid_option("model.kwargs.alpha=0.1,1,10")
    estimator = parse_grid_option("model.kwargs.estimator=ridge,lasso")
    assert alpha.values == (0.1, 1, 10) and estimator.values == ("ridge", "lasso")
    grid = points(make_spec([alpha, estimator]))
    assert len(grid) == 6
    assert grid[0] == {"model.kwargs.alpha": 0.1, "model.kwargs.estimator": "ridge"}
    assert grid[-1] == {"model.kwargs.alpha": 10, "model.kwargs.estimator": "lasso"}
    sampled = points(make_spec([alpha, estimator], random=4, seed=3))
    assert len(sampled) == 4 and len({json.dumps(p, sort_keys=True) for p in sampled}) == 4
    assert all(p in grid for p in sampled)
    assert sampled == points(make_spec([alpha, estimator], random=4, seed=3))  # seeded
    assert points(make_spec([alpha], random=10)) == points(make_spec([alpha], random=10))
    assert len(points(make_spec([alpha], random=10))) == 3  # at most the grid, without repetition
    ranged = points(make_spec([parse_grid_option("model.kwargs.alpha=loguniform(0.001,10)")], random=5, seed=1))
    assert len(ranged) == 5 and all(0.001 <= p["model.kwargs.alpha"] <= 10 for p in ranged)


def test_bad_sweeps_are_refused_with_their_key() -> None:
    with pytest.raises(ConfigError, match=r"--grid: .*key\.path=v1,v2"):
        parse_grid_option("model.kwargs.alpha")
    with pytest.raises(ConfigError, match="empty value"):
        parse_grid_option("a=1,,2")
    with pytest.raises(ConfigError, match="loguniform needs finite low < high and low > 0"):
        parse_grid_option("a=loguniform(0,1)")
    with pytest.raises(ConfigError, match="a grid needs values"):
        make_spec([parse_grid_option("a=uniform(0,1)")])
    with pytest.raises(ConfigError, match=r"sweep\.grid\.model\.kwargs\.alpha: expected a non-empty list"):
        parse_section({"grid": {"model.kwargs.alpha": []}})
    with pytest.raises(ConfigError, match=r"sweep\.mode: expected max or min"):
        parse_section({"grid": {"a": [1]}, "mode": "best"})
    with pytest.raises(ConfigError, match="unknown key 'metrics'"):
        parse_section({"grid": {"a": [1]}, "metrics": "x"})


def test_a_sweep_runs_every_grid_point_and_picks_the_best(tmp_path: Path, kernel: Any) -> None:
    spec = make_spec([parse_grid_option("model.kwargs.alpha=0.00001,1000000"),
                      parse_grid_option("model.kwargs.estimator=ridge,lasso")], metric="signal.IC")  # fmt: skip
    result = run_sweep(tiny_workflow(tmp_path), spec, kernel=kernel, name="t")
    table = result.table
    assert len(table) == 4 and list(table["model.kwargs.estimator"]) == ["ridge", "lasso", "ridge", "lasso"]
    recorder = LocalRecorder(tmp_path / "runs")
    runs = {r["run_id"]: r for r in recorder.list_runs("sw")}
    assert set(table["run_id"]) == set(runs)  # one recorded run per point
    for _, row in table.iterrows():
        stored = recorder.get_run(row["run_id"])
        ic = stored["metrics"]["signal.IC"]
        ic = ic[-1][1] if isinstance(ic, list) else ic
        assert ic is None if pd.isna(row["signal.IC"]) else ic == pytest.approx(row["signal.IC"])
        alpha, estimator = row["model.kwargs.alpha"], row["model.kwargs.estimator"]
        assert stored["run_name"] == ["t-000 alpha=1e-05 estimator=ridge", "t-001 alpha=1e-05 estimator=lasso",
                                      "t-002 alpha=1000000 estimator=ridge",
                                      "t-003 alpha=1000000 estimator=lasso"][row["point"]]  # fmt: skip
        params = stored["params"]
        assert (params["model.kwargs.alpha"], params["model.kwargs.estimator"]) == (alpha, estimator)
    assert table["signal.IC"].isna().sum() == 1  # lasso with a huge penalty predicts a constant: no IC
    assert result.best == int(table["signal.IC"].astype(float).idxmax()) == 1  # lasso, small penalty
    keys = ("model.kwargs.alpha", "model.kwargs.estimator")
    assert result.best_point == {k: table.loc[result.best, k] for k in keys}
    worst = run_sweep(tiny_workflow(tmp_path / "min"), make_spec(list(spec.params), mode="min"), kernel=kernel)
    assert worst.best == int(worst.table["signal.IC"].astype(float).idxmin()) == 2  # NaN never wins


def test_a_bad_point_is_refused_before_any_run(tmp_path: Path, kernel: Any) -> None:
    spec = make_spec([parse_grid_option("model.kwargs.estimator=ridge,bogus")])
    with pytest.raises(ConfigError) as info:
        run_sweep(tiny_workflow(tmp_path), spec, kernel=kernel)
    assert "sweep point 1 (estimator=bogus)" in "".join(getattr(info.value, "__notes__", []))
    assert not (tmp_path / "runs").exists() or not LocalRecorder(tmp_path / "runs").list_runs("sw")


def test_an_unknown_metric_lists_the_recorded_ones(tmp_path: Path, kernel: Any) -> None:
    spec = make_spec([parse_grid_option("model.kwargs.alpha=1")], metric="signal.ICC")
    with pytest.raises(qcore.errors.RunError, match=r"no metric 'signal\.ICC'.*signal\.IC"):
        run_sweep(tiny_workflow(tmp_path), spec, kernel=kernel)


def test_a_scheduler_needs_a_plugin_that_provides_it(tmp_path: Path) -> None:
    plain = qcore.load_kernel(["no:qray"])
    spec = make_spec([parse_grid_option("model.kwargs.alpha=1")], scheduler="asha")
    with pytest.raises(ConfigError, match="no loaded plugin provides sweep schedulers"):
        run_sweep(tiny_workflow(tmp_path), spec, kernel=plain, plugins=["no:qray"])


@pytest.mark.slow
def test_a_sweep_on_processes_equals_the_serial_one(tmp_path: Path, kernel: Any) -> None:
    spec = make_spec([parse_grid_option("model.kwargs.alpha=0.00001,1000000"),
                      parse_grid_option("model.kwargs.estimator=ridge,lasso")])  # fmt: skip
    serial = run_sweep(tiny_workflow(tmp_path / "s"), spec, kernel=kernel)
    with ProcessesBackend(max_workers=2) as backend:
        parallel = run_sweep(tiny_workflow(tmp_path / "p"), spec, backend=backend)
    columns = ["model.kwargs.alpha", "model.kwargs.estimator", "signal.IC"]
    pd.testing.assert_frame_equal(parallel.table[columns], serial.table[columns], check_exact=True)
    assert parallel.best == serial.best
    assert len(LocalRecorder(tmp_path / "p" / "runs").list_runs("sw")) == 4


def test_the_cli_sweeps_a_config_section(tmp_path: Path) -> None:
    from qcore.cli import cli

    config = tiny_workflow(tmp_path)
    config["sweep"] = {"grid": {"model.kwargs.alpha": [0.00001, 1000000], "model.kwargs.estimator": ["ridge", "lasso"]},
                       "random": 3, "seed": 5, "metric": "signal.IC", "mode": "max"}  # fmt: skip
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "table.csv"
    result = CliRunner().invoke(cli, ["sweep", str(path), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 3 and "best (max signal.IC): point " in result.output
    best = int(table["signal.IC"].idxmax())
    assert f"point {table.loc[best, 'point']} " in result.output and table.loc[best, "run_id"] in result.output
    grid = CliRunner().invoke(cli, ["sweep", str(path), "--grid", "model.kwargs.alpha=1,2,3"], catch_exceptions=False)
    assert grid.exit_code == 0 and "best (max signal.IC)" in grid.output
    assert len(grid.output.strip().splitlines()) == 1 + 3 + 1  # header, 3 points (--grid replaces the section's)
    bad = CliRunner().invoke(cli, ["sweep", str(path), "--grid", "model.kwargs.alpha"])
    assert bad.exit_code not in (0, 70) and "key.path=v1,v2" in bad.output
    assert "signal.IC" in qcore.run(path).metrics  # a single run ignores the sweep: section
