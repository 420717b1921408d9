"""``qcore risk build`` / ``qcore risk show``, and the ``risk_data`` and ``tracking`` workflow records."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qportfolio.records import RiskDataRecord, TrackingRecord, tracking_metrics
from qportfolio.risk.riskdata import RiskData, read_meta

from qcore.cli import cli
from qcore.context import RunState
from qcore.errors import ConfigError, RunError


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_risk_build_and_show(small_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "rd"
    args = ["risk", "build", "--provider-uri", str(small_store), "--root", str(root), "--start", "2021-03-01",
            "--end", "2021-03-10", "--window", "60", "--model-kwargs", '{"num_factors": 3}',
            "--blacklist-market", "st"]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "8 day(s) written, 0 kept, 3 factors" in result.output
    data = RiskData(root)
    assert len(data.days) == 8 and data.days[0] == pd.Timestamp("2021-03-01")
    risk, _ = data.get(data.days[-1])
    assert risk.exposures.shape[1] == 3 and (risk.specific_risk > 0).all()
    meta = read_meta(root)
    assert meta["units"] == "percent" and meta["model"] == "structured" and meta["window"] == 60
    stamp = (root / "20210301" / "factor_exp.parquet").stat().st_mtime_ns
    again = invoke(*args)  # same settings: kept
    assert "0 day(s) written, 8 kept" in again.output
    assert (root / "20210301" / "factor_exp.parquet").stat().st_mtime_ns == stamp
    shown = invoke("risk", "show", str(root), "--date", "2021-03-05")
    assert shown.exit_code == 0 and "8 day(s) 2021-03-01..2021-03-10" in shown.output
    assert "2021-03-05: " in shown.output and "3 factors (f0, f1, f2)" in shown.output


def test_fundamental_build(small_store: Path, tmp_path: Path) -> None:
    root = tmp_path / "fund"
    result = invoke("risk", "build", "--provider-uri", str(small_store), "--root", str(root), "--start",
                    "2021-06-01", "--end", "2021-06-03", "--model", "fundamental", "--model-kwargs",
                    '{"market_index": "SH000300", "window": 120, "min_observations": 30}')  # fmt: skip
    assert result.exit_code == 0, result.output
    risk, _ = RiskData(root).get("2021-06-03")
    assert list(risk.exposures.columns) == ["market", "size", "beta", "momentum", "volatility", "liquidity"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--model", "shrink"], "gives a full covariance"),
    (["--model", "structurd"], "did you mean 'structured'"),
    (["--universe", "csi900"], "no market 'csi900'"),
    (["--start", "2020-01-03"], "fewer than 240 days of history"),
    (["--model-kwargs", "[1]"], "must be a JSON object"),
])  # fmt: skip
def test_risk_build_errors_are_one_line(small_store: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = invoke("risk", "build", "--provider-uri", str(small_store), "--root", str(tmp_path / "x"), *extra)
    assert result.exit_code not in (0, 70), result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_risk_show_of_an_empty_folder(tmp_path: Path) -> None:
    result = invoke("risk", "show", str(tmp_path))
    assert result.exit_code not in (0, 70) and "no YYYYMMDD day folder" in result.output


def test_risk_data_record_options() -> None:
    with pytest.raises(ConfigError, match="needs root"):
        RiskDataRecord(window=10)
    with pytest.raises(ConfigError, match="unknown option 'windw'"):
        RiskDataRecord(root="x", windw=10)
    with pytest.raises(ConfigError, match="clip"):
        RiskDataRecord(root="x", clip=0.7)


def test_tracking_metrics() -> None:
    rng = np.random.default_rng(0)
    active = rng.normal(0.0004, 0.002, 250)
    bench = rng.normal(0, 0.01, 250)
    report = pd.DataFrame({"return": bench + active + 0.0001, "bench": bench, "cost": np.full(250, 0.0001)})
    got = tracking_metrics(report)
    assert got["portfolio.tracking_error_with_cost"] == pytest.approx(active.std(ddof=1) * np.sqrt(252))
    assert got["portfolio.information_ratio_with_cost"] == pytest.approx(active.mean() / active.std(ddof=1)
                                                                         * np.sqrt(252))  # fmt: skip
    assert got["portfolio.active_return"] > got["portfolio.active_return_with_cost"]
    with pytest.raises(RunError, match="no bench"):
        tracking_metrics(pd.DataFrame({"return": [0.1, 0.2]}))


def test_tracking_record_needs_the_backtest_first() -> None:
    def config(names: list[str]) -> Any:
        def error(message: str, path: str) -> ConfigError:
            return ConfigError(message, path=path)

        return SimpleNamespace(records=[SimpleNamespace(name=n) for n in names], error=error)

    TrackingRecord().check(SimpleNamespace(config=config(["signal", "port_analysis", "tracking"])))
    with pytest.raises(ConfigError, match="put port_analysis before it") as err:
        TrackingRecord().check(SimpleNamespace(config=config(["tracking", "port_analysis"])))
    assert err.value.path == "records.0"
    with pytest.raises(RunError, match="run port_analysis before it"):
        TrackingRecord().generate(SimpleNamespace(state=RunState()))


def test_example_workflow_validates(pkernel: Any) -> None:
    from qcore.checks import check_components
    from qcore.config import load_config

    path = Path(__file__).resolve().parents[2] / "examples" / "workflow_enhanced_indexing.yaml"
    config = load_config(path, kernel=pkernel)
    check_components(config, pkernel, store=False)
    assert [r.name for r in config.records] == ["signal", "sig_analysis", "risk_data", "port_analysis", "tracking"]
    assert json.dumps(dict(config.records[2].kwargs), default=str)


def test_strategy_arguments_are_checked_before_the_run(pkernel: Any) -> None:
    """The factories' ``check_kwargs`` (what ``qcore validate`` calls) builds the strategy with a probe signal."""
    check = pkernel.registry("strategy").get("EnhancedIndexing").check_kwargs
    check({"riskmodel_root": "not/built/yet", "market": "csi300", "benchmark": {"market": "csi300", "cap": None}})
    with pytest.raises(ConfigError, match="did you mean 'delta'") as err:
        check({"riskmodel_root": "x", "optimizer_kwargs": {"detla": 0.1}})
    assert err.value.path == "optimizer_kwargs.detla"
    with pytest.raises(ConfigError, match="expected one of skip, error") as err:
        check({"riskmodel_root": "x", "missing_risk": "ignore"})
    assert err.value.path == "missing_risk"
    other = pkernel.registry("strategy").get("OptimizedWeights").check_kwargs
    with pytest.raises(ConfigError, match="expected one of inv, gmv") as err:
        other({"method": "kelly"})
    assert err.value.path == "method"
    with pytest.raises(ConfigError, match="did you mean 'shrink'"):
        other({"risk_model": "shrnk"})
