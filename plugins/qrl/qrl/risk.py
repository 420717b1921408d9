"""Risk features of the environments: the turbulence index (FinRL's Mahalanobis distance of a day's returns from
the trailing history) and its threshold, a quantile of the training span stored with the checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from qcore.errors import QcoreError

#: FinRL's trailing window: one trading year.
WINDOW = 252


def turbulence(close: np.ndarray, window: int = WINDOW, min_periods: int | None = None) -> np.ndarray:
    """Turbulence of each row of a ``(dates, instruments)`` close panel, causal: row ``t`` reads rows ``<= t``.

    The turbulence of day ``t`` is ``(r_t - mu)' pinv(S) (r_t - mu)`` where ``r_t`` is the day's close-to-close
    returns and ``mu``, ``S`` the mean and covariance of the returns of the ``window`` days before (at most). Only
    instruments quoted on every one of those days and on day ``t`` count; a day with fewer than ``min_periods``
    (default ``window``) days of history, or fewer than two such instruments, reads 0.
    """
    if window < 2:
        raise ValueError(f"the turbulence window must be at least 2 days, got {window}")
    need = window if min_periods is None else int(min_periods)
    if not 2 <= need <= window:
        raise ValueError(f"min_periods must be in [2, window={window}], got {min_periods}")
    c = np.asarray(close, dtype=np.float64)
    rets = np.full_like(c, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        rets[1:] = c[1:] / c[:-1] - 1
    rets[~np.isfinite(rets)] = np.nan
    out = np.zeros(len(c))
    for t in range(need + 1, len(c)):
        hist = rets[max(1, t - window) : t]
        if len(hist) < need:
            continue
        cols = np.isfinite(hist).all(axis=0) & np.isfinite(rets[t])
        if cols.sum() < 2:
            continue
        h = hist[:, cols]
        d = rets[t, cols] - h.mean(axis=0)
        cov = np.atleast_2d(np.cov(h, rowvar=False))
        out[t] = max(float(d @ np.linalg.pinv(cov) @ d), 0.0)
    return out


@attrs.frozen
class TurbulenceSpec:
    """How turbulence is computed and where its threshold lies (``data.turbulence`` of a config).

    :ivar window: trailing days of the covariance (FinRL: 252).
    :ivar min_periods: days of history a value needs (default: the window).
    :ivar quantile: the threshold is this quantile of the training span's turbulence (days with history only).
    :ivar threshold: the fitted threshold (None until :meth:`fit`).
    """

    window: int = WINDOW
    min_periods: int | None = None
    quantile: float = 0.99
    threshold: float | None = None

    def __attrs_post_init__(self) -> None:
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"the turbulence quantile must be in (0, 1], got {self.quantile}")
        turbulence(np.ones((1, 2)), self.window, self.min_periods)  # checks window and min_periods

    @property
    def start(self) -> int:
        """The first row of a series that can have a value (earlier rows read 0)."""
        return (self.window if self.min_periods is None else self.min_periods) + 1

    def series(self, close: np.ndarray) -> np.ndarray:
        """:func:`turbulence` of ``close`` with this spec's window."""
        return turbulence(close, self.window, self.min_periods)

    def fit(self, train_turbulence: np.ndarray, first_row: int = 0) -> TurbulenceSpec:
        """The spec with :attr:`threshold` set to the :attr:`quantile` of the training rows' turbulence (the rows
        of ``train_turbulence`` from the first with history; ``first_row`` is the train split's row in the loaded
        data). A training span without a day of history is an error."""
        x = np.asarray(train_turbulence, dtype=np.float64)[max(0, self.start - first_row):]
        if len(x) == 0:
            raise ValueError(f"the train split has no day with {self.start - 1} days of history for the turbulence "
                             "threshold: load earlier data (data.start) or shorten data.turbulence.window")
        return attrs.evolve(self, threshold=float(np.quantile(x, self.quantile)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (the checkpoint sidecar's ``turbulence``)."""
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], where: str = "turbulence") -> TurbulenceSpec:
        """Read :meth:`to_dict`'s mapping back; anything malformed is a :class:`QcoreError` naming ``where``."""
        try:
            return cls(**dict(value))
        except (TypeError, ValueError) as exc:
            raise QcoreError(f"{where} is not a valid turbulence spec: {exc}") from None
