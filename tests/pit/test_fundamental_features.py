"""The ``fundamental`` feature set: registered next to Alpha158, point-in-time values, the CLI, stores without PIT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qdata_cn.synth import synthesize

import qcore
from qcore.cli import cli
from qcore.expr.engine import ExpressionEngine

SYMBOL_COUNT = 10


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same small market with and without fundamentals."""
    root = tmp_path_factory.mktemp("fundamental")
    synthesize(root / "with", instruments=SYMBOL_COUNT, days=700, seed=5)
    synthesize(root / "without", instruments=SYMBOL_COUNT, days=700, seed=5, fundamentals=False)
    return root / "with", root / "without"


def _kernel():
    return qcore.load_kernel(["qdata_cn", "qops"], autoload=False)


def test_registered_next_to_alpha158() -> None:
    kernel = _kernel()
    fs = kernel.create("feature_set", "fundamental")
    assert list(fs.features) == ["EP", "BP", "ROE", "ROED4", "REVG"]
    assert all("P(" in e and "$$" in e for e in fs.features.values())
    assert dict(fs.labels) == dict(kernel.create("feature_set", "alpha158").labels)
    assert dict(kernel.create("feature_set", "fundamental", label=None).labels) == {}


def test_values_are_the_reports_as_known_each_day(stores: tuple[Path, Path]) -> None:
    store = stores[0]
    kernel = _kernel()
    provider = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
    eps_all = provider.load_pit("eps_q", sorted(provider.universe("all")))
    symbol = max(sorted(eps_all), key=lambda s: len(eps_all[s]))  # the stock with the longest history
    fs = kernel.create("feature_set", "fundamental")
    frame = ExpressionEngine(provider, kernel.registry("operator"), num_threads=1).evaluate(
        {**fs.features, "close": "$close", "factor": "$factor"}, [symbol]
    ).xs(symbol, level="instrument")
    records = {f: provider.load_pit(f, [symbol])[symbol] for f in ("eps_q", "bps_q", "roe_q", "revenue_q")}

    def known(field: str, day: pd.Timestamp) -> dict[int, float]:
        """period -> latest revision published on or before ``day``."""
        r = records[field]
        seen = r[r["date"] <= day.year * 10000 + day.month * 100 + day.day]
        return {int(p): float(v) for p, v in zip(seen["period"], seen["value"])}  # later rows overwrite earlier

    def back(period: int, k: int) -> int:
        ordinal = (period // 100) * 4 + period % 100 - 1 - k
        return (ordinal // 4) * 100 + ordinal % 4 + 1

    checked = 0
    for day in frame.index[::23]:
        eps, bps, roe, rev = (known(f, day) for f in ("eps_q", "bps_q", "roe_q", "revenue_q"))
        row = frame.loc[day]
        if not eps:
            assert np.isnan(row["EP"]) and np.isnan(row["ROE"])
            continue
        latest = max(eps)
        raw = row["close"] / row["factor"]
        last4 = [eps.get(back(latest, k), np.nan) for k in range(4)]
        np.testing.assert_allclose(row["EP"], 4 * np.nanmean(last4) / raw, rtol=1e-4)  # a window's known quarters
        np.testing.assert_allclose(row["BP"], bps[max(bps)] / raw, rtol=1e-4)
        np.testing.assert_allclose(row["ROE"], roe[max(roe)], rtol=1e-5)
        year_ago = back(latest, 4)
        np.testing.assert_allclose(row["ROED4"], roe[latest] - roe.get(year_ago, np.nan), rtol=1e-4, atol=1e-7,
                                   equal_nan=True)  # fmt: skip
        np.testing.assert_allclose(row["REVG"], rev[latest] / rev.get(year_ago, np.nan) - 1, rtol=1e-4,
                                   equal_nan=True)  # fmt: skip
        checked += not np.isnan(row["REVG"])
    assert checked >= 5


def test_cli_features_fundamental(stores: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    result = CliRunner().invoke(cli, ["features", "fundamental", "--provider-uri", str(stores[0]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["EP", "BP", "ROE", "ROED4", "REVG", "LABEL0"]
    stocks = frame.drop(index="SH000300", level="instrument", errors="ignore")
    assert stocks["EP"].notna().mean() > 0.6 and stocks["REVG"].notna().mean() > 0.3
    assert (stocks["BP"].dropna() > 0).all()
    assert frame.xs("SH000300", level="instrument")[["EP", "BP", "ROE"]].isna().all().all()  # the index reports none


def test_store_without_period_data_is_a_clear_error(stores: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "g.parquet"
    result = CliRunner().invoke(cli, ["features", "fundamental", "--provider-uri", str(stores[1]), "--out", str(out)])
    assert result.exit_code not in (0, 70)
    assert "unknown period field '$$eps_q'" in result.output and "the store has no period field" in result.output
    assert not out.exists()
