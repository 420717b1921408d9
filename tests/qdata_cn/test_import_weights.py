"""``qcore data import-weights``: benchmark weights into ``$<market>_weight`` (Qlib's layout), the checks that refuse
bad files before writing, the sum warning, atomic replacement, and the portfolio plugin reading the field."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qdata_cn.weights_import import import_weights

from qcore.cli import cli
from qcore.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qdata_cn.synth import synthesize

    out = tmp_path_factory.mktemp("weights") / "store"
    synthesize(out, instruments=12, days=40, seed=2, start="2021-01-04", fundamentals=False)
    return out


@pytest.fixture
def store(base_store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(base_store, dst)
    return dst


def _names(store: Path) -> list[str]:
    from qdata_cn.binstore import read_instruments

    return sorted(n for n in read_instruments(store / "instruments" / "all.txt") if not n.startswith("SH000"))


def _calendar(store: Path) -> pd.DatetimeIndex:
    from qdata_cn.binstore import read_calendar

    return read_calendar(store / "calendars" / "day.txt", "day")


def _file(path: Path, rows: list[tuple[object, str, object]]) -> Path:
    pd.DataFrame(rows, columns=["date", "instrument", "weight"]).to_csv(path, index=False)
    return path


def _bin(store: Path, name: str, field: str) -> tuple[int, np.ndarray]:
    raw = np.fromfile(store / "features" / name.lower() / f"{field}.day.bin", dtype="<f4")
    return int(raw[0]), raw[1:]


def test_weights_are_written_in_qlibs_layout_and_held_to_the_next_date(store: Path, tmp_path: Path) -> None:
    cal, names = _calendar(store), _names(store)
    a, b, c = names[:3]
    src = _file(tmp_path / "w.csv", [(cal[5].date(), a, 0.6), (cal[5].date(), b, 0.4),
                                     (cal[10].strftime("%Y%m%d"), a, 0.5), (cal[10].date(), c, 0.5)])  # fmt: skip
    summary = import_weights(src, store, "CSI300")
    assert summary["field"] == "$csi300_weight" and summary["instruments"] == 3 and summary["dates"] == 2
    assert summary["days"] == len(cal) - 5 and summary["units"] == "fraction"
    start, values = _bin(store, a, "csi300_weight")
    assert start == 5 and len(values) == len(cal) - 5
    np.testing.assert_allclose(values[:5], 0.6) and np.testing.assert_allclose(values[5:], 0.5)
    start_b, values_b = _bin(store, b, "csi300_weight")
    assert start_b == 5 and np.allclose(values_b[:5], 0.4) and np.isnan(values_b[5:]).all()  # b left the index
    start_c, values_c = _bin(store, c, "csi300_weight")
    assert start_c == 10 and np.allclose(values_c, 0.5)


def test_the_portfolio_plugin_reads_the_field(store: Path, tmp_path: Path) -> None:
    from qportfolio.benchmark import BenchmarkWeights

    import qcore

    cal, names = _calendar(store), _names(store)
    rows = [(cal[2].date(), n, w) for n, w in zip(names[:4], (40.0, 30.0, 20.0, 10.0), strict=True)]  # percent
    import_weights(_file(tmp_path / "w.csv", rows), store, "csi300")
    kernel = qcore.load_kernel()
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    weights = BenchmarkWeights.from_spec(None, "csi300")  # the strategies' default: $csi300_weight
    weights.bind(provider, kernel.registry("operator"))
    weights.prepare([cal[3], cal[20]])
    for day in (cal[3], cal[20]):
        assert weights.at(day).to_dict() == pytest.approx(dict(zip(names[:4], (0.4, 0.3, 0.2, 0.1), strict=True)))


def test_bad_files_are_refused_before_anything_is_written(store: Path, tmp_path: Path) -> None:
    cal, names = _calendar(store), _names(store)
    day = cal[3].date()
    cases = [
        (pd.DataFrame({"date": [day], "code": [names[0]], "weight": [1.0]}), "missing instrument"),
        ([(day, names[0], 0.5), (day, "SH999999", 0.5)], "1 instrument.s. the store does not list .*SH999999"),
        ([(day, names[0], 0.5), (pd.Timestamp(cal[3]) + pd.Timedelta(days=300), names[1], 0.5)],
         "line 3: .* is outside the store's calendar"),
        ([(day, names[0], 1.0), ("2021-01-09", names[1], 1.0)], "line 3: 2021-01-09 is not a trading day"),
        ([(day, names[0], 0.5), ("2021-13-01", names[1], 0.5)], "line 3: date '2021-13-01' is not a date"),
        ([(day, names[0], -0.5)], "line 2: weight '-0.5' is not a non-negative number"),
        ([(day, names[0], "x")], "line 2: weight 'x' is not a non-negative number"),
        ([(day, names[0], 0.5), (day, names[0].lower(), 0.5)], "line 3: .* is given twice"),
    ]
    for i, (rows, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.csv"
        if isinstance(rows, pd.DataFrame):
            rows.to_csv(path, index=False)
        else:
            _file(path, rows)
        with pytest.raises(DataError, match=message) as err:
            import_weights(path, store, "csi300")
        assert str(path) in str(err.value)
    assert not list((store / "features").glob("*/csi300_weight.day.bin"))
    with pytest.raises(ConfigError, match="market name"):
        import_weights(_file(tmp_path / "ok.csv", [(day, names[0], 1.0)]), store, "csi 300")


def test_daily_sums_off_one_warn_or_fail(store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cal, names = _calendar(store), _names(store)
    rows = [(cal[1].date(), names[0], 0.5), (cal[1].date(), names[1], 0.45), (cal[2].date(), names[0], 1.0)]
    src = _file(tmp_path / "w.csv", rows)
    with pytest.raises(DataError, match=r"1 of 2 date\(s\) have weights that do not sum to 1 within 0.01: .*0.95"):
        import_weights(src, store, "csi300", strict=True)
    with caplog.at_level(logging.WARNING, logger="qdata_cn.weights"):
        summary = import_weights(src, store, "csi300")
    assert summary["off_sum_dates"] == 1 and "do not sum to 1" in caplog.text
    assert _bin(store, names[1], "csi300_weight")[1][0] == pytest.approx(0.45)
    import_weights(src, store, "csi300", normalise=True, fill=False)
    start, values = _bin(store, names[1], "csi300_weight")
    assert start == 1 and values[0] == pytest.approx(0.45 / 0.95)
    assert import_weights(src, store, "csi300", tolerance=0.1)["off_sum_dates"] == 0


def test_a_new_import_replaces_the_field(store: Path, tmp_path: Path) -> None:
    cal, names = _calendar(store), _names(store)
    import_weights(_file(tmp_path / "a.csv", [(cal[1].date(), names[0], 0.5), (cal[1].date(), names[1], 0.5)]),
                   store, "csi300")  # fmt: skip
    summary = import_weights(_file(tmp_path / "b.csv", [(cal[2].date(), names[2], 1.0)]), store, "csi300")
    assert summary["removed"] == 2
    held = sorted(p.parent.name for p in (store / "features").glob("*/csi300_weight.day.bin"))
    assert held == [names[2].lower()]


def test_cli(store: Path, tmp_path: Path) -> None:
    cal, names = _calendar(store), _names(store)
    src = tmp_path / "w.parquet"
    pd.DataFrame({"date": [cal[4], cal[4]], "instrument": names[:2], "weight": [0.7, 0.2]}).to_parquet(src)
    result = CliRunner().invoke(cli, ["data", "import-weights", str(src), "--to", str(store), "--market", "csi500"])
    assert result.exit_code == 0, result.output
    assert "wrote $csi500_weight for 2 instrument(s)" in result.output
    assert "Warning:" in result.output and "do not sum to 1" in result.output
    failed = CliRunner().invoke(cli, ["data", "import-weights", str(src), "--to", str(store), "--market", "csi500",
                                      "--strict"])  # fmt: skip
    assert failed.exit_code not in (0, 70) and "do not sum to 1" in failed.output
    assert len(failed.output.strip().splitlines()) == 1
