"""The compact triangle LP on DAG networks (residual ReLU nets, max windows): sound against sampled
forward passes, at least as tight as back-substitution, and equal to the relaxed big-M encoding in
real arithmetic (its projection: ``activations/maxpool.py`` for the max rows); with float32 error
bounds it may only be looser (each row widened by the radii)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.dag import dag_forward, maxpool_network, residual_network
from tests.helpers.networks import ACT_BY_NAME, random_network
from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.milp import triangle
from verifier.milp.encoding import encode, output_rows, with_margin
from verifier.milp.solvers.highs import LinearProgram
from verifier.network import Activation, Layer, Network

NETS = {
    "pool": lambda real: maxpool_network(0, real=real),
    "pool_last": lambda real: maxpool_network(1, after=False, real=real),
    "residual": lambda real: residual_network(0, real=real),
    "residual_pool": lambda real: residual_network(2, pool=True, real=real),
}


def _both(net, lo, hi, ay, ax, rhs):
    b = symbolic_bounds(net, lo, hi)
    low, up = linear_bounds(net, b, lo, hi, ay, None, ax)
    t_lo = float(np.max(low - rhs))
    t_hi = max(t_lo, float(np.max(up - rhs)))
    milp = encode(net, b, lo, hi)
    big, t_big = with_margin(milp, output_rows(net, milp, ax, ay, rhs), t_lo, t_hi)
    small, t_small = triangle.triangle_lp(net, b, lo, hi, ay, ax, rhs, t_lo, t_hi)
    v_big, _ = LinearProgram(big).minimize(np.array([t_big]), np.array([1.0]))
    v_small, _ = LinearProgram(small).minimize(np.array([t_small]), np.array([1.0]))
    assert v_big is not None and v_small is not None
    return v_big, v_small, small, big, t_lo


@pytest.mark.parametrize("real", [True, False], ids=["real", "float32"])
@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("seed", range(3))
def test_dag_triangle_lp_is_sound_and_matches_the_relaxed_big_m(name, seed, real):
    net = NETS[name](real)
    assert triangle.worthwhile(net)
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1.0, 0.0, 2)
    hi = lo + rng.uniform(0.3, 1.5, 2)
    ay = rng.standard_normal((2, 2))
    ax = rng.standard_normal((2, 2)) * 0.3
    rhs = rng.standard_normal(2)
    v_big, v_small, small, big, t_lo = _both(net, lo, hi, ay, ax, rhs)
    tol = 1e-8 * (1 + abs(v_big))
    if real:
        assert v_small == pytest.approx(v_big, abs=tol)
    else:
        assert v_small <= v_big + tol
        assert v_small == pytest.approx(v_big, abs=1e-4)  # the radii are float32 roundings: small
    assert v_small >= t_lo - tol  # at least as tight as back-substitution with the same bounds
    assert small.n_vars < big.n_vars and small.n_binaries == 0
    xs = np.vstack([rng.uniform(lo, hi, size=(20000, 2)), lo, hi])
    worst = np.max(dag_forward(net, xs) @ ay.T + xs @ ax.T - rhs, axis=1)
    assert v_small <= worst.min() + 1e-9


def test_max_windows_get_one_column_each_and_single_candidates_none():
    """The LP has a column per input, per unstable ReLU and per max window with two or more remaining
    candidates (counted from ``maxpool.candidates``), plus ``t``."""
    from verifier.activations.maxpool import candidates

    net = maxpool_network(2)
    lo, hi = -np.ones(2), np.ones(2)
    b = symbolic_bounds(net, lo, hi)
    small, t = triangle.triangle_lp(net, b, lo, hi, np.eye(2)[:1], None, np.zeros(1), -100.0, 100.0)
    keep, _, _ = candidates(net.layers[1].activation, b.lower[1], b.upper[1])
    relu = sum(int(np.count_nonzero((b.lower[k] < 0) & (b.upper[k] > 0))) for k in (0, 2))
    assert t == 2 + relu + int(np.count_nonzero(keep.sum(axis=1) >= 2)) == small.n_vars - 1


def test_worthwhile_needs_few_inputs_and_triangle_kinds():
    assert triangle.worthwhile(maxpool_network(0))
    assert triangle.worthwhile(residual_network(0))
    assert not triangle.worthwhile(random_network(0, ACT_BY_NAME["clip01"], widths=(5, 8, 2)))
    wide = Network((Layer(np.ones((4, 100)), np.zeros(4), Activation("max", groups=np.array([[0, 1], [2, 3]]))),
                    Layer(np.ones((1, 2)), np.zeros(1))), (1, 100), (1, 1))
    assert not triangle.worthwhile(wide)


def test_sparse_weights_triangle_lp_matches_the_relaxed_big_m():
    """A 64-input layer of 64 channels of a 1-D convolution (4096 x 64, stored sparse): the triangle LP
    matches the relaxed big-M LP and stays below sampled forward passes."""
    from scipy import sparse

    from tests.helpers.dag import conv1d_matrix
    from verifier.linalg import is_sparse

    rng = np.random.default_rng(7)
    n, ch = 64, 64
    W0 = sparse.vstack([conv1d_matrix(n, rng.standard_normal(3)) for _ in range(ch)]).tocsr()
    zero = W0 * 0.0
    net = Network((Layer(W0, 0.1 * rng.standard_normal(n * ch), Activation("relu"), zero, np.zeros(n * ch)),
                   Layer(rng.standard_normal((2, n * ch)) / 64, np.zeros(2), None, np.zeros((2, n * ch)), np.zeros(2))),
                  (1, n), (1, 2))
    assert is_sparse(net.layers[0].weight) and triangle.worthwhile(net)
    x0 = rng.uniform(-1, 1, n)
    lo, hi = x0 - 0.1, x0 + 0.1
    ay, ax, rhs = np.array([[1.0, -1.0]]), np.zeros((1, n)), np.zeros(1)
    v_big, v_small, small, _, t_lo = _both(net, lo, hi, ay, ax, rhs)
    assert v_small >= t_lo - 1e-8 * (1 + abs(t_lo))
    assert small.n_vars > n + 1  # unstable neurons: the relaxation is exercised
    assert v_small == pytest.approx(v_big, abs=1e-8 * (1 + abs(v_big)))
    xs = rng.uniform(lo, hi, size=(2000, n))
    assert v_small <= float((dag_forward(net, xs) @ ay.T).min()) + 1e-9
