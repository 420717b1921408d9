"""Signal analysis: parity with Qlib's golden IC, and agreement with plain pandas renderings of Qlib's formulas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qmodel_zoo import analysis

from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel

DATA = Path(__file__).resolve().parents[1] / "data"
LABEL0 = "Ref($close, -2)/Ref($close, -1) - 1"


def _ns_dates(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        return index.set_levels(index.levels[0].astype("datetime64[ns]"), level=0)
    return index.astype("datetime64[ns]")


@pytest.fixture(scope="module")
def golden_score_label() -> tuple[pd.Series, pd.Series]:
    """Golden score (backtest signal) and LABEL0 of csi_like from the golden store, on the score's dates."""
    kernel = Kernel.load(use_env=False)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(DATA / "golden_market"))
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    score = pd.read_parquet(DATA / "golden" / "backtest_score.parquet")["score"]
    score.index = _ns_dates(score.index)
    start = score.index.get_level_values("datetime").min()
    label = engine.evaluate({"LABEL0": LABEL0}, "csi_like", start)["LABEL0"]
    return score, label


def test_calc_ic_matches_qlib_golden(golden_score_label) -> None:
    score, label = golden_score_label
    ours = analysis.calc_ic(score, label)
    golden = pd.read_parquet(DATA / "golden" / "ic.parquet")
    golden.index = _ns_dates(golden.index)
    assert ours.index.equals(golden.index)
    assert list(ours.columns) == ["IC", "RankIC"]
    for column in ("IC", "RankIC"):
        assert ours[column].isna().equals(golden[column].isna()), column
        np.testing.assert_allclose(ours[column].dropna(), golden[column].dropna(), rtol=0, atol=1e-12)
    summary = analysis.ic_summary(ours)
    assert summary["IC"] == pytest.approx(0.0777, abs=1e-4)  # the golden README's mean IC and Rank IC
    assert summary["Rank IC"] == pytest.approx(0.0986, abs=1e-4)
    assert summary["ICIR"] == pytest.approx(golden["IC"].mean() / golden["IC"].std(), rel=1e-12)
    assert summary["Rank ICIR"] == pytest.approx(golden["RankIC"].mean() / golden["RankIC"].std(), rel=1e-12)


def random_signal(seed: int = 3, n_dates: int = 30, n_names: int = 23) -> tuple[pd.Series, pd.Series]:
    """Scores with ties and NaNs, labels with NaNs, an unbalanced panel (some rows missing), one all-NaN date."""
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product(
        [pd.bdate_range("2022-01-03", periods=n_dates, name="datetime"), [f"I{i:02d}" for i in range(n_names)]],
        names=["datetime", "instrument"],
    )
    keep = rng.random(len(index)) > 0.1
    index = index[keep]
    score = pd.Series(np.round(rng.standard_normal(len(index)), 1), index=index)  # rounding makes ties
    label = pd.Series(0.3 * score.to_numpy() + rng.standard_normal(len(index)), index=index)
    score[rng.random(len(index)) < 0.08] = np.nan
    label[rng.random(len(index)) < 0.08] = np.nan
    day = index.get_level_values("datetime") == index.get_level_values("datetime")[40]
    score[day] = np.nan
    return score, label


def test_calc_ic_matches_pandas_corr() -> None:
    score, label = random_signal()
    frame = pd.DataFrame({"pred": score, "label": label})
    by_date = frame.groupby(level="datetime")
    pearson = by_date.apply(lambda d: d["pred"].corr(d["label"]))
    spearman = by_date.apply(lambda d: d["pred"].corr(d["label"], method="spearman"))
    ours = analysis.calc_ic(score, label)
    pd.testing.assert_series_equal(ours["IC"], pearson, check_names=False, rtol=1e-12, atol=1e-14)
    pd.testing.assert_series_equal(ours["RankIC"], spearman, check_names=False, rtol=1e-12, atol=1e-14)
    assert ours["IC"].isna().sum() == 1  # the all-NaN date stays, as NaN


def test_long_short_matches_qlib_formula() -> None:
    score, label = random_signal()
    for dropna in (False, True):
        frame = pd.DataFrame({"pred": score, "label": label})
        if dropna:
            frame = frame.dropna()
        group = frame.groupby(level="datetime")
        long = group.apply(lambda d: d.nlargest(int(len(d) * 0.2), columns="pred").label.mean())
        short = group.apply(lambda d: d.nsmallest(int(len(d) * 0.2), columns="pred").label.mean())
        ours = analysis.long_short_returns(score, label, quantile=0.2, dropna=dropna)
        pd.testing.assert_series_equal(ours["long_short"], (long - short) / 2, check_names=False)
        pd.testing.assert_series_equal(ours["long_avg"], group.label.mean(), check_names=False)
    summary = analysis.long_short_summary(ours)
    assert summary["Long-Short Ann Return"] == pytest.approx(ours["long_short"].mean() * 252)


def test_group_returns_match_qlib_formula() -> None:
    score, label = random_signal()
    frame = pd.DataFrame({"score": score, "label": label}).sort_values("score", ascending=False, kind="mergesort")
    scored = frame.dropna(subset=["score"])
    expected = pd.DataFrame({
        f"Group{i + 1}": scored.groupby(level="datetime")["label"].apply(
            lambda x, i=i: x[len(x) // 5 * i : len(x) // 5 * (i + 1)].mean()
        )
        for i in range(5)
    })
    expected["long-short"] = expected["Group1"] - expected["Group5"]
    expected["long-average"] = expected["Group1"] - frame.groupby(level="datetime")["label"].mean()
    expected = expected.dropna(how="all")
    ours = analysis.group_returns(score, label, n_groups=5)
    pd.testing.assert_frame_equal(ours, expected, check_names=False, check_freq=False)


def test_autocorrelation_and_turnover_match_qlib_formula() -> None:
    score, _ = random_signal()
    frame = score.to_frame("score")
    frame["score_last"] = frame.groupby(level="instrument")["score"].shift(1)
    by_date = frame.groupby(level="datetime")
    auto = by_date.apply(lambda x: x["score"].rank(pct=True).corr(x["score_last"].rank(pct=True)))
    pd.testing.assert_series_equal(analysis.signal_autocorrelation(score), auto, check_names=False)

    def turnover(x: pd.DataFrame, pick: str) -> float:
        k = len(x) // 5
        now = getattr(x, pick)(k, columns="score").index
        before = getattr(x, pick)(k, columns="score_last").index
        return 1 - now.isin(before).sum() / k

    ours = analysis.signal_turnover(score, n_groups=5)
    pd.testing.assert_series_equal(ours["Top"], by_date.apply(turnover, "nlargest"), check_names=False)
    pd.testing.assert_series_equal(ours["Bottom"], by_date.apply(turnover, "nsmallest"), check_names=False)


def test_perfect_and_reversed_signals() -> None:
    score, _ = random_signal()
    score = score.dropna()
    ic = analysis.calc_ic(score, 2 * score + 1)
    assert np.allclose(ic.dropna(), 1.0)
    assert np.allclose(analysis.calc_ic(score, -score)["RankIC"].dropna(), -1.0)
    assert np.allclose(analysis.signal_autocorrelation(score * 0 + 1).dropna(), np.nan, equal_nan=True)


def test_bad_arguments() -> None:
    score, label = random_signal()
    with pytest.raises(ValueError, match="quantile"):
        analysis.long_short_returns(score, label, quantile=0.7)
    with pytest.raises(ValueError, match="n_groups"):
        analysis.group_returns(score, label, n_groups=0)
    with pytest.raises(ValueError, match="lag"):
        analysis.signal_turnover(score, lag=0)
    with pytest.raises(ValueError, match="datetime"):
        analysis.calc_ic(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0]))
