"""Small least-squares solvers on a Gram matrix: lasso by coordinate descent, non-negative least squares."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls


def lasso_gram(gram: np.ndarray, xty: np.ndarray, alpha: float, *, max_iter: int = 1000,
               tol: float = 1e-4) -> tuple[np.ndarray, int]:
    """Minimise ``w'Gw/2 - w'c + alpha*|w|_1`` by cyclic coordinate descent; returns ``(w, iterations)``.

    With ``G = X'X/n`` and ``c = X'y/n`` this is the lasso objective ``|y - Xw|^2/(2n) + alpha*|w|_1`` up to a
    constant (scikit-learn's scaling). The loop stops when the largest coefficient change of a sweep is at most
    ``tol`` times the largest coefficient (the criterion scikit-learn checks first).
    """
    n_features = gram.shape[0]
    coef = np.zeros(n_features)
    gram_coef = np.zeros(n_features)  # G @ coef, kept up to date
    diag = np.diag(gram).copy()
    for sweep in range(1, max_iter + 1):
        largest_step = 0.0
        for j in range(n_features):
            if diag[j] <= 0.0:
                continue
            rho = xty[j] - gram_coef[j] + diag[j] * coef[j]
            new = np.sign(rho) * max(abs(rho) - alpha, 0.0) / diag[j]
            step = new - coef[j]
            if step != 0.0:
                gram_coef += gram[:, j] * step
                coef[j] = new
                largest_step = max(largest_step, abs(step))
        scale = float(np.abs(coef).max()) if n_features else 0.0
        if largest_step <= tol * scale or scale == 0.0:
            return coef, sweep
    return coef, max_iter


def nnls_gram(gram: np.ndarray, xty: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares ``min |y - Xw|^2, w >= 0`` through the Cholesky factor of ``G = X'X``.

    ``|y - Xw|^2 = |L'w - L^-1 X'y|^2 + const`` with ``G = LL'``, so the problem shrinks to a square one of the
    feature count; a rank-deficient ``G`` falls back to solving on ``X`` itself.
    """
    try:
        lower = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return nnls(x, y, maxiter=50 * x.shape[1])[0]
    rhs = np.linalg.solve(lower, xty)
    return nnls(lower.T, rhs, maxiter=50 * gram.shape[0])[0]
