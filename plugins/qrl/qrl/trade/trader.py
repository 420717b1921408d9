"""``qcore rl trade``: a trained portfolio policy trading bar by bar through a :class:`~qrl.trade.broker.Broker`.

At each revealed bar the trader builds the environment's observation from the broker's history (bars up to now),
the checkpoint's training-span scaler and turbulence threshold and the broker's account, asks the policy for target
weights (all cash on a turbulent day, as in training), turns them into whole-lot share orders and submits them; the
broker fills them at the next bar. Paper trading replays the config's test split (:class:`ReplayBroker`); the
trader never reads a bar the broker has not revealed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError
from qrl.trade.broker import Broker, ReplayBroker

if TYPE_CHECKING:
    from qcore.kernel import Kernel
    from qrl.config import RLConfig


class PolicyTrader:
    """The decision side of trading: a portfolio checkpoint, its scaler and turbulence threshold."""

    def __init__(self, checkpoint_path: str | Path, kernel: Kernel) -> None:
        from qrl import checkpoint
        from qrl.risk import TurbulenceSpec
        from qrl.scaling import FeatureScaler

        self.path = Path(checkpoint_path)
        self.meta = checkpoint.read_meta(self.path)
        if self.meta.get("env") != "portfolio":
            raise ConfigError(f"qcore rl trade trades portfolio checkpoints; {self.path} is a "
                              f"{self.meta.get('env')!r} checkpoint", path="checkpoint")
        if "scaler" not in self.meta:
            raise ConfigError(f"checkpoint {self.path} records no feature scaler; retrain it", path="checkpoint")
        self.scaler = FeatureScaler.from_dict(self.meta["scaler"], f"the scaler of checkpoint {self.path}")
        self.turbulence = (TurbulenceSpec.from_dict(self.meta["turbulence"]) if "turbulence" in self.meta else None)
        self.observation_kwargs = dict(self.meta.get("observation_kwargs") or {})
        self.vix = self.meta.get("vix")
        self.kernel = kernel
        self.policy: Any = None
        self.lot_size = 100

    def _env(self, history: Any) -> Any:
        from qrl.portfolio.env import PortfolioEnv

        threshold = None if self.turbulence is None else self.turbulence.threshold
        return PortfolioEnv(history.with_scaler(self.scaler), turbulence_threshold=threshold, sequential=True,
                            **self.observation_kwargs)

    def _load(self, env: Any) -> None:
        from qrl import checkpoint
        from qrl.trainer import TrainSpec, build_algorithm

        got = {"observation": list(env.observation_space.shape), "action": list(env.action_space.shape)}
        want = {k: (self.meta.get(k) or {}).get("shape") for k in ("observation", "action")}
        if got != want:
            raise ConfigError(f"checkpoint {self.path} expects shapes {want}, the traded data gives {got}",
                              path="checkpoint")
        spec = TrainSpec(algorithm=str(self.meta.get("algorithm")), hidden_sizes=tuple(self.meta["hidden_sizes"]),
                         algorithm_kwargs=dict(self.meta.get("algorithm_kwargs") or {}))
        algorithm = build_algorithm(spec, env, self.kernel)
        checkpoint.load(self.path, algorithm)
        self.policy = algorithm.policy
        self.policy.eval()
        if hasattr(self.policy, "deterministic_eval"):
            self.policy.deterministic_eval = True

    def decide(self, broker: Broker) -> tuple[dict[str, float], bool]:
        """Share orders for the broker's latest bar, and whether the bar is turbulent."""
        import torch

        from qrl.portfolio.env import weights_from_action

        history = broker.history()
        env = self._env(history)
        if self.policy is None:
            self._load(env)
        row = len(history.dates) - 1
        held = broker.holdings()
        shares = np.array([held.get(s, 0.0) for s in history.instruments])
        cash = broker.cash()
        mark = env.mark[row]
        value = cash + float(shares @ mark)
        turbulent = env.turbulent(row)
        if turbulent:
            weights = np.r_[np.zeros(env.n), 1.0]
        else:
            with torch.no_grad():
                weights = weights_from_action(self.policy.compute_action(env.observation(row, cash, shares)), env.n)
        orders: dict[str, float] = {}
        for j, name in enumerate(history.instruments):
            if not mark[j] > 0:
                continue
            target = np.floor(weights[j] * value / mark[j] / self.lot_size) * self.lot_size
            if target != shares[j]:
                orders[name] = float(target - shares[j])
        return orders, turbulent


def trade(cfg: RLConfig, checkpoint_path: str | Path, kernel: Kernel, *, initial_cash: float = 1_000_000.0,
          out_dir: str | Path | None = None) -> dict[str, Any]:
    """Paper-trade ``checkpoint_path`` over ``cfg``'s test split by replay, one bar at a time; with ``out_dir``,
    write ``trades.csv`` (fills and rejections), ``equity.csv`` and ``summary.json`` there, each atomically."""
    from qrl.workflow import _check_unseen, load_full_with_manifest

    trader = PolicyTrader(checkpoint_path, kernel)
    if cfg.env != "portfolio":
        raise ConfigError(f"qcore rl trade needs a portfolio config, not env {cfg.env!r}", path="env",
                          source=cfg.source)
    if trader.turbulence is not None:
        cfg = replace(cfg, data={**cfg.data, "turbulence": trader.turbulence})
    if trader.vix is not None and "window" in trader.vix:  # the checkpoint's market-volatility window
        cfg = replace(cfg, data={**cfg.data, "vix": {"window": int(trader.vix["window"])}})
    full, manifest = load_full_with_manifest(cfg, kernel)
    try:
        rows = cfg.splits.rows(full.dates, min_rows=2)["test"]
    except ConfigError as exc:
        raise ConfigError(exc.message, path=exc.path, source=cfg.source) from None
    test = [str(full.dates[rows.start].date()), str(full.dates[rows.stop - 1].date())]
    _check_unseen(trader.meta, test, checkpoint_path, cfg.source)
    if rows.start < 2:
        raise ConfigError("the test split needs at least 2 earlier rows of history to trade", path="data.splits",
                          source=cfg.source)
    broker = ReplayBroker(full, rows.start, rows.stop - 1, initial_cash=initial_cash,
                          timing=str(cfg.env_kwargs.get("timing", "next_close")))
    equity = []
    while True:
        orders, turbulent = trader.decide(broker)
        equity.append({"date": broker.now(), "value": broker.value(), "cash": broker.cash(),
                       "turbulent": turbulent, "orders": len(orders)})
        broker.submit(orders)
        if broker.advance() is None:
            break
    curve = pd.DataFrame(equity)
    summary = {"checkpoint": str(checkpoint_path), "test": test, "initial_cash": initial_cash,
               "final_value": float(curve["value"].iloc[-1]),
               "cumulative_return": float(curve["value"].iloc[-1] / initial_cash - 1),
               "fills": len(broker.fills), "rejections": len(broker.rejections), "bars": len(curve),
               "dataset": manifest}
    if out_dir is not None:
        _write(Path(out_dir), broker, curve, summary)
    return {"summary": summary, "equity": curve, "fills": broker.fills, "rejections": broker.rejections}


def _write(out: Path, broker: ReplayBroker, curve: pd.DataFrame, summary: dict[str, Any]) -> None:
    import json

    from qcore.atomic import atomic_path, write_text

    out.mkdir(parents=True, exist_ok=True)
    rows = [{"date": f.date, "instrument": f.instrument, "shares": f.shares, "price": f.price, "cost": f.cost,
             "status": "filled", "reason": ""} for f in broker.fills]
    rows += [{"date": r.date, "instrument": r.instrument, "shares": r.shares, "price": np.nan, "cost": 0.0,
              "status": "rejected", "reason": r.reason} for r in broker.rejections]
    trades = pd.DataFrame(rows, columns=["date", "instrument", "shares", "price", "cost", "status", "reason"])
    for name, frame in (("trades.csv", trades.sort_values(["date", "instrument"], kind="stable")),
                        ("equity.csv", curve)):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
    try:
        write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    except (OSError, TypeError) as exc:
        raise QcoreError(f"cannot write the trade summary to {out}: {exc}") from None
