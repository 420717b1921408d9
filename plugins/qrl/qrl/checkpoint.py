"""Checkpoints: a torch ``state_dict`` (tensors only, loaded with ``weights_only=True``) plus a JSON sidecar that
describes the environment and algorithm it belongs to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qcore.errors import ConfigError, QcoreError

FORMAT = "qrl-checkpoint/1"


def space_spec(space: Any) -> dict[str, Any]:
    """A JSON description of a gymnasium space (type and shape or size)."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "box", "shape": list(space.shape)}
    raise ValueError(f"unsupported space {space!r}")


def env_spec(env_name: str, env: Any) -> dict[str, Any]:
    """What a checkpoint must match: the environment's name and spaces."""
    return {"env": env_name, "observation": space_spec(env.observation_space), "action": space_spec(env.action_space)}


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of checkpoint ``path`` (``policy.pt`` → ``policy.json``)."""
    return Path(path).with_suffix(".json")


def save(path: str | Path, algorithm: Any, meta: dict[str, Any]) -> Path:
    """Write ``algorithm``'s state (networks and optimisers) to ``path`` and ``meta`` to the sidecar."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(algorithm.state_dict(), path)
    sidecar_path(path).write_text(json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True), encoding="utf-8")
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The sidecar of checkpoint ``path``; a missing or foreign file is a :class:`QcoreError`."""
    path = Path(path)
    if not path.exists():
        raise QcoreError(f"checkpoint not found: {path}")
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QcoreError(f"checkpoint {path} has no sidecar {side.name}; it was not written by qrl") from None
    except json.JSONDecodeError as exc:
        raise QcoreError(f"checkpoint sidecar {side} is not valid JSON: {exc.msg}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise QcoreError(f"checkpoint sidecar {side} is not a {FORMAT} file")
    return meta


def meta_for_strategy(path: str | Path, env: str, strategy: str, key: str) -> dict[str, Any]:
    """The sidecar of checkpoint ``path`` for a strategy that needs an ``env`` policy; any problem is a
    :class:`ConfigError` at ``key`` (the strategy's ``checkpoint`` argument)."""
    try:
        meta = read_meta(path)
    except QcoreError as exc:
        raise ConfigError(str(exc), path=key) from None
    if meta.get("env") != env:
        raise ConfigError(f"checkpoint {Path(path)} holds a {meta.get('env')!r} policy; {strategy} needs a"
                          f"{'n' if env[:1] in 'aeiou' else ''} {env} policy (env: {env})", path=key)  # fmt: skip
    return meta


def check_compatible(meta: dict[str, Any], expected: dict[str, Any], algorithm: str, path: str | Path) -> None:
    """Raise a :class:`QcoreError` naming both sides when a checkpoint belongs to another env or algorithm."""
    got = {k: meta.get(k) for k in ("env", "observation", "action")}
    if got != expected:
        raise QcoreError(
            f"checkpoint {path} was trained on env {got['env']!r} (observation {got['observation']}, action "
            f"{got['action']}) and cannot be loaded into env {expected['env']!r} (observation "
            f"{expected['observation']}, action {expected['action']})"
        )
    if meta.get("algorithm") != algorithm:
        raise QcoreError(
            f"checkpoint {path} holds a {meta.get('algorithm')!r} policy, but the config asks for {algorithm!r}"
        )


def load(path: str | Path, algorithm: Any) -> None:
    """Load the state at ``path`` into ``algorithm`` (after :func:`check_compatible`)."""
    import torch

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        algorithm.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise QcoreError(f"checkpoint {path} does not fit the configured network: {str(exc).splitlines()[0]}") from None
