"""Sample weights for training: how a :class:`~qcore.protocols.Reweighter` reaches a model.

The runtime calls :func:`fit_model` instead of ``model.fit(dataset)``; a model that accepts sample weights declares a
``reweighter`` keyword in its ``fit`` and turns the reweighter into one weight per training row with
:func:`sample_weights`, which checks what the reweighter returned (aligned, finite, non-negative, not all zero), so
every model gets the same errors for the same bad weights.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qcore.protocols import Dataset, Reweighter


def accepts_reweighter(fit: Any) -> bool:
    """Whether a ``fit`` callable (or a class with a ``fit`` method) takes a ``reweighter`` keyword."""
    method = getattr(fit, "fit", fit) if inspect.isclass(fit) or not callable(fit) else fit
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    param = params.get("reweighter")
    if param is not None:
        return param.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return False


def fit_model(model: Any, dataset: Dataset, reweighter: Reweighter | None = None, *, name: str = "model") -> Any:
    """``model.fit(dataset)``, with ``reweighter=`` when one is given (a model that cannot take one is refused)."""
    if reweighter is None:
        return model.fit(dataset)
    if not accepts_reweighter(model.fit):
        raise ConfigError(f"{name} {type(model).__name__} does not take sample weights (its fit has no "
                          "'reweighter' keyword); drop 'reweighter' or pick a model that accepts one",
                          path="reweighter")  # fmt: skip
    return model.fit(dataset, reweighter=reweighter)


def sample_weights(reweighter: Reweighter, index: pd.MultiIndex, *, segment: str = "train") -> np.ndarray:
    """One float64 weight per row of ``index`` from ``reweighter``, checked.

    The reweighter may answer with an array of ``len(index)``, a Series on the same ``(datetime, instrument)`` rows,
    or a Series indexed by date alone (one weight per day, spread over that day's rows). Missing rows, NaN or
    infinite weights, negative weights and an all-zero result are :class:`~qcore.errors.DataError` naming the
    reweighter, the segment and how many rows are affected.
    """
    who = f"reweighter {type(reweighter).__name__} ({segment} segment)"
    raw = reweighter.reweight(index)
    if isinstance(raw, pd.Series):
        if isinstance(raw.index, pd.MultiIndex):
            values = raw.reindex(index)
        else:
            level = "datetime" if "datetime" in (index.names or ()) else 0
            values = raw.reindex(pd.DatetimeIndex(index.get_level_values(level)))
        weights = values.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(weights)
        if missing.any():
            raise DataError(f"{who}: no weight (missing or NaN) for {int(missing.sum())} of {len(index)} rows")
    else:
        weights = np.asarray(raw, dtype=np.float64).reshape(-1)
        if len(weights) != len(index):
            raise DataError(f"{who}: {len(weights)} weights for {len(index)} rows")
    bad = ~np.isfinite(weights)
    if bad.any():
        raise DataError(f"{who}: {int(bad.sum())} of {len(index)} weights are NaN or infinite")
    negative = weights < 0
    if negative.any():
        raise DataError(f"{who}: {int(negative.sum())} of {len(index)} weights are negative "
                        f"(smallest {weights.min():.6g})")  # fmt: skip
    if len(weights) and not weights.any():
        raise DataError(f"{who}: every weight is zero; nothing would be learned")
    return weights
