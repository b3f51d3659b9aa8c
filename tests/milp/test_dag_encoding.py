"""The MILP encoding on DAG networks and sparse weights.

* A residual net (a layer reading ``(h, s)``, the output reading ``(h2, x)``), with and without a
  max layer: exact against brute force (``tests.helpers.milp_checks.check_exact``).
* A 1-D convolution stored as a sparse CSR matrix: every row of the MILP holds only the
  convolution's non-zeros over non-constant inputs (counted here with the test's own rule, never
  a dense row over the whole layer input), fixed inputs are folded away, and the encoding is exact
  over two free inputs; the same convolution stored dense gives the same rows.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.helpers.dag import conv1d_matrix, conv_network, dag_forward, residual_network
from tests.helpers.milp_checks import check_exact
from verifier.bounds import interval_bounds, symbolic_bounds
from verifier.linalg import is_sparse
from verifier.milp.encoding import encode, output_rows
from verifier.network import Activation, Layer, Network

LO, HI = -np.ones(2), np.ones(2)


@pytest.mark.parametrize("pool", [False, True], ids=["residual", "residual_pool"])
@pytest.mark.parametrize("method", ["interval", "symbolic"])
@pytest.mark.parametrize("seed", range(3))
def test_residual_net_milp_is_exact(seed, method, pool):
    net = residual_network(seed, pool=pool)
    assert not net.is_chain and net.sources(2) == (2, 1) and net.sources(len(net.layers) - 1)[-1] == 0
    b = (interval_bounds if method == "interval" else symbolic_bounds)(net, LO, HI)
    milp = encode(net, b, LO, HI)
    assert milp.n_binaries > 0
    check_exact(net, milp, LO, HI)


def test_output_rows_of_an_output_layer_reading_the_input_merge_it():
    """The output layer reads ``(h2, x)``: its rows mention each input variable once, with the
    coefficient of the skip connection plus that of ``ax``."""
    net = residual_network(0)
    milp = encode(net, symbolic_bounds(net, LO, HI), LO, HI)
    ax = np.array([[0.5, -2.0]])
    ay = np.array([[1.0, 0.0]])
    (idx, val, _), = output_rows(net, milp, ax, ay, np.zeros(1))
    assert idx.size == np.unique(idx).size
    W = net.layers[-1].weight
    for i, v in enumerate(milp.input_vars):
        assert val[list(idx).index(v)] == pytest.approx(W[0, -2 + i] + ax[0, i], abs=1e-12)


# ---------------------------------------------------------------------------------- sparse rows
def _expected_row_lengths(net: Network, b, lower, upper) -> list[np.ndarray]:
    """Per hidden ReLU layer, the length of each ``y = p`` / ``x = p`` equality (the test's own count):
    1 (its ``y`` or ``x``) + the layer's non-zero weights on inputs that are variables + 1 for ``d``
    where the rounding bound is non-zero (never here: a real-arithmetic net); constant neurons
    (``u <= 0``) have none."""
    is_var = lower != upper
    out = []
    for k, layer in enumerate(net.layers[:-1]):
        W = layer.weight.toarray() if is_sparse(layer.weight) else layer.weight
        u = b.upper[k]
        rows = np.flatnonzero(u > 0)
        out.append(1 + np.count_nonzero(W[rows][:, is_var], axis=1))
        is_var = u > 0
    return out


def _equality_lengths(milp) -> np.ndarray:
    return np.diff(milp.indptr)[milp.is_eq]


@pytest.mark.parametrize("n, stored_sparse", [(512, True), (64, False)])
def test_conv_rows_have_only_the_kernel_non_zeros(n, stored_sparse):
    net = conv_network(0, n=n, kernel_size=3)
    assert is_sparse(net.layers[0].weight) == stored_sparse
    x0 = np.random.default_rng(1).uniform(-1, 1, n)
    lower, upper = x0 - 0.3, x0 + 0.3
    b = symbolic_bounds(net, lower, upper)
    milp = encode(net, b, lower, upper)
    assert milp.n_binaries > 0
    lengths = np.sort(_equality_lengths(milp))
    expected = np.sort(np.concatenate(_expected_row_lengths(net, b, lower, upper)))
    np.testing.assert_array_equal(lengths, expected)
    assert np.diff(milp.indptr).max() <= 3 + 1  # kernel + the row's own variable: no dense row


def test_fixed_inputs_are_folded_and_the_sparse_encoding_is_exact():
    """510 of 512 inputs fixed: no row mentions a fixed input, and the MILP over the two free inputs is
    exact against brute force (grid, attained optimum, fixed-input solves)."""
    n = 512
    net = conv_network(3, n=n, kernel_size=5)
    assert is_sparse(net.layers[0].weight) and is_sparse(net.layers[1].weight)
    x0 = np.random.default_rng(2).uniform(-1, 1, n)
    free = (200, 202)
    lower, upper = x0.copy(), x0.copy()
    lower[list(free)], upper[list(free)] = -1.0, 1.0
    b = symbolic_bounds(net, lower, upper)
    milp = encode(net, b, lower, upper)
    fixed_vars = np.setdiff1d(milp.input_vars, milp.input_vars[list(free)])
    assert not np.isin(milp.indices, fixed_vars).any()
    assert milp.n_binaries > 0
    check_exact(net, milp, lower, upper, n_grid=101, n_fixed=3, free=free, x_fixed=x0)


def test_sparse_and_dense_storage_give_the_same_rows():
    from scipy import sparse

    rng = np.random.default_rng(4)
    n = 48
    W = conv1d_matrix(n, rng.standard_normal(3))
    b0 = 0.1 * rng.standard_normal(n)
    out = rng.standard_normal((2, n)) / np.sqrt(n)
    zero = np.zeros(n)

    def net_with(weight):
        layers = (Layer(weight, b0, Activation("relu"), weight * 0.0, zero),
                  Layer(out, np.zeros(2), None, np.zeros((2, n)), np.zeros(2)))
        return Network(layers, (1, n), (1, 2))

    dense_net = net_with(W.toarray())
    sparse_layer = copy.copy(dense_net.layers[0])  # as_weight would store so small a matrix dense
    object.__setattr__(sparse_layer, "weight", sparse.csr_array(W))
    sparse_net = Network((sparse_layer, dense_net.layers[1]), (1, n), (1, 2))
    assert is_sparse(sparse_net.layers[0].weight) and not is_sparse(dense_net.layers[0].weight)
    x0 = rng.uniform(-1, 1, n)
    lower, upper = x0 - 0.3, x0 + 0.3
    b = symbolic_bounds(dense_net, lower, upper)
    m_dense, m_sparse = encode(dense_net, b, lower, upper), encode(sparse_net, b, lower, upper)
    for a in ("lb", "ub", "is_int", "indptr", "indices", "rhs", "is_eq"):
        np.testing.assert_array_equal(getattr(m_dense, a), getattr(m_sparse, a), err_msg=a)
    np.testing.assert_allclose(m_dense.data, m_sparse.data, rtol=0, atol=0)
    np.testing.assert_allclose(dag_forward(sparse_net, x0[None]), dag_forward(dense_net, x0[None]), atol=1e-12)
