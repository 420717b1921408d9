"""What an execution checkpoint records of its environment, so a backtest strategy can rebuild the same
interpreters and step schedule (the ``execution`` entry of the checkpoint's JSON sidecar)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

#: The interpreters and reward an execution environment uses when its config names none.
DEFAULT_STATE = "recent_bars"
DEFAULT_ACTION = "categorical"
DEFAULT_REWARD = "pa_penalty"
#: The minute field whose (raw) values are the environment's deal prices (:func:`qrl.data.load_intraday`).
DEFAULT_PRICE_FIELD = "vwap"
#: The environment settings a checkpoint records, besides its interpreters.
SETTINGS = ("side", "amount", "n_steps", "start_bar", "end_bar", "lot_size", "volume_cap", "timing")


def _component(spec: Mapping[str, Any] | None, default: str) -> dict[str, Any]:
    spec = dict(spec or {})
    return {"name": str(spec.get("name", default)), "kwargs": dict(spec.get("kwargs") or {})}


def execution_settings(env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``execution`` sidecar entry of an execution environment built from ``env_kwargs``: every setting of
    :data:`SETTINGS` (the environment's default where the config gives none), the named state and action
    interpreters and reward with their kwargs, and the price field."""
    from qrl.execution.env import ExecutionEnv

    params = inspect.signature(ExecutionEnv.__init__).parameters
    out: dict[str, Any] = {key: env_kwargs.get(key, params[key].default) for key in SETTINGS}
    out["state"] = _component(env_kwargs.get("state"), DEFAULT_STATE)
    out["action"] = _component(env_kwargs.get("action"), DEFAULT_ACTION)
    out["reward"] = _component(env_kwargs.get("reward"), DEFAULT_REWARD)
    out["price_field"] = DEFAULT_PRICE_FIELD
    return out
