"""Enhanced indexing: beat a benchmark's return with a bounded tracking error (Qlib's ``EnhancedIndexingOptimizer``).

With ``d = w − wb`` (active weights) and ``v = F'd`` (active factor exposures)::

    maximise   d'r − λ·(v'·Σ_b·v + Σ σ_u²·d²)
    subject to w ≥ 0, Σw = 1                       (long only, fully invested)
               max(0, wb − b_dev) ≤ w ≤ min(1, wb + b_dev)
               w = w0 where must-hold (mfh), w = 0 where must-sell (mfs; wins over mfh)
               |v| ≤ f_dev                         (a number or one per factor)
               ‖w − w0‖₁ ≤ delta                   (when the current weights sum above 0)

``r`` is rescaled to ``r / std(r) · √mean(diag(FΣ_bF') + σ_u²)`` (``scale_return``), weights below ``epsilon``
are zeroed and the rest renormalised — all as in Qlib. Beyond Qlib:

- ``max_weight``: a cap on every name;
- ``cash``: up to that share may stay in cash (``Σw`` in ``[1 − cash, 1]``, cash counts as zero active risk);
- ``industry_neutral``: active exposure 0 (± ``industry_tolerance``) on the factors named (``true``: every factor
  whose name starts with ``industry``);
- ``te_cap``: a cap on the ex-ante tracking error (a volatility in the risk data's units: daily percent for
  ``qcore risk build``'s files);
- ``tc_penalty``: ``− tc_penalty · ‖w − w0‖₁`` in the objective (a linear transaction cost per unit turnover);
- ``long_short``: ``{gross, net, max_short}``: weights may be negative down to ``−max_short``, ``Σw = net`` and
  ``‖w‖₁ ≤ gross`` replace the long-only budget; ``shortable`` (per call) limits the negative weights to the names
  that may be lent (the others keep a lower bound of 0). ``b_dev`` still bounds ``|w − wb|``: a benchmark name can go
  short only when its benchmark weight is below ``b_dev``, so with a tight ``b_dev`` the shorts are the names outside
  the benchmark (or light in it). The backtest holds them with its ``short:`` option.

The problem is built once per shape with cvxpy parameters (DPP) and re-solved each day warm-started; a solve that
is not optimal raises :class:`~qportfolio.optimizer.solve.SolveError` or takes the configured fallbacks (Qlib's
``drop_turnover`` then ``hold`` is ``fallback: qlib``), each logged. ``delta: null`` turns the turnover limit off
(in Qlib it trips an assertion); a constant score vector (zero spread) means no view: ``r = 0``, pure tracking,
with a warning (Qlib divides by zero).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from qcore.errors import ConfigError, DataError
from qportfolio.optimizer.linalg import psd_root
from qportfolio.optimizer.solve import (
    SolveError,
    SolveInfo,
    accept,
    check_fallbacks,
    choose_solver,
    solve,
)

logger = logging.getLogger("qportfolio.optimizer")


def _number(value: Any, name: str, *, low: float = 0.0, high: float | None = None, none: bool = False) -> Any:
    if value is None and none:
        return None
    if not isinstance(value, int | float | np.floating) or isinstance(value, bool) or not np.isfinite(value):
        raise ConfigError(f"expected a number, got {value!r}", path=name)
    if value < low or (high is not None and value > high):
        span = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"expected a number {span}, got {value}", path=name)
    return float(value)


@attrs.frozen
class LongShort:
    """Long–short budget: ``Σw = net``, ``‖w‖₁ ≤ gross``, ``w ≥ −max_short``."""

    gross: float = 2.0
    net: float = 1.0
    max_short: float = 0.05

    @classmethod
    def parse(cls, value: Any) -> LongShort | None:
        """From a config mapping (None: long only)."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping with gross, net and max_short, got {value!r}", path="long_short")
        unknown = [k for k in value if k not in ("gross", "net", "max_short")]
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (gross, net, max_short)", path="long_short")
        out = cls(**{k: _number(v, f"long_short.{k}", low=-10.0 if k == "net" else 0.0) for k, v in value.items()})
        if abs(out.net) > out.gross:
            raise ConfigError(f"|net| ({out.net}) cannot exceed gross ({out.gross})", path="long_short.net")
        return out


class EnhancedIndexingOptimizer:
    """Qlib's enhanced-indexing optimiser on DPP cvxpy problems, plus the constraints listed in the module doc.

    :param lamb: risk aversion λ.
    :param delta: total turnover limit ``‖w − w0‖₁`` (None: none).
    :param b_dev: limit on ``|w − wb|`` per name (None: none).
    :param f_dev: limit on ``|F'(w − wb)|``: a number or one per factor (None: none).
    :param scale_return: rescale the scores to the risk's volatility (Qlib).
    :param epsilon: weights below it are zeroed (then the rest renormalised).
    :param solver: ``auto`` or a cvxpy solver name.
    :param solver_kwargs: passed to the solver.
    :param fallback: what to do when a solve fails (see :mod:`qportfolio.optimizer.solve`); None raises.
    """

    def __init__(
        self,
        lamb: float = 1.0,
        delta: float | None = 0.2,
        b_dev: float | None = 0.01,
        f_dev: float | Sequence[float] | None = None,
        scale_return: bool = True,
        epsilon: float = 5e-5,
        solver_kwargs: Mapping[str, Any] | None = None,
        solver: str = "auto",
        fallback: str | Sequence[str] | None = None,
        max_weight: float | None = None,
        cash: float = 0.0,
        industry_neutral: bool | Sequence[str] = False,
        industry_tolerance: float = 0.0,
        te_cap: float | None = None,
        tc_penalty: float = 0.0,
        long_short: Mapping[str, float] | bool | None = None,
    ) -> None:
        self.lamb = _number(lamb, "lamb")
        self.delta = _number(delta, "delta", none=True)
        self.b_dev = _number(b_dev, "b_dev", none=True)
        if f_dev is None or isinstance(f_dev, int | float):
            self.f_dev: float | np.ndarray | None = _number(f_dev, "f_dev", none=True)
        else:
            arr = np.asarray(f_dev, dtype=np.float64)
            if arr.ndim != 1 or not (arr >= 0).all():
                raise ConfigError(f"expected a non-negative number or a list of them, got {f_dev!r}", path="f_dev")
            self.f_dev = arr
        self.scale_return = bool(scale_return)
        self.epsilon = _number(epsilon, "epsilon")
        if solver_kwargs is not None and not isinstance(solver_kwargs, Mapping):
            raise ConfigError(f"expected a mapping, got {solver_kwargs!r}", path="solver_kwargs")
        self.solver_kwargs = dict(solver_kwargs or {})
        self.max_weight = _number(max_weight, "max_weight", high=1.0, none=True)
        self.cash = _number(cash, "cash", high=1.0)
        if not isinstance(industry_neutral, bool | list | tuple):
            raise ConfigError(f"expected true/false or a list of factor names, got {industry_neutral!r}",
                              path="industry_neutral")  # fmt: skip
        self.industry_neutral = industry_neutral
        self.industry_tolerance = _number(industry_tolerance, "industry_tolerance")
        self.te_cap = _number(te_cap, "te_cap", none=True)
        self.tc_penalty = _number(tc_penalty, "tc_penalty")
        self.long_short = LongShort.parse(long_short)
        self.fallback = check_fallbacks(fallback)
        self.solver = choose_solver(solver, cones=self.te_cap is not None)
        #: how the last call went.
        self.last: SolveInfo | None = None
        self._problems: dict[tuple[Any, ...], _Problem] = {}

    # -- the call ----------------------------------------------------------------------------------------------

    def __call__(
        self,
        r: np.ndarray,
        F: np.ndarray,
        cov_b: np.ndarray,
        var_u: np.ndarray,
        w0: np.ndarray | None,
        wb: np.ndarray,
        mfh: np.ndarray | None = None,
        mfs: np.ndarray | None = None,
        factor_names: Sequence[str] | None = None,
        shortable: np.ndarray | None = None,
    ) -> np.ndarray:
        """Optimal weights (Qlib's argument names; ``var_u`` are specific *variances*; ``shortable``: which names
        may take a negative weight under ``long_short``, None for all)."""
        r, F, cov_b, var_u, wb, w0 = self._checked(r, F, cov_b, var_u, wb, w0)
        n, k = F.shape
        root = psd_root(cov_b, "factor covariance")  # checked before anything is computed from it
        if self.scale_return:
            spread = r.std()
            if spread > 0:
                r = r / spread * np.sqrt(np.mean(np.einsum("ij,jk,ik->i", F, cov_b, F) + var_u))
            else:
                logger.warning("the scores have no spread (all equal): no view, the portfolio tracks the benchmark")
                r = np.zeros_like(r)
        lb, ub = self._bounds(wb, w0, mfh, mfs, shortable)
        limits = self._factor_limits(k, factor_names)
        turnover = self.delta is not None and w0.sum() > 0
        uses_w0 = turnover or (self.tc_penalty > 0 and w0.sum() > 0)
        values = self._parameter_values(r, F, root, var_u, wb, w0, lb, ub, limits)
        what = f"enhanced indexing over {n} names"
        problem = self._problem(n, k, limits, turnover, uses_w0)
        status = problem.solve(values, self.solver, self.solver_kwargs)
        if accept(status, what, self.solver):
            return self._finish(problem.weights(), r, F, cov_b, var_u, wb, status)
        for fallback in self.fallback:
            if fallback == "drop_turnover" and turnover:
                logger.warning("%s: %s without the turnover limit (status was %r)", what, "re-solving", status)
                retry = self._problem(n, k, limits, False, self.tc_penalty > 0 and w0.sum() > 0)
                second = retry.solve(values, self.solver, self.solver_kwargs)
                if accept(second, what, self.solver):
                    return self._finish(retry.weights(), r, F, cov_b, var_u, wb, second, fallback)
                status = second
            elif fallback == "hold":
                logger.warning("%s failed (status %r): keeping the current weights (fallback 'hold')", what, status)
                self.last = SolveInfo(status, self.solver, float("nan"), "hold")
                return w0.copy()
            elif fallback == "benchmark":
                logger.warning("%s failed (status %r): using the benchmark weights (fallback 'benchmark')", what,
                               status)  # fmt: skip
                self.last = SolveInfo(status, self.solver, float("nan"), "benchmark")
                return wb.copy()
        raise SolveError(f"{what} found no optimal portfolio{_hint(status, lb, ub, self)}", status=status,
                         solver=self.solver)  # fmt: skip

    # -- pieces ------------------------------------------------------------------------------------------------

    @staticmethod
    def _checked(r: Any, F: Any, cov_b: Any, var_u: Any, wb: Any, w0: Any) -> tuple[np.ndarray, ...]:
        r = np.asarray(r, dtype=np.float64).reshape(-1)
        F = np.atleast_2d(np.asarray(F, dtype=np.float64))
        cov_b = np.atleast_2d(np.asarray(cov_b, dtype=np.float64))
        var_u = np.asarray(var_u, dtype=np.float64).reshape(-1)
        wb = np.asarray(wb, dtype=np.float64).reshape(-1)
        n = len(r)
        w0 = np.zeros(n) if w0 is None else np.asarray(w0, dtype=np.float64).reshape(-1)
        for name, arr, shape in (("F", F, (n, F.shape[1])), ("cov_b", cov_b, (F.shape[1], F.shape[1])),
                                 ("var_u", var_u, (n,)), ("wb", wb, (n,)), ("w0", w0, (n,))):  # fmt: skip
            if arr.shape != shape:
                raise DataError(f"{name} has shape {arr.shape}, expected {shape}")
            if not np.isfinite(arr).all():
                raise DataError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite values")
        if not np.isfinite(r).all():
            raise DataError(f"the scores have {int((~np.isfinite(r)).sum())} NaN or infinite values (fill them first: "
                            "the strategies give missing scores the day's lowest)")  # fmt: skip
        if (var_u < 0).any():
            raise DataError("specific variances must be non-negative")
        return r, F, cov_b, var_u, wb, w0

    def _bounds(self, wb: np.ndarray, w0: np.ndarray, mfh: Any, mfs: Any,
                shortable: Any = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        ls = self.long_short
        lb = np.full_like(wb, -ls.max_short) if ls else np.zeros_like(wb)
        if ls and shortable is not None:
            allowed = np.asarray(shortable, dtype=bool).reshape(-1)
            if allowed.shape != wb.shape:
                raise DataError(f"shortable has shape {allowed.shape}, expected {wb.shape}")
            lb[~allowed] = 0.0
        ub = np.ones_like(wb)
        if self.b_dev is not None:
            lb = np.maximum(lb, wb - self.b_dev)
            ub = np.minimum(ub, wb + self.b_dev)
        if self.max_weight is not None:
            ub = np.minimum(ub, self.max_weight)
            lb = np.minimum(lb, ub)
        if mfh is not None:
            hold = np.asarray(mfh, dtype=bool)
            lb[hold] = w0[hold]
            ub[hold] = w0[hold]
        if mfs is not None:
            sell = np.asarray(mfs, dtype=bool)
            lb[sell] = 0.0
            ub[sell] = 0.0
        return lb, ub

    def _factor_limits(self, k: int, names: Sequence[str] | None) -> np.ndarray | None:
        """One limit per factor (``inf`` for none), or None when no factor is limited."""
        limits = np.full(k, np.inf)
        if self.f_dev is not None:
            if isinstance(self.f_dev, np.ndarray) and len(self.f_dev) != k:
                raise ConfigError(f"f_dev has {len(self.f_dev)} limits for {k} factors", path="f_dev")
            limits[:] = self.f_dev
        if self.industry_neutral:
            if names is None:
                raise ConfigError("industry_neutral needs the factor names (risk data with named factors)",
                                  path="industry_neutral")  # fmt: skip
            if self.industry_neutral is True:
                chosen = [i for i, name in enumerate(names) if str(name).startswith("industry")]
                if not chosen:
                    raise ConfigError("industry_neutral: the risk data has no factor named industry*",
                                      path="industry_neutral")  # fmt: skip
            else:
                missing = [x for x in self.industry_neutral if x not in names]
                if missing:
                    raise ConfigError(f"industry_neutral names unknown factor {missing[0]!r}", path="industry_neutral")
                chosen = [list(names).index(x) for x in self.industry_neutral]
            limits[chosen] = np.minimum(limits[chosen], self.industry_tolerance)
        return limits if np.isfinite(limits).any() else None

    def _parameter_values(self, r: np.ndarray, F: np.ndarray, root: np.ndarray, var_u: np.ndarray, wb: np.ndarray,
                          w0: np.ndarray, lb: np.ndarray, ub: np.ndarray,
                          limits: np.ndarray | None) -> dict[str, Any]:  # fmt: skip
        g = F @ root
        su = np.sqrt(var_u)
        values: dict[str, Any] = {"r": r, "g": g, "gb": g.T @ wb, "su": su, "sb": su * wb, "lb": lb, "ub": ub,
                                  "w0": w0, "delta": self.delta if self.delta is not None else 0.0}  # fmt: skip
        if limits is not None:
            idx = np.flatnonzero(np.isfinite(limits))
            values.update(fl=F[:, idx], vb=F[:, idx].T @ wb, fdev=limits[idx])
        return values

    def _problem(self, n: int, k: int, limits: np.ndarray | None, turnover: bool, uses_w0: bool) -> _Problem:
        n_limits = 0 if limits is None else int(np.isfinite(limits).sum())
        key = (n, k, n_limits, turnover, uses_w0)
        if key not in self._problems:
            self._problems[key] = _Problem(self, n, k, n_limits, turnover, uses_w0)
        return self._problems[key]

    def _finish(self, w: np.ndarray, r: np.ndarray, F: np.ndarray, cov_b: np.ndarray, var_u: np.ndarray,
                wb: np.ndarray, status: str, fallback: str | None = None) -> np.ndarray:  # fmt: skip
        w = np.asarray(w, dtype=np.float64).copy()
        if self.long_short is None:
            total = w.sum()
            w[w < self.epsilon] = 0.0
            if w.sum() <= 0:
                raise SolveError("enhanced indexing left no weight above epsilon", status=status, solver=self.solver)
            w *= (1.0 if self.cash == 0 else min(total, 1.0)) / w.sum()
        else:  # zero the dust, then scale the longs so that Σw = net again (the gross can only fall)
            w[np.abs(w) < self.epsilon] = 0.0
            longs = w > 0
            if longs.any():
                w[longs] *= (self.long_short.net - w[~longs].sum()) / w[longs].sum()
        self.last = SolveInfo(status, self.solver, objective(w, r, F, cov_b, var_u, wb, self.lamb), fallback)
        return w


def objective(w: np.ndarray, r: np.ndarray, F: np.ndarray, cov_b: np.ndarray, var_u: np.ndarray, wb: np.ndarray,
              lamb: float) -> float:  # fmt: skip
    """Qlib's objective ``d'r − λ·(v'Σ_b v + Σσ_u²d²)`` at ``w`` (``r`` as scaled)."""
    d = w - wb
    v = d @ F
    return float(d @ r - lamb * (v @ cov_b @ v + var_u @ (d * d)))


def _hint(status: str, lb: np.ndarray, ub: np.ndarray, opt: EnhancedIndexingOptimizer) -> str:
    """Why the problem may be infeasible, when the bounds alone show it."""
    if status not in ("infeasible", "infeasible_inaccurate"):
        return ""
    low, high = (1.0 - opt.cash, 1.0) if opt.long_short is None else (opt.long_short.net, opt.long_short.net)
    if ub.sum() < low - 1e-9:
        return f" (the upper bounds sum to {ub.sum():.4f} < {low:.4f}: b_dev, max_weight or must-sell too tight)"
    if lb.sum() > high + 1e-9:
        return f" (the lower bounds sum to {lb.sum():.4f} > {high:.4f}: b_dev or must-hold too tight)"
    if (lb > ub + 1e-12).any():
        return " (a name's lower bound exceeds its upper bound)"
    return " (the constraints cannot all hold: check delta, f_dev, te_cap and industry_neutral)"


class _Problem:
    """One DPP problem of a given shape; :meth:`solve` sets its parameters and solves."""

    def __init__(self, opt: EnhancedIndexingOptimizer, n: int, k: int, n_limits: int, turnover: bool,
                 uses_w0: bool) -> None:  # fmt: skip
        import cvxpy as cp

        ls = opt.long_short
        p = {
            "r": cp.Parameter(n), "g": cp.Parameter((n, k)), "gb": cp.Parameter(k), "su": cp.Parameter(n, nonneg=True),
            "sb": cp.Parameter(n), "lb": cp.Parameter(n), "ub": cp.Parameter(n), "w0": cp.Parameter(n),
            "delta": cp.Parameter(nonneg=True),
        }  # fmt: skip
        w = cp.Variable(n) if ls else cp.Variable(n, nonneg=True)
        factor_part = p["g"].T @ w - p["gb"]
        specific_part = cp.multiply(p["su"], w) - p["sb"]
        risk = cp.sum_squares(factor_part) + cp.sum_squares(specific_part)
        gain = p["r"] @ w - opt.lamb * risk
        if opt.tc_penalty > 0 and uses_w0:
            gain = gain - opt.tc_penalty * cp.norm1(w - p["w0"])
        cons = [w >= p["lb"], w <= p["ub"]]
        if ls:
            cons += [cp.sum(w) == ls.net, cp.norm1(w) <= ls.gross]
        elif opt.cash > 0:
            cons += [cp.sum(w) <= 1.0, cp.sum(w) >= 1.0 - opt.cash]
        else:
            cons.append(cp.sum(w) == 1.0)
        if n_limits:
            p.update(fl=cp.Parameter((n, n_limits)), vb=cp.Parameter(n_limits),
                     fdev=cp.Parameter(n_limits, nonneg=True))
            v = p["fl"].T @ w - p["vb"]
            cons += [v <= p["fdev"], v >= -p["fdev"]]
        if opt.te_cap is not None:
            cons.append(cp.norm(cp.hstack([factor_part, specific_part]), 2) <= opt.te_cap)
        if turnover:
            cons.append(cp.norm1(w - p["w0"]) <= p["delta"])
        self.params = p
        self.w = w
        self.problem = cp.Problem(cp.Maximize(gain), cons)
        assert self.problem.is_dcp(dpp=True), "the enhanced-indexing problem must be DPP"

    def solve(self, values: Mapping[str, Any], solver: str, solver_kwargs: Mapping[str, Any]) -> str:
        for name, param in self.params.items():
            param.value = values[name]
        if self.w.value is None:
            self.w.value = values["w0"] if values["w0"].sum() > 0 else np.clip(values["lb"], 0, None)
        return solve(self.problem, solver, solver_kwargs=dict(solver_kwargs))

    def weights(self) -> np.ndarray:
        return np.asarray(self.w.value, dtype=np.float64)
