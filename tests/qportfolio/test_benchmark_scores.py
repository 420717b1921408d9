"""Benchmark weights (files, fields, membership) and the scores a strategy reads per bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qportfolio.benchmark import BenchmarkWeights
from qportfolio.scores import Scores

from qcore.errors import ConfigError, DataError


def test_weights_file_as_of_and_normalised(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("date,instrument,weight\n2024-01-31,A,30\n2024-01-31,B,70\n2024-02-29,A,1\n2024-02-29,C,1\n")
    bench = BenchmarkWeights.from_spec(str(path))
    assert bench.describe() == f"the file {path}" and bench.instruments == ["A", "B", "C"]
    feb = bench.at("2024-02-15")  # January's weights are in force until the next publication
    assert feb.to_dict() == {"A": 0.3, "B": 0.7}
    assert bench.at("2024-03-05").to_dict() == {"A": 0.5, "C": 0.5}
    with pytest.raises(DataError, match="on or before 2024-01-02"):
        bench.at("2024-01-02")
    parquet = tmp_path / "w.parquet"
    pd.read_csv(path).to_parquet(parquet)
    assert BenchmarkWeights.from_spec({"file": str(parquet)}).at("2024-02-29").to_dict() == {"A": 0.5, "C": 0.5}


@pytest.mark.parametrize(("text", "message"), [
    ("date,instrument\n2024-01-31,A\n", "missing weight"),
    ("date,instrument,weight\n2024-01-31,A,-1\n", "not a non-negative number"),
    ("date,instrument,weight\n2024-01-31,A,x\n", "not a non-negative number"),
    ("date,instrument,weight\n2024-01-31,A,1\n2024-01-31,A,2\n", "appears twice"),
    ("date,instrument,weight\n31/01/2024,A,1\n", "ISO dates"),
])  # fmt: skip
def test_bad_weights_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "w.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        BenchmarkWeights.from_spec({"file": str(path)})


def test_spec_forms() -> None:
    assert BenchmarkWeights.from_spec(None, "csi300").field == "$csi300_weight"
    assert BenchmarkWeights.from_spec("$x_weight").kind == "field"
    assert BenchmarkWeights.from_spec({"field": "idx_w"}).field == "$idx_w"
    member = BenchmarkWeights.from_spec({"market": "csi300", "cap": None})
    assert member.kind == "membership" and "equally" in member.describe()
    with pytest.raises(ConfigError, match="expected one of"):
        BenchmarkWeights.from_spec({"file": "a", "field": "b"})
    with pytest.raises(DataError, match="not found"):
        BenchmarkWeights.from_spec("/nonexistent/weights.csv")


def test_field_and_membership_weights(memory_store, pkernel) -> None:
    ops = pkernel.registry("operator")
    with pytest.raises(ConfigError, match=r"no field \$csi300_weight"):
        BenchmarkWeights.from_spec(None, "csi300").bind(memory_store, ops)
    day = memory_store.dates[100]
    equal = BenchmarkWeights.from_spec({"market": "csi300", "cap": None})
    equal.bind(memory_store, ops)
    equal.prepare([day])
    w = equal.at(day)
    assert len(w) == 18 and np.allclose(w, 1 / 18)
    by_amount = BenchmarkWeights.from_spec({"market": "csi300", "cap": "$amount"})
    by_amount.bind(memory_store, ops)
    by_amount.prepare([day])
    w = by_amount.at(day)
    amount = memory_store.data["amount"].loc[day, w.index]
    np.testing.assert_allclose(w.to_numpy(), (amount / amount.sum()).to_numpy(), rtol=1e-6)
    by_field = BenchmarkWeights.from_spec({"field": "$volume"})
    by_field.bind(memory_store, ops)
    by_field.prepare([day])
    assert len(by_field.at(day)) == 24
    with pytest.raises(ConfigError, match="need the run's store"):
        by_field.bind(None, None)


def _scores() -> pd.Series:
    idx = pd.MultiIndex.from_tuples([
        (pd.Timestamp("2024-01-04"), "A"), (pd.Timestamp("2024-01-04"), "B"),
        (pd.Timestamp("2024-01-05"), "A"), (pd.Timestamp("2024-01-06"), "A"), (pd.Timestamp("2024-01-06"), "B"),
        (pd.Timestamp("2024-01-08"), "C"),
    ], names=["datetime", "instrument"])  # fmt: skip
    return pd.Series([1.0, 2.0, 3.0, np.nan, 5.0, 6.0], index=idx)


def test_score_windows() -> None:
    scores = Scores(_scores())
    assert scores.instruments == ["A", "B", "C"]
    # the bar of Monday 2024-01-08 (information date Friday 01-05) reads Friday and Saturday
    window = scores.window(pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-08"))
    assert window.to_dict() == {"A": 3.0, "B": 5.0}  # A's NaN on Saturday does not hide Friday's 3.0
    assert scores.window(pd.Timestamp("2024-01-04"), pd.Timestamp("2024-01-05")).to_dict() == {"A": 1.0, "B": 2.0}
    assert scores.window(pd.Timestamp("2024-01-09"), pd.Timestamp("2024-01-10")) is None


def test_score_sources(tmp_path: Path) -> None:
    frame = _scores().rename("score").to_frame()
    frame["other"] = 0.0
    assert Scores(frame).instruments == ["A", "B", "C"]

    class Carrier:
        scores = _scores()

    assert Scores(Carrier()).dates[0] == pd.Timestamp("2024-01-04")
    path = tmp_path / "pred.parquet"
    _scores().rename("score").to_frame().to_parquet(path)
    assert Scores(str(path)).instruments == ["A", "B", "C"]
    with pytest.raises(ConfigError, match="placeholder <PRED>"):
        Scores("<PRED>")
    with pytest.raises(DataError, match="not found"):
        Scores(str(tmp_path / "missing.parquet"))
    with pytest.raises(DataError, match="no score that is a number"):
        Scores(_scores() * np.nan)
    two = frame.rename(columns={"score": "a"})
    with pytest.raises(DataError, match="none is named 'score'"):
        Scores(two)
