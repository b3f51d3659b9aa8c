"""The bound-query API (``search.query``) on its own: each method nests in the one before, every
bound contains sampled outputs, ``d`` shifts, bad methods and shapes are refused."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import RELU, random_network
from verifier.errors import VerifierError
from verifier.search.query import METHODS, layer_bounds, linear_query, output_bounds


@pytest.fixture(scope="module")
def net():
    return random_network(4, RELU, widths=(3, 8, 8, 2))


LO, HI = -np.ones(3), np.ones(3)


def test_methods_nest_and_contain_samples(net):
    Y = net.forward(np.random.default_rng(0).uniform(LO, HI, size=(3000, 3)))
    prev, found = None, {}
    for m in METHODS:
        b = output_bounds(net, LO, HI, method=m, timeout=30)
        found[m] = b
        if m == "exact":  # to its gap: it nests in symbolic, not (always) in milp's tighter tolerance
            prev = found["symbolic"]
        assert b.method == m and b.lower.shape == (2,) and b.time_s >= 0
        assert np.all(Y >= b.lower - 1e-9) and np.all(Y <= b.upper + 1e-9), m
        if prev is not None:
            assert np.all(b.lower >= prev.lower - 1e-12) and np.all(b.upper <= prev.upper + 1e-12), m
        prev = b
        if m not in ("milp", "exact"):
            assert not b.exact.any()
    assert "lower" in prev.to_json()
    ex, milp = found["exact"], found["milp"]  # within the gap (plus float32 rounding) of the MILP's extrema
    assert ex.exact.all() and np.all(ex.lower >= milp.lower - 1e-3 - 1e-5) and np.all(ex.upper <= milp.upper + 1e-3 + 1e-5)


def test_linear_query_with_offset(net):
    C = np.array([[1.0, -1.0]])
    a = linear_query(net, LO, HI, C, method="symbolic")
    b = linear_query(net, LO, HI, C, d=[2.5], method="symbolic")
    assert np.allclose(b.lower, a.lower + 2.5) and np.allclose(b.upper, a.upper + 2.5)
    X = np.random.default_rng(1).uniform(LO, HI, size=(2000, 3))
    v = net.forward(X) @ C.T
    assert np.all(v >= a.lower - 1e-9) and np.all(v <= a.upper + 1e-9)


def test_layer_bounds_lp_nests_in_symbolic(net):
    sym = layer_bounds(net, LO, HI, "symbolic")
    lp = layer_bounds(net, LO, HI, "lp", timeout=30)
    for a, b, c, d in zip(lp.lower, lp.upper, sym.lower, sym.upper):
        assert np.all(a >= c) and np.all(b <= d)


def test_refused(net):
    with pytest.raises(VerifierError, match="unknown bound method"):
        output_bounds(net, LO, HI, method="magic")
    with pytest.raises(VerifierError, match="output coefficients"):
        linear_query(net, LO, HI, np.ones((1, 3)))
