"""MILP / LP back-ends: ``cbc`` (PuLP driving the bundled CBC binary, or HiGHS through PuLP),
``highs`` (HiGHS in-process via ``highspy``: repeated LP / MILP optimisation, certified LP bounds),
the ``Solver`` protocol and ``get_solver``, which turns a name or an object into a solver.

To add a solver: implement ``Solver`` (a ``name`` and ``solve(milp, time_limit, cancel)``
returning a ``SolveOutcome``; report ``infeasible`` only on an explicit proof) and pass the object
as ``Options(solver=...)``, or give it a name with ``register_solver`` (then ``--solver NAME`` works
on the command line of this process; batch workers are other processes and know only the built-in
names).
"""

from __future__ import annotations

from collections.abc import Callable

from ...errors import SolverError
from . import cbc as _cbc
from .base import SOLVERS, TOLERANCES, SolveOutcome, Solver


class PulpSolver:
    """One of the named solvers (``"cbc"`` / ``"highs"``) run through PuLP (``solvers.cbc.solve``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        # whether ``cancel`` stops a running solve (the CBC process is killed; HiGHS via PuLP is not):
        # solves side by side (``--jobs``) need it. A ``Solver`` without the attribute is assumed to.
        self.cancellable = name == "cbc"

    def solve(self, milp, time_limit: float | None = None, cancel=None) -> SolveOutcome:
        return _cbc.solve(milp, time_limit, self.name, cancel=cancel)

    def __repr__(self) -> str:
        return f"PulpSolver({self.name!r})"


_REGISTERED: dict[str, Callable[[], Solver]] = {}


def register_solver(name: str, factory: Callable[[], Solver] | None) -> None:
    """Make ``name`` a solver name (``factory()`` builds the solver); ``None`` removes it again.
    The built-in names cannot be replaced."""
    if name in SOLVERS:
        raise SolverError(f"{name!r} is a built-in solver name")
    if factory is None:
        _REGISTERED.pop(name, None)
    else:
        _REGISTERED[name] = factory


def solver_names() -> tuple[str, ...]:
    """The built-in solver names and the registered ones."""
    return SOLVERS + tuple(_REGISTERED)


def get_solver(solver: str | Solver) -> Solver:
    """A solver object for a name (checked to be usable here) or a ``Solver`` object as it is."""
    if isinstance(solver, str):
        if solver in _REGISTERED:
            return _REGISTERED[solver]()
        _cbc.check_solver(solver)
        return PulpSolver(solver)
    if isinstance(solver, Solver):
        return solver
    raise SolverError(f"solver must be one of {', '.join(SOLVERS)} or an object with a name and a "
                      f"solve(milp, time_limit, cancel) method, got {solver!r}")


def solver_name(solver: str | Solver) -> str:
    return solver if isinstance(solver, str) else str(getattr(solver, "name", type(solver).__name__))


__all__ = ["SOLVERS", "TOLERANCES", "PulpSolver", "SolveOutcome", "Solver", "get_solver", "register_solver",
           "solver_name", "solver_names"]
