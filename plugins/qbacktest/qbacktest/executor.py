"""The simulator executor: deals a decision's orders against the exchange and closes the bar.

Qlib's ``SimulatorExecutor``: orders execute one after another in decision order (``serial``), or buys first
(``parallel``: the money from the bar's sells cannot pay for its buys); a failed order (suspended, at the limit)
deals nothing and costs nothing. With ``settle_type="cash"`` sell proceeds only become cash at the bar's end.
What was dealt in an instrument is counted per day (``cum`` volume limits), over all the day's bars.

It runs daily bars on its own, and bars of any length as the innermost executor of a nested run
(:class:`qbacktest.nested.NestedExecutor`), where its exchange is the level's (aggregated from minute bars).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from qbacktest.freq import Freq
from qbacktest.indicators import check_indicator_config
from qcore.errors import ConfigError
from qcore.trading import Direction, Fill, Step, TradeDecision, TradingInfra

logger = logging.getLogger(__name__)

TRADE_TYPES = ("serial", "parallel")


class SimulatorExecutor:
    """Executes each bar's orders on the simulated exchange (one bar per step).

    :param time_per_step: the bar length: ``day``, or ``Nmin`` inside a nested executor (or as a run's only
        executor on a store with minute bars).
    :param trade_type: ``serial`` or ``parallel`` (buys before sells).
    :param settle_type: ``None`` or ``"cash"`` (delay sell proceeds to the bar's end).
    :param verbose: log every order.
    :param generate_portfolio_metrics: accepted for Qlib configs (metrics are always recorded).
    :param pa_base: price the price advantage is measured against (``$vwap``, any expression); None keeps Qlib's
        innermost-level rule (``pa = 0``). ``pa = sign × (deal price / base - 1)``, sign +1 for sells, -1 for buys.
    """

    def __init__(
        self,
        time_per_step: str = "day",
        trade_type: str = "serial",
        settle_type: str | None = None,
        verbose: bool = False,
        generate_portfolio_metrics: bool = True,
        indicator_config: dict[str, Any] | None = None,
        pa_base: str | None = None,
        track_data: bool = False,
        **qlib_kwargs: Any,
    ) -> None:
        for key in ("common_infra", "trade_exchange", "start_time", "end_time"):
            qlib_kwargs.pop(key, None)
        if qlib_kwargs:
            raise ConfigError(f"unknown executor arguments: {', '.join(sorted(qlib_kwargs))}", path="executor.kwargs")
        self.freq = Freq.parse(time_per_step)
        if trade_type not in TRADE_TYPES:
            raise ConfigError(f"trade_type must be serial or parallel, got {trade_type!r}",
                              path="executor.kwargs.trade_type")  # fmt: skip
        if settle_type in ("None", "none"):
            settle_type = None
        if settle_type not in (None, "cash"):
            raise ConfigError(f"settle_type must be null or 'cash', got {settle_type!r}",
                              path="executor.kwargs.settle_type")  # fmt: skip
        self.time_per_step = self.freq.name
        self.trade_type = trade_type
        self.settle_type = settle_type
        self.verbose = verbose
        self.indicator_config = check_indicator_config(indicator_config)
        self.pa_base = pa_base
        self.track_data = bool(track_data)
        #: with ``track_data``: every decision this executor received, with its bar's start (for RL data)
        self.decisions: list[tuple[Any, TradeDecision]] = []
        self.infra: TradingInfra | None = None
        self._dealt: dict[str, float] = {}
        self._deal_day: Any = None

    def begin_run(self) -> None:
        """Forget the decisions and the day's dealt amounts of an earlier run."""
        self.decisions = []
        self._dealt = {}
        self._deal_day = None

    def reset(self, infra: TradingInfra) -> None:
        """Bind to a run, or to the bars of one outer step inside a nested run (and load the price-advantage
        base price, if any)."""
        self.infra = infra
        if getattr(infra.account, "count_key", None) is None:  # the run's own account: a run starts
            self.begin_run()
        if getattr(infra.account, "tables", None) is not None:  # a level of a nested run: Qlib's indicators
            infra.account.indicator_config = self.indicator_config
        if self.pa_base is not None:
            infra.account.pa_base = infra.exchange.field(self.pa_base)

    def _ordered(self, decision: TradeDecision) -> Sequence[Any]:
        if self.trade_type == "parallel":
            return sorted(decision.orders, key=lambda order: -int(order.direction))
        return decision.orders

    def execute(self, decision: TradeDecision, step: Step) -> list[Fill]:
        """Deal the orders of ``decision`` on ``step``'s bar, then close the bar."""
        assert self.infra is not None, "reset() first"
        exchange, account = self.infra.exchange, self.infra.account
        position = account.position
        t = step.index
        if self.track_data:
            self.decisions.append((step.start, decision))
        if self.settle_type == "cash":
            position.settle_start()
        day = step.start.normalize()
        if day != self._deal_day:  # what was dealt counts per day (Qlib's dealt_order_amount)
            self._dealt = {}
            self._deal_day = day
        dealt = self._dealt
        ledger = exchange.ledger(t) if hasattr(exchange, "ledger") else t
        fills: list[Fill] = []
        for order in self._ordered(decision):
            name = order.instrument
            j = exchange.col(name)
            if not exchange.is_tradable(t, j, order.direction):
                fill = Fill(order, 0.0, math.nan, 0.0, 0.0)
            else:
                held = position.sellable(name) if order.direction == Direction.SELL else None
                deal, price, value, cost = exchange.trade(
                    t, j, order.direction, order.amount, position.cash, held, dealt.get(name, 0.0)
                )
                fill = Fill(order, deal, price, value, cost)
                if value > 1e-5:
                    account.apply(fill, ledger)
            fills.append(fill)
            dealt[name] = dealt.get(name, 0.0) + fill.deal_amount
            if self.verbose:
                logger.info("%s %s %s amount %.6g deal %.6g price %.6g value %.2f cost %.2f cash %.2f",
                            step.start.date() if self.freq.daily else step.start, order.direction.name.lower(),
                            name, order.amount, fill.deal_amount,
                            fill.price, fill.value, fill.cost, position.cash)  # fmt: skip
        account.update_bar_end(t, exchange, fills)
        if self.settle_type == "cash":
            position.settle_commit()
        return fills
