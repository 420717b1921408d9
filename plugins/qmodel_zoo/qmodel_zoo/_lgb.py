"""LightGBM plumbing shared by the LightGBM and DoubleEnsemble models: parameters, data, boosters as text."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore import atomic
from qcore.errors import ConfigError, DataError
from qmodel_zoo._base import check_known
from qmodel_zoo._lightgbm import lgb

#: ``loss`` values and the LightGBM objective each maps to (Qlib passes ``loss`` straight through as ``objective``).
LOSSES = {"mse": "mse", "binary": "binary"}


@cache
def lightgbm_parameter_names() -> frozenset[str]:
    """Every parameter name and alias LightGBM knows (empty when this LightGBM cannot list them)."""
    try:
        aliases = lgb.basic._ConfigAliases._get_all_param_aliases()
    except Exception:  # a LightGBM without the listing: skip the check rather than refuse valid names
        return frozenset()
    return frozenset(aliases) | frozenset(name for names in aliases.values() for name in names)


def booster_params(component: str, loss: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """LightGBM parameters from Qlib-style keyword arguments, checked against LightGBM's names.

    Defaults added for reproducibility unless given: ``verbosity=-1``, ``deterministic=True`` and
    ``force_col_wise=True`` (LightGBM otherwise picks row- or column-wise histograms by timing them).
    """
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    known = lightgbm_parameter_names()
    if known:
        check_known(component, extra, known)
    params: dict[str, Any] = {"objective": LOSSES[loss], "verbosity": -1, "deterministic": True}
    if not {"force_row_wise", "force_col_wise"} & set(extra):
        params["force_col_wise"] = True
    params.update(extra)
    return params


def training_arrays(features: pd.DataFrame, label: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float32 features and float64 label of the rows whose label is finite (LightGBM cannot learn NaN labels).

    The features come as one contiguous array (LightGBM would otherwise copy a strided view of the frame itself).
    """
    y = label.to_numpy(dtype=np.float64)
    rows = np.isfinite(y)
    if not rows.any():
        raise DataError("no row with a finite label to learn from")
    x = features.to_numpy(dtype=np.float32)
    if not rows.all():
        return x[rows], y[rows]
    return (x if x.flags.c_contiguous or x.flags.f_contiguous else np.asfortranarray(x)), y


def weighted_arrays(features: pd.DataFrame, label: pd.Series,
                    weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`training_arrays` with one sample weight per row of ``features``: rows whose weight is 0 are left out
    (so a zero weight is exactly the row's absence, bin boundaries included), and the kept weights are scaled to a
    mean of 1 (so uniform weights train exactly as no weights, and the weights' scale never changes how much the
    regularisation or ``min_sum_hessian_in_leaf`` counts)."""
    keep = np.asarray(weights, dtype=np.float64) > 0
    if not keep.any():
        raise DataError("every sample weight of the training rows is zero; nothing would be learned")
    kept_w = weights[keep]
    if keep.all():
        x, y = training_arrays(features, label)
        finite = np.isfinite(label.to_numpy(dtype=np.float64))
    else:
        x, y = training_arrays(features.iloc[keep], label.iloc[keep])
        finite = np.isfinite(label.iloc[keep].to_numpy(dtype=np.float64))
    return x, y, normalised_weights(kept_w[finite])


def normalised_weights(weights: np.ndarray) -> np.ndarray:
    """``weights`` scaled so that the positive ones average 1 (zeros stay zero); an error when all are zero."""
    weights = np.asarray(weights, dtype=np.float64)
    positive = int(np.count_nonzero(weights > 0))
    if positive == 0:
        raise DataError("every sample weight of the rows with a finite label is zero; nothing would be learned")
    return weights * (positive / float(weights.sum()))


def write_booster(booster: lgb.Booster, path: Path) -> None:
    """Save ``booster`` as LightGBM's text model (its best iteration when early stopping found one)."""
    atomic.write_text(path, booster.model_to_string())


def read_booster(path: Path) -> lgb.Booster:
    """Load a text model written by :func:`write_booster`."""
    if not path.is_file():
        raise DataError("the saved model lacks its LightGBM text model", path=str(path))
    return lgb.Booster(model_file=str(path))
