"""``train`` and ``eval`` of a config: data, splits, environments, training, metrics against the baselines.

The protocol is leak-free: the data is cut into train / valid / test rows (``data.splits``); feature scalers are
fitted on the train rows only and stored in the checkpoint's sidecar; training reads train rows and picks its best
checkpoint on valid rows; the test rows are read only after training, to report the chosen checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pandas as pd

from qcore.errors import ComponentContractError, ConfigError, QcoreError, UnknownComponentError
from qrl.config import DAILY_ENVS, RLConfig
from qrl.risk import TurbulenceSpec
from qrl.splits import NAMES, dates_of
from qrl.timing import DEFAULT_TIMING

if TYPE_CHECKING:
    from qcore.kernel import Kernel
    from qrl.scaling import FeatureScaler


@attrs.frozen(eq=False)
class SplitData:
    """The data of each split and the feature scaler fitted on the train split (portfolio data only).

    :ivar parts: ``{"train": data, "valid": data, "test": data}`` (:class:`~qrl.data.DailyData` or
        :class:`~qrl.data.IntradayData`), each observed through :attr:`scaler`.
    :ivar scaler: the train split's feature scaler (None for intraday data).
    :ivar dates: ``{split: [first date, last date]}``.
    :ivar turbulence: the turbulence spec with its threshold fitted on the train split (None: not configured).
    """

    parts: Mapping[str, Any]
    scaler: FeatureScaler | None
    dates: Mapping[str, list[str]]
    turbulence: TurbulenceSpec | None = None
    manifest: Mapping[str, Any] | None = None

    def __getitem__(self, split: str) -> Any:
        return self.parts[split]


def load_full(cfg: RLConfig, kernel: Kernel | None) -> Any:
    """Every loaded row of ``cfg``'s data (all splits, plus the history before the first one a store keeps for
    feature windows); planted data needs no kernel, a store or source files do."""
    return load_full_with_manifest(cfg, kernel)[0]


def feature_exprs(cfg: RLConfig) -> dict[str, str] | None:
    """The feature expressions of a store or source config (``data.features``: a mapping, ``finrl`` for FinRL's
    indicators; default :data:`~qrl.data.DEFAULT_FEATURES` for a store, FinRL's indicators for source files), or
    None for planted data."""
    from qrl.data import DEFAULT_FEATURES
    from qrl.meta.indicators import select

    features = cfg.data.get("features")
    if "planted" in cfg.data:
        return None
    if features == "finrl" or (features is None and "source" in cfg.data):
        return select(None)
    return dict(features or DEFAULT_FEATURES)


def load_full_with_manifest(cfg: RLConfig, kernel: Kernel | None) -> tuple[Any, dict[str, Any]]:
    """:func:`load_full` and the data's manifest (:mod:`qrl.meta.manifest`: files with hashes, instruments, dates)."""
    from qrl import data as qd
    from qrl.meta import manifest as mf

    d = cfg.data
    planted = d.get("planted")
    last = d.get("end") or cfg.splits.last
    try:
        if cfg.env == "execution":
            if planted is not None:
                full = qd.planted_intraday(**planted)
                return full, mf.planted_manifest(planted, full.days, full.instruments)
            first = d.get("start") or (cfg.splits.ranges["train"][0] if cfg.splits.ranges is not None else None)
            full = qd.load_intraday(*_provider(cfg, kernel), d.get("instruments", "all"), first, last)
            return full, mf.store_manifest(d["provider_uri"], full.instruments, full.days, "1min")
        if planted is not None:
            full = qd.planted_daily(**planted)
            return _with_turbulence(cfg, full), mf.planted_manifest(planted, full.dates, full.instruments)
        assert kernel is not None
        if "source" in d:
            return _from_source(cfg, kernel)
        provider, rules = _provider(cfg, kernel)
        full = qd.load_daily(provider, kernel.registry("operator"), rules, d.get("instruments", "all"),
                             d.get("start"), last, feature_exprs(cfg))
        return _with_turbulence(cfg, full), mf.store_manifest(d["provider_uri"], full.instruments, full.dates)
    except TypeError as exc:
        raise ConfigError(f"invalid data options: {exc}", path="data", source=cfg.source) from None


def _from_source(cfg: RLConfig, kernel: Kernel) -> tuple[Any, dict[str, Any]]:
    """``data.source``'s files through the FinRL-style processor: read, clean, align (tradable mask), features."""
    from qrl.data import load_daily
    from qrl.meta.processor import DataProcessor

    src = cfg.data["source"]
    proc = DataProcessor(src["format"], src.get("start"), src.get("end"), src.get("time_interval", "1d"),
                         path=src["path"], kernel=kernel)
    proc.download_data(src.get("tickers"))
    proc.clean_data()
    if src.get("vix_ticker"):
        proc.add_vix(src["vix_ticker"])
    instruments = cfg.data.get("instruments", "all")
    names = list(proc.provider().panel.instruments) if instruments == "all" else list(instruments)
    full = load_daily(proc.provider(), kernel.registry("operator"), _rules(cfg, kernel), names,
                      cfg.data.get("start"), cfg.data.get("end") or cfg.splits.last, feature_exprs(cfg))
    if src.get("vix_ticker") and cfg.env == "portfolio":  # the volatility index's closes, observed by the env
        series = pd.Series(proc.df_to_array([], if_vix=True)[2], index=proc.aligned_panel().dates)
        full = attrs.evolve(full, market_volatility=series.reindex(full.dates).ffill().to_numpy())
    return _with_turbulence(cfg, full), proc.manifest()


def _with_turbulence(cfg: RLConfig, full: Any) -> Any:
    """``full`` with the turbulence series of ``data.turbulence`` and the market-volatility series of ``data.vix``,
    computed on every loaded row before the split (causal series: each row reads earlier rows only)."""
    spec = cfg.data.get("turbulence")
    full = full if spec is None else full.with_turbulence(spec)
    vix = cfg.data.get("vix")
    return full if vix is None else full.with_market_volatility(vix["window"])


def split_data(cfg: RLConfig, full: Any, scaler: FeatureScaler | None = None,
               turbulence: TurbulenceSpec | None = None, manifest: Mapping[str, Any] | None = None) -> SplitData:
    """Cut ``full`` into ``cfg``'s splits; daily features are observed through ``scaler`` (default: one fitted on
    the train rows only) and the turbulence threshold is ``turbulence``'s (default: ``data.turbulence``'s quantile of
    the train rows)."""
    dates = full.days if cfg.env == "execution" else full.dates
    try:
        rows = cfg.splits.rows(dates, min_rows=1 if cfg.env == "execution" else 3)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=exc.path, source=cfg.source) from None
    parts = {name: full.take(rows[name]) for name in NAMES}
    if cfg.env in DAILY_ENVS:
        if scaler is None:
            scaler = parts["train"].fit_scaler()
        try:
            parts = {name: part.with_scaler(scaler) for name, part in parts.items()}
        except ValueError as exc:
            raise ConfigError(str(exc), path="data.features", source=cfg.source) from None
        if turbulence is None and cfg.data.get("turbulence") is not None:
            assert parts["train"].turbulence is not None
            try:
                turbulence = cfg.data["turbulence"].fit(parts["train"].turbulence, rows["train"].start)
            except ValueError as exc:
                raise ConfigError(str(exc), path="data.turbulence", source=cfg.source) from None
    split_dates = dates_of(dates, rows)
    if manifest is not None:
        manifest = {**manifest, "splits": dict(split_dates)}
    return SplitData(parts, scaler, split_dates, turbulence, manifest)


def load_data(cfg: RLConfig, kernel: Kernel | None, scaler: FeatureScaler | None = None,
              turbulence: TurbulenceSpec | None = None) -> SplitData:
    """:func:`load_full` then :func:`split_data` (with the data's manifest)."""
    full, manifest = load_full_with_manifest(cfg, kernel)
    return split_data(cfg, full, scaler, turbulence, manifest)


def _provider(cfg: RLConfig, kernel: Any) -> tuple[Any, Any]:
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=cfg.data["provider_uri"])
    return provider, _rules(cfg, kernel)


def _rules(cfg: RLConfig, kernel: Any) -> Any:
    """The market rules of ``data.market_rules`` (``cn`` by default for a store), or None."""
    name = cfg.data.get("market_rules", "cn" if "provider_uri" in cfg.data else None)
    return None if name is None else kernel.create("market_rules", name)


def env_factory(cfg: RLConfig, parts: Mapping[str, Any], kernel: Kernel,
                turbulence: TurbulenceSpec | None = None) -> Callable[[str], Any]:
    """``make_env(split)`` for ``cfg`` from ``kernel``'s ``rl_env`` registry, over the data of ``parts`` only
    (``{split: data}``): ``train`` gives a training environment, the others sequential ones over the whole split.

    Env kwargs errors become ``ConfigError`` at ``env_kwargs``; asking for a split not in ``parts`` is an error (the
    trainer's factory holds no test data). ``turbulence``'s fitted threshold is the environments'
    ``turbulence_threshold`` unless ``env_kwargs`` sets one.
    """
    kwargs = dict(cfg.env_kwargs)
    if turbulence is not None and turbulence.threshold is not None:
        kwargs.setdefault("turbulence_threshold", turbulence.threshold)
    rules = _rules(cfg, kernel) if cfg.env in DAILY_ENVS else None
    if rules is not None:
        kwargs.setdefault("costs", rules.costs)
        kwargs.setdefault("lot_size", rules.lot_size)
        kwargs.setdefault("settlement_days", rules.settlement_days)

    def make(split: str) -> Any:
        if split not in parts:
            raise KeyError(f"this environment factory holds the {', '.join(parts)} split(s), not {split!r}")
        training = split == "train"
        extra: dict[str, Any] = {"sequential": not training}
        if cfg.env in DAILY_ENVS and not training:
            extra["episode_days"] = None
        try:
            return kernel.create("rl_env", cfg.env, data=parts[split], kernel=kernel, **{**kwargs, **extra})
        except ComponentContractError:
            raise
        except UnknownComponentError as exc:
            raise ConfigError(str(exc), path="env_kwargs", source=cfg.source) from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid env_kwargs for {cfg.env!r}: {exc}", path="env_kwargs",
                              source=cfg.source) from None

    make(next(iter(parts)))  # fail early on bad kwargs
    return make


def evaluate_policy(cfg: RLConfig, env: Any, act: Callable[[Any], Any] | None, kernel: Kernel,
                    train: Any = None) -> dict[str, Any]:
    """Metrics of the policy (when given) and of the env's ``rl_baseline`` on the sequential ``env``; ``train`` is
    the training split's data, for baselines estimated on it."""
    if cfg.env == "execution":
        from qrl.execution.baselines import evaluate
    elif cfg.env == "stock_trading":
        from qrl.stock.env import policy_metrics as evaluate
    else:
        from qrl.portfolio.env import policy_metrics as evaluate
    extra = {"kernel": kernel} if cfg.env in DAILY_ENVS else {}
    out: dict[str, Any] = dict(kernel.registry("rl_baseline").get(cfg.env)(env, train=train, **extra))
    if act is not None:
        out["policy"] = evaluate(env, act)
    return out


def _log(run: Any, prefix: str, results: dict[str, Any]) -> None:
    run.log_metrics({f"{prefix}.{who}.{k}": float(v) for who, m in results.items() for k, v in m.items()})


def data_meta(cfg: RLConfig, data: SplitData) -> dict[str, Any]:
    """What a checkpoint records of its data: the split dates and execution timing; for the execution env also its
    settings and interpreters (:func:`qrl.execution.spec.execution_settings`); for a portfolio also the
    instruments, feature names, (from a store) feature expressions and the train split's scaler, so that
    evaluation and the ``rl_policy`` backtest strategy observe exactly what training observed."""
    meta: dict[str, Any] = {"splits": dict(data.dates), "timing": cfg.env_kwargs.get("timing", DEFAULT_TIMING)}
    if data.manifest is not None:
        meta["dataset"] = dict(data.manifest)
    if cfg.env == "execution":  # the interpreters and step schedule, for the rl_execution backtest strategy
        from qrl.execution.spec import execution_settings

        meta["execution"] = execution_settings(cfg.env_kwargs)
    if cfg.env not in DAILY_ENVS:
        return meta
    if data.turbulence is not None:
        meta["turbulence"] = data.turbulence.to_dict()
    if cfg.data.get("vix") is not None:
        meta["vix"] = dict(cfg.data["vix"])
    elif "source" in cfg.data and cfg.data["source"].get("vix_ticker") and cfg.env == "portfolio":
        meta["vix"] = {"ticker": cfg.data["source"]["vix_ticker"]}
    if cfg.env == "portfolio":  # what the observation holds besides the features, for rl_policy and trade
        meta["observation_kwargs"] = {k: cfg.env_kwargs[k] for k in ("lookback", "covariance")
                                      if k in cfg.env_kwargs}
    train = data["train"]
    features = feature_exprs(cfg)
    assert data.scaler is not None
    return {**meta, "instruments": list(train.instruments), "feature_names": list(train.feature_names),
            "features": features, "scaler": data.scaler.to_dict()}


def train(cfg: RLConfig, kernel: Kernel, resume: str | Path | None = None, data: SplitData | None = None
          ) -> dict[str, Any]:
    """Train per ``cfg`` on the train split, choose the best checkpoint on the valid split, then report it and the
    baselines on the test split (and on the valid split); metrics go to the recorder. ``data`` is ``cfg``'s
    :func:`load_data` when already loaded."""
    from qrl import checkpoint
    from qrl.trainer import policy_fn
    from qrl.trainer import train as fit

    data = load_data(cfg, kernel) if data is None else data
    make = env_factory(cfg, {name: data[name] for name in ("train", "valid")}, kernel, data.turbulence)
    run = _start_run(cfg, kernel)
    try:
        if run is not None:
            run.log_params({"env": cfg.env, "algorithm": cfg.spec.algorithm, "seed": cfg.spec.seed,
                            **{f"split.{k}": " .. ".join(v) for k, v in data.dates.items()}})
            if data.manifest is not None:
                run.log_artifact("dataset_manifest", dict(data.manifest))
        result = fit(make, cfg.env, cfg.spec, out_dir=cfg.out_dir, run=run, resume=resume, kernel=kernel,
                     extra_meta=data_meta(cfg, data))
        if "best" in result.checkpoints:
            checkpoint.load(result.checkpoints["best"], result.algorithm)
        act = policy_fn(result.algorithm)
        train_part = data["train"]
        valid = evaluate_policy(cfg, make("valid"), act, kernel, train_part)
        test_env = env_factory(cfg, {"test": data["test"]}, kernel, data.turbulence)("test")
        metrics = evaluate_policy(cfg, test_env, act, kernel, train_part)
        if run is not None:
            _log(run, "valid", valid)
            _log(run, "eval", metrics)
            run.end()
    except BaseException:
        if run is not None:
            run.end("FAILED")
        raise
    return {"metrics": metrics, "valid": valid, "splits": dict(data.dates),
            "checkpoints": {k: str(v) for k, v in result.checkpoints.items()},
            "best_valid_reward": result.best_reward, "env_steps": result.env_steps}


def train_seeds(cfg: RLConfig, kernel: Kernel, seeds: int) -> dict[str, Any]:
    """Train ``cfg`` with ``seeds`` consecutive seeds from ``trainer.seed`` (each into ``<output.dir>/seed<k>``,
    on data loaded once) and summarise their test metrics (:func:`qrl.seeds.summarise`: mean ± std, and how many
    seeds beat each baseline)."""
    from qrl.seeds import summarise

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    data = load_data(cfg, kernel)
    runs = []
    for seed in range(cfg.spec.seed, cfg.spec.seed + seeds):
        one = replace(cfg, spec=replace(cfg.spec, seed=seed), out_dir=cfg.out_dir / f"seed{seed}")
        runs.append({"seed": seed, **train(one, kernel, data=data)})
    return {"summary": summarise(cfg.env, [r["metrics"] for r in runs]), "runs": runs, "splits": dict(data.dates)}


def evaluate(cfg: RLConfig, checkpoint_path: str | Path, kernel: Kernel) -> dict[str, Any]:
    """Load ``checkpoint_path`` (checked against the config's env and algorithm) and report it on the config's test
    split, observed through the checkpoint's own feature scaler; a test split that overlaps the rows the checkpoint
    was trained or selected on is an error."""
    from qrl import checkpoint
    from qrl.scaling import FeatureScaler
    from qrl.trainer import build_algorithm, policy_fn

    meta = checkpoint.read_meta(checkpoint_path)
    scaler = turbulence = None
    if cfg.env in DAILY_ENVS and meta.get("env") == cfg.env:
        if "scaler" not in meta:
            raise QcoreError(f"checkpoint {checkpoint_path} records no feature scaler (it predates train-only "
                             "scaling); retrain it")
        scaler = FeatureScaler.from_dict(meta["scaler"], f"the scaler of checkpoint {checkpoint_path}")
        if "turbulence" in meta:
            turbulence = TurbulenceSpec.from_dict(meta["turbulence"], f"the turbulence of checkpoint {checkpoint_path}")
            cfg = replace(cfg, data={**cfg.data, "turbulence": turbulence})  # the checkpoint's window and threshold
    data = load_data(cfg, kernel, scaler, turbulence)
    _check_unseen(meta, data.dates["test"], checkpoint_path, cfg.source)
    env = env_factory(cfg, {"test": data["test"]}, kernel, turbulence)("test")
    checkpoint.check_compatible(meta, checkpoint.env_spec(cfg.env, env), cfg.spec.algorithm, checkpoint_path)
    algorithm = build_algorithm(cfg.spec, env, kernel)
    checkpoint.load(checkpoint_path, algorithm)
    metrics = evaluate_policy(cfg, env, policy_fn(algorithm), kernel, data["train"])
    return {"metrics": metrics, "splits": {"test": data.dates["test"]}, "dataset": data.manifest}


def _check_unseen(meta: Mapping[str, Any], test: list[str], path: str | Path, source: str | None) -> None:
    """A test range must lie after every range the checkpoint trained or was selected on."""
    seen = meta.get("splits") or {}
    for name in ("train", "valid"):
        span = seen.get(name)
        if span and not (str(span[1]) < test[0] or str(span[0]) > test[1]):
            raise ConfigError(f"the test split {test[0]} .. {test[1]} overlaps the {name} split {span[0]} .. "
                              f"{span[1]} of checkpoint {path} (rows it was trained or selected on); evaluate it on "
                              "later rows", path="data.splits.test", source=source)  # fmt: skip


def _start_run(cfg: RLConfig, kernel: Kernel) -> Any:
    if cfg.recorder_uri is None:
        return None
    return kernel.create("recorder", "local", uri=cfg.recorder_uri).start_run(cfg.experiment)
