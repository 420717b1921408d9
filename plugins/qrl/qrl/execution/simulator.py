"""Order-execution simulator: one parent order on one instrument and day, traded over equal intervals of bars."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qrl.data import IntradayData
from qrl.timing import DEFAULT_TIMING, TIMINGS


@dataclass(frozen=True)
class Order:
    """A parent order: ``direction`` +1 buys, -1 sells ``amount`` shares on ``day`` of ``instrument``."""

    day: int
    instrument: int
    direction: int
    amount: float


@dataclass
class StepFill:
    """What one interval traded: shares and average raw price (NaN when nothing traded)."""

    requested: float
    filled: float
    price: float


@dataclass
class ExecutionSimulator:
    """Market state transitions of one order.

    The window's bars ``[start_bar, end_bar)`` are cut into ``n_steps`` equal intervals. A child order is rounded
    down to whole lots (the last, odd-lot remainder of a sell may go as is), capped at ``volume_cap`` of the
    interval's volume, and cannot trade on bars at the limit price in its direction (no buying at limit-up, no
    selling at limit-down). It fills evenly over the tradable bars at their deal prices.

    ``timing`` (:data:`qrl.timing.TIMINGS`) says what a policy has seen when it decides a step: under ``next_close``
    and ``next_open`` (the default; the same thing on bars with one deal price) only the bars before the step's
    interval, so it trades on bars it has not seen, as the backtest does; under ``same_close`` also the interval's
    first bar, which it then trades at.
    """

    data: IntradayData
    order: Order
    n_steps: int = 8
    start_bar: int = 0
    end_bar: int | None = None
    lot_size: int = 100
    volume_cap: float = 0.1
    timing: str = DEFAULT_TIMING
    step: int = 0
    executed: float = 0.0
    value: float = 0.0
    fills: list[StepFill] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.timing not in TIMINGS:
            raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, got {self.timing!r}")
        end = self.data.n_bars if self.end_bar is None else self.end_bar
        if not 0 <= self.start_bar < end <= self.data.n_bars:
            raise ValueError(f"invalid bar window [{self.start_bar}, {end}) for {self.data.n_bars} bars")
        if (end - self.start_bar) % self.n_steps:
            raise ValueError(f"window of {end - self.start_bar} bars does not split into {self.n_steps} steps")
        self.end_bar = end
        self.bars_per_step = (end - self.start_bar) // self.n_steps
        d, i = self.order.day, self.order.instrument
        self.prices = self.data.price[d, i, self.start_bar:end].astype(np.float64)
        self.volumes = self.data.volume[d, i, self.start_bar:end].astype(np.float64)
        limit = self.data.limit[d, i]
        blocked = np.zeros(len(self.prices), dtype=bool)
        if np.isfinite(limit):
            prev = self.data.prev_close[d, i]
            if self.order.direction > 0:
                blocked = self.prices >= np.round(prev * (1 + limit), 2) - 1e-9
            else:
                blocked = self.prices <= np.round(prev * (1 - limit), 2) + 1e-9
        self.blocked = blocked

    @property
    def remaining(self) -> float:
        """Shares still to trade."""
        return self.order.amount - self.executed

    @property
    def done(self) -> bool:
        """Whether every interval has passed."""
        return self.step >= self.n_steps

    @property
    def bar(self) -> int:
        """Bars of the window already elapsed."""
        return self.step * self.bars_per_step

    @property
    def observed(self) -> int:
        """Bars of the window a policy may see before deciding the current step (per :attr:`timing`)."""
        extra = 1 if self.timing == "same_close" and not self.done else 0
        return self.bar + extra

    def seen_prices(self) -> np.ndarray:
        """The deal prices of the observable bars (:attr:`observed`), oldest first."""
        return self.prices[: self.observed]

    def twap_price(self) -> float:
        """Mean deal price over the window's tradable bars: the benchmark price."""
        ok = ~self.blocked
        return float(self.prices[ok].mean()) if ok.any() else float(self.prices.mean())

    def execute(self, shares: float) -> StepFill:
        """Trade up to ``shares`` in the current interval and advance one step."""
        if self.done:
            raise RuntimeError("the order's window is over")
        lo = self.step * self.bars_per_step
        sl = slice(lo, lo + self.bars_per_step)
        want = float(np.clip(shares, 0.0, self.remaining))
        lots = np.floor(want / self.lot_size + 1e-9) * self.lot_size
        if self.order.direction < 0 and self.remaining - want < self.lot_size and want >= self.remaining - 1e-9:
            lots = want  # a sell may clear its odd-lot remainder
        ok = ~self.blocked[sl]
        cap = np.floor(self.volume_cap * self.volumes[sl][ok].sum() / self.lot_size) * self.lot_size
        filled = float(min(lots, cap)) if ok.any() else 0.0
        price = float(self.prices[sl][ok].mean()) if filled > 0 else float("nan")
        if filled > 0:
            self.executed += filled
            self.value += filled * price
        fill = StepFill(want, filled, price)
        self.fills.append(fill)
        self.step += 1
        return fill

    def average_price(self) -> float:
        """Average execution price (NaN when nothing traded)."""
        return self.value / self.executed if self.executed > 0 else float("nan")

    def metrics(self) -> dict[str, float]:
        """``pa_bps`` (price advantage against TWAP, positive is better) and ``fill_rate``."""
        avg = self.average_price()
        twap = self.twap_price()
        pa = self.order.direction * (1.0 - avg / twap) * 1e4 if np.isfinite(avg) else 0.0
        fill_rate = self.executed / self.order.amount if self.order.amount > 0 else 1.0
        return {"pa_bps": float(pa), "fill_rate": float(fill_rate)}
