"""Risk-data folders: our Parquet layout (atomic, replaceable), Qlib's own files, and what is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qportfolio.risk.base import FactorRisk
from qportfolio.risk.riskdata import RiskData, list_days, read_meta, write_day, write_meta

from qcore.errors import ConfigError, DataError


def risk(n: int = 5, k: int = 3, seed: int = 0) -> FactorRisk:
    rng = np.random.default_rng(seed)
    names = [f"SH60000{i}" for i in range(n)]
    factors = [f"f{i}" for i in range(k)]
    b = rng.normal(size=(50, k))
    return FactorRisk(pd.DataFrame(rng.normal(size=(n, k)), index=names, columns=factors),
                      pd.DataFrame(np.cov(b.T), index=factors, columns=factors),
                      pd.Series(rng.uniform(1, 2, n), index=names))  # fmt: skip


def test_round_trip_and_layout(tmp_path: Path) -> None:
    original = risk()
    folder = write_day(tmp_path, "2024-01-05", original, blacklist=["SH600003"])
    assert folder.name == "20240105"
    assert sorted(p.name for p in folder.iterdir()) == ["blacklist.parquet", "factor_cov.parquet",
                                                        "factor_exp.parquet", "specific_risk.parquet"]  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    got, blacklist = RiskData(tmp_path).get("2024-01-05")
    pd.testing.assert_frame_equal(got.exposures, original.exposures, check_names=False)
    np.testing.assert_allclose(got.factor_cov.to_numpy(), original.factor_cov.to_numpy())
    np.testing.assert_allclose(got.specific_risk.to_numpy(), original.specific_risk.to_numpy())
    assert blacklist == {"SH600003"}
    assert RiskData(tmp_path).get("2024-01-08") is None


def test_rewriting_a_day_replaces_it_whole(tmp_path: Path) -> None:
    write_day(tmp_path, "2024-01-05", risk(), blacklist=["SH600001"])
    write_day(tmp_path, "2024-01-05", risk(n=4, seed=1))
    got, blacklist = RiskData(tmp_path).get("2024-01-05")
    assert len(got.instruments) == 4 and blacklist == frozenset()
    assert [p.name for p in tmp_path.iterdir()] == ["20240105"]


def test_meta_and_day_listing(tmp_path: Path) -> None:
    for day in ("2024-01-05", "2024-01-04"):
        write_day(tmp_path, day, risk())
    (tmp_path / "notes").mkdir()
    (tmp_path / "20241399").mkdir()  # not a date
    write_meta(tmp_path, {"units": "percent"})
    assert list(list_days(tmp_path)) == [pd.Timestamp("2024-01-04"), pd.Timestamp("2024-01-05")]
    assert read_meta(tmp_path) == {"units": "percent"}


def test_reads_qlibs_files(tmp_path: Path) -> None:
    """The layout of Qlib's ``prepare_riskdata.py``: pickles with integer factor labels, σ as a Series, a
    specific risk missing for one name (Qlib: the largest), and a CSV day."""
    day = tmp_path / "20200102"
    day.mkdir()
    codes = pd.Index(["SH600000", "SH600004", "SH600009"], name="instrument")
    f = np.arange(6.0).reshape(3, 2)
    pd.DataFrame(f, index=codes).to_pickle(day / "factor_exp.pkl")
    pd.DataFrame(np.eye(2)).to_pickle(day / "factor_cov.pkl")
    pd.Series([1.5, 2.5], index=codes[:2]).to_pickle(day / "specific_risk.pkl")
    pd.DataFrame(index=["SH600004"]).to_pickle(day / "blacklist.pkl")
    got, blacklist = RiskData(tmp_path).get("2020-01-02")
    np.testing.assert_array_equal(got.exposures.to_numpy(), f)
    assert list(got.specific_risk) == [1.5, 2.5, 2.5] and blacklist == {"SH600004"}
    csv = tmp_path / "20200103"
    csv.mkdir()
    pd.DataFrame(f, index=codes).to_csv(csv / "exp.csv")
    pd.DataFrame(np.eye(2)).to_csv(csv / "cov.csv")
    pd.Series([1.0, 2.0, 3.0], index=codes, name="sigma").to_csv(csv / "sr.csv")
    mapped = RiskData(tmp_path, {"factor_exp": "exp.csv", "factor_cov": "cov.csv", "specific_risk": "sr.csv"})
    got, _ = mapped.get("2020-01-03")
    assert got.instruments == list(codes) and list(got.specific_risk) == [1.0, 2.0, 3.0]


def test_bad_days_are_data_errors(tmp_path: Path) -> None:
    day = tmp_path / "20200102"
    day.mkdir()
    pd.DataFrame(np.ones((3, 2)), index=list("abc")).to_parquet(day / "factor_exp.parquet")
    pd.DataFrame(np.eye(3)).rename(columns=str).to_parquet(day / "factor_cov.parquet")
    pd.DataFrame({"s": [1.0, 1.0, 1.0]}, index=list("abc")).to_parquet(day / "specific_risk.parquet")
    with pytest.raises(DataError, match="factor_cov is 3×3, but factor_exp has 2 factors"):
        RiskData(tmp_path).get("2020-01-02")
    (day / "factor_cov.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read"):
        RiskData(tmp_path).get("2020-01-02")
    (day / "factor_cov.parquet").unlink()
    with pytest.raises(DataError, match="no factor_cov table"):
        RiskData(tmp_path).get("2020-01-02")
    with pytest.raises(ConfigError, match="unknown table"):
        RiskData(tmp_path, {"factor_loadings": "x.pkl"})


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        import builtins

        return (builtins.open, (str(self.marker), "w"))


def test_a_risk_pickle_that_names_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    import pickle

    day = tmp_path / "20200102"
    day.mkdir()
    codes = pd.Index(["SH600000", "SH600004"], name="instrument")
    pd.DataFrame(np.ones((2, 2)), index=codes).to_pickle(day / "factor_exp.pkl")
    pd.DataFrame(np.eye(2)).to_pickle(day / "factor_cov.pkl")
    marker = tmp_path / "ran"
    (day / "specific_risk.pkl").write_bytes(pickle.dumps({"sigma": _RunsCode(marker)}))
    with pytest.raises(DataError, match=r"specific_risk\.pkl: refused to unpickle: it names io\.open"):
        RiskData(tmp_path).get("2020-01-02")
    assert not marker.exists()
