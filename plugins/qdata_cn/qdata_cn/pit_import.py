"""``qcore data import-pit``: point-in-time period data from a long CSV or Parquet file into a store's ``financial/``.

The file has one row per published figure: ``instrument`` (or ``symbol``), ``date`` (the publication day,
``YYYY-MM-DD`` or ``YYYYMMDD``), ``period`` (``YYYYQQ`` / ``2019Q3`` for a quarterly field, ``YYYY`` for an annual one),
``field`` (``eps_q``, ``roe_a``: the suffix says the period kind) and ``value``. An amendment is a later row of the same
instrument, field and period. The import merges with what the store holds (a record already stored, same day, period
and value, is not written twice; a new record published the same day as a stored one is its revision) and is atomic
and locked like the bar importer: every touched file is staged and renamed in one store transaction. Bad input is
refused before anything is written, naming the file and the line: a missing column, an unparsable date, period or
value, a period of the wrong kind, a field without ``_q``/``_a``, two rows for the same figure on the same day.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import DataError
from qcore.protocols import PIT_RECORD
from qdata_cn.naming import code_to_fname, symbol_problem
from qdata_cn.pit import DATA_SUFFIX, INDEX_SUFFIX, PIT_DIR, encode_pit, merge_records, period_problem, read_pit

#: Accepted column names for each role (the first present wins).
COLUMNS = {
    "instrument": ("instrument", "symbol"),
    "date": ("date", "pub_date", "publication_date"),
    "period": ("period",),
    "field": ("field",),
    "value": ("value",),
}
_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*_[qa]$")
_QUARTER_RE = re.compile(r"^(\d{4})[qQ]([1-4])$")


def _read_table(src: Path) -> tuple[pd.DataFrame, int]:
    """The file as text columns, and the number of the first data line (2 for a CSV with its header, else 1)."""
    if src.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(src)
        except Exception as error:  # pyarrow raises many types for a bad file
            raise DataError(f"cannot read the Parquet file: {error}", path=str(src)) from None
        text = pd.DataFrame(index=frame.index)
        for name in frame.columns:
            column = frame[name]
            if pd.api.types.is_datetime64_any_dtype(column):
                column = column.dt.strftime("%Y-%m-%d")
            text[name] = column.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        return text, 1
    try:
        frame = pd.read_csv(src, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot read the CSV file: {str(error).strip()}", path=str(src)) from None
    return frame, 2


def _column(frame: pd.DataFrame, role: str, src: Path) -> pd.Series:
    lowered = {str(c).strip().lower(): c for c in frame.columns}
    for name in COLUMNS[role]:
        if name in lowered:
            return frame[lowered[name]].astype(str).str.strip()
    raise DataError(f"no {role!r} column (expected one of {', '.join(COLUMNS[role])}; found "
                    f"{', '.join(map(str, frame.columns)) or 'none'})", path=str(src))  # fmt: skip


def _dates(text: pd.Series, src: Path, first_line: int) -> np.ndarray:
    compact = text.str.replace("-", "", regex=False)
    ok = compact.str.fullmatch(r"\d{8}")
    parsed = pd.to_datetime(compact.where(ok, None), format="%Y%m%d", errors="coerce")
    bad = ~ok | parsed.isna() | (parsed.dt.year < 1900) | (parsed.dt.year > 2099)
    if bad.any():
        k = int(np.argmax(bad.to_numpy()))
        raise DataError(f"date {text.iloc[k]!r} is not a day YYYY-MM-DD (or YYYYMMDD) between 1900 and 2099",
                        path=str(src), row=first_line + k)  # fmt: skip
    return compact.astype(np.int64).to_numpy()


def _periods(text: pd.Series, quarterly: np.ndarray, src: Path, first_line: int) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.int64)
    for k, (value, is_q) in enumerate(zip(text.tolist(), quarterly.tolist())):
        match = _QUARTER_RE.match(value)
        if match:
            period, looks_quarterly = int(match.group(1)) * 100 + int(match.group(2)), True
        elif value.isdigit() and len(value) in (4, 6):
            period, looks_quarterly = int(value), len(value) == 6
        else:
            raise DataError(f"period {value!r} is not a quarter (201903 or 2019Q3) or a year (2019)",
                            path=str(src), row=first_line + k)  # fmt: skip
        if looks_quarterly != is_q:
            kind = "quarterly (_q) field needs a quarter such as 201903" if is_q else "annual (_a) field needs a year"
            raise DataError(f"period {value!r}: a {kind}", path=str(src), row=first_line + k)
        problem = period_problem(period, is_q)
        if problem:
            raise DataError(problem, path=str(src), row=first_line + k)
        out[k] = period
    return out


def read_pit_rows(src: str | os.PathLike[str]) -> dict[tuple[str, str], np.ndarray]:
    """The file's records grouped by ``(instrument, field)``, each in file order, every row checked.

    :raises DataError: naming the file and line of the first bad row.
    """
    path = Path(src)
    frame, first_line = _read_table(path)
    if frame.empty:
        raise DataError("the file has no rows", path=str(path))
    symbols = _column(frame, "instrument", path).str.upper()
    for k, symbol in enumerate(symbols.tolist()):
        problem = symbol_problem(symbol) if symbol else "the instrument is empty"
        if problem:
            raise DataError(problem, path=str(path), row=first_line + k)
    fields = _column(frame, "field", path).str.lower().str.removeprefix("$$")
    bad_field = ~fields.str.match(_FIELD_RE.pattern)
    if bad_field.any():
        k = int(np.argmax(bad_field.to_numpy()))
        raise DataError(f"field {fields.iloc[k]!r} must be a name ending in '_q' (quarterly) or '_a' (annual)",
                        path=str(path), row=first_line + k)  # fmt: skip
    quarterly = fields.str.endswith("_q").to_numpy()
    dates = _dates(_column(frame, "date", path), path, first_line)
    periods = _periods(_column(frame, "period", path), quarterly, path, first_line)
    value_text = _column(frame, "value", path)
    values = pd.to_numeric(value_text, errors="coerce").to_numpy(dtype=np.float64)
    bad_value = ~np.isfinite(values)
    if bad_value.any():
        k = int(np.argmax(bad_value))
        raise DataError(f"value {value_text.iloc[k]!r} is not a finite number", path=str(path), row=first_line + k)
    keys = pd.DataFrame({"s": symbols, "f": fields, "p": periods, "d": dates})
    dup = keys.duplicated(keep=False).to_numpy()
    if dup.any():
        lines = np.flatnonzero(dup)
        first = keys.iloc[lines[0]]
        same = [int(i) + first_line for i in lines if (keys.iloc[i] == first).all()]
        raise DataError(f"{first['s']} {first['f']} period {first['p']} is given twice for {first['d']} (lines "
                        f"{', '.join(map(str, same[:5]))}); an amendment needs a later date", path=str(path),
                        row=same[1])  # fmt: skip
    grouped: dict[tuple[str, str], np.ndarray] = {}
    for (symbol, field), rows in keys.groupby(["s", "f"], sort=True).indices.items():
        records = np.empty(len(rows), dtype=PIT_RECORD)
        records["date"], records["period"], records["value"] = dates[rows], periods[rows], values[rows]
        grouped[(str(symbol), str(field))] = records
    return grouped


def import_pit(src: str | os.PathLike[str], store: str | os.PathLike[str], *, lock_timeout: float = 0.0
               ) -> dict[str, Any]:  # fmt: skip
    """Import a long PIT file into ``store`` (an existing store folder); returns a summary.

    Every row is checked before the store is locked; then, holding the lock, each touched ``(instrument, field)`` is
    merged with its stored records and its ``.data``/``.index`` pair staged; the transaction publishes all or none.
    """
    from qdata_cn.writer import StoreTransaction

    began = time.perf_counter()
    root = Path(store).expanduser()
    if not root.is_dir():
        raise DataError("store folder does not exist (build one with `qcore data synth` or `qcore data import`)",
                        path=str(root))  # fmt: skip
    grouped = read_pit_rows(src)
    written = new_records = 0
    with StoreTransaction(root, lock_timeout=lock_timeout) as txn:
        for (symbol, field), records in grouped.items():
            folder = code_to_fname(symbol)
            quarterly = field.endswith("_q")
            old = read_pit(root / PIT_DIR / folder, field)
            fresh = _not_stored(old, records)
            if len(fresh) == 0:
                continue
            data, index = encode_pit(merge_records(old, fresh), quarterly)
            txn.write_bytes(f"{PIT_DIR}/{folder}/{field}{DATA_SUFFIX}", data)
            txn.write_bytes(f"{PIT_DIR}/{folder}/{field}{INDEX_SUFFIX}", index)
            written += 1
            new_records += len(fresh)
    return {
        "path": str(root),
        "instruments": len({s for s, _ in grouped}),
        "fields": sorted({f for _, f in grouped}),
        "files": written,
        "records": new_records,
        "seconds": time.perf_counter() - began,
    }


def _not_stored(old: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    """The rows of ``new`` that are not already stored as the same (date, period, value)."""
    if old is None or len(old) == 0:
        return new
    stored = set(zip(old["date"].tolist(), old["period"].tolist(), old["value"].tolist()))
    keep = [(d, p, v) not in stored for d, p, v in zip(new["date"].tolist(), new["period"].tolist(),
                                                        new["value"].tolist())]  # fmt: skip
    return new[np.array(keep, dtype=bool)]
