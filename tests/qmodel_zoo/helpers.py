"""Assertions the model tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qmodel_zoo.analysis import calc_ic, ic_summary

from qcore.kernel import Kernel
from qcore.modelio import load_model, read_manifest

#: the fixed low bar of test IC on the planted signal (the signal itself reaches about 0.35).
IC_BAR = 0.1


def mean_test_ic(model: Any, dataset: Any) -> float:
    """Mean daily IC of the model's test predictions against the test label."""
    pred = model.predict(dataset, "test")
    _, label = dataset.xy("test")
    assert pred.name == "score" and pred.index.equals(label.index)
    assert np.isfinite(pred).all()
    return ic_summary(calc_ic(pred, label))["IC"]


def assert_roundtrip(model: Any, dataset: Any, folder: Path, kernel: Kernel, name: str) -> Any:
    """save → load_model gives the same registry entry and identical predictions; returns the loaded model."""
    model.save(folder)
    assert read_manifest(folder)["model"] == name
    loaded = load_model(folder, kernel)
    pd.testing.assert_series_equal(loaded.predict(dataset, "test"), model.predict(dataset, "test"), rtol=0, atol=0)
    return loaded


class WithoutValid:
    """A view of a dataset with only its ``train`` and ``test`` segments."""

    segments = ("train", "test")

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def xy(self, segment: str, data_key: str | None = None) -> Any:
        """The wrapped dataset's rows of ``segment``."""
        return self.dataset.xy(segment, data_key)
