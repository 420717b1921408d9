"""Choosing a cvxpy solver, solving, and what happens when a solve fails.

Solvers that ship with cvxpy are used: ``auto`` picks the first installed of Clarabel, ECOS, OSQP (problems
without second-order cones only) and SCS. A solve whose status is not ``optimal`` raises
:class:`SolveError` with the solver and the status, unless the optimiser's config names fallbacks, each tried in
order and each logged at WARNING:

- ``drop_turnover``: solve again without the turnover limit (Qlib's second trial);
- ``hold``: keep the current weights (Qlib's last resort, which it takes silently);
- ``benchmark``: the benchmark weights (enhanced indexing).

``optimal_inaccurate`` is accepted with a warning (Qlib accepts it on its second trial only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs

from qcore.errors import ConfigError, RunError

logger = logging.getLogger("qportfolio.optimizer")

#: solvers in the order ``auto`` prefers them; OSQP only for problems without cones.
PREFERRED = ("CLARABEL", "ECOS", "OSQP", "SCS")
FALLBACKS = ("drop_turnover", "hold", "benchmark")
#: tolerance settings per solver so that results agree with an interior-point solve to ~1e-7.
_TIGHT = {
    "OSQP": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iter": 200000},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200000},
}


class SolveError(RunError):
    """An optimisation did not reach an optimal solution.

    :ivar status: cvxpy's status (``infeasible``, ``unbounded``, ``solver_error``...).
    :ivar solver: the solver used.
    """

    def __init__(self, message: str, *, status: str, solver: str) -> None:
        self.status = status
        self.solver = solver
        super().__init__(f"{message}: the solver {solver} ended with status {status!r}")


@attrs.frozen
class SolveInfo:
    """How the last solve went.

    :ivar status: cvxpy's status of the solve whose result was used (``fallback:<name>`` for a fallback).
    :ivar solver: the solver.
    :ivar objective: the problem's objective value in the caller's terms (NaN for a fallback).
    :ivar fallback: the fallback taken, or None.
    """

    status: str
    solver: str
    objective: float
    fallback: str | None = None


def installed_solvers() -> list[str]:
    """The solvers cvxpy can call here."""
    import cvxpy as cp

    return list(cp.installed_solvers())


def choose_solver(requested: str | None, *, cones: bool) -> str:
    """The solver to use: ``requested`` (checked) or the first preferred installed one."""
    available = installed_solvers()
    if requested is None or str(requested).lower() == "auto":
        for name in PREFERRED:
            if name in available and not (cones and name == "OSQP"):
                return name
        raise ConfigError(f"no usable cvxpy solver is installed (installed: {', '.join(available) or 'none'})",
                          path="solver")  # fmt: skip
    name = str(requested).upper()
    if name not in available:
        raise ConfigError(f"solver {requested!r} is not installed (installed: {', '.join(available)})", path="solver")
    if cones and name == "OSQP":
        raise ConfigError("OSQP solves quadratic programs only; this problem has cone constraints (a tracking-error "
                          "cap or a log barrier): choose CLARABEL, ECOS or SCS", path="solver")  # fmt: skip
    return name


def check_fallbacks(value: Any) -> tuple[str, ...]:
    """A fallback list from a config: a name, a list of names, ``qlib`` (drop_turnover then hold) or None."""
    if value is None:
        return ()
    if value == "qlib":
        return ("drop_turnover", "hold")
    items: Sequence[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"expected a fallback name or a list of them, got {value!r}", path="fallback")
    for item in items:
        if item not in FALLBACKS:
            raise ConfigError(f"unknown fallback {item!r} (choose from {', '.join(FALLBACKS)} or 'qlib')",
                              path="fallback")  # fmt: skip
    return tuple(items)


def solve(problem: Any, solver: str, *, warm_start: bool = True, solver_kwargs: dict[str, Any] | None = None) -> str:
    """Solve ``problem`` and return its status (solver exceptions become the status ``solver_error``)."""
    import cvxpy as cp

    kwargs = dict(_TIGHT.get(solver, {}))
    kwargs.update(solver_kwargs or {})
    try:
        problem.solve(solver=solver, warm_start=warm_start, **kwargs)
    except cp.error.SolverError as exc:
        logger.debug("solver %s failed: %s", solver, exc)
        return "solver_error"
    return str(problem.status)


def accept(status: str, what: str, solver: str) -> bool:
    """Whether a status gives usable weights (``optimal_inaccurate`` with a warning)."""
    if status == "optimal":
        return True
    if status == "optimal_inaccurate":
        logger.warning("%s: the solver %s reports an inaccurate optimum; using it", what, solver)
        return True
    return False
