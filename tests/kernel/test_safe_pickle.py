"""``qcore.safe_pickle``: pickled pandas frames of every common shape read back equal; a pickle that names any other
global is refused with the file and the global named, before the global is imported or called."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qcore.errors import DataError
from qcore.safe_pickle import loads_frame, read_frame

_INDEX = pd.MultiIndex.from_product([pd.date_range("2020-01-01", periods=4), ["SH600000", "SZ000001"]],
                                    names=["datetime", "instrument"])
FRAMES = {
    "float32": pd.DataFrame(np.arange(16, dtype=np.float32).reshape(8, 2), index=_INDEX, columns=["KMID", "KLEN"]),
    "two_level_columns": pd.DataFrame(np.ones((8, 2)), index=_INDEX,
                                      columns=pd.MultiIndex.from_tuples([("feature", "a"), ("label", "b")])),
    "series": pd.Series(np.linspace(0, 1, 8), index=_INDEX, name="LABEL0"),
    "business_days": pd.DataFrame({"x": np.arange(5.0)}, index=pd.date_range("2020-01-01", periods=5, freq="B")),
    "categorical_and_text": pd.DataFrame({"c": pd.Categorical(["a", "b"] * 4), "t": ["x"] * 8}, index=_INDEX),
    "time_zone": pd.DataFrame({"x": [1.0, 2.0]}, index=pd.date_range("2020-01-01", periods=2, tz="Asia/Shanghai")),
    "nullable": pd.DataFrame({"i": pd.array([1, None], dtype="Int64"), "f": pd.array([1.5, None], dtype="Float32"),
                              "b": pd.array([True, None], dtype="boolean"),
                              "s": pd.array(["a", None], dtype="string")}),
    "timedelta_period": pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="D"),
                                      "p": pd.period_range("2020-01", periods=2, freq="M")}),
}


@pytest.mark.parametrize("protocol", [0, 2, 4, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_frames_read_back_equal(name: str, protocol: int) -> None:
    original = FRAMES[name]
    got = loads_frame(pickle.dumps(original, protocol=protocol))
    if isinstance(original, pd.Series):
        pd.testing.assert_series_equal(got, original)
    else:
        pd.testing.assert_frame_equal(got, original)


@pytest.mark.parametrize("suffix", [".pkl", ".pkl.gz", ".pkl.bz2", ".pkl.xz"])
def test_files_written_by_pandas_read_back(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"feature{suffix}"
    FRAMES["float32"].to_pickle(path)
    pd.testing.assert_frame_equal(read_frame(path), FRAMES["float32"])


class _Gadget:
    """Pickles as a call of ``target(*args)``."""

    def __init__(self, target: object, *args: object) -> None:
        self.target, self.args = target, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.target, self.args


@pytest.mark.parametrize(("payload", "named"), [
    (lambda marker: pickle.dumps(_Gadget(os.system, f"touch {marker}")), f"{os.system.__module__}.system"),
    (lambda marker: pickle.dumps({"frame": _Gadget(open, str(marker), "w")}), "io.open"),
    (lambda marker: pickle.dumps(_Gadget(pd.read_pickle, str(marker))), "pandas.io.pickle.read_pickle"),
    (lambda marker: pickle.dumps(_Gadget(np.save, str(marker), np.ones(1))), "numpy.save"),
    (lambda marker: f"cbuiltins\neval\n(V__import__('pathlib').Path({str(marker)!r}).touch()\ntR.".encode(),
     "builtins.eval"),
])
def test_a_pickle_naming_code_is_refused_and_nothing_runs(tmp_path: Path, payload, named: str) -> None:
    marker = tmp_path / "ran"
    source = tmp_path / "feature.pkl"
    source.write_bytes(payload(marker))
    with pytest.raises(DataError) as info:
        read_frame(source)
    assert str(info.value).startswith(f"{source}: refused to unpickle: it names {named},")
    assert not marker.exists()


def test_the_module_of_a_refused_name_is_not_imported(tmp_path: Path) -> None:
    assert "antigravity" not in sys.modules
    with pytest.raises(DataError, match=r"it names antigravity\.fly"):
        loads_frame(b"cantigravity\nfly\n(tR.")
    assert "antigravity" not in sys.modules


@pytest.mark.parametrize(("data", "message"), [
    (b"\x80\x04\x95", "cannot unpickle: UnpicklingError: pickle data was truncated"),
    (b"", "cannot unpickle: EOFError"),
    (pickle.dumps([1.0, 2.0]), "expected a pickled pandas DataFrame or Series, found a list"),
    (pickle.dumps(np.ones(3)), "expected a pickled pandas DataFrame or Series, found a ndarray"),
])
def test_damaged_or_other_pickles_are_data_errors(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=f"^x.pkl: {message}"):
        loads_frame(data, "x.pkl")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.pkl: cannot read"):
        read_frame(tmp_path / "nothere.pkl")


OLD = Path(__file__).resolve().parents[1] / "data" / "pickles"


def test_pickles_of_pandas_1_read_as_written() -> None:
    """Files pandas 1.5.3 / numpy 1.26 wrote (``tests/data/pickles/README.md``), as Qlib's TRA data files were."""
    from qcore.static_frames import read_static
    from qcore.types import StaticFiles

    index = pd.MultiIndex.from_product([pd.date_range("2020-01-01", periods=4), ["SH600000", "SZ000001"]],
                                       names=["datetime", "instrument"])
    feature = pd.DataFrame(np.arange(16, dtype=np.float32).reshape(8, 2), index=index, columns=["KMID", "KLEN"])
    feature.iloc[3, 1] = np.nan
    label = pd.DataFrame({"LABEL0": np.linspace(-1, 1, 8)}, index=index)
    pd.testing.assert_frame_equal(read_frame(OLD / "feature_pd153.pkl"), feature)
    pd.testing.assert_frame_equal(read_frame(OLD / "label_pd153.pkl"), label)
    pd.testing.assert_series_equal(read_frame(OLD / "series_pd153.pkl"),
                                   pd.Series(np.arange(8.0), index=index, name="LABEL0"))
    both = pd.concat({"feature": feature, "label": label}, axis=1)
    pd.testing.assert_frame_equal(read_frame(OLD / "both_pd153.pkl"), both)
    split = read_static(StaticFiles({"feature": str(OLD / "feature_pd153.pkl"), "label": str(OLD / "label_pd153.pkl")}))
    pd.testing.assert_frame_equal(split, both.astype(np.float32))
