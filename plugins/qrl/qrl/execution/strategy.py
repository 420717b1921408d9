"""``rl_execution``: a trained order-execution policy as the inner strategy of a nested backtest
(:class:`qcore.trading.ParentAwareStrategy`).

For each outer bar the nested executor resets the strategy to that bar's inner bars and hands it the outer decision
(``set_parent``). The inner steps of the decision's trade range (all of them by default) are cut into the
checkpoint's ``n_steps`` intervals, as the execution environment cuts its window of minute bars: interval ``k``
holds inner steps ``first + ⌊k·R/n⌋ .. first + ⌊(k+1)·R/n⌋ - 1`` of the ``R`` steps in range (with ``R < n`` some
intervals are empty and their policy steps trade nothing).

At the first inner step of interval ``k`` the policy decides each parent order: its observation comes from the
checkpoint's own state interpreter applied to a :class:`PolicyView` of the order — the deal prices (``$vwap /
$factor`` of the minute bars, the environment's prices) from the start of the range up to the end of the inner bar
at ``infra.calendar.information_date(step)``, i.e. every minute *before* the step's bar starts, never the step's own
bars — the interval number and what remains of the order; its action becomes an amount through the checkpoint's
action interpreter (the last policy step asks for everything left). That amount is spread evenly over the
interval's inner bars with TWAP-like re-targeting (what an inner bar could not fill is asked again in the same
interval; what the interval could not fill is left to the next policy step, as in the environment), and the last
inner step of the range orders all that remains of every order (what still fails is dropped: fill rate < 1).
Suspended instruments are skipped on their bars. Lots, volume limits, price limits and costs are the backtest
exchange's.

This is the environment's ``next_close``/``next_open`` timing: the policy trades an interval it has not seen. A
checkpoint trained with ``same_close`` (it saw the interval's first bar) is run the same way, with a warning.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError, UnknownComponentError
from qcore.trade_range import range_of
from qcore.trading import Fill, Order, Step, TradeDecision, TradingInfra
from qrl.execution.simulator import Order as ParentOrder
from qrl.execution.spec import DEFAULT_PRICE_FIELD

if TYPE_CHECKING:
    from qcore.kernel import Kernel

logger = logging.getLogger(__name__)

PATH = "strategy.kwargs"


@dataclass
class PolicyView:
    """What the interpreters see of one parent order at a policy step: the observable part of an
    :class:`~qrl.execution.simulator.ExecutionSimulator` (it holds no price of a bar not yet seen).

    :ivar order: the parent order (``amount`` in the backtest's adjusted shares).
    :ivar n_steps: the policy steps of the order.
    :ivar step: the policy step about to be decided.
    :ivar executed: what has been dealt so far.
    :ivar prices: the deal prices observed so far, oldest first.
    :ivar lot_size: shares per lot of the environment.
    """

    order: ParentOrder
    n_steps: int
    step: int
    executed: float
    prices: np.ndarray
    lot_size: int = 100

    @property
    def remaining(self) -> float:
        """Shares still to trade."""
        return self.order.amount - self.executed

    @property
    def done(self) -> bool:
        """Whether every policy step has passed."""
        return self.step >= self.n_steps

    @property
    def observed(self) -> int:
        """How many bars have been observed."""
        return len(self.prices)

    def seen_prices(self) -> np.ndarray:
        """The observed deal prices, oldest first."""
        return self.prices


class RLExecutionStrategy:
    """Carry each parent order out over the inner bars as a trained execution policy decides (module docstring).

    :param checkpoint: an execution checkpoint (``best.pt``/``last.pt``) whose JSON sidecar records the
        environment's interpreters and step schedule (``qcore rl train`` writes it).
    :param deterministic: use the policy's deterministic action (else sample it).
    :param price_field: the minute field of the observed prices (default: the checkpoint's, ``vwap``).
    :param kernel: the kernel whose ``rl_state_interpreter``, ``rl_action_interpreter`` and ``rl_algorithm``
        registries rebuild the policy (``Kernel.create`` passes itself).
    """

    def __init__(self, *, checkpoint: str | Path, deterministic: bool = True, price_field: str | None = None,
                 kernel: Kernel | None = None) -> None:
        from qrl import checkpoint as ckpt

        if kernel is None or not callable(getattr(kernel, "create", None)):
            raise ConfigError("rl_execution rebuilds its policy through a kernel's registries: create it with "
                              "kernel.create('strategy', 'rl_execution', ...) or pass kernel=", path=PATH)
        self.kernel = kernel
        self.checkpoint = Path(checkpoint)
        self.deterministic = bool(deterministic)
        self.meta = ckpt.meta_for_strategy(self.checkpoint, "execution", "rl_execution", f"{PATH}.checkpoint")
        settings = self.meta.get("execution")
        if not isinstance(settings, Mapping):
            raise ConfigError(f"checkpoint {self.checkpoint} does not record its environment's interpreters and "
                              "steps (written before rl_execution existed); retrain it", path=f"{PATH}.checkpoint")
        self.settings = dict(settings)
        self.n_steps = int(self.settings["n_steps"])
        self.lot_size = int(self.settings.get("lot_size", 100))
        self.price_field = str(price_field or self.settings.get("price_field") or DEFAULT_PRICE_FIELD).lstrip("$")
        self.state = self._component("rl_state_interpreter", self.settings["state"])
        self.action = self._component("rl_action_interpreter", self.settings["action"])
        self._load_policy()
        if self.meta.get("timing") == "same_close":
            logger.warning("checkpoint %s was trained seeing the first bar of the interval it trades (timing "
                           "same_close); rl_execution observes only the bars before it", self.checkpoint)
        self.infra: TradingInfra | None = None
        self._minutes: pd.DatetimeIndex | None = None
        self._provider: Any = None
        self._clear()
        #: every policy decision of the run: ``(inner bar, instrument, policy step, amount requested)``
        self.requests: list[tuple[pd.Timestamp, str, int, float]] = []

    def _component(self, kind: str, spec: Mapping[str, Any]) -> Any:
        try:
            return self.kernel.create(kind, spec["name"], **dict(spec.get("kwargs") or {}))
        except UnknownComponentError as exc:
            raise ConfigError(f"checkpoint {self.checkpoint}: {exc}", path=f"{PATH}.checkpoint") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"checkpoint {self.checkpoint} records {kind} {spec.get('name')!r} with arguments "
                              f"it rejects: {exc}", path=f"{PATH}.checkpoint") from None

    def _load_policy(self) -> None:
        from qrl import checkpoint as ckpt
        from qrl.trainer import TrainSpec, build_algorithm

        spaces = SimpleNamespace(observation_space=self.state.space(), action_space=self.action.space())
        expected = ckpt.env_spec("execution", spaces)
        try:
            ckpt.check_compatible(self.meta, expected, str(self.meta.get("algorithm")), self.checkpoint)
            spec = TrainSpec(algorithm=str(self.meta.get("algorithm")),
                             hidden_sizes=tuple(self.meta.get("hidden_sizes") or (64, 64)),
                             algorithm_kwargs=dict(self.meta.get("algorithm_kwargs") or {}))
            algorithm = build_algorithm(spec, spaces, self.kernel)
            ckpt.load(self.checkpoint, algorithm)
        except QcoreError as exc:
            raise ConfigError(str(exc), path=f"{PATH}.checkpoint") from None
        self.policy = algorithm.policy
        self.policy.eval()
        if hasattr(self.policy, "deterministic_eval"):
            self.policy.deterministic_eval = self.deterministic

    def _clear(self) -> None:
        self.parent = TradeDecision(())
        self.remaining: dict[str, float] = {}
        self.range = (0, -1)
        self.bounds: list[int] = []
        #: per instrument: (policy step, dealt at its start, amount it asked for)
        self.plan: dict[str, tuple[int, float, float]] = {}

    # -- binding ---------------------------------------------------------------------------------------------

    def reset(self, infra: TradingInfra) -> None:
        """Bind to the inner bars of one outer bar (the nested executor calls it before each outer bar)."""
        if infra.provider is None:
            raise ConfigError("rl_execution observes the store's minute bars: the runner must give TradingInfra a "
                              "provider", path=PATH)  # fmt: skip
        if infra.provider is not self._provider:
            if self.price_field not in infra.provider.fields("1min"):
                raise ConfigError(f"the store has no 1-minute ${self.price_field} for rl_execution's observations",
                                  path=f"{PATH}.price_field")  # fmt: skip
            self._minutes = pd.DatetimeIndex(infra.provider.calendar("1min"))
            self._provider = infra.provider
        self.infra = infra
        self._clear()

    def set_parent(self, decision: TradeDecision, step: Step) -> None:
        """The outer decision whose orders this strategy carries out over the inner bars."""
        assert self.infra is not None, "reset() first"
        calendar = self.infra.calendar
        self.parent = TradeDecision(tuple(o for o in decision.orders if o.amount > 1e-6), decision.info)
        self.remaining = {order.instrument: order.amount for order in self.parent.orders}
        first, last = range_of(decision, calendar)
        self.range = (first, last)
        size = last - first + 1
        self.bounds = [first + k * size // self.n_steps for k in range(self.n_steps + 1)] if size > 0 else []

    def post_exe_step(self, fills: Sequence[Fill]) -> None:
        """Count what the last inner step dealt."""
        for fill in fills:
            name = fill.order.instrument
            if name in self.remaining:
                self.remaining[name] -= fill.deal_amount

    # -- decisions -------------------------------------------------------------------------------------------

    def observed_prices(self, names: Sequence[str], step: Step) -> dict[str, np.ndarray]:
        """The deal prices of ``names`` from the range's first inner bar to the end of the inner bar at
        ``information_date(step)``: the minutes before ``step``'s bar starts."""
        assert self.infra is not None and self._minutes is not None
        calendar = self.infra.calendar
        info = calendar.information_date(step)
        out = {name: np.empty(0) for name in names}
        if info is None:
            return out
        full = pd.DatetimeIndex(calendar.calendar)
        cutoff = full[int(full.searchsorted(pd.Timestamp(info), "right"))]  # where the information date's bar ends
        begin = calendar.bars[self.range[0]]
        lo = int(self._minutes.searchsorted(begin, "left"))
        hi = int(self._minutes.searchsorted(cutoff, "left"))
        if hi <= lo:
            return out
        panel = self.infra.provider.load([self.price_field, "factor"], list(names), self._minutes[lo],
                                         self._minutes[hi - 1], freq="1min")  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.asarray(panel["factor"], dtype=np.float64)
            price = np.asarray(panel[self.price_field], dtype=np.float64) / np.where(factor > 0, factor, np.nan)
        for j, name in enumerate(names):
            series = pd.Series(price[:, j]).ffill().dropna().to_numpy()
            out[name] = series[series > 0]
        return out

    def _decide(self, k: int, step: Step, names: Sequence[str]) -> None:
        """Ask the policy for policy step ``k`` of each parent order in ``names``."""
        import torch

        prices = self.observed_prices(names, step)
        orders = {o.instrument: o for o in self.parent.orders}
        for name in names:
            order = orders[name]
            remaining = max(self.remaining[name], 0.0)
            view = PolicyView(ParentOrder(0, 0, order.direction.sign, order.amount), self.n_steps, k,
                              order.amount - remaining, prices[name], self.lot_size)  # fmt: skip
            with torch.no_grad():
                action = self.policy.compute_action(self.state(view))
            request = float(np.clip(self.action(view, action), 0.0, remaining))
            self.plan[name] = (k, order.amount - remaining, request)
            self.requests.append((pd.Timestamp(step.start), name, k, request))

    def generate_trade_decision(self, step: Step) -> TradeDecision:
        """The orders of inner step ``step``: the policy's amount for the step's interval, spread over its bars."""
        first, last = self.range
        i = step.index
        if not self.parent.orders or not self.bounds or i < first or i > last:
            return TradeDecision(())
        assert self.infra is not None
        k = bisect.bisect_right(self.bounds, i, 0, self.n_steps) - 1
        start, stop = self.bounds[k], self.bounds[k + 1]
        exchange = self.infra.exchange
        live = [o for o in self.parent.orders if self.remaining[o.instrument] > 1e-5
                and not exchange.is_suspended(i, exchange.col(o.instrument))]  # fmt: skip
        due = [o.instrument for o in live if self.plan.get(o.instrument, (-1,))[0] < k]
        if due:
            self._decide(k, step, due)
        orders = []
        for order in live:
            name = order.instrument
            remaining = self.remaining[name]
            if i == last:
                want = remaining
            else:
                _, done_at_start, request = self.plan[name]
                target = done_at_start + request * (i - start + 1) / (stop - start)
                want = min(target - (order.amount - remaining), remaining)
            if want > 1e-5:
                orders.append(Order(name, want, order.direction))
        return TradeDecision(tuple(orders))
