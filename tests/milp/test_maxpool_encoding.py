"""MaxPool's big-M rows (``activations/maxpool.py``) make the MILP exact, on a grid of small nets.

The nets (``tests.helpers.dag.maxpool_network``): ReLU, then a max over overlapping windows with
``-1`` padding, a single-candidate window and a window of two always-inactive ReLUs, then (or
not) another ReLU layer. Ground truth is brute force (``tests.helpers.milp_checks.check_exact``):
dense grids of the test's own forward pass, the optimal point's forward value, and fixed-input
solves at a coarse grid. The bounds: interval, symbolic, and symbolic with the inactive window
snapped to exactly ``[0, 0]`` (then it keeps a single candidate and needs no binary).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.dag import DEAD, WINDOWS, maxpool_network, snap_dead
from tests.helpers.milp_checks import check_exact
from verifier.bounds import LayerBounds, interval_bounds, symbolic_bounds
from verifier.milp.encoding import encode

LO, HI = -np.ones(2), np.ones(2)


def _bounds(net, method: str) -> LayerBounds:
    if method == "interval":
        return interval_bounds(net, LO, HI)
    b = symbolic_bounds(net, LO, HI)
    return snap_dead(net, b) if method == "snapped" else b


def remaining(l: np.ndarray, u: np.ndarray, windows: np.ndarray) -> list[list[int]]:
    """The test's own dropping rule: per window, the candidates whose upper bound exceeds the
    largest lower bound, plus the one with the largest lower bound (first on ties)."""
    out = []
    for w in windows:
        cand = [int(i) for i in w if i >= 0]
        best = max(cand, key=lambda i: (l[i], -cand.index(i)))
        out.append([i for i in cand if i == best or u[i] > l[best]])
    return out


def expected_binaries(net, b: LayerBounds) -> int:
    """ReLU: one per neuron with ``l < 0 < u``; max: one per remaining candidate of a window with two or more."""
    n = 0
    for k, layer in enumerate(net.layers[:-1]):
        l, u = b.lower[k], b.upper[k]
        if layer.activation.kind == "relu":
            n += int(np.count_nonzero((l < 0) & (u > 0)))
        else:
            n += sum(len(r) for r in remaining(l, u, layer.activation.groups) if len(r) >= 2)
    return n


@pytest.mark.parametrize("method", ["interval", "symbolic", "snapped"])
@pytest.mark.parametrize("after", [True, False], ids=["relu_after", "max_last"])
@pytest.mark.parametrize("seed", range(4))
def test_max_milp_is_exact_on_a_grid_of_small_nets(seed, after, method):
    net = maxpool_network(seed, after=after)
    b = _bounds(net, method)
    milp = encode(net, b, LO, HI)
    live = [r for r in remaining(b.lower[1], b.upper[1], WINDOWS) if len(r) >= 2]
    assert live, "no max window with two remaining candidates: the test would not exercise the big-M rows"
    assert milp.n_binaries == expected_binaries(net, b)
    check_exact(net, milp, LO, HI)


def test_the_inactive_window_keeps_one_candidate_and_needs_no_binary():
    net = maxpool_network(0)
    b = symbolic_bounds(net, LO, HI)
    snapped = snap_dead(net, b)
    dead_window = [list(w) for w in WINDOWS].index([*DEAD, -1])
    assert len(remaining(b.lower[1], b.upper[1], WINDOWS)[dead_window]) == 2  # padded bounds: both kept
    assert remaining(snapped.lower[1], snapped.upper[1], WINDOWS)[dead_window] == [DEAD[0]]
    assert encode(net, b, LO, HI).n_binaries - encode(net, snapped, LO, HI).n_binaries == 2


def test_a_window_whose_candidates_all_drop_but_one_is_linear():
    """On a small box the candidates are ordered (``u_i <= max l``): windows of several candidates keep
    one, ``y = x_{i*}``, with no binary; widening the bounds (still sound) brings binaries back, and
    both encodings stay exact."""
    net = maxpool_network(1, after=False)
    lo, hi = np.array([0.3, -0.2]) - 0.05, np.array([0.3, -0.2]) + 0.05
    b = symbolic_bounds(net, lo, hi)
    rem = remaining(b.lower[1], b.upper[1], WINDOWS)
    assert any(len(r) == 1 and (w >= 0).sum() >= 2 and w[0] not in DEAD for r, w in zip(rem, WINDOWS))
    wide = LayerBounds(tuple(a - 0.5 for a in b.lower), tuple(c + 0.5 for c in b.upper), "widened")
    tight_milp, wide_milp = encode(net, b, lo, hi), encode(net, wide, lo, hi)
    assert tight_milp.n_binaries == expected_binaries(net, b)
    assert wide_milp.n_binaries == expected_binaries(net, wide) > tight_milp.n_binaries
    for milp in (tight_milp, wide_milp):
        check_exact(net, milp, lo, hi, n_grid=101, n_fixed=3)


def test_max_rows_are_the_documented_ones():
    """Per window with ``k >= 2`` remaining candidates: ``k`` binaries, one equality ``sum a = 1`` and
    ``2k`` inequalities; per remaining candidate one ``x = p`` equality (shared by overlapping windows)."""
    net = maxpool_network(2, after=False)
    b = symbolic_bounds(net, LO, HI)
    rem = remaining(b.lower[1], b.upper[1], WINDOWS)
    only_max = encode(net, b, LO, HI)
    # the ReLU layer: 4 rows per unstable neuron (x = p and three big-M rows), y = p per active one
    relu_rows = int(np.count_nonzero((b.lower[0] < 0) & (b.upper[0] > 0))) * 4 + int(
        np.count_nonzero(b.lower[0] >= 0))
    live = [r for r in rem if len(r) >= 2]
    n_x = len({i for r in rem for i in r})
    expected_rows = relu_rows + n_x + sum(1 + 2 * len(r) for r in live)
    assert only_max.n_constraints == expected_rows
    assert int(np.count_nonzero(only_max.is_eq)) == int(np.count_nonzero(b.lower[0] >= 0)) + \
        int(np.count_nonzero((b.lower[0] < 0) & (b.upper[0] > 0))) + n_x + len(live)


def test_windows_sharing_their_single_candidate_share_its_variable():
    """Two windows whose only remaining candidate is the same pre-activation output the same variable;
    a layer reading both gets one merged coefficient (here ``y_0 - y_1``, exactly 0, drops out)."""
    from verifier.network import Activation, Layer, Network

    def layer(W, b, act=None, sources=None):
        W = np.asarray(W, dtype=np.float64)
        return Layer(W, np.asarray(b, dtype=np.float64), act, np.zeros(W.shape), np.zeros(W.shape[0]), sources=sources)

    net = Network((layer([[1.0, 0.5], [1.0, 0.5], [0.5, -1.0]], [1.0, -1.0, 0.0],
                         Activation("max", groups=np.array([[0, 1], [1, 0], [2, 1]]))),
                   layer([[1.0, -1.0, 0.0], [1.0, 1.0, -1.0]], [0.0, -0.5], Activation("relu")),
                   layer([[1.0, 2.0], [-1.0, 0.5]], [0.0, 0.1], None)), (1, 2), (1, 2))
    lo, hi = -0.5 * np.ones(2), 0.5 * np.ones(2)
    b = symbolic_bounds(net, lo, hi)
    rem = remaining(b.lower[0], b.upper[0], net.layers[0].activation.groups)
    assert rem[0] == rem[1] == [0] and len(rem[2]) == 2
    milp = encode(net, b, lo, hi)
    rows = np.split(milp.indices, milp.indptr[1:-1])
    assert all(r.size == np.unique(r).size for r in rows)  # no variable twice in a row
    assert milp.n_binaries == expected_binaries(net, b)
    check_exact(net, milp, lo, hi, n_grid=101, n_fixed=4)
