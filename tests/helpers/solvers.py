"""A solver object for injection (``Options(solver=FakeSolver(fake))``): no monkeypatching."""

from __future__ import annotations


class FakeSolver:
    """A solver object (``milp.solvers.base.Solver``) that calls ``fake(milp, time_limit, name, cancel=...)``;
    injected with ``Options(solver=FakeSolver(fake))`` on both the MILP and the input-split path."""

    def __init__(self, fake, name: str = "cbc") -> None:
        self.fake = fake
        self.name = name

    def solve(self, milp, time_limit=None, cancel=None):
        return self.fake(milp, time_limit, self.name, cancel=cancel)
