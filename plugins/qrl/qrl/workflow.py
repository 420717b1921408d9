"""``train`` and ``eval`` of a config: data, environments, training, metrics against the baselines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcore.errors import ComponentContractError, ConfigError, UnknownComponentError
from qrl.config import RLConfig

if TYPE_CHECKING:
    from qcore.kernel import Kernel


def load_data(cfg: RLConfig, kernel: Kernel | None) -> tuple[Any, Any]:
    """Train and test data of ``cfg`` (the test part starts where the training part ends); planted data needs no
    kernel, a store does."""
    from qrl import data as qd

    d = cfg.data
    planted = d.get("planted")
    try:
        if cfg.env == "execution":
            full = qd.planted_intraday(**(planted or {})) if planted is not None else qd.load_intraday(
                *_provider(cfg, kernel), d.get("instruments", "all"), d.get("start"), d.get("end"))
            n = int(d.get("train_days", max(1, len(full.days) * 2 // 3)))
            if not 0 < n < len(full.days):
                raise ConfigError(f"train_days must be between 1 and {len(full.days) - 1}", path="data.train_days",
                                  source=cfg.source)
            return full.split(n)
        full = qd.planted_daily(**(planted or {})) if planted is not None else qd.load_daily(
            kernel, *_provider(cfg, kernel), d.get("instruments", "all"), d.get("start"), d.get("end"),
            d.get("features"))
        n = int(d.get("train_days", max(3, len(full.dates) * 2 // 3)))
        if not 2 < n < len(full.dates) - 2:
            raise ConfigError(f"train_days must be between 3 and {len(full.dates) - 3}", path="data.train_days",
                              source=cfg.source)
        return full.take(slice(0, n)), full.take(slice(n - 1, None))
    except TypeError as exc:
        raise ConfigError(f"invalid data options: {exc}", path="data", source=cfg.source) from None


def _provider(cfg: RLConfig, kernel: Any) -> tuple[Any, Any]:
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=cfg.data["provider_uri"])
    return provider, kernel.create("market_rules", "cn")


def env_factory(cfg: RLConfig, train_data: Any, test_data: Any, kernel: Kernel) -> Callable[[bool], Any]:
    """``make_env(training)`` for ``cfg`` from ``kernel``'s ``rl_env`` registry; env kwargs errors become
    ``ConfigError`` at ``env_kwargs``."""
    kwargs = dict(cfg.env_kwargs)
    if cfg.env == "portfolio" and "provider_uri" in cfg.data:
        rules = kernel.create("market_rules", "cn")
        kwargs.setdefault("costs", rules.costs)
        kwargs.setdefault("lot_size", rules.lot_size)
        kwargs.setdefault("settlement_days", rules.settlement_days)

    def make(training: bool) -> Any:
        extra = {"sequential": not training}
        if cfg.env == "portfolio" and not training:
            extra["episode_days"] = None
        try:
            return kernel.create("rl_env", cfg.env, data=train_data if training else test_data, kernel=kernel,
                                 **{**kwargs, **extra})
        except ComponentContractError:
            raise
        except UnknownComponentError as exc:
            raise ConfigError(str(exc), path="env_kwargs", source=cfg.source) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid env_kwargs for {cfg.env!r}: {exc}", path="env_kwargs",
                              source=cfg.source) from None

    make(True)  # fail early on bad kwargs
    return make


def evaluate_policy(cfg: RLConfig, env: Any, act: Callable[[Any], Any] | None, kernel: Kernel) -> dict[str, Any]:
    """Metrics of the policy (when given) and of the env's ``rl_baseline`` on the sequential test ``env``."""
    if cfg.env == "execution":
        from qrl.execution.baselines import evaluate
    else:
        from qrl.portfolio.env import policy_metrics as evaluate
    out: dict[str, Any] = dict(kernel.registry("rl_baseline").get(cfg.env)(env))
    if act is not None:
        out["policy"] = evaluate(env, act)
    return out


def _log(run: Any, results: dict[str, Any]) -> None:
    flat = {f"eval.{who}.{k}": float(v) for who, m in results.items() for k, v in m.items()}
    run.log_metrics(flat)


def data_meta(cfg: RLConfig, data: Any) -> dict[str, Any]:
    """What a portfolio checkpoint records of its data: instruments, feature names and (from a store) expressions,
    so that the ``rl_policy`` backtest strategy can rebuild its observation."""
    if cfg.env != "portfolio":
        return {}
    from qrl.data import DEFAULT_FEATURES

    features = dict(cfg.data.get("features") or DEFAULT_FEATURES) if "provider_uri" in cfg.data else None
    return {"instruments": list(data.instruments), "feature_names": list(data.feature_names), "features": features}


def train(cfg: RLConfig, kernel: Kernel, resume: str | Path | None = None) -> dict[str, Any]:
    """Train per ``cfg``, then evaluate the best checkpoint against the baselines; metrics go to the recorder."""
    from qrl import checkpoint
    from qrl.trainer import policy_fn
    from qrl.trainer import train as fit

    tr, te = load_data(cfg, kernel)
    make = env_factory(cfg, tr, te, kernel)
    run = _start_run(cfg, kernel)
    try:
        if run is not None:
            run.log_params({"env": cfg.env, "algorithm": cfg.spec.algorithm, "seed": cfg.spec.seed})
        result = fit(make, cfg.env, cfg.spec, out_dir=cfg.out_dir, run=run, resume=resume, kernel=kernel,
                     extra_meta=data_meta(cfg, tr))
        if "best" in result.checkpoints:
            checkpoint.load(result.checkpoints["best"], result.algorithm)
        metrics = evaluate_policy(cfg, make(False), policy_fn(result.algorithm), kernel)
        if run is not None:
            _log(run, metrics)
            run.end()
    except BaseException:
        if run is not None:
            run.end("FAILED")
        raise
    return {"metrics": metrics, "checkpoints": {k: str(v) for k, v in result.checkpoints.items()},
            "best_reward": result.best_reward, "env_steps": result.env_steps}


def evaluate(cfg: RLConfig, checkpoint_path: str | Path, kernel: Kernel) -> dict[str, Any]:
    """Load ``checkpoint_path`` (checked against the config's env and algorithm) and evaluate it."""
    from qrl import checkpoint
    from qrl.trainer import build_algorithm, policy_fn

    meta = checkpoint.read_meta(checkpoint_path)
    tr, te = load_data(cfg, kernel)
    make = env_factory(cfg, tr, te, kernel)
    env = make(False)
    checkpoint.check_compatible(meta, checkpoint.env_spec(cfg.env, env), cfg.spec.algorithm, checkpoint_path)
    algorithm = build_algorithm(cfg.spec, env, kernel)
    checkpoint.load(checkpoint_path, algorithm)
    return {"metrics": evaluate_policy(cfg, env, policy_fn(algorithm), kernel)}


def _start_run(cfg: RLConfig, kernel: Kernel) -> Any:
    if cfg.recorder_uri is None:
        return None
    return kernel.create("recorder", "local", uri=cfg.recorder_uri).start_run(cfg.experiment)
