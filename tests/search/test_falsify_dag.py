"""Falsification over DAG networks: the backward pass walks the sources of every layer (residual
skips, a max over windows, sparse weights), checked against finite differences; the search finds
counterexamples on a residual net and a max-pool net; the float32 oracle of in-memory networks
walks the DAG too (checked against the test's own float32 evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.dag_nets import conv1d_network, dag_forward, maxpool_network, residual_network
from verifier import Options, make_spec, verify
from verifier.io.replay import NETWORK_FLOAT32, NetworkOracle
from verifier.linalg import is_sparse
from verifier.search import falsify
from verifier.spec import Constraints

BUILDERS = {"residual": residual_network, "maxpool": maxpool_network}


def _row(n_in: int, ay: list[float], ax: list[float] | None = None, rhs: float = 0.0) -> Constraints:
    ax = np.zeros((1, n_in)) if ax is None else np.array([ax])
    return Constraints(ax, np.array([ay]), np.array([rhs]), np.array([False]))


def _central_differences(net, cons, X, h=1e-6):
    grads = np.zeros_like(X)
    for i in range(X.shape[1]):
        e = np.zeros(X.shape[1])
        e[i] = h
        grads[:, i] = (falsify.margins(net, cons, X + e) - falsify.margins(net, cons, X - e)) / (2 * h)
    return grads


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("seed", range(4))
def test_gradient_matches_finite_differences(kind, seed):
    net = BUILDERS[kind](seed)
    assert not net.is_chain
    cons = _row(net.n_inputs, [1.0, -0.5], ax=[0.2, 0.0, -0.1])
    X = np.random.default_rng(seed).uniform(-1, 1, (20, net.n_inputs))
    g, grad = falsify._margin_and_grad(net, cons, X)
    np.testing.assert_allclose(g, falsify.margins(net, cons, X))
    # random points are almost surely away from kinks and ties, where the function is smooth
    np.testing.assert_allclose(grad, _central_differences(net, cons, X), rtol=1e-5, atol=1e-6)


def test_max_gradient_goes_to_the_arg_max():
    net = maxpool_network(0)
    X = np.random.default_rng(0).uniform(-1, 1, (8, net.n_inputs))
    pres = net.pre_activations(X)
    delta = np.ones((8, net.layers[1].n_post))
    # through the max layer alone: each window sends its 1 to exactly its largest candidate
    from verifier import activations

    back = activations.backprop(net.layers[1].activation, pres[1], delta)
    groups = net.layers[1].activation.groups
    for b in range(8):
        expect = np.zeros(8)
        for row in groups:
            cands = row[row >= 0]
            expect[cands[np.argmax(pres[1][b, cands])]] += 1.0
        np.testing.assert_array_equal(back[b], expect)


def _conv_net_gradient(net, x):
    """The test's own gradient of ``y0`` for ``conv1d_network`` (dense arrays, written out by hand):
    ``y = A h2 + B h1``, ``h2 = relu(W1 h1 + b1)``, ``h1 = relu(W0 x + b0)``."""
    W0, W1 = (net.layers[k].weight.toarray() for k in (0, 1))
    W2 = net.layers[2].weight
    n2 = W1.shape[0]
    p1 = W0 @ x + net.layers[0].bias
    h1 = np.maximum(p1, 0)
    p2 = W1 @ h1 + net.layers[1].bias
    d_h1 = (W2[0, :n2] * (p2 > 0)) @ W1 + W2[0, n2:]
    return (d_h1 * (p1 > 0)) @ W0


def test_large_sparse_layer_is_walked_sparse():
    net = conv1d_network(0)
    assert any(is_sparse(layer.weight) for layer in net.layers)
    cons = _row(net.n_inputs, [-1.0])
    X = np.random.default_rng(0).uniform(0, 1, (2, net.n_inputs))
    _, grad = falsify._margin_and_grad(net, cons, X)
    for b in range(2):
        np.testing.assert_allclose(grad[b], -_conv_net_gradient(net, X[b]), rtol=1e-9, atol=1e-12)
    fd = _central_differences(net, cons, X, h=1e-5)
    for i in (0, 150, 399):
        np.testing.assert_allclose(grad[:, i], fd[:, i], rtol=1e-4, atol=1e-6)


def _violated_threshold(net, lower, upper, output=0, seed=0):
    """A threshold on ``y[output]`` that a few random samples miss but the maximum exceeds."""
    rng = np.random.default_rng(seed)
    dense = net.forward(rng.uniform(lower, upper, (20000, net.n_inputs)))[:, output]
    few = net.forward(rng.uniform(lower, upper, (16, net.n_inputs)))[:, output]
    return float(few.max() + 0.8 * (dense.max() - few.max()))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_search_finds_a_counterexample(kind):
    net = BUILDERS[kind](7)
    lower, upper = -np.ones(net.n_inputs), np.ones(net.n_inputs)
    t = _violated_threshold(net, lower, upper)
    cons = _row(net.n_inputs, [-1.0, 0.0], rhs=-t)  # unsafe: y0 >= t
    cands = falsify.search(net, cons, lower, upper, np.random.default_rng(0), n_random=16, restarts=4, steps=60)
    assert falsify.margins(net, cons, cands[:1])[0] <= 0


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_verify_reports_the_dag_counterexample_replayed_in_float32(kind):
    net = BUILDERS[kind](3)
    lower, upper = -np.ones(net.n_inputs), np.ones(net.n_inputs)
    t = _violated_threshold(net, lower, upper)
    res = verify(net, make_spec(lower, upper, [[f"y0 >= {t!r}"]]), options=Options(timeout=60))
    assert res.status == "violated", res.reason
    assert res.stats["found_by"] == "falsification" and res.stats["oracle"] == NETWORK_FLOAT32
    x, y = res.counterexample.input, res.counterexample.output
    np.testing.assert_array_equal(y, dag_forward(net, x, np.float32))
    assert y[0] >= t


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_network_oracle_walks_the_dag(kind):
    net = BUILDERS[kind](5)
    oracle = NetworkOracle(net)
    for x in np.random.default_rng(1).uniform(-1, 1, (20, net.n_inputs)).astype(np.float32):
        y = oracle.run(x)
        np.testing.assert_array_equal(y, dag_forward(net, x, np.float32))
        real, dev = net.float_deviation(x.astype(np.float64))
        assert np.all(np.abs(y - real) <= dev)


def test_network_oracle_takes_sparse_weights():
    net = conv1d_network(0)
    oracle = NetworkOracle(net)
    assert any(is_sparse(w) for w, _, _ in oracle.layers)
    x = np.random.default_rng(0).uniform(0, 1, net.n_inputs).astype(np.float32)
    y = oracle.run(x)
    real, dev = net.float_deviation(x.astype(np.float64))
    assert np.all(np.abs(y - real) <= dev)
    # same float32 arithmetic as the test's own (up to the summation order of the sparse product)
    np.testing.assert_allclose(y, dag_forward(net, x, np.float32), rtol=1e-5)


def test_network_oracle_refuses_sparse_weights_that_are_not_float32():
    from dataclasses import replace

    from verifier.network import Network

    net = conv1d_network(0)
    layers = list(net.layers)
    layers[1] = replace(layers[1], weight=layers[1].weight * (1 + 2.0 ** -30))
    bad = Network(tuple(layers), net.input_shape, net.output_shape)
    assert is_sparse(bad.layers[1].weight)
    with pytest.raises(ValueError, match="layer 1: the weights are not float32"):
        NetworkOracle(bad)
