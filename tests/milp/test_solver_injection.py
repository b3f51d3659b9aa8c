"""Solvers by name or as objects (``milp.solvers.get_solver``), and an injected solver object
reaching every solve of ``verify`` on both paths (MILP per disjunct and branch and bound)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tests.helpers.networks import RELU, cancel_network, network_to_onnx
from verifier.errors import SolverError
from verifier.milp.solvers import PulpSolver, SolveOutcome, Solver, get_solver, solver_name
from verifier.spec import make_spec
from verifier.verify import Options, verify


class Recording:
    """Delegates to CBC and records every call."""

    name = "recording-cbc"

    def __init__(self) -> None:
        self.calls = 0
        self.inner = get_solver("cbc")

    def solve(self, milp, time_limit=None, cancel=None) -> SolveOutcome:
        self.calls += 1
        return self.inner.solve(milp, time_limit, cancel)


def test_get_solver_by_name_and_object():
    s = get_solver("cbc")
    assert isinstance(s, PulpSolver) and isinstance(s, Solver) and s.name == "cbc" and s.cancellable
    assert pickle.loads(pickle.dumps(s)).name == "cbc"  # travels to branch-and-bound workers
    obj = Recording()
    assert get_solver(obj) is obj and solver_name(obj) == "recording-cbc"
    with pytest.raises(SolverError, match="unknown solver"):
        get_solver("gurobi")
    with pytest.raises(SolverError, match="solve"):
        get_solver(42)


@pytest.mark.parametrize("strategy", ["milp", "input-split"])
def test_injected_solver_decides(tmp_path, strategy):
    path = network_to_onnx(cancel_network(), RELU, tmp_path / "cancel.onnx")
    solver = Recording()
    res = verify(path, make_spec([-1.0, -1.0], [1.0, 1.0], [["y0 >= 0.76"]]),
                 options=Options(strategy=strategy, solver=solver, falsify=False, timeout=60))
    assert res.status == "holds", res.reason
    assert solver.calls >= 1
    assert res.stats["solver"] == "recording-cbc"
    assert np.isfinite(res.time_s)
