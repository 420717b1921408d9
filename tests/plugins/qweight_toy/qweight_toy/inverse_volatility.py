"""``inverse_volatility``: a :class:`qcore.trading.WeightStrategy` written only against qcore.

On each bar it ranks the candidates by momentum (``$close / Ref($close, M) - 1``), keeps the ``topk`` best and
weights them by the inverse of their volatility (the standard deviation of the last ``N`` daily returns), the
weights summing to 1. The backtest that runs it turns the weights into orders.

Point in time: the decision for a bar reads the values dated ``infra.calendar.information_date(step)`` (the
calendar entry before the bar). Both expressions look only backwards, and the engine is asked for nothing later
than the last bar's information date, so no value a decision reads depends on data after its information date.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError
from qcore.trading import Step, TradingInfra

PATH = "strategy.kwargs"


def _whole(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}", path=f"{PATH}.{name}")
    return value


class InverseVolatility:
    """Top ``topk`` names by momentum, weighted by 1 / volatility.

    :param topk: names held.
    :param momentum_window: bars of the momentum ``$close / Ref($close, momentum_window) - 1``.
    :param volatility_window: daily returns the volatility is measured over.
    :param market: the candidates: a market of the store (members on each date); None: every instrument the
        backtest quotes.
    :param risk_degree: the share of the account value the weights refer to.
    :param order_generator: how the backtest sizes the orders (``without_interact`` or ``with_interact``).
    """

    def __init__(self, *, topk: int = 5, momentum_window: int = 20, volatility_window: int = 20,
                 market: str | None = None, risk_degree: float = 0.95,
                 order_generator: str = "without_interact") -> None:  # fmt: skip
        self.topk = _whole(topk, "topk", 1)
        self.momentum_window = _whole(momentum_window, "momentum_window", 1)
        self.volatility_window = _whole(volatility_window, "volatility_window", 2)
        if market is not None and not isinstance(market, str):
            raise ConfigError(f"market must be a market name or null, got {market!r}", path=f"{PATH}.market")
        if isinstance(risk_degree, bool) or not isinstance(risk_degree, int | float) or not 0 <= risk_degree <= 1:
            raise ConfigError(f"risk_degree must be a number in [0, 1], got {risk_degree!r}",
                              path=f"{PATH}.risk_degree")  # fmt: skip
        self.market = market
        self.risk_degree = float(risk_degree)
        self.order_generator = order_generator
        self.infra: TradingInfra | None = None
        self._rows: dict[pd.Timestamp, int] = {}

    @property
    def expressions(self) -> dict[str, str]:
        """The two inputs, as expressions of the store's fields."""
        return {"momentum": f"$close / Ref($close, {self.momentum_window}) - 1",
                "volatility": f"Std($close / Ref($close, 1) - 1, {self.volatility_window})"}  # fmt: skip

    def reset(self, infra: TradingInfra) -> None:
        """Evaluate momentum and volatility for every information date of the run's bars."""
        from qcore.expr.engine import ExpressionEngine

        if infra.provider is None or infra.operators is None:
            raise ConfigError("inverse_volatility needs a runner that provides the data provider and the operators "
                              "(infra.provider, infra.operators)", path="strategy")  # fmt: skip
        self.infra = infra
        self._rows = {}
        calendar = infra.calendar
        info = [calendar.information_date(Step(i, bar, bar)) for i, bar in enumerate(calendar.bars)]
        info = [d for d in info if d is not None]
        if not info:
            return
        provider = infra.provider
        if self.market is not None:
            markets = list(provider.markets())
            if self.market not in markets:
                raise ConfigError(f"the store has no market {self.market!r} (markets: {', '.join(markets)})",
                                  path=f"{PATH}.market")  # fmt: skip
            candidates: str | list[str] = self.market
        else:
            known = provider.universe("all")
            candidates = [name for name in infra.exchange.instruments if name in known]
        engine = ExpressionEngine(provider, infra.operators, freq=calendar.freq)
        plan = engine.plan(self.expressions)
        panel, member = engine.evaluate_panel(plan, candidates, info[0], info[-1])  # nothing after the last one
        self._symbols = panel.instruments
        self._momentum = panel.data["e0"].astype(np.float64)
        self._volatility = panel.data["e1"].astype(np.float64)
        quoted = np.array([infra.exchange.col(name) is not None for name in self._symbols], dtype=bool)
        self._usable = member & quoted
        self._rows = {pd.Timestamp(d): k for k, d in enumerate(panel.dates)}

    def target_weights(self, step: Step) -> Mapping[str, float] | None:
        """Inverse-volatility weights of the top momentum names on the bar's information date (None: no data)."""
        assert self.infra is not None, "reset() first"
        date = self.infra.calendar.information_date(step)
        k = self._rows.get(pd.Timestamp(date)) if date is not None else None
        if k is None:
            return None
        momentum, volatility = self._momentum[k], self._volatility[k]
        ok = self._usable[k] & np.isfinite(momentum) & np.isfinite(volatility) & (volatility > 0)
        idx = np.flatnonzero(ok)
        if not len(idx):
            return None
        best = idx[np.lexsort((idx, -momentum[idx]))][: self.topk]  # by momentum, ties by name
        inverse = 1.0 / volatility[best]
        weights = inverse / inverse.sum()
        return {self._symbols[i]: float(w) for i, w in zip(best, weights, strict=True)}
