"""Model inputs of one dataset segment, gathered batch by batch as NaN-free float32 arrays.

Two views, as Qlib's ``DatasetH`` and ``TSDatasetH``:

- :class:`TabularSamples` reads ``dataset.xy(segment)``: flat rows for the MLP, or, with ``d_feat``, each row
  reshaped to ``(d_feat, steps)`` and transposed to ``(steps, d_feat)`` (Alpha360's layout: every field's 60 lags
  in a row, fields one after the other);
- :class:`WindowSamples` reads ``dataset.ts_view(segment, step_len)``: the ``step_len`` rows of the instrument
  ending at each sample, gaps filled forward then backward inside the window (Qlib's ``ffill+bfill``).

Values still missing after that, and infinities, become 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from qcore.errors import QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import feature_matrix


def _clean(values: np.ndarray) -> np.ndarray:
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0, copy=False)


def fill_windows(windows: np.ndarray) -> np.ndarray:
    """Fill NaN along the step axis of ``(batch, steps, features)``: forward, then backward, then 0."""
    if not np.isnan(windows).any():
        return _clean(windows)
    steps = np.arange(windows.shape[1])[None, :, None]
    for _ in range(2):  # forward, then backward on the reversed steps
        source = np.where(np.isnan(windows), 0, steps)
        np.maximum.accumulate(source, axis=1, out=source)
        windows = np.take_along_axis(windows, source, axis=1)[:, ::-1]
    return _clean(np.ascontiguousarray(windows))


class Samples:
    """Rows of one segment: ``index``, ``label`` (float32, NaN allowed) and :meth:`batch` of model inputs."""

    index: pd.MultiIndex
    label: np.ndarray | None
    feature_names: list[str]

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """Model inputs of ``rows`` (positions), float32 without NaN."""
        raise NotImplementedError

    def day_groups(self) -> list[np.ndarray]:
        """Row positions of each date, dates in order."""
        codes, _ = pd.factorize(self.index.get_level_values("datetime"), sort=True)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        return np.split(order, bounds)


class TabularSamples(Samples):
    """Flat feature rows of ``dataset.xy(segment)``, or with ``as_sequence`` rows reshaped to ``(steps, d_feat)``
    (``d_feat=None``: the whole row is one step)."""

    def __init__(self, dataset: Dataset, segment: str, feature_names: Sequence[str] | None = None,
                 d_feat: int | None = None, as_sequence: bool = False) -> None:
        features, label = dataset.xy(segment)
        self.feature_names = [str(c) for c in features.columns] if feature_names is None else list(feature_names)
        self._x = _clean(feature_matrix(features, self.feature_names, np.float32))
        self.index = features.index
        self.label = None if label is None else label.reindex(features.index).to_numpy(dtype=np.float32)
        n_features = len(self.feature_names)
        if as_sequence and d_feat is None:
            d_feat = n_features
        if d_feat is not None and (d_feat < 1 or n_features % d_feat):
            raise QcoreError(
                f"d_feat={d_feat} does not divide the {n_features} features of a row; tabular sequence models read "
                "each row as d_feat fields times a number of steps (Alpha360: d_feat=6)"
            )
        self.d_feat = d_feat

    @property
    def steps(self) -> int | None:
        """Sequence length of a sample (``None`` for flat rows)."""
        return None if self.d_feat is None else len(self.feature_names) // self.d_feat

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """Flat rows ``(batch, features)``, or sequences ``(batch, steps, d_feat)`` with ``d_feat``."""
        x = self._x[rows]
        if self.d_feat is None:
            return x
        return np.ascontiguousarray(x.reshape(len(rows), self.d_feat, -1).transpose(0, 2, 1))


class WindowSamples(Samples):
    """``step_len`` windows of ``dataset.ts_view(segment, step_len)``: ``(batch, step_len, features)``."""

    def __init__(self, dataset: Dataset, segment: str, step_len: int,
                 feature_names: Sequence[str] | None = None) -> None:
        ts_view = getattr(dataset, "ts_view", None)
        if ts_view is None:
            raise QcoreError(f"step_len={step_len} needs a dataset with ts_view() (qcore's PanelDataset)")
        self._view = ts_view(segment, step_len)
        names = [str(c) for c in self._view.feature_names]
        if feature_names is not None and names != list(feature_names):
            raise QcoreError("the dataset's features differ from those the model was fitted on (names or order)")
        self.feature_names = names
        self.index = self._view.index
        self.label = self._view.label
        self.d_feat = len(names)

    @property
    def steps(self) -> int:
        """Window length."""
        return self._view.step_len

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """Windows ``(batch, step_len, features)``, gaps filled."""
        return fill_windows(self._view.batch(rows))


class SubsetSamples(Samples):
    """The samples of ``base`` at ``positions`` (in that order): what training sees when some samples weigh 0."""

    def __init__(self, base: Samples, positions: np.ndarray) -> None:
        self._base = base
        self._positions = np.asarray(positions, dtype=np.int64)
        self.index = base.index[self._positions]
        self.label = None if base.label is None else base.label[self._positions]
        self.feature_names = base.feature_names
        self.d_feat = getattr(base, "d_feat", None)

    @property
    def steps(self) -> int | None:
        """Sequence length of a sample, as the base samples'."""
        return getattr(self._base, "steps", None)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """The base samples' inputs of ``rows`` (positions in this subset)."""
        return self._base.batch(self._positions[np.asarray(rows)])
