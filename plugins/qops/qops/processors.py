"""Dataset processors with Qlib's semantics (``qlib/data/dataset/processor.py``), on frames whose columns are
``(group, name)`` and rows ``(datetime, instrument)``.

Fitted processors learn on the fit window only (``fit``) and apply to everything (``__call__``). Statistics are
computed with numpy over whole columns, cross-sectional ones with one pandas groupby per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError

#: The column groups a dataset frame has (``feature`` and, when labelled, ``label``).
GROUPS = ("feature", "label")


class MissingColumnError(ConfigError, KeyError):
    """``FilterCol`` names a column the frame lacks (a :class:`ConfigError`, and a ``KeyError`` as before)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


def _group_arg(owner: str, fields_group: Any) -> str | list[str] | None:
    """Check ``fields_group``: None (every column), a group name, or a list of group names."""
    if fields_group is None:
        return None
    groups = [fields_group] if isinstance(fields_group, str) else fields_group
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
        raise ConfigError(f"{owner}: fields_group must be a group name ({', '.join(GROUPS)}) or a list of them, "
                          f"got {fields_group!r}", path="fields_group")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ConfigError(f"{owner}: unknown fields_group {names} (groups: {', '.join(GROUPS)})", path="fields_group")
    return fields_group if isinstance(fields_group, str) else list(groups)


def _names_arg(owner: str, value: Any) -> list[str]:
    """Check ``col_list``: a list of column names (a bare string would be read letter by letter)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{owner}: col_list must be a list of column names, got {value!r}", path="col_list")
    return list(value)


def _columns(frame: pd.DataFrame, fields_group: str | Sequence[str] | None) -> pd.Index:
    if fields_group is None:
        return frame.columns
    groups = [fields_group] if isinstance(fields_group, str) else list(fields_group)
    return frame.columns[frame.columns.get_level_values(0).isin(groups)]


class _Base:
    """Stateless by default; usable on inference data."""

    def fit(self, frame: pd.DataFrame) -> None:
        """Nothing to learn."""

    def is_for_infer(self) -> bool:
        """Whether the processor may run on inference data."""
        return True


class DropnaLabel(_Base):
    """Drop rows whose label is NaN (training only)."""

    def __init__(self, fields_group: str = "label") -> None:
        self.fields_group = _group_arg("DropnaLabel", fields_group)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        cols = _columns(frame, self.fields_group)
        return frame[frame[cols].notna().all(axis=1)] if len(cols) else frame

    def is_for_infer(self) -> bool:
        return False


class DropnaProcessor(_Base):
    """Drop rows with a NaN in ``fields_group``."""

    def __init__(self, fields_group: str | None = None) -> None:
        self.fields_group = _group_arg("DropnaProcessor", fields_group)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame[_columns(frame, self.fields_group)].notna().all(axis=1)]


class Fillna(_Base):
    """Replace NaN in ``fields_group`` (everything when None) with ``fill_value``."""

    def __init__(self, fields_group: str | None = None, fill_value: float = 0.0) -> None:
        if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)):
            raise ConfigError(f"Fillna: fill_value must be a number, got {fill_value!r}", path="fill_value")
        self.fields_group = _group_arg("Fillna", fields_group)
        self.fill_value = fill_value

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy(deep=False)  # assigned columns get new arrays; the rest stay shared with `frame`
        cols = _columns(out, self.fields_group)
        out[cols] = out[cols].fillna(self.fill_value)
        return out


class ProcessInf(_Base):
    """Replace ±inf with the mean of the column's finite values on the same date."""

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        values = frame.to_numpy(dtype=np.float64)
        inf = np.isinf(values)
        if not inf.any():
            return frame
        finite = frame.where(np.isfinite(values))
        means = finite.groupby(level="datetime").transform("mean").to_numpy()
        values = np.where(inf, means, values)
        return pd.DataFrame(values.astype(frame.dtypes.iloc[0]), index=frame.index, columns=frame.columns)


class _Fitted(_Base):
    def __init__(self, fit_start_time: Any = None, fit_end_time: Any = None,
                 fields_group: str | None = None) -> None:
        self.fit_start_time = fit_start_time
        self.fit_end_time = fit_end_time
        self.fields_group = _group_arg(type(self).__name__, fields_group)
        self._cols: pd.Index | None = None

    def _values(self, frame: pd.DataFrame) -> tuple[pd.Index, np.ndarray]:
        cols = _columns(frame, self.fields_group)
        return cols, frame[cols].to_numpy(dtype=np.float64)

    def _apply(self, frame: pd.DataFrame, transform: Any) -> pd.DataFrame:
        if self._cols is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted before use")
        out = frame.copy(deep=False)  # assigned columns get new arrays; the rest stay shared with `frame`
        values = out[self._cols].to_numpy(dtype=np.float64)
        out[self._cols] = transform(values).astype(np.float32)
        return out


class ZScoreNorm(_Fitted):
    """``(x - mean) / std`` with the fit window's per-column mean and std (ddof=0); constant columns untouched."""

    def fit(self, frame: pd.DataFrame) -> None:
        self._cols, values = self._values(frame)
        with np.errstate(all="ignore"):
            self.mean_ = np.nanmean(values, axis=0)
            self.std_ = np.nanstd(values, axis=0)
        self.ignore_ = self.std_ == 0

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        mean = np.where(self.ignore_, 0.0, self.mean_)
        std = np.where(self.ignore_, 1.0, self.std_)
        return self._apply(frame, lambda v: (v - mean) / std)


class RobustZScoreNorm(_Fitted):
    """``(x - median) / (1.4826 * MAD)`` from the fit window, clipped to [-3, 3] when ``clip_outlier``."""

    def __init__(self, fit_start_time: Any = None, fit_end_time: Any = None, fields_group: str | None = None,
                 clip_outlier: bool = True) -> None:
        super().__init__(fit_start_time, fit_end_time, fields_group)
        if not isinstance(clip_outlier, bool):
            raise ConfigError(f"RobustZScoreNorm: clip_outlier must be true or false, got {clip_outlier!r}",
                              path="clip_outlier")
        self.clip_outlier = clip_outlier

    def fit(self, frame: pd.DataFrame) -> None:
        self._cols, values = self._values(frame)
        with np.errstate(all="ignore"):
            self.median_ = np.nanmedian(values, axis=0)
            self.std_ = (np.nanmedian(np.abs(values - self.median_), axis=0) + 1e-12) * 1.4826

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        def transform(v: np.ndarray) -> np.ndarray:
            z = (v - self.median_) / self.std_
            return np.clip(z, -3, 3) if self.clip_outlier else z

        return self._apply(frame, transform)


class MinMaxNorm(_Fitted):
    """``(x - min) / (max - min)`` from the fit window; constant columns untouched."""

    def fit(self, frame: pd.DataFrame) -> None:
        self._cols, values = self._values(frame)
        with np.errstate(all="ignore"):
            self.min_ = np.nanmin(values, axis=0)
            self.max_ = np.nanmax(values, axis=0)
        self.ignore_ = self.min_ == self.max_

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        low = np.where(self.ignore_, 0.0, self.min_)
        span = np.where(self.ignore_, 1.0, self.max_ - self.min_)
        return self._apply(frame, lambda v: (v - low) / span)


class _CrossSectional(_Base):
    def __init__(self, fields_group: str | None = None) -> None:
        self.fields_group = _group_arg(type(self).__name__, fields_group)

    def _transform(self, part: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        cols = _columns(frame, self.fields_group)
        out = frame.copy(deep=False)  # assigned columns get new arrays; the rest stay shared with `frame`
        out[cols] = self._transform(frame[cols].astype(np.float64)).astype(np.float32)
        return out


class CSZScoreNorm(_CrossSectional):
    """Per date: ``(x - mean) / std`` (ddof=1), or with ``method="robust"`` ``(x - median) / (1.4826 MAD)``
    clipped to [-3, 3]."""

    def __init__(self, fields_group: str | None = None, method: str = "zscore") -> None:
        if method not in ("zscore", "robust"):
            raise ConfigError(f"CSZScoreNorm: method must be 'zscore' or 'robust', got {method!r}", path="method")
        super().__init__(fields_group)
        self.method = method

    def _transform(self, part: pd.DataFrame) -> pd.DataFrame:
        grouped = part.groupby(level="datetime")
        if self.method == "zscore":
            return (part - grouped.transform("mean")) / grouped.transform("std")
        median = grouped.transform("median")
        mad = (part - median).abs().groupby(level="datetime").transform("median")
        return ((part - median) / (mad * 1.4826)).clip(-3, 3)


class CSRankNorm(_CrossSectional):
    """Per date: ``(rank(pct=True) - 0.5) * 3.46`` (about unit variance)."""

    def _transform(self, part: pd.DataFrame) -> pd.DataFrame:
        return (part.groupby(level="datetime").rank(pct=True) - 0.5) * 3.46


class CSZFillna(_CrossSectional):
    """Per date: replace NaN with the cross-sectional mean."""

    def _transform(self, part: pd.DataFrame) -> pd.DataFrame:
        return part.fillna(part.groupby(level="datetime").transform("mean"))


class FilterCol(_Base):
    """Keep only ``col_list`` among the columns of ``fields_group``."""

    def __init__(self, fields_group: str = "feature", col_list: Sequence[str] = ()) -> None:
        self.fields_group = _group_arg("FilterCol", fields_group)
        self.col_list = _names_arg("FilterCol", col_list)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        cols = _columns(frame, self.fields_group)
        names = set(cols.get_level_values(1))
        missing = [c for c in self.col_list if c not in names]
        if missing:
            raise MissingColumnError(f"FilterCol: no column {', '.join(missing)} in group {self.fields_group!r}",
                                     path="col_list")
        drop = [c for c in cols if c[1] not in self.col_list]
        return frame.drop(columns=drop)


class DropCol(_Base):
    """Drop the columns named in ``col_list`` (any group)."""

    def __init__(self, col_list: Sequence[str] = ()) -> None:
        self.col_list = _names_arg("DropCol", col_list)

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        drop = [c for c in frame.columns if c[1] in self.col_list]
        return frame.drop(columns=drop)


PROCESSORS: tuple[type, ...] = (
    DropnaLabel,
    DropnaProcessor,
    Fillna,
    ProcessInf,
    ZScoreNorm,
    RobustZScoreNorm,
    MinMaxNorm,
    CSZScoreNorm,
    CSRankNorm,
    CSZFillna,
    FilterCol,
    DropCol,
)
