"""Drift of the live signal and of its features: rolling IC against realised labels, and the population stability
index (PSI) of each feature between the serving model's train span and the recent window.

- **IC**: for each stored prediction date whose label has been realised (the label expression, e.g.
  ``Ref($close, -2)/Ref($close, -1) - 1``, is known once its future bars are in the store), the Pearson
  correlation across instruments of score and label (Qlib's IC); the rolling IC is the mean over the last
  ``ic_window`` realised dates. Fewer realised dates than ``ic_window``: reported, never flagged.
- **PSI** of one feature: the train span's values cut into ``bins`` quantile bins (edges from the train span, open at
  both ends), ``PSI = Σ (a - e) · ln(a / e)`` over the bins, ``e`` and ``a`` the train and recent shares of each
  bin (a share of 0 counts as ``1e-6``); NaN values are left out. The recent window is the last ``psi_window`` bars
  up to the date.

A rolling IC below ``ic_min`` or a feature's PSI above ``psi_max`` flags a retrain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: The share a bin with no values counts as (so the logarithm stays finite).
EMPTY_SHARE = 1e-6


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """The population stability index of ``actual`` against ``expected`` (see the module docstring); NaN when
    either side has no finite value."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
    if not len(expected) or not len(actual):
        return float("nan")
    inner = np.unique(np.quantile(expected, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(inner, expected, "right"), minlength=len(inner) + 1) / len(expected)
    a = np.bincount(np.searchsorted(inner, actual, "right"), minlength=len(inner) + 1) / len(actual)
    e, a = np.maximum(e, EMPTY_SHARE), np.maximum(a, EMPTY_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(train: pd.DataFrame, recent: pd.DataFrame, bins: int = 10) -> dict[str, float]:
    """:func:`psi` of every column of ``train`` against the same column of ``recent``."""
    return {str(c): psi(train[c].to_numpy(), recent[c].to_numpy(), bins) for c in train.columns}


def daily_ic(score: pd.Series, label: pd.Series) -> pd.Series:
    """Pearson IC per date of ``score`` and ``label`` (both by ``(datetime, instrument)``), dates with fewer than
    two realised pairs left out."""
    frame = pd.concat({"score": score, "label": label}, axis=1, join="inner").dropna()
    if frame.empty:
        return pd.Series(dtype="float64", name="ic")
    groups = frame.groupby(level="datetime")
    ic = groups.apply(lambda g: g["score"].corr(g["label"]) if len(g) > 1 else np.nan)
    return ic.dropna().rename("ic")


def assess(ic: pd.Series, psis: Mapping[str, float], *, ic_window: int, ic_min: float,
           psi_max: float) -> dict[str, Any]:  # fmt: skip
    """The drift report: the last ``ic_window`` daily ICs and their mean, every PSI, and the flags raised."""
    recent = ic.sort_index().iloc[-ic_window:]
    rolling = float(recent.mean()) if len(recent) else float("nan")
    flags: list[str] = []
    if len(recent) >= ic_window and rolling < ic_min:
        flags.append(f"rolling IC {rolling:.4f} over {len(recent)} days is below ic_min {ic_min}")
    drifted = sorted((name for name, value in psis.items() if np.isfinite(value) and value > psi_max),
                     key=lambda name: -psis[name])  # fmt: skip
    for name in drifted:
        flags.append(f"PSI of {name} is {psis[name]:.4f}, above psi_max {psi_max}")
    return {
        "ic": {"rolling": _finite(rolling), "days": len(recent), "window": ic_window, "min": ic_min,
               "daily": {str(d.date()): _finite(v) for d, v in recent.items()}},
        "psi": {name: _finite(value) for name, value in psis.items()},
        "psi_max": psi_max,
        "drifted_features": drifted,
        "flags": flags,
        "retrain": bool(flags),
    }


def summary(report: Mapping[str, Any], shown: int = 3) -> str:
    """One line for a report's flags: the IC verdict and the drifted features (the worst ``shown`` named)."""
    parts = [flag for flag in report.get("flags", []) if flag.startswith("rolling IC")]
    drifted = list(report.get("drifted_features", []))
    if drifted:
        psis = report.get("psi", {})
        worst = ", ".join(f"{name} {psis.get(name) or float('nan'):.3f}" for name in drifted[:shown])
        more = f" and {len(drifted) - shown} more" if len(drifted) > shown else ""
        parts.append(f"{len(drifted)} feature(s) with PSI above {report.get('psi_max')}: {worst}{more}")
    return "; ".join(parts) or "no drift"


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def recent_days(calendar: pd.DatetimeIndex, date: pd.Timestamp, n: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last of the ``n`` bars ending at ``date``."""
    k = int(calendar.searchsorted(date, "right"))
    return pd.Timestamp(calendar[max(k - n, 0)]), pd.Timestamp(calendar[k - 1])


def evaluate(config: Any, kernel: Any, provider: Any, exprs: Mapping[str, str], start: pd.Timestamp,
             end: pd.Timestamp, instruments: Sequence[str] | str | None = None) -> pd.DataFrame:  # fmt: skip
    """The workflow's expressions over ``[start, end]`` on its universe (the dataset's expression engine)."""
    from qcore.assembly import dataset_engine
    from qcore.context import RunContext

    engine = dataset_engine(RunContext(config=config, kernel=kernel, run=None, provider=provider))
    universe = instruments or (config.dataset.instruments if config.dataset is not None else None) or \
        config.data.universe  # fmt: skip
    return engine.evaluate(dict(exprs), universe, start, end)
