"""What signal-driven strategies share: binding to a run, reading the previous bar's scores, sorting like pandas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qbacktest.signal import Signal
from qcore.errors import ConfigError
from qcore.trading import Step, TradingInfra


def desc_order(values: np.ndarray) -> np.ndarray:
    """Positions that sort ``values`` descending with NaN last, exactly as ``Series.sort_values(ascending=False)``.

    Ties and NaN keep pandas' order (its quicksort on the reversed non-NaN values; NaNs in input order), so a
    strategy picks the same names as Qlib even when scores tie.
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.isnan(values)
    idx = np.arange(len(values))
    non_nan_idx = idx[~mask][::-1]
    ordered = non_nan_idx[values[~mask][::-1].argsort(kind="quicksort")][::-1]
    return np.concatenate([ordered, idx[mask]])


def as_signal(signal: Any) -> Signal:
    """A :class:`Signal` from a Signal, a score Series/DataFrame, or a path to a score file."""
    if isinstance(signal, Signal):
        return signal
    if isinstance(signal, (pd.Series, pd.DataFrame)):
        return Signal(signal)
    if isinstance(signal, str) and signal.startswith("<") and signal.endswith(">"):
        raise ConfigError(f"the strategy's signal is the placeholder {signal}; pass a score file (--score)",
                          path="strategy.kwargs.signal")  # fmt: skip
    if isinstance(signal, (str, bytes)) or hasattr(signal, "__fspath__"):
        from qbacktest.signal import read_scores

        return Signal(read_scores(signal), source=str(signal))
    raise ConfigError(f"cannot use {type(signal).__name__} as a signal (give scores or a score file)",
                      path="strategy.kwargs.signal")  # fmt: skip


class SignalStrategy:
    """Base of the strategies that read a :class:`Signal`: binds it and returns the previous bar's row.

    The runner gives every instrument the signal names a column of the exchange; those outside its universe can be
    ranked but never trade, as in Qlib.

    :param signal: scores indexed ``(datetime, instrument)`` (Series, DataFrame, file path or :class:`Signal`).
    :param risk_degree: the share of the money the strategy invests.
    """

    def __init__(self, *, signal: Any = None, risk_degree: float = 0.95) -> None:
        if signal is None:
            raise ConfigError("the strategy needs a signal (scores indexed by datetime and instrument)",
                              path="strategy.kwargs.signal")  # fmt: skip
        if not 0.0 <= float(risk_degree) <= 1.0:
            raise ConfigError(f"risk_degree must be in [0, 1], got {risk_degree}", path="strategy.kwargs.risk_degree")
        self.signal = as_signal(signal)
        self.risk_degree = float(risk_degree)
        self.infra: TradingInfra | None = None
        self._offset = 0

    def reset(self, infra: TradingInfra) -> None:
        """Bind the signal to the run's calendar and the exchange's instruments."""
        self.infra = infra
        self._offset = infra.bar_offset
        first = max(self._offset - 1, 0)
        self.signal.bind(infra.calendar.calendar, infra.exchange.instruments, first,
                         self._offset + len(infra.bars) - 1)

    @property
    def exchange(self) -> Any:
        """The run's exchange (a :class:`qcore.trading.Exchange`; qbacktest's own, with its extra lookups, in
        qbacktest's runs)."""
        assert self.infra is not None, "reset() first"
        return self.infra.exchange

    @property
    def position(self) -> Any:
        """The account's current position (a :class:`qcore.trading.Position`)."""
        assert self.infra is not None, "reset() first"
        return self.infra.account.position

    def scores_for(self, step: Step) -> tuple[np.ndarray, np.ndarray] | None:
        """``(values, present)`` of the bar before ``step`` (None when there is none: no decision)."""
        return self.signal.row(self._offset + step.index - 1)
