"""What the daily environments may trade on an execution row: deal prices, the tradable mask and price limits
(A-share rules: nothing bought at limit-up nor sold at limit-down, nothing traded where not listed or quoted)."""

from __future__ import annotations

import attrs
import numpy as np

from qrl.data import DailyData


@attrs.frozen(eq=False)
class Quotes:
    """One row's trading conditions, per instrument.

    :ivar price: the deal price (1.0 as a placeholder where :attr:`ok` is false).
    :ivar ok: tradable on the row (listed, quoted, a positive deal price).
    :ivar up: at limit-up (no buying).
    :ivar down: at limit-down (no selling).
    """

    price: np.ndarray
    ok: np.ndarray
    up: np.ndarray
    down: np.ndarray


def quotes(data: DailyData, row: int, timing: str) -> Quotes:
    """The trading conditions of ``data``'s row ``row``: the open under ``next_open`` timing, else the close."""
    assert data.open is not None and data.prev_close is not None and data.tradable is not None
    price = np.asarray(data.open[row] if timing == "next_open" else data.close[row], dtype=np.float64)
    ok = np.asarray(data.tradable[row], dtype=bool) & np.isfinite(price) & (np.nan_to_num(price) > 0)
    price = np.where(ok, price, 1.0)
    prev = data.prev_close[row]
    limit = data.limit[row]
    has_limit = np.isfinite(limit) & np.isfinite(prev)
    up = has_limit & (price >= np.round(np.nan_to_num(prev) * (1 + np.nan_to_num(limit)), 2) - 1e-9)
    down = has_limit & (price <= np.round(np.nan_to_num(prev) * (1 - np.nan_to_num(limit)), 2) + 1e-9)
    return Quotes(price, ok, up, down)
