"""What the plugin's weight strategies share: arguments Qlib passes, the signal, the run's data, diagnostics."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError
from qcore.trading import ShortSellingExchange, Step, TradingInfra
from qportfolio.scores import Scores

logger = logging.getLogger("qportfolio.strategy")

#: Keyword arguments of Qlib's strategies that mean nothing here: accepted and ignored.
QLIB_INFRA = ("trade_exchange", "level_infra", "common_infra", "model", "dataset")
GENERATORS = {"without_interact": "without_interact", "with_interact": "with_interact",
              "OrderGenWOInteract": "without_interact", "OrderGenWInteract": "with_interact"}  # fmt: skip


def order_generator_name(value: Any) -> str:
    """``without_interact`` or ``with_interact`` from a name, Qlib's class name or ``{class: ...}``."""
    if isinstance(value, Mapping):
        value = value.get("class", "")
    if isinstance(value, type):
        value = value.__name__
    if str(value) not in GENERATORS:
        raise ConfigError(f"order_generator must be one of without_interact, with_interact, OrderGenWOInteract, "
                          f"OrderGenWInteract; got {value!r}", path="order_generator")  # fmt: skip
    return GENERATORS[str(value)]


def check_strategy_kwargs(target: str, kwargs: dict[str, Any]) -> None:
    """Build the strategy ``target`` names with ``kwargs`` once (a one-row probe signal when the workflow supplies
    the signal later), so that every argument is checked before the run reads data; errors name the argument."""
    from qcore.registry import resolve

    values = dict(kwargs)
    if values.get("signal") is None:
        probe = pd.MultiIndex.from_tuples([(pd.Timestamp("2000-01-03"), "PROBE")], names=["datetime", "instrument"])
        values["signal"] = pd.Series([0.0], index=probe)
    try:
        resolve(target)(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def check_names(kwargs: Mapping[str, Any], cls: type, key: str) -> None:
    """Every name in ``kwargs`` is a parameter of ``cls``; else a :class:`ConfigError` with a did-you-mean."""
    import difflib
    import inspect

    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    for name in kwargs:
        if name not in accepted:
            close = difflib.get_close_matches(str(name), accepted, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown argument {name!r}{hint} (accepted: {', '.join(accepted)})",
                              path=f"{key}.{name}")  # fmt: skip


def drop_qlib_infra(kwargs: dict[str, Any], strategy: str) -> None:
    """Drop Qlib's infrastructure arguments; anything else left over is an error naming it."""
    for key in QLIB_INFRA:
        kwargs.pop(key, None)
    if kwargs:
        raise ConfigError(f"unknown argument {sorted(kwargs)[0]!r} of strategy {strategy}",
                          path=f"{sorted(kwargs)[0]}")  # fmt: skip


class WeightStrategyBase:
    """Signal, risk degree and order generator of a weight strategy, and a per-bar diagnostics log.

    :param signal: scores (see :mod:`qportfolio.scores`).
    :param risk_degree: the share of the account value the weights refer to.
    :param order_generator: how the backtest turns weights into orders.
    """

    def __init__(self, *, signal: Any, risk_degree: float = 0.95, order_generator: Any = "without_interact") -> None:
        if isinstance(risk_degree, bool) or not isinstance(risk_degree, int | float) or not 0 <= risk_degree <= 1:
            raise ConfigError(f"risk_degree must be a number in [0, 1], got {risk_degree!r}",
                              path="risk_degree")  # fmt: skip
        #: the signal as given (the backtest reads its dates for its default range).
        self.signal = signal
        self.scores = Scores(signal)
        self.risk_degree = float(risk_degree)
        self.order_generator = order_generator_name(order_generator)
        self.infra: TradingInfra | None = None
        self._records: list[dict[str, Any]] = []

    def instruments(self) -> list[str]:
        """Names the backtest should quote beyond its universe: every scored instrument."""
        return self.scores.instruments

    def reset(self, infra: TradingInfra) -> None:
        """Bind to a run."""
        self.infra = infra
        self._records = []

    @property
    def diagnostics(self) -> pd.DataFrame:
        """One row per decided bar: date, solver status, objective, fallback, names held, ex-ante active risk."""
        return pd.DataFrame(self._records).set_index("datetime") if self._records else pd.DataFrame()

    def current_weights(self, names: list[str]) -> np.ndarray:
        """The holdings' weights of the account value over ``risk_degree``, aligned to ``names`` (Qlib)."""
        assert self.infra is not None, "reset() first"
        held = self.infra.account.position.weights(only_stock=False)
        w = np.array([held.get(n, 0.0) for n in names], dtype=np.float64)
        return w / self.risk_degree if self.risk_degree > 0 else w

    def check_shorting(self, long_short: Any) -> None:
        """A long–short optimiser needs a backtest that holds short positions (its ``short:`` option): refused at
        reset otherwise, before any bar is traded."""
        assert self.infra is not None, "reset() first"
        exchange = self.infra.exchange
        if long_short is not None and (not isinstance(exchange, ShortSellingExchange) or exchange.shorting is None):
            raise ConfigError("optimizer_kwargs.long_short gives negative weights, but the backtest holds no short "
                              "positions: set backtest.short: {enabled: true, ...} (or drop long_short)",
                              path="optimizer_kwargs.long_short")  # fmt: skip

    def shortable(self, step: Step, names: list[str]) -> np.ndarray:
        """Which of ``names`` the exchange lets the account sell short on ``step``'s bar (its ``can_short``, the
        backtest's ``short.eligible`` list); all False when the exchange has no short selling."""
        assert self.infra is not None, "reset() first"
        exchange = self.infra.exchange
        if not isinstance(exchange, ShortSellingExchange):
            return np.zeros(len(names), dtype=bool)
        return np.array([bool(exchange.can_short(step.index, exchange.col(n))) for n in names], dtype=bool)

    def scores_for(self, step: Step) -> tuple[pd.Timestamp | None, pd.Series | None]:
        """The bar's information date and the scores of its window (None when there are none)."""
        assert self.infra is not None, "reset() first"
        info = self.infra.calendar.information_date(step)
        if info is None:
            return None, None
        return info, self.scores.window(info, step.start)
