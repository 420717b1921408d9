"""The TWAP baseline: split a parent order evenly over the steps of a trading window, in whole lots.

A schedule, not an executor (it has no ``reset``/``execute``), so it is not registered as one: the kernel checks
every built executor against :class:`qcore.trading.Executor`.
"""

from __future__ import annotations

import numpy as np


class TwapExecutor:
    """Time-weighted average price execution.

    :param n_steps: child orders per parent order (e.g. 240 one-minute bars of a CN session).
    :param lot_size: child orders are multiples of it; the remainder goes to the last step, so the whole parent
        order is always scheduled.
    """

    def __init__(self, n_steps: int = 240, lot_size: int = 100) -> None:
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if lot_size < 1:
            raise ValueError(f"lot_size must be >= 1, got {lot_size}")
        self.n_steps = n_steps
        self.lot_size = lot_size

    def schedule(self, amount: float) -> np.ndarray:
        """Shares to trade at each step; the sum is ``amount`` and every step but the last trades whole lots."""
        if amount < 0 or not np.isfinite(amount):
            raise ValueError(f"amount must be a finite number >= 0, got {amount}")
        lots = int(amount // self.lot_size)
        base, extra = divmod(lots, self.n_steps)
        per_step = np.full(self.n_steps, base, dtype=np.int64)
        per_step[:extra] += 1
        out = per_step.astype(np.float64) * self.lot_size
        out[-1] += amount - lots * self.lot_size
        return out
