"""Feature scaling fitted on the training span only, stored with the checkpoint and reused everywhere after.

A :class:`FeatureScaler` holds one mean and one standard deviation per feature (over every training date and
instrument, the meaning the environments have always given their z-scores); validation, test, ``qcore rl eval`` and
the ``rl_policy`` backtest strategy apply the training span's numbers, never numbers fitted on later rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from qcore.errors import QcoreError

#: z-scores are clipped to ``±CLIP``.
CLIP = 5.0


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1))


@attrs.frozen
class FeatureScaler:
    """Per-feature standardisation ``clip((x - mean) / std, ±clip)``, NaN read as 0 (the feature's mean).

    :ivar names: feature names, in the order of the feature axis.
    :ivar mean: the training span's mean of each feature.
    :ivar std: the training span's standard deviation of each feature (1 where it was 0 or undefined).
    :ivar clip: the bound of the z-scores.
    """

    names: tuple[str, ...] = attrs.field(converter=tuple)
    mean: tuple[float, ...] = attrs.field(converter=_floats)
    std: tuple[float, ...] = attrs.field(converter=_floats)
    clip: float = attrs.field(default=CLIP, converter=float)

    def __attrs_post_init__(self) -> None:
        if not len(self.names) == len(self.mean) == len(self.std):
            raise ValueError(f"a scaler needs one mean and one std per feature: {len(self.names)} names, "
                             f"{len(self.mean)} means, {len(self.std)} stds")  # fmt: skip
        if not all(math.isfinite(m) for m in self.mean) or not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError("scaler means must be finite and standard deviations finite and positive")
        if not self.clip > 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")

    @classmethod
    def fit(cls, features: np.ndarray, names: Sequence[str], clip: float = CLIP) -> FeatureScaler:
        """Fit on a ``(dates, instruments, features)`` cube (NaN ignored): pass the training rows only."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 3 or x.shape[2] != len(names):
            raise ValueError(f"expected a (dates, instruments, {len(names)}) cube, got shape {x.shape}")
        finite = np.isfinite(x)
        count = finite.sum(axis=(0, 1))
        total = np.where(finite, x, 0.0).sum(axis=(0, 1))
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        dev = np.where(finite, x - mean, 0.0)
        var = np.divide((dev**2).sum(axis=(0, 1)), count, out=np.zeros_like(total), where=count > 0)
        std = np.sqrt(var)
        return cls(tuple(names), mean, np.where(std > 0, std, 1.0), clip)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """The z-scores of a ``(..., features)`` array as float32, NaN as 0, clipped."""
        x = np.asarray(features, dtype=np.float64)
        if x.shape[-1] != len(self.names):
            raise ValueError(f"the scaler knows {len(self.names)} features, the data has {x.shape[-1]}")
        z = (x - np.asarray(self.mean)) / np.asarray(self.std)
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=self.clip, neginf=-self.clip), -self.clip,
                       self.clip).astype(np.float32)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (the checkpoint sidecar's ``scaler``)."""
        return {"names": list(self.names), "mean": list(self.mean), "std": list(self.std), "clip": self.clip}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], where: str = "scaler") -> FeatureScaler:
        """Read :meth:`to_dict`'s mapping back; anything malformed is a :class:`QcoreError` naming ``where``."""
        try:
            return cls(tuple(value["names"]), value["mean"], value["std"], value.get("clip", CLIP))
        except (KeyError, TypeError, ValueError) as exc:
            raise QcoreError(f"{where} is not a valid feature scaler: {exc}") from None
