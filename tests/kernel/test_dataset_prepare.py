"""``PanelDataset.prepare`` cuts a segment's rows of one column group, or of all columns, the same either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qcore.dataset import PanelDataset


@pytest.fixture
def dataset() -> PanelDataset:
    dates = pd.date_range("2021-01-04", periods=10, freq="B")
    index = pd.MultiIndex.from_product([dates, ["A", "B", "C"]], names=["datetime", "instrument"])
    columns = pd.MultiIndex.from_tuples([("feature", "f1"), ("feature", "f2"), ("label", "y")])
    values = np.arange(len(index) * 3, dtype=np.float32).reshape(len(index), 3)
    segments = {"train": (dates[0], dates[5]), "test": (dates[6], dates[9])}
    return PanelDataset(pd.DataFrame(values, index=index, columns=columns), segments)


@pytest.mark.parametrize("col_set", ["feature", "label", ["feature"], [("feature", "f2"), ("label", "y")]])
@pytest.mark.parametrize("segment", ["train", "test"])
def test_column_group_is_the_group_of_the_segment_rows(dataset: PanelDataset, segment: str, col_set) -> None:
    everything = dataset.prepare(segment)
    expected = everything[col_set] if isinstance(col_set, str) else everything.loc[:, col_set]
    pd.testing.assert_frame_equal(dataset.prepare(segment, col_set, "raw"), expected)


def test_segment_rows(dataset: PanelDataset) -> None:
    assert len(dataset.prepare("train", "label", "raw")) == 6 * 3
    test = dataset.prepare("test", "feature")
    assert list(test.columns) == ["f1", "f2"]
    assert test.index.get_level_values("datetime").min() == pd.Timestamp("2021-01-12")
