"""``rl_policy``: a trained portfolio policy as a :class:`qcore.trading.WeightStrategy` (any backtest that runs
weight strategies turns its targets into orders; its report is comparable with any other strategy's).

Before each bar the strategy rebuilds the portfolio environment's observation at the bar's *information date* (the
previous bar's close) from the run's store (``infra.provider`` evaluated with ``infra.operators``) and account
(``infra.account.position``), asks the policy for an action and returns the target weights of
:func:`~qrl.portfolio.env.weights_from_action` by instrument. The features are z-scored with the scaler the
checkpoint's sidecar recorded (fitted on its training split), never with numbers from the backtest's own range, and
only rows up to the last bar's information date are loaded. The policy network is rebuilt through the kernel's
``rl_algorithm`` registry (the kernel that creates the strategy passes itself, see :meth:`qcore.kernel.Kernel.create`),
so a third party's algorithm runs as qrl's own do. A checkpoint trained with ``data.turbulence`` records its window
and training-span threshold: the strategy computes the same causal series from the store and, on a bar whose
information date is turbulent, targets no position (the environment's risk control).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError
from qcore.trading import Step, TradingInfra

if TYPE_CHECKING:
    from qcore.kernel import Kernel

logger = logging.getLogger(__name__)

PATH = "strategy.kwargs"
#: Order generators a weight-strategy runner knows, with Qlib's class names for them.
GENERATORS = {"without_interact": "without_interact", "with_interact": "with_interact",
              "OrderGenWOInteract": "without_interact", "OrderGenWInteract": "with_interact"}  # fmt: skip


def generator_name(value: Any) -> str:
    """``without_interact`` or ``with_interact`` from either name, Qlib's class name or ``{class: name}``."""
    if isinstance(value, Mapping):
        value = value.get("class", "")
    name = GENERATORS.get(str(value))
    if name is None:
        raise ConfigError(f"order_generator must be one of {', '.join(GENERATORS)}, got {value!r}",
                          path=f"{PATH}.order_generator")  # fmt: skip
    return name


class RLPolicyStrategy:
    """Target the weights a trained portfolio policy picks, over the instruments it was trained on.

    :param checkpoint: a portfolio checkpoint (``best.pt``/``last.pt``) with its JSON sidecar, which records the
        instruments, feature expressions and training-split scaler.
    :param deterministic: use the policy's deterministic action (else sample it).
    :param risk_degree: the share of the account value the weights refer to.
    :param order_generator: ``without_interact`` (default) or ``with_interact``.
    :param kernel: the kernel whose ``rl_algorithm`` registry rebuilds the policy (``Kernel.create`` passes itself).
    """

    def __init__(self, *, checkpoint: str | Path, deterministic: bool = True, risk_degree: float = 0.95,
                 order_generator: Any = "without_interact", kernel: Kernel | None = None) -> None:
        from qrl import checkpoint as ckpt
        from qrl.scaling import FeatureScaler

        if not 0.0 <= float(risk_degree) <= 1.0:
            raise ConfigError(f"risk_degree must be in [0, 1], got {risk_degree}", path=f"{PATH}.risk_degree")
        if kernel is not None and not callable(getattr(kernel, "create", None)):
            raise ConfigError(f"kernel must be a qcore kernel, got {type(kernel).__name__}", path=f"{PATH}.kernel")
        self.risk_degree = float(risk_degree)
        self.order_generator = generator_name(order_generator)
        self.checkpoint = Path(checkpoint)
        self.deterministic = bool(deterministic)
        self.kernel = kernel
        self.meta = ckpt.meta_for_strategy(self.checkpoint, "portfolio", "rl_policy", f"{PATH}.checkpoint")
        instruments, features = self.meta.get("instruments"), self.meta.get("features")
        if not instruments or not features or "scaler" not in self.meta:
            raise ConfigError(f"checkpoint {self.checkpoint} does not record its instruments, feature expressions "
                              "and training-split scaler (trained on planted data, or before leak-free training); "
                              "retrain it on a store", path=f"{PATH}.checkpoint")  # fmt: skip
        names = self.meta.get("feature_names")
        if names is not None and set(names) == set(features):  # the sidecar's JSON keys are sorted: names give order
            features = {name: features[name] for name in names}
        if names is not None and list(names) != list(features):
            raise ConfigError(f"checkpoint {self.checkpoint} was trained on features {list(names)}, not "
                              f"{list(features)}", path=f"{PATH}.checkpoint")
        try:
            self.scaler = FeatureScaler.from_dict(self.meta["scaler"], f"the scaler of checkpoint {self.checkpoint}")
        except QcoreError as exc:
            raise ConfigError(str(exc), path=f"{PATH}.checkpoint") from None
        self.turbulence = None
        if "turbulence" in self.meta:
            from qrl.risk import TurbulenceSpec

            try:
                self.turbulence = TurbulenceSpec.from_dict(self.meta["turbulence"],
                                                           f"the turbulence of checkpoint {self.checkpoint}")
            except QcoreError as exc:
                raise ConfigError(str(exc), path=f"{PATH}.checkpoint") from None
        self.observation_kwargs = dict(self.meta.get("observation_kwargs") or {})
        self.vix = self.meta.get("vix")
        if self.vix is not None and "window" not in self.vix:
            raise ConfigError(f"checkpoint {self.checkpoint} observes a volatility index read from source files "
                              f"({self.vix}); the backtest computes only data.vix windows: retrain with data.vix",
                              path=f"{PATH}.checkpoint")
        self.trained: tuple[str, ...] = tuple(instruments)
        self.features: dict[str, str] = dict(features)
        self.infra: TradingInfra | None = None
        self.env: Any = None
        #: target weights (instrument -> weight, cash excluded) the policy chose, by the date of its observation
        self.targets: dict[pd.Timestamp, dict[str, float]] = {}

    def instruments(self) -> list[str]:
        """The trained instruments (the runner quotes them)."""
        return list(self.trained)

    # -- binding -------------------------------------------------------------------------------------------------

    def reset(self, infra: TradingInfra) -> None:
        """Load the trained instruments' closes and features up to the last bar's information date, then the policy."""
        from qrl.data import load_daily
        from qrl.portfolio.env import PortfolioEnv

        if infra.provider is None or infra.operators is None:
            raise ConfigError("rl_policy computes its observations from the run's store: the runner must give "
                              "TradingInfra a provider and the operator registry")  # fmt: skip
        if self.kernel is None:
            raise ConfigError("rl_policy rebuilds its policy through a kernel's rl_algorithm registry: create it "
                              "with kernel.create('strategy', 'rl_policy', ...) or pass kernel=")  # fmt: skip
        self.infra = infra
        self.targets = {}
        known = set(infra.provider.universe("all"))
        missing = [s for s in self.trained if s not in known]
        if missing:
            raise ConfigError(f"checkpoint {self.checkpoint} was trained on {list(self.trained)}, but the backtest "
                              f"store lacks {missing}", path=f"{PATH}.checkpoint")
        calendar = pd.DatetimeIndex(infra.calendar.calendar)
        last = infra.calendar.offset + len(infra.calendar.bars) - 2  # the last bar's information date
        self.env = None
        if last < 2:
            return  # no bar has enough history for an observation
        data = load_daily(infra.provider, infra.operators, None, list(self.trained), None, calendar[last],
                          self.features)  # fmt: skip
        threshold = None
        if self.turbulence is not None:  # the series over every stored row up to the last information date
            data = data.with_turbulence(self.turbulence)
            threshold = self.turbulence.threshold
        if self.vix is not None:
            data = data.with_market_volatility(int(self.vix["window"]))
        self.env = PortfolioEnv(data.with_scaler(self.scaler), turbulence_threshold=threshold,
                                **self.observation_kwargs)
        got = {"observation": list(self.env.observation_space.shape), "action": list(self.env.action_space.shape)}
        want = {k: (self.meta.get(k) or {}).get("shape") for k in ("observation", "action")}
        if got != want:
            raise ConfigError(f"checkpoint {self.checkpoint} expects observation/action shapes {want}, but "
                              f"{len(self.trained)} instruments × {len(self.features)} features give {got}",
                              path=f"{PATH}.checkpoint")
        self._warn_in_sample(pd.DatetimeIndex(infra.calendar.bars))
        self._load_policy()

    def _warn_in_sample(self, bars: pd.DatetimeIndex) -> None:
        if self.meta.get("timing") == "same_close":
            logger.warning("checkpoint %s was trained to trade at the close it observes (timing same_close); the "
                           "backtest trades one bar later", self.checkpoint)
        for name in ("train", "valid"):
            span = (self.meta.get("splits") or {}).get(name)
            if span and len(bars) and not (pd.Timestamp(span[1]) < bars[0] or pd.Timestamp(span[0]) > bars[-1]):
                logger.warning("the backtest's bars overlap the %s split (%s .. %s) of checkpoint %s: in-sample "
                               "results", name, span[0], span[1], self.checkpoint)

    def _load_policy(self) -> None:
        from qrl import checkpoint as ckpt
        from qrl.trainer import TrainSpec, build_algorithm

        assert self.kernel is not None
        spec = TrainSpec(algorithm=str(self.meta.get("algorithm")), hidden_sizes=tuple(self.meta["hidden_sizes"]),
                         algorithm_kwargs=dict(self.meta.get("algorithm_kwargs") or {}))
        try:
            algorithm = build_algorithm(spec, self.env, self.kernel)
            ckpt.load(self.checkpoint, algorithm)
        except QcoreError as exc:
            raise ConfigError(str(exc), path=f"{PATH}.checkpoint") from None
        self.policy = algorithm.policy
        self.policy.eval()
        if hasattr(self.policy, "deterministic_eval"):
            self.policy.deterministic_eval = self.deterministic

    # -- decisions -----------------------------------------------------------------------------------------------

    def observation(self, row: int) -> np.ndarray:
        """The environment's observation at the close of data row ``row`` for the account's holdings (other
        instruments' value counts as cash: the targets sell them)."""
        assert self.infra is not None and self.env is not None
        position = self.infra.account.position
        values = np.array([position.amount(s) * position.price(s) if s in position else 0.0 for s in self.trained])
        values = np.nan_to_num(values, nan=0.0)
        mark = self.env.mark[row]
        shares = np.divide(values, mark, out=np.zeros_like(values), where=mark > 0)
        return self.env.observation(row, float(position.value()) - float(values.sum()), shares)

    def weights_at(self, row: int) -> np.ndarray:
        """The policy's target weights (trained instruments, then cash) at data row ``row``."""
        import torch

        from qrl.portfolio.env import weights_from_action

        with torch.no_grad():
            action = self.policy.compute_action(self.observation(row))
        return weights_from_action(action, self.env.n)

    def target_weights(self, step: Step) -> dict[str, float] | None:
        """Target weight per trained instrument for ``step``, from the observation at its information date (None
        when that date has no data row)."""
        assert self.infra is not None, "call reset() first"
        k = self.infra.calendar.offset + step.index - 1
        if self.env is None or k < 0:
            return None
        date = pd.Timestamp(self.infra.calendar.calendar[k])
        dates = self.env.data.dates
        if date not in dates:
            return None
        row = int(dates.get_loc(date))
        if self.env.turbulent(row):  # the checkpoint's training-span threshold: sell everything, as in training
            targets = dict.fromkeys(self.trained, 0.0)
            self.targets[date] = targets
            return targets
        weights = self.weights_at(row)
        targets = dict(zip(self.trained, map(float, weights[:-1]), strict=True))
        self.targets[date] = targets
        return targets
