"""Exporting a bin store to CSV or Parquet (``qcore data export``), in a form that re-imports to identical bins.

Each instrument contributes one row per calendar entry from the first to the last date its bins cover (suspended
rows included, as empty values), with a ``date`` column, a ``symbol`` column in the long layout, and one column per
field. CSV values use the shortest decimal that reads back (as float64, then float32) to the same float32, falling
back to the exact float64 value where that is not the case; Parquet columns are float32. Importing the export with
``qcore data import`` reproduces every bin byte for byte, provided every calendar date lies inside some instrument's
range and each instrument's fields cover the same range (true for stores written by qcore and by Qlib's
``dump_bin``). NaN payloads are canonicalised in CSV.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.atomic import atomic_path
from qcore.errors import DataError
from qdata_cn.naming import code_to_fname, date_format


def format_float32(values: np.ndarray) -> np.ndarray:
    """Decimal strings that read back to exactly ``values`` (float32); NaN becomes an empty string."""
    values = np.asarray(values, dtype=np.float32)
    text = values.astype(str).astype(object)
    finite = np.isfinite(values)
    back = np.zeros_like(values)
    back[finite] = text[finite].astype(np.float64).astype(np.float32)
    wrong = finite & (back.view(np.uint32) != values.view(np.uint32))
    for k in np.flatnonzero(wrong):
        text[k] = repr(float(values[k]))
    text[np.isnan(values)] = ""
    return text


def export_store(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fmt: str = "csv",
    layout: str = "per-symbol",
    freq: str = "day",
    fields: Sequence[str] | None = None,
    instruments: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write the store's bars under ``out``: a file per symbol (``<symbol>.csv``) or one long table (``all.csv``).

    :param fmt: ``csv`` or ``parquet``.
    :param layout: ``per-symbol`` or ``long``.
    """
    from qdata_cn.binstore import QlibBinProvider

    if fmt not in ("csv", "parquet"):
        raise DataError(f"format must be 'csv' or 'parquet', not {fmt!r}")
    if layout not in ("per-symbol", "long"):
        raise DataError(f"layout must be 'per-symbol' or 'long', not {layout!r}")
    provider = QlibBinProvider(store)
    names = list(fields) if fields else provider.fields(freq)
    if not names:
        raise DataError(f"no {freq} fields to export", path=str(provider.root / "features"))
    symbols = [s.upper() for s in instruments] if instruments else sorted(provider.universe("all"))
    panel = provider.load(names, symbols, freq=freq)
    stamps = panel.dates.strftime(date_format(freq)).to_numpy(dtype=object)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".csv" if fmt == "csv" else ".parquet"
    frames: list[pd.DataFrame] = []
    files = rows = 0
    for j, symbol in enumerate(panel.instruments):
        extent = provider.extent(symbol, freq, panel.fields)
        if extent is None:
            continue
        lo, hi = extent
        columns: dict[str, Any] = {"date": stamps[lo : hi + 1]}
        if layout == "long":
            columns["symbol"] = np.full(hi - lo + 1, symbol, dtype=object)
        for name in panel.fields:
            col = panel[name][lo : hi + 1, j]
            columns[name] = format_float32(col) if fmt == "csv" else col
        frame = pd.DataFrame(columns)
        rows += len(frame)
        if layout == "long":
            frames.append(frame)
        else:
            _write(frame, out / f"{code_to_fname(symbol)}{suffix}", fmt)
            files += 1
    if layout == "long":
        if not frames:
            raise DataError("nothing to export", path=str(provider.root))
        _write(pd.concat(frames, ignore_index=True), out / f"all{suffix}", fmt)
        files = 1
    return {"store": str(provider.root), "out": str(out), "files": files, "rows": rows, "fields": list(panel.fields)}


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    with atomic_path(path) as tmp:
        if fmt == "csv":
            frame.to_csv(tmp, index=False, lineterminator="\n")
        else:
            table = frame.copy()
            table["date"] = pd.to_datetime(table["date"])
            table.to_parquet(tmp, index=False)
