"""Signal analysis equals Qlib 0.9.7 on the public golden store (golden files: tests/data/analysis/make_golden.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qanalysis import signal

DATA = Path(__file__).resolve().parents[1] / "data" / "analysis"
STORE = Path(__file__).resolve().parents[1] / "data" / "golden_market"


@pytest.fixture(scope="module")
def score() -> pd.Series:
    return pd.read_parquet(DATA / "score.parquet")["score"]


@pytest.fixture(scope="module")
def label() -> pd.Series:
    return pd.read_parquet(DATA / "label.parquet")["label"]


def golden(name: str) -> pd.DataFrame:
    frame = pd.read_parquet(DATA / f"{name}.parquet")
    frame.index = pd.DatetimeIndex(frame.index, name="datetime") if frame.index.nlevels == 1 else frame.index
    return frame


def same(actual: pd.Series | pd.DataFrame, expected: pd.Series | pd.DataFrame, rtol: float = 1e-9,
         atol: float = 1e-12) -> None:  # fmt: skip
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=rtol,
                               atol=atol, equal_nan=True)  # fmt: skip


#: The label is float32 (as Qlib reads it); Qlib's pandas means of it accumulate in float32, ours in float64.
FLOAT32 = 1e-6


def test_calc_ic(score: pd.Series, label: pd.Series) -> None:
    expected = golden("ic")
    actual = signal.calc_ic(score, label)
    assert list(actual.index) == list(expected.index)
    same(actual[["IC", "RankIC"]], expected[["IC", "RankIC"]])
    same(actual[["IC", "RankIC"]], golden("mp_ic")[["IC", "Rank IC"]])  # model_performance_graph's IC bars


@pytest.mark.parametrize("dropna", [False, True])
def test_long_short_return(score: pd.Series, label: pd.Series, dropna: bool) -> None:
    expected = golden("long_short")
    actual = signal.calc_long_short_return(score, label, dropna=dropna).reindex(expected.index)
    same(actual["long_short"], expected[f"long_short_{dropna}"], FLOAT32)
    same(actual["long_avg"], expected[f"long_avg_{dropna}"], FLOAT32)


@pytest.mark.parametrize("reverse", [False, True])
def test_group_returns_cumulative(score: pd.Series, label: pd.Series, reverse: bool) -> None:
    expected = golden("group_return_reverse" if reverse else "group_return")
    actual = signal.group_returns(score, label, n_groups=5, reverse=reverse).cumsum()
    assert list(actual.columns) == list(expected.columns)
    assert list(actual.index) == list(expected.index)
    same(actual, expected, FLOAT32, atol=1e-7)  # cumulative sums of float32-rounded means


@pytest.mark.parametrize("lag", [1, 2, 5])
def test_pred_autocorr(score: pd.Series, lag: int) -> None:
    expected = golden("autocorr")[f"lag{lag}"]
    actual = signal.pred_autocorr(score, lag=lag)
    assert list(actual.index) == list(expected.index)
    same(actual, expected)


def test_rank_autocorr(score: pd.Series) -> None:
    expected = golden("mp_autocorr")["value"]
    same(signal.rank_autocorr(score, lag=1).reindex(expected.index), expected)


def test_top_bottom_turnover(score: pd.Series) -> None:
    expected = golden("turnover")
    actual = signal.top_bottom_turnover(score, n_groups=5, lag=1).reindex(expected.index)
    same(actual[["Top", "Bottom"]], expected[["Top", "Bottom"]])


def test_monthly_ic(score: pd.Series, label: pd.Series) -> None:
    expected = pd.read_parquet(DATA / "monthly_ic.parquet")
    actual = signal.monthly_ic(signal.calc_ic(score, label)["IC"])
    assert list(actual.index) == list(expected.index)
    assert list(actual.columns) == list(expected.columns)
    same(actual, expected)


def test_ic_decay_with_labels_from_the_store(score: pd.Series) -> None:
    import qcore
    from qcore.expr.engine import ExpressionEngine

    kernel = qcore.load_kernel()
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(STORE))
    engine = ExpressionEngine(provider, kernel.registry("operator"), num_threads=1)
    dates = score.index.get_level_values("datetime")
    labels = signal.horizon_labels(engine, "csi_like", dates.min(), dates.max(), range(1, 21))
    expected = pd.read_parquet(DATA / "ic_decay.parquet")
    actual = signal.ic_decay(score, labels)
    assert list(actual.index) == list(range(1, 21))
    # labels are float32 from the engine, Qlib's float32 too: the means agree to float32 rounding
    np.testing.assert_allclose(actual[["IC", "RankIC"]].to_numpy(), expected[["IC", "RankIC"]].to_numpy(),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert actual["IC"].iloc[0] > actual["IC"].iloc[-1]  # the signal is built on the 1-day label: it decays


def test_scores_and_labels_on_one_index_align_as_pandas_does(score: pd.Series, label: pd.Series) -> None:
    """The side-by-side frame every analysis starts from: on one index (the fast path: no union of indexes, no
    sort of a sorted frame), on two different ones, unsorted, or with the levels swapped, it equals pandas'
    union-aligned frame sorted by (datetime, instrument)."""
    same_index = label.reindex(score.index)
    cases = [
        {"score": score, "label": same_index},  # one index
        {"score": score, "label": label},  # two indexes
        {"score": score.iloc[::-1], "label": same_index.iloc[::-1]},  # one index, unsorted
        {"score": score.iloc[: len(score) // 2], "label": same_index},  # a subset
        {"score": score.swaplevel(), "label": same_index.swaplevel()},  # (instrument, datetime)
    ]
    for columns in cases:
        expected = pd.DataFrame(columns)
        if expected.index.names[0] != "datetime":
            expected = expected.swaplevel()
        pd.testing.assert_frame_equal(signal.pred_label(columns["score"], columns["label"]), expected.sort_index(),
                                      check_exact=True)  # fmt: skip
