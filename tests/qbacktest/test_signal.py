"""Scores aligned to the calendar: windows, NaN, duplicates, index shapes, files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qbacktest.signal import Signal, as_score_series, read_scores

from qcore.errors import DataError

CAL = pd.DatetimeIndex(["2021-01-04", "2021-01-05", "2021-01-08", "2021-01-11"])
INSTS = ["A", "B", "C"]


def frame(rows: list[tuple[str, str, float]], names=("datetime", "instrument")) -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([(pd.Timestamp(d), i) for d, i, _ in rows], names=list(names))
    return pd.DataFrame({"score": [v for *_, v in rows]}, index=index)


def test_scores_fall_into_the_bar_of_their_window() -> None:
    sig = Signal(frame([("2021-01-05", "A", 1.0), ("2021-01-06", "A", 2.0), ("2021-01-07", "B", np.nan),
                        ("2021-01-05", "B", 3.0), ("2021-01-11", "C", 4.0)]))  # fmt: skip
    sig.bind(CAL, INSTS)
    values, present = sig.row(1)
    assert values[0] == 2.0  # the latest score of the window [01-05, 01-08) wins
    assert values[1] == 3.0 and present[1]  # a later NaN does not hide the earlier score
    assert not present[2]
    assert sig.row(0) is None and sig.row(2) is None and sig.row(-1) is None
    assert sig.row(3)[0][2] == 4.0


def test_nan_scores_are_present_but_unknown() -> None:
    sig = Signal(frame([("2021-01-04", "A", np.nan), ("2021-01-04", "B", 1.0)]))
    sig.bind(CAL, INSTS)
    values, present = sig.row(0)
    assert present[0] and np.isnan(values[0])


def test_index_order_series_and_duplicates() -> None:
    swapped = frame([("2021-01-04", "A", 1.0)]).swaplevel()
    assert list(as_score_series(swapped).index.names) == ["datetime", "instrument"]
    unnamed = frame([("2021-01-04", "A", 1.0)])
    unnamed.index.names = [None, None]
    assert as_score_series(unnamed["score"]).index[0] == (pd.Timestamp("2021-01-04"), "A")
    with pytest.raises(DataError, match=r"duplicated score row \(2021-01-04, A\)"):
        as_score_series(frame([("2021-01-04", "A", 1.0), ("2021-01-04", "A", 2.0)]))
    with pytest.raises(DataError, match="indexed by"):
        as_score_series(pd.Series([1.0], index=["A"]))


def test_dates_outside_the_calendar_are_reported() -> None:
    sig = Signal(frame([("2020-12-31", "A", 1.0), ("2021-01-04", "A", 1.0)]), source="s.parquet")
    with pytest.raises(DataError, match=r"s.parquet: 1 score row\(s\) dated outside .* 2020-12-31"):
        sig.bind(CAL, INSTS)


def test_read_scores_parquet_and_csv(tmp_path) -> None:
    data = frame([("2021-01-04", "A", 1.0), ("2021-01-05", "B", 2.0)])
    data.to_parquet(tmp_path / "s.parquet")
    assert read_scores(tmp_path / "s.parquet").tolist() == [1.0, 2.0]
    data.reset_index().to_csv(tmp_path / "s.csv", index=False)
    assert read_scores(str(tmp_path / "s.csv")).tolist() == [1.0, 2.0]
    with pytest.raises(DataError, match="score file not found"):
        read_scores(tmp_path / "missing.parquet")
