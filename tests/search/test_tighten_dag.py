"""``search.tighten`` on DAG networks, max layers and sparse weights: ``_prefix`` is a valid DAG
computing layer ``k``'s pre-activations, ``lp_bounds`` never loosens and contains every layer's
pre-activations at sampled inputs, ``milp_extrema`` is exact against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.dag import conv_network, dag_forward, lipschitz_inf, maxpool_network, residual_network
from tests.helpers.milp_checks import grid
from verifier.bounds import symbolic_bounds
from verifier.linalg import is_sparse
from verifier.milp.solvers.highs import MILP_PAD_ABS, MILP_PAD_REL, milp_gap_tolerance
from verifier.search.tighten import _prefix, lp_bounds, milp_extrema

LO, HI = -np.ones(2), np.ones(2)
NETS = {
    "pool": lambda: maxpool_network(0, real=False),
    "pool_last": lambda: maxpool_network(1, after=False, real=False),
    "residual": lambda: residual_network(1, real=False),
    "residual_pool": lambda: residual_network(2, pool=True, real=False),
}


def pre_activations(net, X) -> list[np.ndarray]:
    """Every layer's pre-activations at ``X``: the prefix networks' outputs (checked against the
    test's own forward pass of the prefix's layers)."""
    return [dag_forward(_prefix(net, k), X) for k in range(len(net.layers))]


@pytest.mark.parametrize("name", sorted(NETS))
def test_prefix_is_a_valid_dag_ending_in_the_pre_activations(name):
    net = NETS[name]()
    X = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    pres = net.pre_activations(X)
    for k in range(len(net.layers)):
        p = _prefix(net, k)
        assert len(p.layers) == k + 1 and p.layers[-1].activation is None
        assert p.layers[-1].n_out == net.layers[k].n_out  # pre-activations, also for a max layer
        assert all(p.sources(j) == net.sources(j) for j in range(k + 1))
        np.testing.assert_allclose(dag_forward(p, X), pres[k], atol=1e-12)


@pytest.mark.parametrize("name", sorted(NETS))
def test_lp_bounds_never_looser_and_contain_samples(name):
    net = NETS[name]()
    start = symbolic_bounds(net, LO, HI)
    tight = lp_bounds(net, LO, HI, start=start)
    for a, b, c, d in zip(tight.lower, tight.upper, start.lower, start.upper):
        assert np.all(a >= c) and np.all(b <= d) and np.all(a <= b)
    X = np.vstack([np.random.default_rng(1).uniform(LO, HI, (4000, 2)), grid(LO, HI, 41)])
    for k, p in enumerate(pre_activations(net, X)):
        assert np.all(p >= tight.lower[k] - 1e-9) and np.all(p <= tight.upper[k] + 1e-9), k
    assert any(np.any(a > c + 1e-9) or np.any(b < d - 1e-9)
               for a, b, c, d in zip(tight.lower, tight.upper, start.lower, start.upper))


def _check_exact_extrema(net, lower, upper, lo, hi, exact, pts, X):
    """``[lo, hi]`` contains the outputs at ``X`` and, where exact, is within the stated tolerance
    (plus the grid's Lipschitz slack) of their extremes."""
    Y = dag_forward(net, X)
    h = float(np.max(np.diff(np.unique(pts[:, 0]))))
    slack = lipschitz_inf(net) * h / 2
    assert np.all(Y >= lo - 1e-9) and np.all(Y <= hi + 1e-9)
    assert exact.all()
    for v, g, sign in ((lo, Y.min(axis=0), -1.0), (hi, Y.max(axis=0), 1.0)):
        tol = 2 * milp_gap_tolerance(np.abs(v)) + MILP_PAD_ABS + MILP_PAD_REL * np.abs(v)
        assert np.all(sign * (v - g) <= slack + tol + 1e-9), (v, g, slack)


@pytest.mark.parametrize("name", sorted(NETS))
def test_milp_extrema_exact_on_dag_and_max_nets(name):
    net = NETS[name]()
    b = lp_bounds(net, LO, HI)
    lo, hi, exact = milp_extrema(net, LO, HI, np.eye(2), b)
    pts = grid(LO, HI, 601)
    _check_exact_extrema(net, LO, HI, lo, hi, exact, pts, pts)


def test_sparse_conv_lp_bounds_and_milp_extrema():
    n = 512
    net = conv_network(5, n=n, kernel_size=3, real=False)
    assert is_sparse(net.layers[0].weight)
    x0 = np.random.default_rng(3).uniform(-1, 1, n)
    free = [255, 256]
    lower, upper = x0.copy(), x0.copy()
    lower[free], upper[free] = x0[free] - 1.0, x0[free] + 1.0
    start = symbolic_bounds(net, lower, upper)
    b = lp_bounds(net, lower, upper, start=start)
    assert b.n_unstable(net) > 0  # binaries in milp_extrema
    pts = grid(lower[free], upper[free], 121)
    X = np.repeat(x0[None], pts.shape[0], axis=0)
    X[:, free] = pts
    for k, p in enumerate(pre_activations(net, X)):
        assert np.all(p >= b.lower[k] - 1e-9) and np.all(p <= b.upper[k] + 1e-9), k
    lo, hi, exact = milp_extrema(net, lower, upper, np.array([[1.0, 0.0], [1.0, -1.0]]), b)
    Y = dag_forward(net, X)
    C = np.array([[1.0, 0.0], [1.0, -1.0]])
    assert np.all(Y @ C.T >= lo - 1e-9) and np.all(Y @ C.T <= hi + 1e-9) and exact.all()
    h = 2.0 / 120
    L = np.abs(C) @ lipschitz_inf(net)
    assert np.all((Y @ C.T).min(axis=0) - lo <= L * h / 2 + 1e-4)
    assert np.all(hi - (Y @ C.T).max(axis=0) <= L * h / 2 + 1e-4)
