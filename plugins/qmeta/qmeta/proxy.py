"""DDG-DA's proxy data: a train span cut into periods, with the statistics the meta-learner needs.

The rows of one rolling window's train span (features and label, raw) are reduced to

* proxy features: the ``top_k`` most important features of a proxy model (or every feature when the model has no
  importances), each z-scored across instruments per date (clipped to ±3, NaN → 0), and the label likewise;
* periods of ``step`` consecutive dates (the last one may be shorter);
* per period, the Gram statistics of a linear model on the proxy features (``X'X``, ``X'y``, ``y'y``, rows), so a
  weighted ridge over any weighting of the periods is a small ``f × f`` solve;
* the *similarity of periods*: the daily IC of each period's own ridge model on every date of the span (Qlib's
  ``data_ic_df``), from per-date covariances so no prediction matrix is built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError

logger = logging.getLogger(__name__)
CLIP = 3.0


@attrs.frozen
class PeriodData:
    """One train span as DDG-DA sees it (see the module docstring).

    :ivar dates: the span's dates, sorted.
    :ivar period_of_day: the period index of each date.
    :ivar features: the proxy features, in column order.
    :ivar gram: ``(periods, f, f)`` sums of ``x x'`` per period.
    :ivar xty: ``(periods, f)`` sums of ``x y``.
    :ivar yty: ``(periods,)`` sums of ``y²``.
    :ivar rows: ``(periods,)`` rows with a label.
    :ivar ic: ``(dates, periods)`` daily IC of each period's ridge model (NaN where undefined).
    """

    dates: pd.DatetimeIndex
    period_of_day: np.ndarray
    features: tuple[str, ...]
    gram: np.ndarray = attrs.field(repr=False)
    xty: np.ndarray = attrs.field(repr=False)
    yty: np.ndarray = attrs.field(repr=False)
    rows: np.ndarray = attrs.field(repr=False)
    ic: np.ndarray = attrs.field(repr=False)

    @property
    def periods(self) -> int:
        """Number of periods."""
        return len(self.rows)


def feature_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Features and the first label of a ``("feature" | "label", name)`` frame, rows sorted by date."""
    if not isinstance(frame.columns, pd.MultiIndex) or "feature" not in frame.columns.get_level_values(0):
        raise DataError("DDG-DA needs a frame with ('feature', name) and ('label', name) columns")
    if "label" not in frame.columns.get_level_values(0):
        raise DataError("DDG-DA needs a label to learn sample weights; the dataset has none")
    dates = frame.index.get_level_values("datetime")
    if not dates.is_monotonic_increasing:
        frame = frame.sort_index(level="datetime", sort_remaining=False, kind="stable")
    features = frame["feature"]
    features.columns = [str(c) for c in features.columns]
    return features, frame["label"].iloc[:, 0]


def day_bounds(dates: pd.Index) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The distinct dates of date-sorted rows and the row position where each starts."""
    values = pd.DatetimeIndex(dates)
    change = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return pd.DatetimeIndex(values[change]), change


def cs_zscore(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each column z-scored across the rows of each date (rows date-sorted, ``starts`` where dates begin), clipped
    to ±3; NaN (and a column constant on a date) become 0."""
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    counts = np.add.reduceat(finite.astype(np.float64), starts, axis=0)
    sums = np.add.reduceat(filled, starts, axis=0)
    squares = np.add.reduceat(filled * filled, starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
        std = np.sqrt(np.maximum(squares / counts - mean * mean, 0.0))
    lengths = np.diff(np.r_[starts, len(values)])
    mean_rows = np.repeat(mean, lengths, axis=0)
    std_rows = np.repeat(std, lengths, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (filled - mean_rows) / std_rows
    z = np.where(finite & (std_rows > 1e-12), z, 0.0)
    return np.clip(z, -CLIP, CLIP)


def select_features(features: pd.DataFrame, top_k: int, importance: pd.Series | None) -> list[str]:
    """The ``top_k`` features by ``importance`` (largest first; ties in column order), or every feature when there
    are no importances or no more than ``top_k`` features."""
    names = list(features.columns)
    if importance is None or len(names) <= top_k:
        return names
    ranked = importance.reindex(names).fillna(0.0)
    order = sorted(range(len(names)), key=lambda i: (-float(ranked.iloc[i]), i))
    return [names[i] for i in order[:top_k]]


def proxy_importance(model: Any, frame: pd.DataFrame, *, rows: int, seed: int) -> pd.Series | None:
    """Feature importances of ``model`` fitted on (at most ``rows`` random rows of) ``frame``, or None when the
    model has no ``feature_importance``."""
    if model is None or not callable(getattr(model, "feature_importance", None)):
        return None
    from qcore.dataset import PanelDataset

    labelled = frame[np.isfinite(frame["label"].iloc[:, 0].to_numpy(dtype=np.float64))]
    if len(labelled) > rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(labelled), size=rows, replace=False))
        labelled = labelled.iloc[keep]
    dates = labelled.index.get_level_values("datetime")
    dataset = PanelDataset(labelled, {"train": (dates.min(), dates.max())})
    model.fit(dataset)
    importance = model.feature_importance("gain") if _takes_type(model) else model.feature_importance()
    return pd.Series(importance, dtype=np.float64)


def _takes_type(model: Any) -> bool:
    import inspect

    try:
        return "importance_type" in inspect.signature(model.feature_importance).parameters
    except (TypeError, ValueError):
        return False


def period_data(features: pd.DataFrame, label: pd.Series, names: Sequence[str], step: int,
                alpha: float) -> PeriodData:  # fmt: skip
    """The :class:`PeriodData` of date-sorted ``features``/``label`` on the proxy features ``names``."""
    finite = np.isfinite(label.to_numpy(dtype=np.float64))
    features, label = features[finite], label[finite]
    if features.empty:
        raise DataError("DDG-DA: the train span has no row with a label")
    dates, starts = day_bounds(features.index.get_level_values("datetime"))
    x = cs_zscore(features[list(names)].to_numpy(dtype=np.float64), starts)
    y = cs_zscore(label.to_numpy(dtype=np.float64)[:, None], starts)[:, 0]
    days, f = len(dates), x.shape[1]
    ends = np.r_[starts[1:], len(x)]
    day_gram = np.empty((days, f, f))
    for d, (a, b) in enumerate(zip(starts, ends)):
        block = x[a:b]
        day_gram[d] = block.T @ block
    day_x = np.add.reduceat(x, starts, axis=0)
    day_xy = np.add.reduceat(x * y[:, None], starts, axis=0)
    day_y = np.add.reduceat(y, starts)
    day_yy = np.add.reduceat(y * y, starts)
    day_n = np.diff(np.r_[starts, len(x)]).astype(np.float64)
    period_of_day = np.arange(days) // step
    period_starts = np.flatnonzero(np.r_[True, np.diff(period_of_day) != 0])
    gram = np.add.reduceat(day_gram, period_starts, axis=0)
    xty = np.add.reduceat(day_xy, period_starts, axis=0)
    yty = np.add.reduceat(day_yy, period_starts)
    rows = np.add.reduceat(day_n, period_starts)
    betas = ridge(gram, xty, alpha)
    # daily IC of x·beta_p against y: centred covariances of the day
    mean_x = day_x / day_n[:, None]
    mean_y = day_y / day_n
    cov_xx = day_gram / day_n[:, None, None] - mean_x[:, :, None] * mean_x[:, None, :]
    cov_xy = day_xy / day_n[:, None] - mean_x * mean_y[:, None]
    var_y = day_yy / day_n - mean_y * mean_y
    numerator = cov_xy @ betas.T
    spread = np.einsum("pi,dij,pj->dp", betas, cov_xx, betas, optimize=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = numerator / np.sqrt(np.maximum(spread, 0.0) * np.maximum(var_y, 0.0)[:, None])
    ic[~np.isfinite(ic)] = np.nan
    return PeriodData(dates, period_of_day, tuple(names), gram, xty, yty, rows, ic)


def ridge(gram: np.ndarray, xty: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients per leading index: ``(G + alpha·tr(G)/f·I)⁻¹ X'y`` (the penalty scales with the data)."""
    f = gram.shape[-1]
    scale = np.trace(gram, axis1=-2, axis2=-1) / f
    penalty = (alpha * np.maximum(scale, 1e-12))[..., None, None] * np.eye(f)
    return np.linalg.solve(gram + penalty, xty[..., None])[..., 0]

