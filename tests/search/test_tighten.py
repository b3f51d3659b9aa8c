"""``search.tighten.lp_bounds`` on its own: never looser than the bounds it starts from, and it
contains the forward values of sampled inputs (every layer's pre-activations)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import RELU, random_network
from verifier.bounds import symbolic_bounds
from verifier.budget import Deadline, clock
from verifier.search.tighten import lp_bounds


def pre_activations(network, X):
    out, z = [], X
    for layer in network.layers:
        p = z @ layer.weight.T + layer.bias
        out.append(p)
        z = layer.activation.apply(p) if layer.activation is not None else p
    return out  # out[k]: layer k's pre-activations, what bounds.lower[k] / upper[k] describe


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_never_looser_and_contains_samples(seed):
    net = random_network(seed, RELU, widths=(3, 10, 10, 2))
    lo, hi = -np.ones(3), np.ones(3)
    start = symbolic_bounds(net, lo, hi)
    tight = lp_bounds(net, lo, hi, start=start)
    assert len(tight.lower) == len(start.lower)
    for a, b, c, d in zip(tight.lower, tight.upper, start.lower, start.upper):
        assert np.all(a >= c) and np.all(b <= d) and np.all(a <= b)
    X = np.random.default_rng(seed).uniform(lo, hi, size=(2000, 3))
    X = np.vstack([X, lo, hi])
    pres = pre_activations(net, X)
    assert len(pres) == len(tight.lower)
    for k, p in enumerate(pres):
        assert np.all(p >= tight.lower[k] - 1e-9) and np.all(p <= tight.upper[k] + 1e-9), k
    # somewhere strictly tighter, or the test shows nothing
    assert any(np.any(a > c + 1e-9) or np.any(b < d - 1e-9)
               for a, b, c, d in zip(tight.lower, tight.upper, start.lower, start.upper))


def test_spent_deadline_returns_the_start_bounds():
    net = random_network(3, RELU, widths=(3, 10, 10, 2))
    lo, hi = -np.ones(3), np.ones(3)
    start = symbolic_bounds(net, lo, hi)
    for deadline in (Deadline(clock() - 1.0), clock() - 1.0):
        tight = lp_bounds(net, lo, hi, start=start, deadline=deadline)
        for a, c in zip(tight.lower + tight.upper, start.lower + start.upper):
            assert np.array_equal(a, c)
