"""One input-bisection tree for all ends of an exact query (``search.shared_ends``): every row's
proved bound is at most the smallest value the network takes (a dense grid on 2-input nets,
sampling on 5-input ones, also when time runs out), within the gap of the grid's minimum when the
row is closed, the best point reaches the reported value, and exact queries on ReLU chains use it
and agree with the per-end engine."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import RELU, lipschitz, random_network
from verifier.budget import Deadline
from verifier.search.branch_bound import Settings
from verifier.search.query import output_bounds
from verifier.search.shared_ends import minimise_rows

GAP = 1e-3


def _rows(n_out: int) -> tuple[np.ndarray, np.ndarray]:
    C = np.vstack([np.eye(n_out), -np.eye(n_out), np.ones((1, n_out))])
    return C, np.linspace(-0.5, 0.5, C.shape[0])


@pytest.mark.parametrize("seed", range(4))
def test_every_row_matches_a_dense_grid(seed):
    net = random_network(seed, RELU, widths=(2, 16, 16, 3))
    lo, hi = -np.ones(2), np.ones(2)
    C, d = _rows(3)
    r = minimise_rows(net, lo, hi, C, d, GAP, Deadline.after(60))
    g = np.linspace(-1, 1, 401)
    X = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    V = net.forward(X) @ C.T + d
    assert r.closed.all(), r.stats
    spacing = float(np.linalg.norm(hi - lo)) / 400 / 2
    for k in range(C.shape[0]):
        slack = GAP + lipschitz(net) * np.abs(C[k]).sum() * spacing + 1e-6
        assert r.lower[k] <= V[:, k].min()  # sound
        assert r.lower[k] >= V[:, k].min() - slack  # and tight
        assert r.value[k] - r.lower[k] <= GAP
        assert np.all(r.point[k] >= lo) and np.all(r.point[k] <= hi)
        assert float(net.forward(r.point[k][None])[0] @ C[k] + d[k]) == pytest.approx(r.value[k], abs=1e-12)


@pytest.mark.parametrize("seed,timeout", [(10, 5.0), (11, 0.3), (12, 0.05)])
def test_bounds_are_sound_by_sampling_even_when_time_runs_out(seed, timeout):
    net = random_network(seed, RELU, widths=(5, 30, 30, 30, 5))
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-1, 0, 5)
    hi = lo + rng.uniform(0.2, 1.0, 5)
    C, d = _rows(5)
    r = minimise_rows(net, lo, hi, C, d, GAP, Deadline.after(timeout))
    X = rng.uniform(lo, hi, (50000, 5))
    X = np.vstack([X, lo, hi, np.where(rng.random((2000, 5)) < 0.5, lo, hi)])
    V = net.forward(X) @ C.T + d
    assert np.all(r.lower <= V.min(axis=0))
    assert np.all(r.lower <= r.value)
    if timeout < 0.1:
        assert r.stats["reason"] == "timeout" or r.closed.all()


def test_exact_queries_on_relu_chains_use_the_shared_tree_and_agree_with_the_per_end_engine():
    net = random_network(20, RELU, widths=(3, 20, 20, 2))
    lo, hi = -np.ones(3), np.ones(3)
    shared = output_bounds(net, lo, hi, method="exact", gap=GAP, timeout=60)
    per_end = output_bounds(net, lo, hi, method="exact", gap=GAP, timeout=60, settings=Settings(branching="input", iters=2))
    assert "one box tree" in shared.engine and "one box tree" not in per_end.engine
    assert shared.exact.all() and per_end.exact.all()
    # each is within the gap of the true extrema, which both bracket
    assert np.all(shared.lower <= per_end.value_lower) and np.all(per_end.lower <= shared.value_lower)
    assert np.all(shared.upper >= per_end.value_upper) and np.all(per_end.upper >= shared.value_upper)
    assert np.all(np.abs(shared.lower - per_end.lower) <= 2 * GAP)
    assert np.all(np.abs(shared.upper - per_end.upper) <= 2 * GAP)


def test_the_open_boxes_respect_the_memory_cap():
    """A cap smaller than one batch of boxes stops the search at once, with sound bounds."""
    net = random_network(20, RELU, widths=(5, 30, 30, 30, 5))
    lo, hi = -np.ones(5), np.ones(5)
    C, d = _rows(5)
    r = minimise_rows(net, lo, hi, C, d, GAP, Deadline.after(30), max_memory_mb=0.01)
    assert r.stats["reason"].startswith("memory")
    X = np.random.default_rng(0).uniform(lo, hi, (20000, 5))
    assert np.all(r.lower <= (net.forward(X) @ C.T + d).min(axis=0))
    assert np.all(r.lower <= r.value)
