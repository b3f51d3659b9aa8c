"""What every solver back-end shares: the outcome type, the tolerances the soundness margin
depends on, the solver protocol and the lookup of a solver by name."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

#: integrality and primal feasibility tolerances handed to the solvers. The primal tolerance stays at
#: the solvers' default 1e-7: a tighter one does not make an *infeasible* verdict safer but less
#: reliable (the LP's own rounding noise then exceeds it). The bundled CBC at 1e-9 with preprocessing
#: off answered "proven infeasible" on feasible disjunct MILPs of small ReLU nets with weights ~1e3
#: (tests/soundness/test_review_dag.py). The margin ``tau`` covers the rows a solver point may violate.
TOLERANCES = {"integer": 1e-9, "primal": 1e-7}
SOLVERS = ("cbc", "highs")


@dataclass
class SolveOutcome:
    status: str  # "infeasible" | "feasible" | "optimal" | "timeout" | "error" | "cancelled"
    values: np.ndarray | None  # a point (all variables) when feasible / optimal
    solver: str
    time_s: float
    message: str = ""
    objective: float | None = None



@runtime_checkable
class Solver(Protocol):
    """A MILP back-end: ``solve`` returns a ``SolveOutcome`` whose ``infeasible`` status is the only
    one a caller may turn into a proof. ``name`` is reported in the stats."""

    name: str

    def solve(self, milp, time_limit: float | None = None, cancel=None) -> SolveOutcome: ...


@contextlib.contextmanager
def quiet_stdout():
    """Silence C-level stdout (HiGHS prints a banner when constructed) without touching Python's."""
    try:
        fd = os.dup(1)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


