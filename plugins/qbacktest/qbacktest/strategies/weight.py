"""Target-weight strategies: ``TargetWeight`` (weights given per date) and ``SoftTopk`` (weights from scores).

Both are :class:`qcore.trading.WeightStrategy` implementations: each bar they return target weights by instrument
name, and the backtest's :class:`~qbacktest.weight_orders.WeightOrders` turns them into orders with Qlib's order
generators (``without_interact``, the default of ``TargetWeight``; ``with_interact``, the default of ``SoftTopk``),
exactly as Qlib's ``WeightStrategyBase`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qbacktest.signal import Signal
from qbacktest.strategies.base import SignalStrategy, desc_order
from qbacktest.strategies.topk_dropout import _ignore_qlib_infra
from qbacktest.weight_orders import WEIGHT_TOLERANCE, _generator_name
from qcore.errors import ConfigError
from qcore.trading import Step


class SignalWeightStrategy(SignalStrategy):
    """Base of the weight strategies that read a signal: subclasses implement :meth:`weights_from_scores`.

    :param risk_degree: the share of the account value the weights refer to.
    :param order_generator: ``without_interact`` or ``with_interact`` (or Qlib's class names).
    """

    def __init__(self, *, signal: Any = None, risk_degree: float = 0.95, order_generator: Any = "without_interact",
                 **qlib_kwargs: Any) -> None:  # fmt: skip
        generator = qlib_kwargs.pop("order_generator_cls_or_obj", order_generator)
        _ignore_qlib_infra(qlib_kwargs)
        super().__init__(signal=signal, risk_degree=risk_degree)
        self.order_generator = _generator_name(generator)

    def target_weights(self, step: Step) -> dict[str, float] | None:
        """Target weight per instrument for ``step`` from the previous bar's scores (None when it has none)."""
        row = self.scores_for(step)
        if row is None:
            return None
        names = self.exchange.instruments
        return {names[c]: w for c, w in self.weights_from_scores(row[0], row[1], step).items()}

    def weights_from_scores(self, values: np.ndarray, present: np.ndarray, step: Step) -> dict[int, float]:
        """Target weight per exchange column from one bar's ``(values, present)`` score row."""
        raise NotImplementedError


class TargetWeight(SignalWeightStrategy):
    """Trade to the target weights given per date (the signal's values are weights of the account value).

    :param signal: weights indexed ``(datetime, instrument)``; the weights dated on the previous bar apply.
    :param risk_degree: the share of the account value the weights refer to.
    :param order_generator: ``without_interact`` (default, Qlib's) or ``with_interact``.
    :raises ConfigError: a weight above 1, or the weights of one date summing to more than 1.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_weights(self.signal)

    def weights_from_scores(self, values: np.ndarray, present: np.ndarray, step: Step) -> dict[int, float]:
        """Every finite, positive weight of the row."""
        cols = np.flatnonzero(present & np.isfinite(values) & (values > 0))
        return {int(c): float(values[c]) for c in cols}


class SoftTopk(SignalWeightStrategy):
    """Qlib's ``SoftTopkStrategy``: move weight from names leaving the top ``topk`` to those entering it.

    :param topk: names in the buy set.
    :param max_sold_weight: the most weight taken from one name per bar.
    :param buy_method: ``first_fill`` (fill names up to ``1/topk`` in score order) or ``average_fill``.
    """

    def __init__(self, *, topk: int, max_sold_weight: float = 1.0, buy_method: str = "first_fill",
                 order_generator: Any = "with_interact", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(order_generator=order_generator, **kwargs)
        if int(topk) < 1:
            raise ConfigError(f"topk must be >= 1, got {topk}", path="strategy.kwargs.topk")
        if buy_method not in ("first_fill", "average_fill"):
            raise ConfigError(f"buy_method must be first_fill or average_fill, got {buy_method!r}",
                              path="strategy.kwargs.buy_method")  # fmt: skip
        self.topk = int(topk)
        self.max_sold_weight = float(max_sold_weight)
        self.buy_method = buy_method

    def weights_from_scores(self, values: np.ndarray, present: np.ndarray, step: Step) -> dict[int, float]:
        """Qlib's soft top-k weights (names in score order instead of a set's arbitrary order)."""
        exchange, position = self.exchange, self.position
        scored = np.flatnonzero(present)
        buy_set = [int(c) for c in scored[desc_order(values[scored])][: self.topk]]
        current = {exchange.col(n): w for n, w in position.weights(only_stock=True).items()} if len(position) else {}
        if not current:
            return {c: 1 / self.topk for c in buy_set}
        final = dict(current)
        sold = 0.0
        chosen = set(buy_set)
        for c in list(final):
            if c not in chosen:
                sw = min(self.max_sold_weight, final[c])
                sold += sw
                final[c] -= sw
        if self.buy_method == "first_fill":
            for c in buy_set:
                add = min(max(1 / self.topk - final.get(c, 0.0), 0.0), sold)
                final[c] = final.get(c, 0.0) + add
                sold -= add
        else:
            for c in buy_set:
                final[c] = final.get(c, 0.0) + sold / len(buy_set)
        return final


def _check_weights(signal: Signal) -> None:
    """Weights (their positive part: the rest is ignored) are at most 1 and sum to at most 1 on each date."""
    weights = signal.scores.to_numpy(dtype=np.float64)
    positive = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    where = f" in {signal.source}" if signal.source else ""
    if (positive > 1.0 + WEIGHT_TOLERANCE).any():
        at = int(np.argmax(positive > 1.0 + WEIGHT_TOLERANCE))
        when, name = signal.scores.index[at]
        raise ConfigError(f"target weight {positive[at]:.6g} of {name} on {pd.Timestamp(when).date()}{where} is "
                          "more than 1", path="strategy.kwargs.signal")  # fmt: skip
    sums = pd.Series(positive, index=signal.scores.index.get_level_values(0)).groupby(level=0).sum()
    over = sums[sums - 1.0 >= WEIGHT_TOLERANCE]
    if len(over):
        raise ConfigError(f"target weights on {pd.Timestamp(over.index[0]).date()}{where} sum to "
                          f"{over.iloc[0]:.6g}, more than 1 ({len(over)} date(s))", path="strategy.kwargs.signal")
