"""Result frames written as Parquet (no dictionary encoding on numbers) or Arrow IPC, atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from qcore.errors import DataError
from qcore.tables import format_for, write_table


@pytest.fixture
def frame() -> pd.DataFrame:
    symbols = ["SH600000", "SZ000001", "SZ000002"]
    dates = pd.date_range("2020-01-01", periods=50)
    index = pd.MultiIndex.from_product([symbols, dates], names=["instrument", "datetime"])
    rng = np.random.default_rng(0)
    out = pd.DataFrame({"a": rng.normal(size=len(index)).astype("float32"), "b": rng.normal(size=len(index))}, index)
    out.loc[out.index[3], "a"] = np.nan
    return out


def test_parquet_round_trip_without_float_dictionaries(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = write_table(frame, tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    meta = pq.ParquetFile(path).metadata
    encodings = {meta.schema.column(i).name: meta.row_group(0).column(i).encodings for i in range(meta.num_columns)}
    assert not any("DICTIONARY" in enc for enc in encodings["a"] + encodings["b"]), encodings
    assert any("DICTIONARY" in enc for enc in encodings["instrument"]), encodings  # strings stay dictionary-encoded


def test_arrow_ipc_by_suffix_or_format(frame: pd.DataFrame, tmp_path: Path) -> None:
    for path, fmt in [(tmp_path / "x.arrow", None), (tmp_path / "y.data", "arrow")]:
        write_table(frame, path, fmt)
        with ipc.open_file(str(path)) as reader:
            pd.testing.assert_frame_equal(reader.read_pandas(), frame)


def test_bad_targets_name_the_path_and_keep_old_file(frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        write_table(frame, tmp_path)
    with pytest.raises(DataError, match="unknown table format 'csv'"):
        format_for(tmp_path / "x.parquet", "csv")
    old = tmp_path / "keep.parquet"
    old.write_bytes(b"old")
    with pytest.raises(Exception):  # noqa: B017 - any failure while writing must leave the old file
        write_table(pd.DataFrame({"a": [object()]}), old)
    assert old.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.parquet"]


def test_table_files_are_recognised(frame: pd.DataFrame, tmp_path: Path) -> None:
    from qcore.tables import is_table_file

    assert is_table_file(write_table(frame, tmp_path / "x.parquet"))
    assert is_table_file(write_table(frame, tmp_path / "x.arrow"))
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("precious")
    assert is_table_file(tmp_path / "empty")
    assert not is_table_file(tmp_path / "notes.txt")
    assert not is_table_file(tmp_path / "missing")


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    index = pd.MultiIndex.from_product([pd.bdate_range("2020-01-01", periods=40), [f"S{i}" for i in range(20)]],
                                       names=["datetime", "instrument"])
    frame = pd.DataFrame(rng.standard_normal((len(index), 3)).astype(np.float32), index=index,
                         columns=["a", "b", "LABEL0"])
    frame.iloc[::7, 1] = np.nan
    frame["c"] = rng.standard_normal(len(index))
    frame.iloc[3, 3] = np.nan
    return {"features": frame, "instrument-major": frame.swaplevel().sort_index(),
            "by date": frame.xs("S1", level="instrument"), "no NaN": frame.fillna(0.0),
            "range index": frame.reset_index(drop=True), "text columns": frame.reset_index(),
            "empty": frame.iloc[:0], "integers": pd.DataFrame({"x": [1, 2]}, index=pd.Index(["a", "b"], name="k")),
            "missing first key": pd.DataFrame({"x": [1.0, np.nan]}, index=pd.Index([None, "b"], name="k"))}


@pytest.mark.parametrize("name", list(_frames()))
def test_arrow_table_equals_pyarrows_own_conversion(name: str) -> None:
    """The fast conversion gives pyarrow's table exactly (values, NaN as nulls, types, pandas metadata), and the
    Parquet file reads back as the frame."""
    import pyarrow as pa

    from qcore.tables import arrow_table

    frame = _frames()[name]
    table = arrow_table(frame)
    assert table.equals(pa.Table.from_pandas(frame, preserve_index=True), check_metadata=True)
    if len(frame):  # (an empty frame loses its index type in any Arrow round trip)
        pd.testing.assert_frame_equal(table.to_pandas(), frame, check_freq=False)
