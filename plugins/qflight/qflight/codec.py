"""Panels and frames as Arrow record batches, bit for bit both ways (float32 values, NaN payloads included).

A **fields** answer streams one batch per block of instruments: a float32 column per field, each the block's
``(dates, block)`` array flattened date-major; the schema's metadata holds the dates and the symbols. An
**evaluate** answer is the engine's frame: two int32 code columns for the ``(datetime, instrument)`` index (the
levels in the metadata) and one column per expression, named by position (the names in the metadata). A **pit**
answer is the point-in-time records of one period field: instrument, publication date, period and value, each
instrument's records contiguous and in publication order.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from qcore.types import Panel

META = b"qflight"


def _dates_text(dates: pd.DatetimeIndex) -> str:
    return base64.b64encode(np.ascontiguousarray(dates.values.astype("datetime64[ns]").view("<i8")).tobytes()).decode()


def _dates_from(text: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.frombuffer(base64.b64decode(text), dtype="<i8").view("datetime64[ns]"))


def _meta(schema: pa.Schema) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(META)
    if raw is None:
        raise ValueError("the answer carries no qflight metadata (not a qflight server?)")
    return json.loads(raw)


# -- fields ---------------------------------------------------------------------------------------------------


def fields_schema(fields: Sequence[str], dates: pd.DatetimeIndex, symbols: Sequence[str]) -> pa.Schema:
    """The schema of a fields answer: one float32 column per field; dates and symbols in the metadata."""
    meta = {"kind": "fields", "fields": list(fields), "symbols": list(symbols), "dates": _dates_text(dates)}
    return pa.schema([(f"f{i}", pa.float32()) for i in range(len(fields))], metadata={META: json.dumps(meta)})


def panel_batch(schema: pa.Schema, panel: Panel, fields: Sequence[str]) -> pa.RecordBatch:
    """One block's batch: each field's ``(dates, block)`` array flattened date-major (no copy when contiguous)."""
    arrays = [pa.array(np.ascontiguousarray(panel[name], dtype=np.float32).ravel()) for name in fields]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def panel_from_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Panel:
    """The panel a fields answer streams."""
    meta = _meta(schema)
    fields, symbols, dates = meta["fields"], meta["symbols"], _dates_from(meta["dates"])
    t = len(dates)
    data = {name: np.full((t, len(symbols)), np.nan, dtype=np.float32) for name in fields}
    col = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if t == 0 or batch.num_rows % t:
            raise ValueError(f"a batch of {batch.num_rows} rows does not fit {t} dates")
        width = batch.num_rows // t
        for i, name in enumerate(fields):
            values = batch.column(i).to_numpy(zero_copy_only=False)
            data[name][:, col : col + width] = values.reshape(t, width)
        col += width
    if col != len(symbols) and t and fields:
        raise ValueError(f"the answer holds {col} of {len(symbols)} instruments (stream cut short?)")
    return Panel(dates=dates, instruments=tuple(symbols), data=data)


# -- evaluated frames -----------------------------------------------------------------------------------------


def frame_table(frame: pd.DataFrame) -> pa.Table:
    """The engine's frame (a two-level index, float columns) as a table whose columns are zero-copy views."""
    index = frame.index
    if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
        raise ValueError("an evaluated frame has a two-level index")
    dates, symbols = index.levels[0], index.levels[1]
    date_level = 0 if isinstance(dates, pd.DatetimeIndex) else 1
    if date_level == 1:
        dates, symbols = symbols, dates
    meta = {
        "kind": "evaluate", "names": [str(c) for c in frame.columns], "index_names": list(index.names),
        "date_level": date_level, "dates": _dates_text(pd.DatetimeIndex(dates)), "symbols": [str(s) for s in symbols],
        "dtypes": [str(frame[c].dtype) for c in frame.columns],
    }  # fmt: skip
    arrays = [pa.array(np.asarray(codes, dtype=np.int32)) for codes in index.codes]
    names = ["l0", "l1"]
    for i, column in enumerate(frame.columns):
        arrays.append(pa.array(np.ascontiguousarray(frame[column].to_numpy())))
        names.append(f"c{i}")
    return pa.Table.from_arrays(arrays, names=names, metadata={META: json.dumps(meta)})


def frame_from_table(table: pa.Table) -> pd.DataFrame:
    """The frame :func:`frame_table` encoded, with the same index levels, order, names and dtypes."""
    meta = _meta(table.schema)
    dates, symbols = _dates_from(meta["dates"]), pd.Index(meta["symbols"], dtype=object)
    levels = [dates, symbols] if meta["date_level"] == 0 else [symbols, dates]
    codes = [table.column(name).to_numpy() for name in ("l0", "l1")]
    index = pd.MultiIndex(levels=levels, codes=codes, names=meta["index_names"], verify_integrity=False)
    data = {}
    for i, (name, dtype) in enumerate(zip(meta["names"], meta["dtypes"], strict=True)):
        data[name] = table.column(f"c{i}").to_numpy().astype(dtype, copy=False)
    return pd.DataFrame(data, index=index, copy=False)


def table_batches(table: pa.Table, max_rows: int) -> Iterator[pa.RecordBatch]:
    """``table`` as batches of at most ``max_rows`` rows (zero-copy slices)."""
    yield from table.combine_chunks().to_batches(max_chunksize=max(1, max_rows))



# -- point-in-time records ------------------------------------------------------------------------------------

PIT_SCHEMA = pa.schema([("instrument", pa.string()), ("date", pa.uint32()), ("period", pa.uint32()),
                        ("value", pa.float64())])  # fmt: skip


def pit_table(records: Mapping[str, np.ndarray]) -> pa.Table:
    """``load_pit``'s answer (symbol → :data:`~qcore.protocols.PIT_RECORD` array) as one table, each symbol's
    records contiguous and in their stored (publication) order."""
    symbols = [s for s, r in records.items() if len(r)]
    parts = [np.asarray(records[s]) for s in symbols]
    columns = {"date": np.uint32, "period": np.uint32, "value": np.float64}
    arrays = [pa.array(np.repeat(np.array(symbols, dtype=object), [len(p) for p in parts]) if parts else [],
                       pa.string())]  # fmt: skip
    for name, dtype in columns.items():
        values = np.concatenate([p[name] for p in parts]).astype(dtype, copy=False) if parts else np.empty(0, dtype)
        arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, schema=PIT_SCHEMA)


def pit_from_table(table: pa.Table) -> dict[str, np.ndarray]:
    """The mapping :func:`pit_table` encoded: symbol → record array, in the order the table holds them."""
    from qcore.protocols import PIT_RECORD

    if table.schema.remove_metadata() != PIT_SCHEMA:
        raise ValueError(f"a point-in-time answer has the columns {PIT_SCHEMA.names}, not {table.schema.names}")
    symbols = np.asarray(table.column("instrument").to_pylist(), dtype=object)
    if len(symbols) == 0:
        return {}
    records = np.empty(len(symbols), dtype=PIT_RECORD)
    for name in ("date", "period", "value"):
        records[name] = table.column(name).to_numpy()
    starts = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
    ends = np.r_[starts[1:], len(symbols)]
    out: dict[str, np.ndarray] = {}
    for lo, hi in zip(starts, ends, strict=True):
        symbol = str(symbols[lo])
        if symbol in out:
            raise ValueError(f"the records of {symbol} are not contiguous")
        out[symbol] = records[lo:hi].copy()
    return out
