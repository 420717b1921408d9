"""``qcore rl search``: a seeded random or grid search over config overrides, judged on the validation split only.

Each trial is the config with ``key.path=value`` overrides (``algorithm.kwargs.lr``, ``env_kwargs.reward.name``,
``trainer.seed``...), trained with the leak-free protocol; trials are ranked by the policy's validation metric
(Sharpe for the daily environments, PA for execution) — never by a test figure — and the best trial's test metrics
are reported. Data is loaded once when no override touches ``data``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qcore.config import Document, apply_overrides, parse_value
from qcore.errors import ConfigError

if TYPE_CHECKING:
    from qcore.kernel import Kernel

#: The validation metric trials are ranked on, by environment.
SELECT = {"execution": "pa_bps"}
MAX_TRIALS = 1000


def selection_metric(env: str) -> str:
    """The policy's validation metric a search ranks trials on."""
    return SELECT.get(env, "sharpe")


def parse_space(params: Sequence[str]) -> dict[str, list[Any]]:
    """``["algorithm.kwargs.lr=1e-3,3e-4", "trainer.seed=[0, 1]"]`` → ``{key: [values]}`` (each value read as YAML;
    a YAML list gives the values as they are)."""
    space: dict[str, list[Any]] = {}
    for item in params:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--param {item!r} must look like key.path=v1,v2,...", path="--param")
        if key in space:
            raise ConfigError(f"--param {key} is given twice", path="--param")
        value = parse_value(raw)
        values = value if isinstance(value, list) else [parse_value(v) for v in raw.split(",")]
        if not values:
            raise ConfigError(f"--param {key} has no value", path="--param")
        space[key] = values
    if not space:
        raise ConfigError("give at least one --param key.path=v1,v2", path="--param")
    return space


def trials(space: Mapping[str, Sequence[Any]], random: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Every combination of ``space`` (grid), or ``random`` distinct combinations drawn with ``seed`` (all of them
    when the grid is smaller)."""
    keys = list(space)
    grid = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(space[k] for k in keys))]
    if len(grid) > MAX_TRIALS and random is None:
        raise ConfigError(f"the grid has {len(grid)} trials (over {MAX_TRIALS}): use --random N", path="--param")
    if random is None or random >= len(grid):
        return grid
    order = np.random.default_rng(seed).permutation(len(grid))[:random]
    return [grid[i] for i in sorted(order)]


def _override(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def search(doc: Document, kernel: Kernel, space: Mapping[str, Sequence[Any]], *, random: int | None = None,
           seed: int = 0) -> dict[str, Any]:
    """Train every trial of ``space`` (:func:`trials`) and rank them on the validation split; writes
    ``search.json`` (atomically) into the base config's output folder; each trial trains into ``trial<k>``."""
    from qcore.atomic import write_text
    from qrl import config as cfgmod
    from qrl import workflow

    base = cfgmod.validate(doc, kernel)
    todo = trials(space, random, seed)
    shared = None if any(k == "data" or k.startswith("data.") for k in space) else workflow.load_data(base, kernel)
    key = selection_metric(base.env)
    results, tests = [], []
    for k, params in enumerate(todo):
        trial_doc = apply_overrides(doc, [f"{name}={_override(v)}" for name, v in params.items()])
        cfg = cfgmod.validate(trial_doc, kernel)
        cfg = replace(cfg, out_dir=base.out_dir / f"trial{k}")
        res = workflow.train(cfg, kernel, data=shared)
        results.append({"trial": k, "params": params, "valid": float(res["valid"]["policy"][key]),
                        "checkpoint": res["checkpoints"].get("best")})
        tests.append(res["metrics"])
    best = dict(max(results, key=lambda r: (r["valid"], -r["trial"])))
    best["test"] = tests[best["trial"]]  # only the chosen trial's test figures are reported
    out = {"metric": f"valid.{key}", "mode": "grid" if random is None else f"random({random}, seed {seed})",
           "trials": results, "best": best}
    base.out_dir.mkdir(parents=True, exist_ok=True)
    write_text(Path(base.out_dir) / "search.json", json.dumps(out, indent=2, default=str))
    return out
