"""Equal-weight top-k targets from a day's scores.

A helper for weight strategies, not a strategy itself: it has no ``reset``/``generate_trade_decision``, so it is not
registered as one (the kernel checks every built strategy against :class:`qcore.trading.Strategy`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class TopkEqualWeight:
    """Hold the ``topk`` best-scored instruments in equal weights summing to ``risk_degree``.

    Instruments without a score (NaN) are never chosen; equal scores are ordered by instrument name, so the
    result does not depend on the input order.
    """

    def __init__(self, topk: int = 50, risk_degree: float = 0.95) -> None:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if not 0.0 < risk_degree <= 1.0:
            raise ValueError(f"risk_degree must be in (0, 1], got {risk_degree}")
        self.topk = topk
        self.risk_degree = risk_degree

    def target_weights(self, scores: pd.Series) -> pd.Series:
        """Target weight per instrument (index: instrument) for one day's ``scores``."""
        valid = scores[np.isfinite(scores.to_numpy(dtype=np.float64))]
        if valid.empty:
            return pd.Series(dtype=np.float64)
        ordered = valid.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        chosen = ordered.index[: self.topk]
        return pd.Series(self.risk_degree / len(chosen), index=chosen, dtype=np.float64)
