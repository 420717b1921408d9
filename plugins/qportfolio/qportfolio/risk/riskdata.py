"""Daily risk data in Qlib's ``riskdata_root`` layout: one folder per day, four tables in each.

::

    ROOT/YYYYMMDD/factor_exp.parquet      N × K exposures, index = instrument, one column per factor
    ROOT/YYYYMMDD/factor_cov.parquet      K × K factor covariance, index and columns = factor names
    ROOT/YYYYMMDD/specific_risk.parquet   N specific volatilities σ (not variances), column specific_risk
    ROOT/YYYYMMDD/blacklist.parquet       optional: instruments to sell, index = instrument

Units are those of the returns the model saw: percent in the files ``qcore risk build`` writes (Qlib's
convention, recorded in ``ROOT/riskdata.json``). A day's folder is written whole into a temporary folder and
renamed into place, so a reader never sees half a day. The day ``T`` holds what is known at the close of ``T``:
a strategy trading on ``T + 1`` reads it (Qlib's ``EnhancedIndexingStrategy``).

The reader also reads Qlib's own files (``.pkl`` as written by ``prepare_riskdata.py``, ``.csv``, ``.h5``), with
the file names of ``name_mapping`` when given (Qlib's option), and checks their shapes: a mismatch is a
:class:`~qcore.errors.DataError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qportfolio.risk.base import FactorRisk

TABLES = ("factor_exp", "factor_cov", "specific_risk", "blacklist")
#: the extensions tried, in order, when a table's file name is not given.
EXTENSIONS = (".parquet", ".pkl", ".csv", ".h5")
META = "riskdata.json"


def day_folder(root: str | os.PathLike[str], date: Any) -> Path:
    """``ROOT/YYYYMMDD`` of ``date``."""
    return Path(root) / pd.Timestamp(date).strftime("%Y%m%d")


def _strings(index: pd.Index) -> pd.Index:
    return pd.Index([str(v) for v in index])


def write_day(root: str | os.PathLike[str], date: Any, risk: FactorRisk,
              blacklist: Iterable[str] | None = None) -> Path:  # fmt: skip
    """Write one day's risk data atomically (replacing an existing folder of that day); return the folder."""
    target = day_folder(root, date)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        exp = risk.exposures.astype(np.float64).copy()
        exp.index, exp.columns = _strings(exp.index).rename("instrument"), _strings(exp.columns)
        cov = risk.factor_cov.astype(np.float64).copy()
        cov.index, cov.columns = _strings(cov.index).rename("factor"), _strings(cov.columns)
        spec = pd.DataFrame({"specific_risk": risk.specific_risk.to_numpy(np.float64)}, index=exp.index)
        exp.to_parquet(tmp / "factor_exp.parquet")
        cov.to_parquet(tmp / "factor_cov.parquet")
        spec.to_parquet(tmp / "specific_risk.parquet")
        if blacklist is not None:
            names = sorted({str(b) for b in blacklist})
            pd.DataFrame(index=pd.Index(names, name="instrument", dtype=object)).to_parquet(tmp / "blacklist.parquet")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def write_meta(root: str | os.PathLike[str], meta: Mapping[str, Any]) -> None:
    """Record how the risk data was built (units, model, universe) in ``ROOT/riskdata.json``."""
    from qcore import atomic

    atomic.write_text(Path(root) / META, json.dumps(dict(meta), indent=1, default=str))


def read_meta(root: str | os.PathLike[str]) -> dict[str, Any]:
    """``ROOT/riskdata.json`` (empty for Qlib's folders, which have none)."""
    path = Path(root) / META
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read the risk data's description: {exc}", path=str(path)) from None


def list_days(root: str | os.PathLike[str]) -> pd.DatetimeIndex:
    """The days with a folder under ``root``, ascending."""
    base = Path(root)
    if not base.is_dir():
        return pd.DatetimeIndex([])
    days = []
    for entry in base.iterdir():
        if entry.is_dir() and len(entry.name) == 8 and entry.name.isdigit():
            with contextlib.suppress(ValueError):
                days.append(pd.Timestamp(entry.name))
    return pd.DatetimeIndex(sorted(days))


def _read_table(path: Path, one_column: bool = False) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            obj = pd.read_parquet(path)
        elif suffix == ".pkl":  # restricted: a risk folder's pickle may name pandas' data classes only
            from qcore.safe_pickle import read_frame

            obj = read_frame(path)
        elif suffix == ".csv":
            obj = pd.read_csv(path, index_col=0)
        elif suffix == ".h5":
            obj = pd.read_hdf(path)
        else:
            raise DataError(f"unsupported risk file type {suffix!r} (parquet, pkl, csv or h5)", path=str(path))
    except DataError:
        raise
    except Exception as exc:  # any reader's failure on a damaged file
        raise DataError(f"cannot read: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                        path=str(path)) from None  # fmt: skip
    if isinstance(obj, pd.Series):
        obj = obj.to_frame()
    if not isinstance(obj, pd.DataFrame):
        raise DataError(f"expected a table, found a {type(obj).__name__}", path=str(path))
    return obj


class RiskData:
    """A ``riskdata_root``: lists its days and reads them (cached), ours or Qlib's.

    :param root: the folder.
    :param name_mapping: table → file name (Qlib's ``name_mapping``: ``{"factor_exp": "factor_exp.pkl"}``).
    :param cache_size: days kept in memory.
    """

    def __init__(self, root: str | os.PathLike[str], name_mapping: Mapping[str, str] | None = None,
                 cache_size: int = 4) -> None:  # fmt: skip
        self.root = Path(root)
        mapping = dict(name_mapping or {})
        unknown = [k for k in mapping if k not in TABLES]
        if unknown:
            raise ConfigError(f"unknown table {unknown[0]!r} in name_mapping (tables: {', '.join(TABLES)})",
                              path="name_mapping")  # fmt: skip
        self.name_mapping = mapping
        self.cache_size = cache_size
        self._cache: dict[pd.Timestamp, tuple[FactorRisk, frozenset[str]] | None] = {}
        self._days: pd.DatetimeIndex | None = None

    @property
    def days(self) -> pd.DatetimeIndex:
        """Days with a folder, ascending (listed once)."""
        if self._days is None:
            self._days = list_days(self.root)
        return self._days

    def _file(self, folder: Path, table: str) -> Path | None:
        if table in self.name_mapping:
            path = folder / self.name_mapping[table]
            return path if path.exists() else None
        for ext in EXTENSIONS:
            path = folder / f"{table}{ext}"
            if path.exists():
                return path
        return None

    def get(self, date: Any) -> tuple[FactorRisk, frozenset[str]] | None:
        """``(risk, blacklist)`` of ``date``, or None when the day has no folder."""
        day = pd.Timestamp(date).normalize()
        if day in self._cache:
            return self._cache[day]
        folder = day_folder(self.root, day)
        found = self._read(folder) if folder.is_dir() else None
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[day] = found
        return found

    def _read(self, folder: Path) -> tuple[FactorRisk, frozenset[str]]:
        paths = {t: self._file(folder, t) for t in TABLES}
        for table in TABLES[:3]:
            if paths[table] is None:
                raise DataError(f"the day has no {table} table", path=str(folder))
        exp = _read_table(paths["factor_exp"])  # type: ignore[arg-type]
        cov = _read_table(paths["factor_cov"])  # type: ignore[arg-type]
        spec = _read_table(paths["specific_risk"])  # type: ignore[arg-type]
        for table, frame in (("factor_exp", exp), ("factor_cov", cov), ("specific_risk", spec)):
            values = frame.to_numpy()
            if not np.issubdtype(values.dtype, np.number):
                raise DataError(f"{table} holds non-numeric values", path=str(paths[table]))
        k = exp.shape[1]
        if cov.shape != (k, k):
            raise DataError(f"factor_cov is {cov.shape[0]}×{cov.shape[1]}, but factor_exp has {k} factors",
                            path=str(paths["factor_cov"]))  # fmt: skip
        if spec.shape[1] != 1:
            raise DataError(f"specific_risk must have one column, found {spec.shape[1]}",
                            path=str(paths["specific_risk"]))  # fmt: skip
        exp.index = _strings(exp.index).rename("instrument")
        if exp.index.has_duplicates:
            raise DataError(f"factor_exp lists {exp.index[exp.index.duplicated()][0]!r} twice",
                            path=str(paths["factor_exp"]))  # fmt: skip
        exp.columns = _strings(exp.columns)
        cov.index, cov.columns = exp.columns, exp.columns
        sigma = spec.iloc[:, 0].astype(np.float64)
        sigma.index = _strings(sigma.index)
        if not sigma.index.equals(exp.index):
            # Qlib: an instrument without specific risk is taken to be the most volatile one
            sigma = sigma.reindex(exp.index)
            sigma = sigma.fillna(sigma.max())
        if (sigma < 0).any():
            raise DataError("specific_risk holds negative volatilities", path=str(paths["specific_risk"]))
        blacklist: frozenset[str] = frozenset()
        if paths["blacklist"] is not None:
            blacklist = frozenset(str(v) for v in _read_table(paths["blacklist"]).index)
        risk = FactorRisk(exp.astype(np.float64), cov.astype(np.float64), sigma.rename("specific_risk"))
        return risk, blacklist
