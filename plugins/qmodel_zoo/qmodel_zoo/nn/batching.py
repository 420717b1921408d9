"""How an epoch visits the training samples: shuffled mini-batches, whole days, or draws with replacement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: ``batching`` values of the sequence models.
BATCHINGS = ("shuffle", "daily")


def shuffled_batches(n_samples: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random permutation cut into ``batch_size`` chunks.

    As in Qlib, a last chunk shorter than ``batch_size`` is dropped, except when it is the only one (a segment
    smaller than one batch still trains); a lone sample is always dropped (batch norm needs two).
    """
    order = rng.permutation(n_samples)
    batches = [order[i : i + batch_size] for i in range(0, n_samples, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches.pop()
    return [b for b in batches if len(b) > 1]


def daily_batches(days: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One batch per date (its whole cross-section), dates in random order; dates with one sample are skipped."""
    return [days[i] for i in rng.permutation(len(days)) if len(days[i]) > 1]


def sampled_batches(n_samples: int, batch_size: int, n_batches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n_batches`` batches drawn with replacement (Qlib's MLP draws each step's batch this way)."""
    return [rng.integers(0, n_samples, size=batch_size) for _ in range(n_batches)]


def chunks(n_samples: int, batch_size: int) -> list[np.ndarray]:
    """Consecutive positions in ``batch_size`` chunks, all samples kept (for evaluation and prediction)."""
    return [np.arange(i, min(i + batch_size, n_samples)) for i in range(0, n_samples, batch_size)]
