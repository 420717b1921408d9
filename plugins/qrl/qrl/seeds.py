"""Several seeds of one config: mean ± standard deviation of each metric and how many seeds beat each baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: The metric a policy and its baselines are compared on, by environment (others: cumulative return).
PRIMARY = {"execution": "pa_bps"}


def primary_metric(env: str) -> str:
    """The metric "beats a baseline" is judged on for ``env``."""
    return PRIMARY.get(env, "cumulative_return")


def summarise(env: str, results: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """Summary of per-seed evaluations ``[{who: {metric: value}}]`` (``who`` is ``policy`` or a baseline).

    :returns: ``{"metric": primary metric, "seeds": n, "mean": {who: {metric: mean}}, "std": {who: {metric: std}},
        "beats": {baseline: seeds where the policy's primary metric is strictly higher}}`` (population std).
    """
    if not results:
        raise ValueError("no seed results to summarise")
    key = primary_metric(env)
    whos = list(results[0])
    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    for who in whos:
        metrics = [k for k, v in results[0][who].items() if isinstance(v, int | float)]
        values = {k: np.array([float(r[who][k]) for r in results]) for k in metrics}
        mean[who] = {k: float(v.mean()) for k, v in values.items()}
        std[who] = {k: float(v.std(ddof=0)) for k, v in values.items()}
    beats = {who: int(sum(r["policy"][key] > r[who][key] for r in results)) for who in whos if who != "policy"}
    return {"metric": key, "seeds": len(results), "mean": mean, "std": std, "beats": beats}


def format_summary(summary: Mapping[str, Any]) -> list[str]:
    """Lines ``policy: metric = mean ± std`` then one per baseline with its mean and the policy's wins."""
    key, n = summary["metric"], summary["seeds"]
    m, s = summary["mean"], summary["std"]
    lines = [f"{n} seeds, {key}:", f"{'policy':>14}: {m['policy'][key]:.4g} ± {s['policy'][key]:.2g}"]
    for who, wins in summary["beats"].items():
        lines.append(f"{who:>14}: {m[who][key]:.4g} ± {s[who][key]:.2g}   policy beats it in {wins}/{n} seeds")
    return lines
