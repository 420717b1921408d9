"""A small in-memory market with a planted signal, as a qcore :class:`PanelDataset`.

Fields ``A``..``D`` are independent standard normals per (date, instrument). The label is
``0.3*A - 0.2*B + 0.15*C(previous day) + noise`` (noise sd 1), so a model that learns it reaches a daily IC of
about 0.35 and a model that ignores the previous day still gets about 0.3. Columns come in two layouts:

- ``fields``: one column per field (for the time-series view, ``step_len`` windows);
- ``lags``: Alpha360's layout, every field's ``lags`` values from oldest to newest, field after field
  (``A2, A1, A0, B2, ...``), for the tabular sequence reshape (``d_feat`` = number of fields).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qcore.dataset import PanelDataset

FIELDS = ("A", "B", "C", "D")


def planted_frame(n_instruments: int = 150, n_days: int = 100, seed: int = 0, lags: int = 0) -> pd.DataFrame:
    """The raw frame: columns ``("feature", name)`` and ``("label", "LABEL0")``, rows ``(datetime, instrument)``."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_days, name="datetime")
    names = pd.Index([f"S{i:03d}" for i in range(n_instruments)], name="instrument")
    base = rng.standard_normal((n_days, n_instruments, len(FIELDS))).astype(np.float32)
    previous_c = np.vstack([np.zeros((1, n_instruments), np.float32), base[:-1, :, 2]])
    label = 0.3 * base[..., 0] - 0.2 * base[..., 1] + 0.15 * previous_c + rng.standard_normal(base.shape[:2])
    columns: dict[tuple[str, str], np.ndarray] = {}
    if lags:
        for f, field in enumerate(FIELDS):
            for lag in range(lags - 1, -1, -1):
                shifted = np.full_like(base[..., f], np.nan)
                shifted[lag:] = base[: n_days - lag, :, f]
                columns[("feature", f"{field}{lag}")] = shifted.reshape(-1)
    else:
        for f, field in enumerate(FIELDS):
            columns[("feature", field)] = base[..., f].reshape(-1)
    columns[("label", "LABEL0")] = label.astype(np.float32).reshape(-1)
    index = pd.MultiIndex.from_product([dates, names])
    frame = pd.DataFrame(columns, index=index)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def split(dates: pd.DatetimeIndex, train: float = 0.6, valid: float = 0.2) -> dict[str, tuple]:
    """Segments over ``dates``: the first 60% train, the next 20% valid, the rest test."""
    a = int(len(dates) * train)
    b = int(len(dates) * (train + valid))
    return {"train": (dates[0], dates[a - 1]), "valid": (dates[a], dates[b - 1]), "test": (dates[b], dates[-1])}


def planted_dataset(n_instruments: int = 150, n_days: int = 100, seed: int = 0, lags: int = 0,
                    segments: dict | None = None) -> PanelDataset:
    """The planted market as a dataset (no processors: the features are already standardised)."""
    frame = planted_frame(n_instruments, n_days, seed, lags)
    dates = frame.index.get_level_values("datetime").unique()
    return PanelDataset(frame, segments or split(dates))
