"""``rl_policy``: a trained portfolio policy run as a ``qbacktest`` strategy (its report is comparable with any
signal strategy's).

Before each bar the strategy rebuilds the portfolio environment's observation at the previous bar's close from the
backtest's own data and account (cash, holdings, closes, the checkpoint's technical features: the environment's
own ``_obs``), asks the policy for an action and turns it into target weights with
:func:`~qrl.portfolio.env.weights_from_action`; qbacktest's :class:`TargetWeight` order generation trades to them.
Features are standardised over the loaded range (the calendar start to the last bar), as
:func:`~qrl.data.load_daily` does for training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from qbacktest.strategies.weight import TargetWeight, _generator_name

from qcore.errors import ConfigError, QcoreError
from qcore.trading import Step, TradingInfra

PATH = "strategy.kwargs"


class RLPolicyStrategy(TargetWeight):
    """Trade to the target weights a trained portfolio policy picks, restricted to its trained instruments.

    :param checkpoint: a portfolio checkpoint (``best.pt``/``last.pt``) with its JSON sidecar.
    :param config: the RL YAML it was trained with, needed when the sidecar does not name the instruments and
        features (checkpoints written before they were recorded).
    :param deterministic: use the policy's deterministic action (else sample it).
    :param risk_degree: the share of the account value the weights refer to.
    :param order_generator: ``without_interact`` (default) or ``with_interact``.
    """

    def __init__(self, *, checkpoint: str | Path, config: str | Path | None = None, deterministic: bool = True,
                 risk_degree: float = 0.95, order_generator: Any = "without_interact") -> None:
        from qrl import checkpoint as ckpt

        if not 0.0 <= float(risk_degree) <= 1.0:
            raise ConfigError(f"risk_degree must be in [0, 1], got {risk_degree}", path=f"{PATH}.risk_degree")
        self.risk_degree = float(risk_degree)
        self.order_generator = _generator_name(order_generator)
        self.signal = None
        self.infra: TradingInfra | None = None
        self._offset = 0
        self.checkpoint = Path(checkpoint)
        self.deterministic = bool(deterministic)
        try:
            self.meta = ckpt.read_meta(self.checkpoint)
        except QcoreError as exc:
            raise ConfigError(str(exc), path=f"{PATH}.checkpoint") from None
        if self.meta.get("env") != "portfolio":
            raise ConfigError(f"checkpoint {self.checkpoint} holds a {self.meta.get('env')!r} policy; rl_policy "
                              "needs a portfolio policy", path=f"{PATH}.checkpoint")
        self.trained, self.features = self._trained_inputs(config)
        #: target weights (instrument -> weight, cash excluded) the policy chose, by the date of its observation
        self.targets: dict[pd.Timestamp, dict[str, float]] = {}

    def _trained_inputs(self, config: str | Path | None) -> tuple[tuple[str, ...], dict[str, str]]:
        from qrl.data import DEFAULT_FEATURES

        instruments = self.meta.get("instruments")
        features = self.meta.get("features")
        if config is not None:
            from qrl.config import load

            data = load(config).data
            if "provider_uri" not in data:
                raise ConfigError(f"config {config} trains on planted data, which a backtest store cannot rebuild",
                                  path=f"{PATH}.config")
            cfg_instruments = data.get("instruments")
            cfg_features = dict(data.get("features") or DEFAULT_FEATURES)
            if isinstance(cfg_instruments, (list, tuple)):
                if instruments is not None and sorted(instruments) != sorted(cfg_instruments):
                    raise ConfigError(f"config {config} names instruments {sorted(cfg_instruments)} but checkpoint "
                                      f"{self.checkpoint} was trained on {sorted(instruments)}", path=f"{PATH}.config")
                instruments = instruments or list(cfg_instruments)
            if features is not None and dict(features) != cfg_features:
                raise ConfigError(f"config {config} has features {cfg_features} but checkpoint {self.checkpoint} "
                                  f"was trained on {dict(features)}", path=f"{PATH}.config")
            features = features or cfg_features
        if not instruments:
            raise ConfigError(f"checkpoint {self.checkpoint} does not record its instruments; give the RL config "
                              "it was trained with (config=...) listing data.instruments", path=f"{PATH}.checkpoint")
        if not features:
            raise ConfigError(f"checkpoint {self.checkpoint} does not record its feature expressions (trained on "
                              "planted data?); give the RL config it was trained with", path=f"{PATH}.checkpoint")
        names = self.meta.get("feature_names")
        if names is not None and list(names) != list(features):
            raise ConfigError(f"checkpoint {self.checkpoint} was trained on features {list(names)}, not "
                              f"{list(features)}", path=f"{PATH}.config")
        return tuple(instruments), dict(features)

    def instruments(self) -> list[str]:
        """The trained instruments (the runner quotes them)."""
        return list(self.trained)

    # -- binding -------------------------------------------------------------------------------------------------

    def reset(self, infra: TradingInfra) -> None:
        """Load the trained instruments' closes and features up to the last bar, then the policy."""
        from qcore.kernel import Kernel
        from qrl import checkpoint as ckpt
        from qrl.data import load_daily
        from qrl.portfolio.env import PortfolioEnv
        from qrl.trainer import TrainSpec, build_algorithm

        self.infra = infra
        provider = infra.extras.get("provider")
        if provider is None:
            raise ConfigError("rl_policy needs the backtest's data provider (infra.extras['provider'])")
        self._calendar = pd.DatetimeIndex(infra.extras["calendar"])
        self._offset = int(infra.extras["bar_offset"])
        known = set(provider.universe("all"))
        missing = [s for s in self.trained if s not in known]
        if missing:
            raise ConfigError(f"checkpoint {self.checkpoint} was trained on {list(self.trained)}, but the backtest "
                              f"store lacks {missing}", path=f"{PATH}.checkpoint")
        data = load_daily(_KernelShim(), provider, None, list(self.trained), None, infra.bars[-1], self.features)
        self.env = PortfolioEnv(data)
        got = {"observation": list(self.env.observation_space.shape), "action": list(self.env.action_space.shape)}
        want = {k: (self.meta.get(k) or {}).get("shape") for k in ("observation", "action")}
        if got != want:
            raise ConfigError(f"checkpoint {self.checkpoint} expects observation/action shapes {want}, but "
                              f"{len(self.trained)} instruments × {len(self.features)} features give {got}",
                              path=f"{PATH}.checkpoint")
        self.env.reset()
        spec = TrainSpec(algorithm=str(self.meta.get("algorithm")), hidden_sizes=tuple(self.meta["hidden_sizes"]),
                         algorithm_kwargs=dict(self.meta.get("algorithm_kwargs") or {}))
        algorithm = build_algorithm(spec, self.env, Kernel.load(use_env=False))
        try:
            ckpt.load(self.checkpoint, algorithm)
        except QcoreError as exc:
            raise ConfigError(str(exc), path=f"{PATH}.checkpoint") from None
        self.policy = algorithm.policy
        self.policy.eval()
        if hasattr(self.policy, "deterministic_eval"):
            self.policy.deterministic_eval = self.deterministic

    # -- decisions -----------------------------------------------------------------------------------------------

    def observation(self, t: int) -> np.ndarray:
        """The environment's observation at the close of data row ``t`` for the account's cash and holdings."""
        env, position = self.env, self.position
        close = env.data.close[t]
        values = np.array([position.amount(s) * position.price(s) if s in position else 0.0 for s in self.trained])
        env.t = t
        env.cash = float(position.cash)
        env.shares = np.where(close > 0, values / close, 0.0)
        return env._obs()

    def weights_at(self, t: int) -> np.ndarray:
        """The policy's target weights (trained instruments, then cash) at data row ``t``."""
        import torch

        from qrl.portfolio.env import weights_from_action

        with torch.no_grad():
            action = self.policy.compute_action(self.observation(t))
        return weights_from_action(action, self.env.n)

    def scores_for(self, step: Step) -> tuple[np.ndarray, np.ndarray] | None:
        """Target weights per exchange column from the observation at the previous bar's close."""
        k = self._offset + step.index - 1
        if k < 0:
            return None
        date = self._calendar[k]
        dates = self.env.data.dates
        if date not in dates:
            return None
        weights = self.weights_at(int(dates.get_loc(date)))
        exchange = self.exchange
        values = np.zeros(len(exchange.instruments))
        present = np.zeros(len(exchange.instruments), dtype=bool)
        for name, w in zip(self.trained, weights[:-1], strict=True):
            c = exchange.col(name)
            if c is not None:
                values[c], present[c] = w, True
        self.targets[pd.Timestamp(date)] = dict(zip(self.trained, map(float, weights[:-1]), strict=True))
        return values, present


class _KernelShim:
    """What :func:`qrl.data.load_daily` needs of a kernel: the operator registry (of a plain loaded kernel)."""

    def registry(self, kind: str) -> Any:
        from qcore.kernel import Kernel

        return Kernel.load(use_env=False).registry(kind)

