"""Checks that a MILP encoding of a 2-input network is exact, against brute force.

``check_exact``: for every output, the MILP's maximum (minimum) is at least (at most) every value
of a dense grid of forward passes (sound), the solver's optimal input really attains it (exact:
the optimum is a value of the network), so it lies within the grid's Lipschitz slack of the grid's
extremum; and at a coarse grid of inputs, fixing the input variables leaves exactly the forward
value feasible (min = max = forward pass: the encoding neither cuts off the network's value nor
admits another one).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tests.helpers.dag import dag_forward, lipschitz_inf
from verifier.milp.encoding import MILP, output_rows
from verifier.milp.solvers import TOLERANCES
from verifier.milp.solvers.highs import LinearProgram
from verifier.solve import solve


def output_row(network, milp: MILP, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``c @ y`` as ``val . v[idx] + const`` over the MILP's variables (no float widening)."""
    (idx, val, rhs), = output_rows(network, milp, np.zeros((1, network.n_inputs)), c[None, :], np.zeros(1),
                                   widen=False)
    return idx, val, -rhs


def extreme(network, milp: MILP, c: np.ndarray, maximize: bool, solver: str = "highs") -> tuple[float, np.ndarray]:
    """The optimum of ``c @ y`` and the input of the optimal point."""
    idx, val, const = output_row(network, milp, c)
    m = dataclasses.replace(milp, objective=dict(zip(idx.tolist(), val.tolist())))
    out = solve(m, time_limit=60, solver=solver, maximize=maximize)
    assert out.status == "optimal", (out.status, out.message)
    return float(val @ out.values[idx]) + const, out.values[milp.input_vars]


def fixed(milp: MILP, x0: np.ndarray) -> MILP:
    lb, ub = milp.lb.copy(), milp.ub.copy()
    lb[milp.input_vars] = x0
    ub[milp.input_vars] = x0
    return dataclasses.replace(milp, lb=lb, ub=ub, objective={})


def range_at(network, milp: MILP, x0: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Min and max of ``c @ y`` with the inputs fixed to ``x0`` (HiGHS in-process, binaries kept)."""
    idx, val, const = output_row(network, milp, c)
    prog = LinearProgram(fixed(milp, x0), integer=True)
    lo, hi = prog.mip_minimize(idx, val), prog.mip_minimize(idx, -val)
    assert lo.optimal and hi.optimal and lo.incumbent is not None and hi.incumbent is not None, "fixed input infeasible"
    return lo.incumbent + const, -hi.incumbent + const


def grid(lower: np.ndarray, upper: np.ndarray, n: int) -> np.ndarray:
    a, b = np.meshgrid(np.linspace(lower[0], upper[0], n), np.linspace(lower[1], upper[1], n), indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def check_exact(network, milp: MILP, lower: np.ndarray, upper: np.ndarray, n_grid: int = 201, n_fixed: int = 5,
                solver: str = "highs", free: tuple[int, int] = (0, 1), x_fixed: np.ndarray | None = None) -> None:
    """The assertions of the module docstring; ``free``: the two inputs that vary (the others are
    fixed to ``x_fixed``, for networks with more inputs)."""
    free = list(free)
    full = (lambda pts: pts) if x_fixed is None else (lambda pts: _embed(x_fixed, free, pts))
    pts = grid(lower[free], upper[free], n_grid)
    ys = dag_forward(network, full(pts))
    h = float(np.max(upper[free] - lower[free])) / (n_grid - 1)
    slack = lipschitz_inf(network) * h / 2 + 1e-6  # every input is within h / 2 (sup norm) of a grid point
    for j in range(network.n_outputs):
        c = np.eye(network.n_outputs)[j]
        for maximize, gval in ((True, ys[:, j].max()), (False, ys[:, j].min())):
            v, x = extreme(network, milp, c, maximize, solver)
            sign = 1.0 if maximize else -1.0
            assert sign * (v - gval) >= -1e-6, f"MILP {'max' if maximize else 'min'} {v} beyond grid {gval}: unsound"
            assert sign * (v - gval) <= slack[j], f"MILP optimum {v} vs grid {gval}: too loose"
            assert np.all(x >= lower - TOLERANCES["primal"]) and np.all(x <= upper + TOLERANCES["primal"])  # solver's
            attained = dag_forward(network, np.clip(x, lower, upper)[None, :])[0, j]
            assert abs(attained - v) <= 1e-5 * (1 + abs(v)), f"optimum {v} not attained ({attained}): not exact"
    for x0 in full(grid(lower[free], upper[free], n_fixed)):
        y = dag_forward(network, x0[None, :])[0]
        for j in range(network.n_outputs):
            lo, hi = range_at(network, milp, x0, np.eye(network.n_outputs)[j])
            assert abs(lo - y[j]) <= 1e-6 * (1 + abs(y[j])) and abs(hi - y[j]) <= 1e-6 * (1 + abs(y[j])), \
                (x0, j, lo, hi, y[j])


def _embed(x_fixed: np.ndarray, free: list[int], pts: np.ndarray) -> np.ndarray:
    X = np.repeat(x_fixed[None, :], pts.shape[0], axis=0)
    X[:, free] = pts
    return X
