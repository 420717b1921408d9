"""Portfolios from a covariance (and expected returns): Qlib's ``PortfolioOptimizer`` and more.

Methods (``S`` the covariance, ``r`` the expected returns, ``0 ≤ w ≤ 1``, ``Σw = 1``):

- ``inv``: inverse volatility, ``w ∝ 1/√S_ii`` (a zero variance is an error);
- ``gmv``: global minimum variance, ``min w'Sw``;
- ``mvo``: mean–variance, ``min −w'r + lamb·w'Sw`` (larger ``lamb``: more risk averse, whatever Qlib's docstring
  says);
- ``rp``: risk parity — equal risk contributions ``w_i·(Sw)_i = w'Sw / N`` — solved exactly as the convex
  problem ``min ½y'Sy − (1/N)·Σ log y_i``, ``w = y/Σy`` (Qlib runs SLSQP on a non-convex least-squares form from
  ``1/N`` and only warns when it stops early);
- ``max_sharpe``: maximum ``(w'r − risk_free)/√(w'Sw)``, solved as ``min y'Sy`` s.t. ``(r − risk_free)'y = 1``,
  ``y ≥ 0``, ``w = y/Σy`` (at least one expected return must exceed ``risk_free``).

``alpha`` adds ``alpha·Σw²`` (gmv, mvo); with ``w0``, ``‖w − w0‖₁ ≤ delta`` (gmv, mvo; Qlib's default ``delta=0``
keeps ``w0``); ``max_weight`` caps each name (gmv, mvo, max_sharpe). ``r`` is rescaled to
``r/std(r)·√mean(diag S)`` when ``scale_return`` (Qlib). A singular covariance is accepted (the minimum-variance
weights are then not unique: ``alpha > 0`` makes them so, and a warning says it); one that is not positive
semidefinite, or has non-finite entries, is a :class:`~qcore.errors.DataError`.

``long_short: {gross, net, max_short}`` (gmv and mvo only) replaces the long-only budget: ``Σw = net``,
``‖w‖₁ ≤ gross``, ``w ≥ −max_short`` (``w ≥ 0`` for the names a call's ``shortable`` leaves out), ``w ≤ max_weight``
(1 by default). Long-only problems are unchanged (Qlib's parity).

Problems are cvxpy DPP problems built once per size and method, re-solved with new parameters; a failed solve
raises :class:`~qportfolio.optimizer.solve.SolveError` or takes the ``hold`` fallback (keep ``w0``), logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qportfolio.optimizer.enhanced import LongShort, _number
from qportfolio.optimizer.linalg import psd_root, rank
from qportfolio.optimizer.solve import SolveError, SolveInfo, accept, check_fallbacks, choose_solver, solve

logger = logging.getLogger("qportfolio.optimizer")

METHODS = ("inv", "gmv", "mvo", "rp", "max_sharpe")


class PortfolioOptimizer:
    """Qlib's ``PortfolioOptimizer`` (``inv``, ``gmv``, ``mvo``, ``rp``) on cvxpy, plus ``max_sharpe``.

    :param method: one of :data:`METHODS`.
    :param lamb: risk aversion of ``mvo``.
    :param delta: turnover limit when ``w0`` is given (gmv, mvo).
    :param alpha: L2 regulariser.
    :param scale_return: rescale ``r`` to the covariance's volatility.
    :param tol: accepted for Qlib's configs (the solvers use their own tolerances).
    :param solver: ``auto`` or a cvxpy solver.
    :param solver_kwargs: passed to the solver.
    :param fallback: ``hold`` (keep ``w0``) or None (raise).
    :param max_weight: cap per name.
    :param risk_free: the return ``max_sharpe`` measures excess over.
    :param long_short: ``{gross, net, max_short}`` for a long–short gmv or mvo portfolio (None: long only).
    """

    def __init__(
        self,
        method: str = "inv",
        lamb: float = 0.0,
        delta: float = 0.0,
        alpha: float = 0.0,
        scale_return: bool = True,
        tol: float = 1e-8,
        solver: str = "auto",
        solver_kwargs: Mapping[str, Any] | None = None,
        fallback: str | Sequence[str] | None = None,
        max_weight: float | None = None,
        risk_free: float = 0.0,
        long_short: Mapping[str, float] | bool | None = None,
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"expected one of {', '.join(METHODS)}, got {method!r}", path="method")
        self.method = method
        self.lamb = _number(lamb, "lamb")
        self.delta = _number(delta, "delta")
        self.alpha = _number(alpha, "alpha")
        self.scale_return = bool(scale_return)
        self.tol = _number(tol, "tol")
        self.max_weight = _number(max_weight, "max_weight", high=1.0, none=True)
        self.risk_free = _number(risk_free, "risk_free", low=-np.inf)
        if method == "rp" and (self.alpha > 0 or self.max_weight is not None):
            raise ConfigError("rp solves for equal risk contributions exactly; alpha and max_weight do not apply",
                              path="method")  # fmt: skip
        self.long_short = LongShort.parse(long_short)
        if self.long_short is not None and method not in ("gmv", "mvo"):
            raise ConfigError(f"long_short works with gmv and mvo, not {method}", path="long_short")
        self.fallback = check_fallbacks(fallback)
        if any(f != "hold" for f in self.fallback):
            raise ConfigError("the portfolio optimiser's only fallback is 'hold'", path="fallback")
        self.solver = choose_solver(solver, cones=method == "rp")
        self.solver_kwargs = dict(solver_kwargs or {})
        if method == "rp" and self.solver == "CLARABEL" and not self.solver_kwargs:
            # the barrier's optimum is the equal-risk point only to the gap tolerance: tighten it
            self.solver_kwargs = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}
        #: how the last call went.
        self.last: SolveInfo | None = None
        self._problems: dict[tuple[Any, ...], Any] = {}
        self._lower = np.zeros(0)

    def __call__(self, S: Any, r: Any = None, w0: Any = None, shortable: Any = None) -> np.ndarray | pd.Series:
        """Weights for covariance ``S`` (a Series when ``S`` is a DataFrame), expected returns ``r``, current ``w0``;
        ``shortable`` (long–short only): which names may take a negative weight (None: all)."""
        index = S.index if isinstance(S, pd.DataFrame) else None
        cov = np.asarray(S, dtype=np.float64)
        n = len(cov)
        if cov.shape != (n, n):
            raise DataError(f"the covariance must be square, got shape {cov.shape}")
        r_arr = self._aligned(r, index, n, "r")
        w0_arr = self._aligned(w0, index, n, "w0")
        if r_arr is not None and self.scale_return:
            spread = r_arr.std()
            r_arr = r_arr / spread * np.sqrt(np.mean(np.diag(cov))) if spread > 0 else np.zeros(n)
        self._lower = self._lower_bounds(n, shortable)
        w = self._optimize(cov, r_arr, w0_arr)
        return pd.Series(w, index=index) if index is not None else w

    def _lower_bounds(self, n: int, shortable: Any) -> np.ndarray:
        """Each name's lower weight bound: 0 long only, ``−max_short`` where it may be shorted."""
        if self.long_short is None:
            return np.zeros(n)
        lower = np.full(n, -self.long_short.max_short)
        if shortable is not None:
            allowed = np.asarray(shortable, dtype=bool).reshape(-1)
            if allowed.shape != (n,):
                raise DataError(f"shortable has {allowed.size} values for a {n}×{n} covariance")
            lower[~allowed] = 0.0
        return lower

    @staticmethod
    def _aligned(value: Any, index: pd.Index | None, n: int, name: str) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, pd.Series) and index is not None:
            if not value.index.equals(index):
                raise DataError(f"{name} is indexed differently from the covariance")
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        if len(arr) != n:
            raise DataError(f"{name} has {len(arr)} values for a {n}×{n} covariance")
        if not np.isfinite(arr).all():
            raise DataError(f"{name} has {int((~np.isfinite(arr)).sum())} NaN or infinite values")
        return arr

    def _optimize(self, cov: np.ndarray, r: np.ndarray | None, w0: np.ndarray | None) -> np.ndarray:
        if self.method == "inv":
            if r is not None or w0 is not None:
                logger.warning("inv uses neither expected returns nor current weights")
            vol = np.sqrt(np.diag(cov))
            if not (vol > 0).all():
                raise DataError(f"inverse volatility needs positive variances; {int((vol <= 0).sum())} are not")
            w = 1.0 / vol
            self.last = SolveInfo("optimal", "closed_form", float("nan"))
            return w / w.sum()
        if self.method in ("mvo", "max_sharpe") and r is None:
            raise ConfigError(f"{self.method} needs expected returns r", path="method")
        if self.method in ("gmv", "rp") and r is not None:
            logger.warning("%s does not use expected returns", self.method)
        if self.method in ("rp", "max_sharpe") and w0 is not None:
            logger.warning("%s does not take a turnover limit; w0 is ignored", self.method)
            w0 = None
        root = psd_root(cov)
        if self.method in ("gmv", "mvo") and self.alpha == 0 and rank(cov) < len(cov):
            logger.warning("the covariance is singular (rank %d of %d): the minimum-variance weights are not unique; "
                           "set alpha > 0 for a unique answer", rank(cov), len(cov))  # fmt: skip
        problem = self._problem(len(cov), w0 is not None)
        values = {"root": root, "r": r if r is not None else np.zeros(len(cov)),
                  "w0": w0 if w0 is not None else np.zeros(len(cov)), "lb": self._lower}  # fmt: skip
        if self.method == "max_sharpe":
            excess = values["r"] - self.risk_free
            if not (excess > 0).any():
                raise SolveError("max_sharpe needs at least one expected return above risk_free", status="infeasible",
                                 solver=self.solver)  # fmt: skip
            values["r"] = excess
        status = problem.solve(values)
        what = f"{self.method} over {len(cov)} names"
        if accept(status, what, self.solver):
            w = problem.weights()
            self.last = SolveInfo(status, self.solver, _objective(self, w, cov, values["r"]))
            return w
        if "hold" in self.fallback and w0 is not None:
            logger.warning("%s failed (status %r): keeping the current weights (fallback 'hold')", what, status)
            self.last = SolveInfo(status, self.solver, float("nan"), "hold")
            return w0.copy()
        raise SolveError(f"{what} found no optimal portfolio", status=status, solver=self.solver)

    def _problem(self, n: int, with_w0: bool) -> _PortfolioProblem:
        key = (n, with_w0)
        if key not in self._problems:
            self._problems[key] = _PortfolioProblem(self, n, with_w0)
        return self._problems[key]


def _objective(opt: PortfolioOptimizer, w: np.ndarray, cov: np.ndarray, r: np.ndarray) -> float:
    """Qlib's objective of the method at ``w`` (the risk-contribution spread for rp; the Sharpe ratio for
    max_sharpe)."""
    risk = float(w @ cov @ w)
    ridge = opt.alpha * float(w @ w)
    if opt.method == "gmv":
        return risk + ridge
    if opt.method == "mvo":
        return -float(w @ r) + opt.lamb * risk + ridge
    if opt.method == "rp":
        sw = cov @ w
        return float(np.sum((w - risk / sw / len(w)) ** 2))
    return float(w @ r) / np.sqrt(risk) if risk > 0 else float("nan")


class _PortfolioProblem:
    def __init__(self, opt: PortfolioOptimizer, n: int, with_w0: bool) -> None:
        import cvxpy as cp

        self.opt = opt
        self.root = cp.Parameter((n, n))
        self.r = cp.Parameter(n)
        self.w0 = cp.Parameter(n)
        ls = opt.long_short
        self.lb = cp.Parameter(n)
        self.w = cp.Variable(n) if ls else cp.Variable(n, nonneg=True)
        w = self.w
        risk = cp.sum_squares(self.root.T @ w)
        cons: list[Any] = []
        if opt.method == "rp":
            objective = cp.Minimize(0.5 * risk - cp.sum(cp.log(w)) / n)
        elif opt.method == "max_sharpe":
            objective = cp.Minimize(risk)
            cons = [self.r @ w == 1.0]
            if opt.max_weight is not None:
                cons.append(w <= opt.max_weight * cp.sum(w))
        else:
            expr = risk if opt.method == "gmv" else -self.r @ w + opt.lamb * risk
            if opt.alpha > 0:
                expr = expr + opt.alpha * cp.sum_squares(w)
            objective = cp.Minimize(expr)
            cons = [cp.sum(w) == (ls.net if ls else 1.0), w <= (opt.max_weight if opt.max_weight is not None else 1.0)]
            if ls:
                cons += [w >= self.lb, cp.norm1(w) <= ls.gross]
            if with_w0:
                cons.append(cp.norm1(w - self.w0) <= opt.delta)
        self.problem = cp.Problem(objective, cons)
        assert self.problem.is_dcp(dpp=True)

    def solve(self, values: Mapping[str, np.ndarray]) -> str:
        self.root.value, self.r.value, self.w0.value = values["root"], values["r"], values["w0"]
        self.lb.value = values["lb"]
        return solve(self.problem, self.opt.solver, solver_kwargs=self.opt.solver_kwargs)

    def weights(self) -> np.ndarray:
        w = np.asarray(self.w.value, dtype=np.float64)
        if self.opt.long_short is not None:  # the solver's tolerance may leave -1e-9 below a bound of 0
            w = np.maximum(w, self.lb.value)
            return np.where(np.abs(w) < 1e-10, 0.0, w)
        w = np.clip(w, 0.0, None)
        if self.opt.method in ("rp", "max_sharpe"):
            return w / w.sum()
        return w
