"""Alpha158 and Alpha360 feature sets: Qlib's names, order and formulas, and parity with Qlib's handler output.

The golden frames (``tests/data/golden/alpha158.parquet``, ``alpha360.parquet``, copied from ``shared/golden``) are
``Alpha158``/``Alpha360(instruments='all', full range, no processors).fetch(col_set='__all', data_key='raw')``
over the golden store, indexed (datetime, instrument). Every column is compared with the rule of
``tests/expr/test_golden_parity.py``: identical NaN/inf positions, and at least 99.9% of finite cells within
``1e-4*|qlib| + 1e-6``. Columns we knowingly do not reproduce go in ``KNOWN_DIFFERENCES`` with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qops.features import ROLLING_KEYS, alpha158, alpha360, labels_of

from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from qcore.types import FeatureSet
from tests.parity import compare, read_golden

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "golden"
STORE = DATA / "golden_market"
LABEL0 = "Ref($close, -2)/Ref($close, -1) - 1"

#: Columns whose Qlib values we knowingly do not reproduce, with the reason. None so far.
KNOWN_DIFFERENCES: dict[str, str] = {}

SETS = {"alpha158": alpha158, "alpha360": alpha360}


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


@pytest.fixture(scope="module")
def engine(kernel: Kernel) -> ExpressionEngine:
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(STORE))
    return ExpressionEngine(provider, kernel.registry("operator"))


def evaluate(engine: ExpressionEngine, feature_set: FeatureSet) -> pd.DataFrame:
    return engine.evaluate({**feature_set.features, **feature_set.labels}, "all").sort_index()


@pytest.fixture(scope="module")
def golden() -> dict[str, pd.DataFrame]:
    return {name: read_golden(f"{name}.parquet", ("datetime", "instrument")) for name in SETS}


@pytest.fixture(scope="module")
def ours(engine: ExpressionEngine) -> dict[str, pd.DataFrame]:
    return {name: evaluate(engine, make()) for name, make in SETS.items()}


def golden_columns(name: str) -> list[str]:
    return list(pd.read_parquet(GOLDEN / f"{name}.parquet").columns)


# -- names and order ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SETS))
def test_names_and_order_match_qlib(name: str) -> None:
    feature_set = SETS[name]()
    assert [*feature_set.features, *feature_set.labels] == golden_columns(name)
    assert dict(feature_set.labels) == {"LABEL0": LABEL0}


def test_counts_and_groups() -> None:
    features = list(alpha158().features)
    assert len(features) == 158
    assert features[:13] == [
        *("KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2"),
        *("OPEN0", "HIGH0", "LOW0", "VWAP0"),
    ]
    assert features[13:18] == ["ROC5", "ROC10", "ROC20", "ROC30", "ROC60"]
    assert len(ROLLING_KEYS) == 29
    alpha = alpha360().features
    assert len(alpha) == 360
    assert list(alpha)[:2] == ["CLOSE59", "CLOSE58"] and list(alpha)[-1] == "VOLUME0"
    assert alpha["CLOSE0"] == "$close/$close" and alpha["VWAP7"] == "Ref($vwap, 7)/$close"
    assert alpha["VOLUME3"] == "Ref($volume, 3)/($volume+1e-12)"


def test_formulas_are_qlibs() -> None:
    features = alpha158().features
    assert features["KSFT2"] == "(2*$close-$high-$low)/($high-$low+1e-12)"
    assert features["VWAP0"] == "$vwap/$close"
    assert features["MIN20"] == "Min($low, 20)/$close"
    assert features["RSV10"] == "($close-Min($low, 10))/(Max($high, 10)-Min($low, 10)+1e-12)"
    assert features["IMXD30"] == "(IdxMax($high, 30)-IdxMin($low, 30))/30"
    assert features["CORD5"] == "Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), 5)"
    assert features["SUMD60"] == (
        "(Sum(Greater($close-Ref($close, 1), 0), 60)-Sum(Greater(Ref($close, 1)-$close, 0), 60))"
        "/(Sum(Abs($close-Ref($close, 1)), 60)+1e-12)"
    )
    assert features["WVMA5"] == (
        "Std(Abs($close/Ref($close, 1)-1)*$volume, 5)/(Mean(Abs($close/Ref($close, 1)-1)*$volume, 5)+1e-12)"
    )
    assert features["VSUMN20"] == (
        "Sum(Greater(Ref($volume, 1)-$volume, 0), 20)/(Sum(Abs($volume-Ref($volume, 1)), 20)+1e-12)"
    )


# -- parity with Qlib -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SETS))
def test_rows_match_qlib(name: str, ours: dict[str, pd.DataFrame], golden: dict[str, pd.DataFrame]) -> None:
    assert ours[name].index.equals(golden[name].index)
    assert list(ours[name].columns) == list(golden[name].columns)
    assert (ours[name].dtypes == np.float32).all()


@pytest.mark.parametrize(("name", "column"), [(name, column) for name in SETS for column in golden_columns(name)])
def test_column_matches_qlib(
    name: str, column: str, ours: dict[str, pd.DataFrame], golden: dict[str, pd.DataFrame]
) -> None:
    if column in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[column])
    theirs = golden[name][column]
    mine = ours[name][column].reindex(theirs.index).to_numpy()
    mismatches, finite, share = compare(mine, theirs.to_numpy())
    assert mismatches == 0, f"{name}.{column}: {mismatches} NaN/inf positions differ"
    assert share >= 0.999, f"{name}.{column}: only {share:.4%} of {finite} finite cells agree"


# -- config knobs ---------------------------------------------------------------------------------------------


def test_rolling_subset(engine: ExpressionEngine, golden: dict[str, pd.DataFrame]) -> None:
    subset = alpha158(rolling={"windows": [5], "include": ["ROC"]})
    assert dict(subset.features) == {"ROC5": "Ref($close, 5)/$close"}
    assert dict(subset.labels) == {"LABEL0": LABEL0}
    picked = alpha158(rolling={"windows": [5, 20], "include": ["LOW", "CORR", "RANK"], "exclude": ["RANK"]})
    assert list(picked.features) == ["MIN5", "MIN20", "CORR5", "CORR20"]
    frame = evaluate(engine, picked)
    for column in frame.columns:
        mismatches, _, share = compare(frame[column].to_numpy(), golden["alpha158"][column].to_numpy())
        assert mismatches == 0 and share >= 0.999, column


def test_group_defaults_and_windows() -> None:
    full = alpha158(kbar={}, price={}, volume={}, rolling={})
    assert len(full.features) == 9 + 25 + 5 + 145
    names = list(full.features)
    assert names[9:14] == ["OPEN0", "OPEN1", "OPEN2", "OPEN3", "OPEN4"] and "CLOSE0" in names
    assert names[34:39] == [f"VOLUME{d}" for d in range(5)]
    assert full.features["VOLUME0"] == "$volume/($volume+1e-12)"
    assert full.features["HIGH3"] == "Ref($high, 3)/$close"
    custom = alpha158(price={"windows": [1, 3], "feature": ["close"]}, rolling={"windows": [7], "exclude": ["RANK"]})
    assert list(custom.features)[:2] == ["CLOSE1", "CLOSE3"]
    assert len(custom.features) == 2 + 28 and "RANK7" not in custom.features
    assert custom.features["IMAX7"] == "IdxMax($high, 7)/7"
    # the same groups as one Qlib-style config dict; None leaves a group off
    assert alpha158(config={"kbar": {}}).features == alpha158(kbar={}, rolling=None).features
    assert (
        alpha158(
            config={"kbar": {}, "price": {"windows": [0], "feature": ["OPEN", "HIGH", "LOW", "VWAP"]}, "rolling": {}}
        ).features
        == alpha158().features
    )


def test_labels() -> None:
    assert dict(alpha158(label=None).labels) == {}
    assert dict(alpha360(label={"RET": "Ref($vwap, -2)/Ref($vwap, -1) - 1"}).labels) == {
        "RET": "Ref($vwap, -2)/Ref($vwap, -1) - 1"
    }
    # Qlib's forms: (expressions, names), or a plain list named by the expressions themselves
    assert labels_of((["Ref($close, -1)/$close - 1"], ["R1"])) == {"R1": "Ref($close, -1)/$close - 1"}
    assert labels_of([LABEL0]) == {LABEL0: LABEL0}
    with pytest.raises(ValueError, match="2 expressions but 1 names"):
        labels_of((["$close", "$open"], ["A"]))


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="MIN's key is 'LOW'"):
        alpha158(rolling={"include": ["MIN"]})
    with pytest.raises(ValueError, match="unknown groups FOO"):
        alpha158(rolling={"exclude": ["FOO"]})
    with pytest.raises(TypeError, match="unexpected arguments: rollin"):
        alpha158(rollin={})
    with pytest.raises(ValueError, match="integers >= 1"):
        alpha158(rolling={"windows": [0]})
    with pytest.raises(ValueError, match="unknown keys window"):
        alpha158(price={"window": [1]})
    with pytest.raises(ValueError, match="two features named 'ROC5'"):
        alpha158(rolling={"windows": [5, 5]})
    with pytest.raises(ValueError, match="two features named 'VOLUME0'"):
        alpha158(price={"feature": ["VOLUME"]}, volume={})
    with pytest.raises(ValueError, match="selects no feature"):
        alpha158(rolling={"include": []})
    with pytest.raises(ValueError, match="both a feature and a label"):
        alpha158(label={"KMID": "$close"})
    with pytest.raises(TypeError):
        alpha360(rolling={})


# -- registration ---------------------------------------------------------------------------------------------


def test_registered_with_aliases(kernel: Kernel) -> None:
    registry = kernel.registry("feature_set")
    assert {"alpha158", "alpha360", "Alpha158", "Alpha360"} <= set(registry.names(include_aliases=True))
    assert registry.entry("Alpha158").plugin == registry.entry("alpha360").plugin
    made = kernel.create("feature_set", "Alpha158", rolling={"windows": [5], "include": ["ROC"]})
    assert isinstance(made, FeatureSet) and list(made.features) == ["ROC5"]
    assert kernel.create("feature_set", "alpha360").features == alpha360().features
