"""Industry exposure: weights per industry of a backtest's positions, codes read from a store's ``$industry``."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qanalysis.industry import industry_analysis
from qanalysis.records import AnalysisRecord

from qcore.cli import cli
from qcore.context import RunState
from qcore.errors import ConfigError
from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from qcore.reporting import collect_sections

ROOT = Path(__file__).resolve().parents[1] / "data"
STORE = ROOT / "golden_market"
NAMES = ["SH600000", "SH600001", "SH600002", "SH600004"]
SWITCH = 100  # from this calendar index on, sh600002 moves from industry 2 to industry 1


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


def _write(path: Path, values: np.ndarray) -> None:
    np.concatenate([[0.0], values]).astype("<f4").tofile(path)  # Qlib bin: calendar index of the first value


@pytest.fixture(scope="module")
def industry_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden store plus ``$industry`` (SH600000: 1; SH600001, SH600002, SH600004: 2; others alternating;
    SH600002 moves to 1 on :data:`SWITCH`) and ``$csi_like_weight`` (SH600000: 3, SH600001: 1, others: NaN)."""
    store = tmp_path_factory.mktemp("industry") / "store"
    shutil.copytree(STORE, store)
    days = len((store / "calendars" / "day.txt").read_text().split())
    for k, folder in enumerate(sorted((store / "features").iterdir())):
        code = np.full(days, {"sh600000": 1.0, "sh600001": 2.0, "sh600002": 2.0, "sh600004": 2.0}.get(
            folder.name, 1.0 + k % 2))
        if folder.name == "sh600002":
            code[SWITCH:] = 1.0
        _write(folder / "industry.day.bin", code)
        weight = {"sh600000": 3.0, "sh600001": 1.0}.get(folder.name, np.nan)
        _write(folder / "csi_like_weight.day.bin", np.full(days, weight))
    return store


def _engine(kernel: Kernel, store: Path) -> ExpressionEngine:
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    return ExpressionEngine(provider, kernel.registry("operator"))


def _positions(store: Path) -> pd.DataFrame:
    """Four names held over 6 dates around :data:`SWITCH`, weights 0.1 .. 0.4 (invested share 0.9 - 1.0)."""
    calendar = pd.to_datetime((store / "calendars" / "day.txt").read_text().split())
    dates = calendar[SWITCH - 3:SWITCH + 3]
    index = pd.MultiIndex.from_product([dates, NAMES], names=["datetime", "instrument"])
    weight = np.tile([0.1, 0.2, 0.3, 0.4], len(dates)) * np.repeat(np.linspace(0.9, 1.0, len(dates)), 4)
    return pd.DataFrame({"weight": weight}, index=index)


def test_weights_per_industry_match_a_hand_computation(kernel: Kernel, industry_store: Path) -> None:
    positions = _positions(industry_store)
    result = industry_analysis(_engine(kernel, industry_store), positions)
    table = result["industry"]
    assert list(table.columns) == ["1", "2"] and "industry_active" not in result  # no market: no benchmark
    invested = positions["weight"].groupby(level="datetime").sum()
    np.testing.assert_allclose(table.sum(axis=1), invested, rtol=1e-12)
    dates = table.index
    w = positions["weight"]
    before, after = dates[0], dates[-1]  # the day's codes: SH600002 is in industry 2 before, in 1 after
    assert table.loc[before, "1"] == pytest.approx(w[(before, "SH600000")]) == pytest.approx(0.1 * 0.9)
    assert table.loc[before, "2"] == pytest.approx(0.9 * 0.9)
    assert table.loc[after, "1"] == pytest.approx(w[(after, "SH600000")] + w[(after, "SH600002")])
    assert table.loc[after, "1"] == pytest.approx(0.4) and table.loc[after, "2"] == pytest.approx(0.6)


def test_active_exposure_against_the_benchmark_weight_field(kernel: Kernel, industry_store: Path) -> None:
    positions = _positions(industry_store)
    result = industry_analysis(_engine(kernel, industry_store), positions, market="csi_like")
    active = result["industry_active"]
    # benchmark: SH600000 (industry 1) 3/4, SH600001 (industry 2) 1/4; the portfolio's invested part: 0.1 / 0.9
    # before the switch, 0.4 / 0.6 after
    own = np.array([0.1] * 3 + [0.4] * 3)
    np.testing.assert_allclose(active["1"], own - 0.75, atol=1e-6)
    np.testing.assert_allclose(active["2"], (1 - own) - 0.25, atol=1e-6)
    np.testing.assert_allclose(active.sum(axis=1), 0.0, atol=1e-7)


def test_a_store_without_the_field_gives_no_section(kernel: Kernel, caplog: pytest.LogCaptureFixture) -> None:
    positions = _positions(STORE)
    with caplog.at_level("DEBUG", logger="qanalysis.industry"):
        assert industry_analysis(_engine(kernel, STORE), positions) == {}
    assert any("no $industry field" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match=r"no field \$sector"):
        industry_analysis(_engine(kernel, STORE), positions, industry="$sector")


def _record_context(kernel: Kernel, store: Path, positions: pd.DataFrame) -> SimpleNamespace:
    names = positions.index
    rng = np.random.default_rng(0)
    pred, label = (pd.Series(rng.normal(size=len(names)), index=names) for _ in range(2))
    dates = names.get_level_values("datetime").unique()
    report = pd.DataFrame({"return": 0.001, "bench": 0.0, "cost": 0.0, "turnover": 0.1}, index=dates)
    state = RunState(pred=pred, label=label, engine=_engine(kernel, store))
    state.trading = SimpleNamespace(report=report, positions=positions)
    config = SimpleNamespace(sections={"backtest": {}}, experiment="t", data=SimpleNamespace(universe="csi_like"))
    return SimpleNamespace(state=state, config=config, kernel=kernel, provider=None, run=None)


def test_record_stores_the_artifact_and_the_sections(kernel: Kernel, industry_store: Path) -> None:
    context = _record_context(kernel, industry_store, _positions(industry_store))
    artifacts = AnalysisRecord(ic_decay=0).generate(context).artifacts
    assert set(artifacts["analysis_industry"].columns) == {"1", "2"}
    assert "analysis_industry_active" in artifacts
    anchors = [s.anchor for s in collect_sections(context.state)]
    assert "qa-industry" in anchors and "qa-industry-active" in anchors
    plain = _record_context(kernel, STORE, _positions(STORE))
    artifacts = AnalysisRecord(ic_decay=0).generate(plain).artifacts
    assert "analysis_industry" not in artifacts and "analysis_holdings" in artifacts
    assert "qa-industry" not in [s.anchor for s in collect_sections(plain.state)]


def test_analyze_command_with_an_industry_store(industry_store: Path, tmp_path: Path) -> None:
    positions = _positions(industry_store)
    dates = positions.index.get_level_values("datetime").unique()
    report_dir = tmp_path / "bt"
    report_dir.mkdir()
    pd.DataFrame({"return": 0.001, "bench": 0.0, "cost": 0.0, "turnover": 0.1},
                 index=dates).to_parquet(report_dir / "report_normal_1day.parquet")  # fmt: skip
    positions.to_parquet(report_dir / "positions_normal_1day.parquet")
    pred = positions.rename(columns={"weight": "score"})
    pred.to_parquet(tmp_path / "pred.parquet")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["analyze", "--pred", str(tmp_path / "pred.parquet"), "--provider-uri",
                                       str(industry_store), "--ic-decay", "0", "--report", str(report_dir),
                                       "--bench-weight", "$csi_like_weight", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "industry.parquet")
    np.testing.assert_allclose(table.sum(axis=1), positions["weight"].groupby(level="datetime").sum(), rtol=1e-12)
    assert (out / "industry_active.parquet").is_file()
    page = (out / "analysis.html").read_text()
    assert "id='qa-industry'" in page and "id='qa-industry-active'" in page
