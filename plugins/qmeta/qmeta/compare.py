"""Plain rolling and DDG-DA side by side (``qcore ddgda CONFIG``): the same rolling workflow run twice, once with
equal sample weights and once with the ``ddgda`` reweighter, and the daily IC of both signals (whole test span and,
with ``since``, the span from a date on, such as a regime shift)."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError

ARMS = ("rolling", "ddgda")


@attrs.frozen
class ArmResult:
    """One arm: its run id and IC figures (``IC``, ``ICIR``, ``Rank IC``, ``Rank ICIR``; ``* since`` likewise)."""

    name: str
    run_id: str
    figures: Mapping[str, float]


def daily_ic(pred: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per-date Pearson (``IC``) and Spearman (``RankIC``) correlation of ``pred`` with ``label``."""
    frame = pd.DataFrame({"score": pred, "label": label.reindex(pred.index)}).dropna()
    if frame.empty:
        return pd.DataFrame({"IC": [], "RankIC": []})
    groups = frame.groupby(level="datetime", sort=True)
    ic = groups.apply(lambda g: g["score"].corr(g["label"]) if len(g) > 1 else np.nan)
    ranks = frame.groupby(level="datetime")[["score", "label"]].rank()
    rank_ic = ranks.groupby(level="datetime", sort=True).apply(
        lambda g: g["score"].corr(g["label"]) if len(g) > 1 else np.nan)
    return pd.DataFrame({"IC": ic, "RankIC": rank_ic})


def ic_figures(ic: pd.DataFrame, suffix: str = "") -> dict[str, float]:
    """Mean and mean/std of the daily IC and rank IC."""
    out: dict[str, float] = {}
    for column, name in (("IC", "IC"), ("RankIC", "Rank IC")):
        series = ic[column].dropna()
        mean = float(series.mean()) if len(series) else math.nan
        std = float(series.std()) if len(series) > 1 else math.nan
        out[name + suffix] = mean
        out[f"{name}IR{suffix}"] = mean / std if std and std > 0 else math.nan
    return out


def arm_configs(raw: Mapping[str, Any], ddgda: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The two workflows: ``rolling`` without a reweighter, ``ddgda`` with ``reweighter: ddgda`` (its kwargs from
    the config's own ``ddgda`` reweighter, else ``ddgda``, else the defaults). A configured rolling checkpoint
    folder gets a sub-folder per arm, so neither resumes the other's windows."""
    if not isinstance(raw.get("rolling"), Mapping):
        raise ConfigError("`qcore ddgda` compares rolling runs: the workflow needs a 'rolling:' section",
                          path="rolling")  # fmt: skip
    if raw.get("model") is None:
        raise ConfigError("`qcore ddgda` needs a 'model' section", path="model")
    own = raw.get("reweighter")
    own_name = own.get("name") if isinstance(own, Mapping) else own
    kwargs: dict[str, Any] = dict(ddgda or {})
    if own_name == "ddgda" and isinstance(own, Mapping) and not ddgda:
        kwargs = dict(own.get("kwargs") or {})
    elif own_name not in (None, "ddgda"):
        raise ConfigError("`qcore ddgda` compares equal weights with DDG-DA: drop the workflow's other reweighter",
                          path="reweighter")  # fmt: skip
    out = {}
    for arm in ARMS:
        config = copy.deepcopy(dict(raw))
        config.pop("reweighter", None)
        if arm == "ddgda":
            config["reweighter"] = {"name": "ddgda", "kwargs": kwargs}
        rolling = dict(config["rolling"])
        if rolling.get("checkpoint"):
            rolling["checkpoint"] = str(Path(str(rolling["checkpoint"])) / arm)
        config["rolling"] = rolling
        out[arm] = config
    return out


def _series(result: Any, name: str) -> pd.Series:
    path = result.artifacts.get(name)
    if path is None or not Path(str(path)).is_file():
        raise DataError(f"run {result.run_id} stored no readable '{name}' artifact (add the 'signal' record)")
    return pd.read_parquet(path).iloc[:, 0]


def compare(raw: Mapping[str, Any], kernel: Any, *, ddgda: Mapping[str, Any] | None = None,
            since: pd.Timestamp | None = None) -> list[ArmResult]:  # fmt: skip
    """Run both arms of :func:`arm_configs` with ``kernel`` and measure their signals."""
    from qcore.api import run

    results = []
    for arm, config in arm_configs(raw, ddgda).items():
        result = run(config, kernel=kernel)
        pred, label = _series(result, "pred"), _series(result, "label")
        ic = daily_ic(pred, label)
        figures = ic_figures(ic)
        if since is not None:
            figures.update(ic_figures(ic[ic.index >= since], " since"))
        results.append(ArmResult(arm, result.run_id, figures))
    return results
