"""Matrix square roots for quadratic forms written as sums of squares (what keeps cvxpy problems DPP)."""

from __future__ import annotations

import logging

import numpy as np

from qcore.errors import DataError

logger = logging.getLogger("qportfolio.optimizer")


def psd_root(matrix: np.ndarray, what: str = "covariance", tol: float = 1e-10) -> np.ndarray:
    """``L`` with ``L·L' = matrix`` for a symmetric positive semidefinite matrix.

    A matrix with a clearly negative eigenvalue (below ``-tol`` times the largest) or a non-finite entry is a
    :class:`DataError`; tiny negative eigenvalues from rounding are set to 0. A singular matrix is accepted (the
    caller decides what a non-unique optimum means) and logged at DEBUG.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"the {what} must be square, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise DataError(f"the {what} has {int((~np.isfinite(m)).sum())} non-finite entries")
    sym = (m + m.T) / 2.0
    try:
        return np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        pass
    values, vectors = np.linalg.eigh(sym)
    top = max(float(values[-1]), 0.0)
    if values[0] < -tol * max(top, 1.0):
        raise DataError(f"the {what} is not positive semidefinite (smallest eigenvalue {values[0]:.3g}, largest "
                        f"{top:.3g})")  # fmt: skip
    rank = int((values > tol * max(top, 1e-300)).sum())
    logger.debug("the %s is singular (rank %d of %d)", what, rank, len(values))
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def rank(matrix: np.ndarray, tol: float = 1e-10) -> int:
    """Numerical rank of a symmetric positive semidefinite matrix."""
    values = np.linalg.eigvalsh((matrix + matrix.T) / 2.0)
    return int((values > tol * max(float(values[-1]), 1e-300)).sum())
