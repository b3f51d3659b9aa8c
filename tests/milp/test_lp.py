"""LP bounds (``verifier.lp.LinearProgram`` over relaxed encodings) are certified by weak duality.

HiGHS is a core dependency, so there is one LP path on every install: the solver's row duals are
turned into a bound by ``_dual_bound`` in float64. That bound must be sound for *any* duals (a bad
LP solve may only make it loose), and the LP relaxation must contain every real forward pass.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from tests.helpers.networks import ACT_BY_NAME, random_network
from verifier.bounds import symbolic_bounds
from verifier.encoding import encode, output_rows
from verifier.lp import LinearProgram


def _setup(seed: int, act_name: str = "relu"):
    net = random_network(seed, ACT_BY_NAME[act_name], widths=(3, 8, 8, 2))
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    milp = encode(net, symbolic_bounds(net, lo, hi), lo, hi)
    return net, lo, hi, milp


def _output_objective(net, milp, j: int):
    e = np.zeros((1, net.n_outputs))
    e[0, j] = 1.0
    (idx, val, rhs), = output_rows(net, milp, np.zeros((1, net.n_inputs)), e, np.zeros(1))
    return idx, val, -rhs


def test_one_lp_path_only():
    """No solver choice is left in the LP engine (the uncertified CBC fallback is gone)."""
    params = inspect.signature(LinearProgram).parameters
    assert list(params) == ["milp", "integer"]
    assert not hasattr(LinearProgram, "_cbc_min")


@pytest.mark.parametrize("act_name", ["relu", "leaky0.1", "clip_half"])
@pytest.mark.parametrize("seed", range(4))
def test_lp_bounds_contain_every_forward_pass(seed, act_name):
    net, lo, hi, milp = _setup(seed, act_name)
    xs = lo + (hi - lo) * np.random.default_rng(seed).random((3000, 3))
    ys = net.forward(xs)
    prog = LinearProgram(milp, integer=False)
    for j in range(net.n_outputs):
        idx, val, const = _output_objective(net, milp, j)
        v_lo, ex_lo = prog.minimize(idx, val)
        v_hi, ex_hi = prog.maximize(idx, val)
        assert ex_lo and ex_hi and v_lo is not None and v_hi is not None
        assert v_lo + const <= ys[:, j].min()
        assert v_hi + const >= ys[:, j].max()


@pytest.mark.parametrize("seed", range(5))
def test_dual_bound_is_sound_for_any_duals(seed):
    """Weak duality from arbitrary (even wrong-signed, badly scaled) duals never exceeds the LP
    optimum; from the solver's own duals it is the optimum up to the padding."""
    net, _, _, milp = _setup(seed)
    prog = LinearProgram(milp, integer=False)
    idx, val, _ = _output_objective(net, milp, 0)
    opt, exact = prog.minimize(idx, val)
    assert exact and opt is not None
    # the optimum of the LP, from HiGHS's primal objective (not certified, only for comparison)
    primal = float(prog._h.getInfo().objective_function_value)
    assert opt <= primal
    assert primal - opt <= 1e-6 * (1 + abs(primal))
    y_opt = np.asarray(prog._h.getSolution().row_dual, dtype=np.float64)
    assert prog._dual_bound(idx, val, y_opt) == opt
    rng = np.random.default_rng(seed)
    for k in range(50):
        y = rng.standard_normal(milp.n_constraints) * rng.uniform(0.01, 10)
        if k % 2:
            y = y_opt * rng.uniform(0.0, 2.0, milp.n_constraints)  # near-optimal but perturbed
        assert prog._dual_bound(idx, val, y) <= primal + 1e-9 * (1 + abs(primal))
