"""TopkDropout: hold ``topk`` names, each bar swap up to ``n_drop`` of the worst held for the best not held.

Qlib's algorithm (``qlib/contrib/strategy/signal_strategy.py``), step by step, on the previous bar's scores:

1. ``last``: held names by score, descending (unscored last);
2. ``today``: the best ``n_drop + topk - len(last)`` names not held (Python slicing, so a negative count drops
   names from the end, as in Qlib);
3. ``comb``: ``last ∪ today`` by score; ``sell``: the held names among the last ``n_drop`` of ``comb``;
4. ``buy``: the first ``len(sell) + topk - len(last)`` of ``today``, counted from the *planned* sells;
5. sells are placed for tradable names held at least ``hold_thresh`` bars, their proceeds (less costs) added to
   the cash, and each buy gets ``cash × risk_degree / len(buy)`` at the deal price, rounded down to lots.

When a planned sell cannot execute (suspended, at the limit, delisted) the buys still happen, so holdings grow
beyond ``topk`` (Qlib issue #809). ``strict_topk=True`` counts only the sells actually placed (the fix proposed in
Qlib PR #2223), so failed sells no longer inflate the holdings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qbacktest.strategies.base import SignalStrategy, desc_order
from qcore.errors import ConfigError
from qcore.trading import Direction, Order, Step, TradeDecision

SELL = Direction.SELL
BUY = Direction.BUY


class TopkDropout(SignalStrategy):
    """Qlib's ``TopkDropoutStrategy`` with the same parameters and behaviour.

    :param topk: the number of names to hold.
    :param n_drop: names replaced per bar.
    :param method_sell: ``bottom`` (the worst held) or ``random``.
    :param method_buy: ``top`` (the best not held) or ``random`` (among the top ``topk``).
    :param hold_thresh: bars a name must have been held before it may be sold.
    :param only_tradable: rank only names tradable on the bar.
    :param forbid_all_trade_at_limit: a limit in either direction blocks both buying and selling.
    :param risk_degree: the share of the cash invested.
    :param strict_topk: fix Qlib issue #809: size the buys from the sells actually placed.
    :param seed: seed of the ``random`` methods.
    """

    def __init__(
        self,
        *,
        topk: int,
        n_drop: int,
        method_sell: str = "bottom",
        method_buy: str = "top",
        hold_thresh: int = 1,
        only_tradable: bool = False,
        forbid_all_trade_at_limit: bool = True,
        risk_degree: float = 0.95,
        strict_topk: bool = False,
        seed: int | None = 0,
        signal: Any = None,
        **qlib_kwargs: Any,
    ) -> None:
        _ignore_qlib_infra(qlib_kwargs)
        super().__init__(signal=signal, risk_degree=risk_degree)
        if int(topk) < 1:
            raise ConfigError(f"topk must be >= 1, got {topk}", path="strategy.kwargs.topk")
        if int(n_drop) < 0:
            raise ConfigError(f"n_drop must be >= 0, got {n_drop}", path="strategy.kwargs.n_drop")
        if method_sell not in ("bottom", "random"):
            raise ConfigError(f"method_sell must be bottom or random, got {method_sell!r}",
                              path="strategy.kwargs.method_sell")  # fmt: skip
        if method_buy not in ("top", "random"):
            raise ConfigError(f"method_buy must be top or random, got {method_buy!r}",
                              path="strategy.kwargs.method_buy")  # fmt: skip
        self.topk = int(topk)
        self.n_drop = int(n_drop)
        self.method_sell = method_sell
        self.method_buy = method_buy
        self.hold_thresh = hold_thresh
        self.only_tradable = bool(only_tradable)
        self.forbid_all_trade_at_limit = bool(forbid_all_trade_at_limit)
        self.strict_topk = bool(strict_topk)
        self._rng = np.random.default_rng(seed)

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The sells and buys of ``step`` (empty when the previous bar has no score)."""
        row = self.scores_for(step)
        if row is None:
            return TradeDecision(())
        values, present = row
        t = step.index
        exchange = self.exchange
        position = self.position
        names = exchange.instruments
        col = exchange.col
        tradable_any = exchange.tradable_row(t)

        def first_n(cols: Sequence[int], n: int, reverse: bool = False) -> list[int]:
            if not self.only_tradable:
                items = list(cols)
                return items[-n:] if reverse else items[:n]
            out: list[int] = []
            for c in reversed(cols) if reverse else cols:
                if tradable_any[c]:
                    out.append(c)
                    if len(out) >= n:
                        break
            return out[::-1] if reverse else out

        held_names = position.instruments()
        held_cols = np.array([col(h) for h in held_names], dtype=np.intp)
        last = held_cols[desc_order(values[held_cols])] if len(held_cols) else held_cols
        n_last = len(last)
        held_mask = np.zeros(len(names), dtype=bool)
        held_mask[held_cols] = True
        candidates = np.flatnonzero(present & ~held_mask)
        ranked = candidates[desc_order(values[candidates])]
        n_new = self.n_drop + self.topk - n_last
        if self.strict_topk:
            n_new = max(n_new, 0)
        if self.method_buy == "top":
            today = first_n(ranked, n_new)
        else:
            by_score = np.flatnonzero(present)
            top = first_n(by_score[desc_order(values[by_score])], self.topk)
            pool = [c for c in top if not held_mask[c]]
            today = list(self._rng.choice(pool, n_new, replace=False)) if 0 <= n_new <= len(pool) else pool
        if self.method_sell == "bottom":
            if n_last == 0:
                comb = np.asarray(today, dtype=np.intp)
            elif not today:
                comb = last
            else:
                comb = np.sort(np.concatenate([last, np.asarray(today, dtype=np.intp)]))
            comb = comb[desc_order(values[comb])]
            drop = set(first_n(comb, self.n_drop, reverse=True))
            sell = {c for c in last.tolist() if c in drop}
        else:
            pool = [c for c in last.tolist() if tradable_any[c]] if self.only_tradable else last.tolist()
            sell = set(self._rng.choice(pool, self.n_drop, replace=False).tolist()) if self.n_drop <= len(pool) else \
                set(pool)

        orders: list[Order] = []
        cash = position.cash
        may_sell = exchange.tradable_row(t, None if self.forbid_all_trade_at_limit else SELL)
        sell_ok = exchange.tradable_row(t, SELL)
        n_sold = 0
        for name, c in zip(held_names, held_cols.tolist()):
            if c not in sell or not may_sell[c]:
                continue
            if position.count(name) < self.hold_thresh:
                continue
            amount = position.amount(name)
            if sell_ok[c]:
                orders.append(Order(name, amount, SELL))
                n_sold += 1
                _, _, value, cost = exchange.trade(t, c, SELL, amount, cash, position.sellable(name))
                cash += value - cost
        n_buy = (n_sold if self.strict_topk else len(sell)) + self.topk - n_last
        if self.strict_topk:
            n_buy = max(n_buy, 0)
        buy = today[:n_buy]
        value_each = cash * self.risk_degree / len(buy) if len(buy) > 0 else 0
        may_buy = exchange.tradable_row(t, None if self.forbid_all_trade_at_limit else BUY)
        for c in buy:
            if not may_buy[c]:
                continue
            price = exchange.deal_price(t, c, BUY)
            amount = exchange.round_amount(value_each / price, exchange.factor_at(t, c))
            orders.append(Order(names[c], amount, BUY))
        return TradeDecision(tuple(orders), {"sell": sorted(names[c] for c in sell), "buy": [names[c] for c in buy]})


def _ignore_qlib_infra(kwargs: dict[str, Any]) -> None:
    """Drop Qlib-only keyword arguments that have no meaning here; reject anything else."""
    for key in ("trade_exchange", "level_infra", "common_infra", "model", "dataset"):
        kwargs.pop(key, None)
    if kwargs:
        raise ConfigError(f"unknown strategy arguments: {', '.join(sorted(kwargs))}", path="strategy.kwargs")
