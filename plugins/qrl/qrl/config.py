"""RL run configs (YAML): validated into :class:`RLConfig`, with errors that name the key path and line."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcore.config import Document, read_yaml
from qcore.errors import UnknownComponentError
from qrl import splits as splitmod
from qrl.risk import TurbulenceSpec
from qrl.splits import Splits
from qrl.timing import TIMINGS
from qrl.trainer import TrainSpec

if TYPE_CHECKING:
    from qcore.kernel import Kernel

ENVS = ("execution", "portfolio", "stock_trading")
#: The environments on daily bars (features, scalers, turbulence, the daily baselines).
DAILY_ENVS = ("portfolio", "stock_trading")
TOP = ("env", "data", "env_kwargs", "algorithm", "trainer", "output")
DATA_KEYS = ("planted", "provider_uri", "source", "market_rules", "instruments", "start", "end", "features", "splits",
             "turbulence", "vix")
#: Keys of ``data.source``: exported files read through a FinRL-style processor (:mod:`qrl.meta`).
SOURCE_KEYS = ("format", "path", "tickers", "start", "end", "time_interval", "vix_ticker")
TURBULENCE_KEYS = ("window", "min_periods", "quantile")
#: Keys of earlier configs that the leak-free protocol replaced, with what to write instead.
RETIRED = {
    "data.train_days": "train_days was replaced by data.splits, which also sets the validation split the best "
                       "checkpoint is chosen on: e.g. splits: {train: 80, valid: 20, test: 20} (trading days) or "
                       "splits: {train: [2020-01-02, 2020-06-30], valid: [...], test: [...]}",
    "data.split_date": "split_date is not supported: give data.splits: {train: [first, last], valid: [first, last], "
                       "test: [first, last]} (ordered, not overlapping)",
    "trainer.test_episodes": "test_episodes was renamed valid_episodes: checkpoints are chosen on the validation "
                             "split, never on the test split",
}
TRAINER_KEYS = tuple(f.name for f in fields(TrainSpec) if f.name not in ("algorithm", "algorithm_kwargs",
                                                                          "hidden_sizes"))


@dataclass
class RLConfig:
    """A validated RL config."""

    env: str
    data: dict[str, Any]
    splits: Splits
    env_kwargs: dict[str, Any]
    spec: TrainSpec
    out_dir: Path
    recorder_uri: str | None
    experiment: str
    source: str | None = None


def _mapping(doc: Document, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(f"expected a mapping, got {type(value).__name__}", path)
    for key in value:
        where = f"{path}.{key}" if path else key
        if where in RETIRED:
            raise doc.error(RETIRED[where], where)
        if key not in allowed:
            raise doc.error(f"unknown key {key!r}; allowed: {', '.join(allowed)}", where)
    return dict(value)


def validate_data(doc: Document) -> tuple[dict[str, Any], Splits]:
    """The ``data`` section of an RL config and its splits (no kernel needed: ``rl_policy`` reads it too)."""
    top = doc.data if isinstance(doc.data, dict) else {}
    data = _mapping(doc, top.get("data"), "data", DATA_KEYS)
    given = [k for k in ("planted", "provider_uri", "source") if k in data]
    if len(given) != 1:
        raise doc.error("data needs exactly one of 'planted' (synthetic), 'provider_uri' (a Qlib-format store) or "
                        "'source' (exported files: {format: yahoo, path: DIR})"
                        + (f"; got {', '.join(given)}" if given else ""), "data")
    if "source" in data:
        data["source"] = _source(doc, data["source"])
    rules = data.get("market_rules", "cn" if "provider_uri" in data else "none")
    if rules not in ("cn", "none", None):
        raise doc.error(f"market_rules must be 'cn' or 'none', got {rules!r}", "data.market_rules")
    data["market_rules"] = None if rules in ("none", None) else rules
    features = data.get("features")
    if features is not None and features != "finrl" and not (
            isinstance(features, dict) and features and all(isinstance(v, str) for v in features.values())):
        raise doc.error("features must be 'finrl' (FinRL's indicators) or a mapping of name: expression",
                        "data.features")
    if "splits" not in data:
        raise doc.error("data needs splits: {train: ..., valid: ..., test: ...} (trading days or [first, last] "
                        "dates): the best checkpoint is chosen on valid and reported on test", "data")
    splits = splitmod.parse(doc, data["splits"], "data.splits")
    start = splitmod.parse_optional(doc, data.get("start"), "data.start")
    end = splitmod.parse_optional(doc, data.get("end"), "data.end")
    if splits.ranges is not None:
        first = splits.ranges["train"][0]
        if start is not None and start > first:
            raise doc.error(f"data.start ({start.date()}) is after the train split's start ({first.date()})",
                            "data.start")
        if end is not None and splits.last is not None and end < splits.last:
            raise doc.error(f"data.end ({end.date()}) is before the test split's end ({splits.last.date()})",
                            "data.end")
    return data, splits


def _source(doc: Document, value: Any) -> dict[str, Any]:
    """``data.source: {format: yahoo, path: DIR, tickers: [...], start, end, time_interval: 1d, vix_ticker}``."""
    from qrl.meta.formats import FORMATS

    src = _mapping(doc, value, "data.source", SOURCE_KEYS)
    if str(src.get("format", "")).lower() not in FORMATS:
        raise doc.error(f"format must be one of {', '.join(FORMATS)}, got {src.get('format')!r}",
                        "data.source.format")
    if not isinstance(src.get("path"), str) or not src["path"]:
        raise doc.error("path must name the exported file or folder (nothing is downloaded)", "data.source.path")
    tickers = src.get("tickers")
    if tickers is not None and not (isinstance(tickers, list) and tickers and all(isinstance(t, str) for t in tickers)):
        raise doc.error("tickers must be a non-empty list of names", "data.source.tickers")
    for key in ("start", "end"):
        src[key] = splitmod.parse_optional(doc, src.get(key), f"data.source.{key}")
    return src


def _vix(doc: Document, value: Any, env: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``data.vix: {window: 21}`` (``true``: 21 days): a VIX-like market-volatility series, observed by the
    portfolio environment."""
    if env != "portfolio":
        raise doc.error(f"the market-volatility series is observed by the portfolio environment, not by {env!r}",
                        "data.vix")
    spec = {"window": 21} if value is True else _mapping(doc, value, "data.vix", ("window",))
    window = spec.get("window", 21)
    if not isinstance(window, int) or isinstance(window, bool) or window < 2:
        raise doc.error(f"window must be a whole number of days >= 2, got {window!r}", "data.vix.window")
    if "source" in data and data["source"].get("vix_ticker"):
        raise doc.error("give either data.vix (computed from the closes) or data.source.vix_ticker (a volatility "
                        "index among the files), not both", "data.vix")
    return {"window": window}


def _turbulence(doc: Document, value: Any) -> TurbulenceSpec:
    """``data.turbulence: {window: 252, min_periods: ..., quantile: 0.99}`` (``true`` for FinRL's defaults)."""
    if value is True:
        return TurbulenceSpec()
    spec = _mapping(doc, value, "data.turbulence", TURBULENCE_KEYS)
    for key, item in spec.items():
        ok = isinstance(item, float | int) and not isinstance(item, bool) if key == "quantile" else \
            isinstance(item, int) and not isinstance(item, bool)
        if not ok:
            raise doc.error(f"invalid value {item!r}", f"data.turbulence.{key}")
    try:
        return TurbulenceSpec(**spec)
    except ValueError as exc:
        raise doc.error(str(exc), "data.turbulence") from None


def _vector_env(doc: Document, trainer: dict[str, Any]) -> dict[str, Any]:
    """``trainer.vector_env: dummy | subprocess | ray`` and ``trainer.ray: {address: ...}`` (for ``ray`` only; Ray
    must be installed, checked without importing it)."""
    from qrl.vector import RAY_INSTALL, RAY_KEYS, VECTOR_ENVS, ray_installed

    kind = trainer.get("vector_env", "dummy")
    if kind not in VECTOR_ENVS:
        raise doc.error(f"vector_env must be one of {', '.join(VECTOR_ENVS)}, got {kind!r}", "trainer.vector_env")
    ray = _mapping(doc, trainer.get("ray"), "trainer.ray", RAY_KEYS)
    if ray and kind != "ray":
        raise doc.error(f"trainer.ray is for vector_env: ray, not {kind!r}", "trainer.ray")
    address = ray.get("address")
    if address is not None and (not isinstance(address, str) or not address):
        raise doc.error("address must be auto, local, host:port or ray://host:port", "trainer.ray.address")
    if kind == "ray" and not ray_installed():
        raise doc.error(f"vector_env: ray needs Ray, which is not installed; install it with: {RAY_INSTALL}",
                        "trainer.vector_env")
    return {"vector_env": kind, "ray": ray}


def validate(doc: Document, kernel: Kernel) -> RLConfig:
    """Check ``doc`` and build an :class:`RLConfig`; the first problem raises a ``ConfigError``.

    :param kernel: the loaded kernel; the algorithm is looked up in its ``rl_algorithm`` registry, so another
        plugin's algorithm validates like qrl's own.
    """
    top = _mapping(doc, doc.data, "", TOP)
    env = top.get("env")
    if env not in ENVS:
        raise doc.error(f"env must be one of {', '.join(ENVS)}, got {env!r}", "env")
    data, splits = validate_data(doc)
    if "turbulence" in data:
        if env not in DAILY_ENVS:
            raise doc.error(f"turbulence is observed by the daily environments ({', '.join(DAILY_ENVS)}), not by "
                            f"{env!r}", "data.turbulence")
        data["turbulence"] = _turbulence(doc, data["turbulence"])
    if "vix" in data:
        data["vix"] = _vix(doc, data["vix"], env, data)
    if "source" in data and env not in DAILY_ENVS:
        raise doc.error(f"data.source gives daily bars, for {', '.join(DAILY_ENVS)}; {env!r} needs minute bars from "
                        "a store (provider_uri)", "data.source")
    env_kwargs = _mapping(doc, top.get("env_kwargs"), "env_kwargs", tuple(top.get("env_kwargs") or ()))
    if "timing" in env_kwargs and env_kwargs["timing"] not in TIMINGS:
        raise doc.error(f"timing must be one of {', '.join(TIMINGS)}, got {env_kwargs['timing']!r}",
                        "env_kwargs.timing")
    alg = _mapping(doc, top.get("algorithm"), "algorithm", ("name", "kwargs", "hidden_sizes"))
    name = alg.get("name", "ppo")
    try:
        kernel.registry("rl_algorithm").entry(name)
    except UnknownComponentError as exc:
        raise doc.error(str(exc), "algorithm.name") from None
    hidden = alg.get("hidden_sizes", [64, 64])
    if not isinstance(hidden, list) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise doc.error("hidden_sizes must be a list of positive integers", "algorithm.hidden_sizes")
    trainer = _mapping(doc, top.get("trainer"), "trainer", TRAINER_KEYS)
    if "vector_env" in trainer or "ray" in trainer:
        trainer.update(_vector_env(doc, trainer))
    for key, value in trainer.items():
        if key in ("vector_env", "ray"):
            continue
        if key == "stop_reward":
            ok = value is None or isinstance(value, (int, float))
        elif key == "updates_per_step":
            ok = isinstance(value, (int, float)) and value > 0
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and (value > 0 or key in ("warmup_steps",
                                                                                                 "seed"))
        if not ok:
            raise doc.error(f"invalid value {value!r}", f"trainer.{key}")
    spec = TrainSpec(algorithm=name, algorithm_kwargs=_mapping(doc, alg.get("kwargs"), "algorithm.kwargs",
                                                               tuple(alg.get("kwargs") or ())),
                     hidden_sizes=tuple(hidden), **trainer)
    output = _mapping(doc, top.get("output"), "output", ("dir", "recorder_uri", "experiment"))
    return RLConfig(env, data, splits, env_kwargs, spec, Path(output.get("dir", f"rl_runs/{env}")),
                    output.get("recorder_uri"), str(output.get("experiment", f"rl_{env}")), doc.source)


def load(path: str | Path, kernel: Kernel) -> RLConfig:
    """Read and validate the YAML config at ``path`` against ``kernel``'s components."""
    return validate(read_yaml(path), kernel)
