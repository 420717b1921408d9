"""RL run configs (YAML): validated into :class:`RLConfig`, with errors that name the key path and line."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcore.config import Document, read_yaml
from qcore.errors import UnknownComponentError
from qrl.trainer import TrainSpec

if TYPE_CHECKING:
    from qcore.kernel import Kernel

ENVS = ("execution", "portfolio")
TOP = ("env", "data", "env_kwargs", "algorithm", "trainer", "output")
DATA_KEYS = ("planted", "provider_uri", "instruments", "start", "end", "features", "train_days", "split_date")
TRAINER_KEYS = tuple(f.name for f in fields(TrainSpec) if f.name not in ("algorithm", "algorithm_kwargs",
                                                                          "hidden_sizes"))


@dataclass
class RLConfig:
    """A validated RL config."""

    env: str
    data: dict[str, Any]
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
        if key not in allowed:
            raise doc.error(f"unknown key {key!r}; allowed: {', '.join(allowed)}", f"{path}.{key}" if path else key)
    return dict(value)


def validate(doc: Document, kernel: Kernel) -> RLConfig:
    """Check ``doc`` and build an :class:`RLConfig`; the first problem raises a ``ConfigError``.

    :param kernel: the loaded kernel; the algorithm is looked up in its ``rl_algorithm`` registry, so another
        plugin's algorithm validates like qrl's own.
    """
    top = _mapping(doc, doc.data, "", TOP)
    env = top.get("env")
    if env not in ENVS:
        raise doc.error(f"env must be one of {', '.join(ENVS)}, got {env!r}", "env")
    data = _mapping(doc, top.get("data"), "data", DATA_KEYS)
    if "planted" not in data and "provider_uri" not in data:
        raise doc.error("data needs 'planted' (synthetic) or 'provider_uri' (a Qlib-format store)", "data")
    env_kwargs = _mapping(doc, top.get("env_kwargs"), "env_kwargs", tuple(top.get("env_kwargs") or ()))
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
    for key, value in trainer.items():
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
    return RLConfig(env, data, env_kwargs, spec, Path(output.get("dir", f"rl_runs/{env}")),
                    output.get("recorder_uri"), str(output.get("experiment", f"rl_{env}")), doc.source)


def load(path: str | Path, kernel: Kernel) -> RLConfig:
    """Read and validate the YAML config at ``path`` against ``kernel``'s components."""
    return validate(read_yaml(path), kernel)
