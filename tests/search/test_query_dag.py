"""The bound-query API (``search.query``) on DAG networks with max layers: every method contains
sampled outputs and nests in the one before, ``milp`` is exact (HiGHS) against brute force,
``layer_bounds`` covers every layer's pre-activations (max layers: before the max)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.dag import dag_forward, lipschitz_inf, maxpool_network, residual_network
from tests.helpers.milp_checks import grid
from verifier.milp.solvers.highs import MILP_PAD_ABS, MILP_PAD_REL, milp_gap_tolerance
from verifier.search.query import METHODS, layer_bounds, linear_query, output_bounds

#: the methods that nest (``exact`` is to its gap; tests/search/test_query_exact.py checks it)
NESTED = [m for m in METHODS if m != "exact"]

LO, HI = -np.ones(2), np.ones(2)
NETS = {
    "pool": lambda real: maxpool_network(3, real=real),
    "residual_pool": lambda real: residual_network(4, pool=True, real=real),
}
N_GRID = 601


@pytest.fixture(scope="module")
def grid_outputs():
    cache = {}

    def get(name, real):
        if (name, real) not in cache:
            net = NETS[name](real)
            pts = grid(LO, HI, N_GRID)
            cache[name, real] = net, pts, dag_forward(net, pts)
        return cache[name, real]

    return get


@pytest.mark.parametrize("name", sorted(NETS))
def test_methods_nest_contain_samples_and_milp_is_exact(grid_outputs, name):
    net, _, Y = grid_outputs(name, True)
    slack = lipschitz_inf(net) * (2.0 / (N_GRID - 1)) / 2
    prev = None
    for m in NESTED:
        b = output_bounds(net, LO, HI, method=m, timeout=60)
        assert np.all(Y >= b.lower - 1e-9) and np.all(Y <= b.upper + 1e-9), m
        if prev is not None:
            assert np.all(b.lower >= prev.lower - 1e-12) and np.all(b.upper <= prev.upper + 1e-12), m
        prev = b
    assert prev.method == "milp" and prev.exact.all()
    for v, g, sign in ((prev.lower, Y.min(axis=0), -1.0), (prev.upper, Y.max(axis=0), 1.0)):
        tol = 2 * milp_gap_tolerance(np.abs(v)) + MILP_PAD_ABS + MILP_PAD_REL * np.abs(v)
        assert np.all(sign * (v - g) <= slack + tol), (m, v, g)


@pytest.mark.parametrize("name", sorted(NETS))
def test_float32_linear_query_contains_samples(grid_outputs, name):
    net, _, Y = grid_outputs(name, False)
    C = np.array([[1.0, -1.0], [0.5, 2.0]])
    for m in NESTED:
        q = linear_query(net, LO, HI, C, d=[0.25, -1.0], method=m, timeout=60)
        v = Y @ C.T + np.array([0.25, -1.0])
        assert np.all(v >= q.lower - 1e-9) and np.all(v <= q.upper + 1e-9), m


@pytest.mark.parametrize("method", ["interval", "symbolic", "lp"])
def test_layer_bounds_contain_every_pre_activation(grid_outputs, method):
    net, pts, _ = grid_outputs("residual_pool", False)
    b = layer_bounds(net, LO, HI, method, timeout=60)
    pres = net.pre_activations(pts[::7])
    assert [p.shape[1] for p in pres] == [layer.n_out for layer in net.layers]
    for k, p in enumerate(pres):
        assert b.lower[k].shape == (net.layers[k].n_out,)
        assert np.all(p >= b.lower[k] - 1e-9) and np.all(p <= b.upper[k] + 1e-9), (method, k)
