"""Intermediate bounds with optimised slopes (``bounds.optimised_layers``): sound for sampled inputs
(float64 and a float32 forward pass), never looser than the bounds they start from, strictly
tighter than them on deep networks, and within the LP-tightened bounds' reach."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import mixed_network
from verifier.bounds import symbolic_bounds
from verifier.bounds.optimised_layers import optimised_bounds
from verifier.budget import Deadline
from verifier.network import Activation, Layer, Network


def _float32_pre_activations(net: Network, X: np.ndarray) -> list[np.ndarray]:
    """Each layer's pre-activation computed in float32, as onnxruntime would (chain networks only)."""
    z = X.astype(np.float32)
    out = []
    for layer in net.layers:
        x = z @ layer.weight.astype(np.float32).T + layer.bias.astype(np.float32)
        out.append(x.astype(np.float64))
        act = layer.activation
        if act is not None:
            z = np.maximum(x, np.float32(0)) if act.kind == "relu" else np.where(x > 0, x, np.float32(act.alpha) * x)
    return out


@pytest.mark.parametrize("kind,residual", [("relu", False), ("leaky", False), ("clip", False), ("relu", True)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimised_bounds_are_sound_for_sampled_inputs(kind, residual, seed):
    rng = np.random.default_rng(seed)
    net = mixed_network(seed, [3, 12, 12, 12, 12, 2], kind, residual)
    lo, hi = -np.ones(3), np.ones(3)
    start = symbolic_bounds(net, lo, hi)
    opt = optimised_bounds(net, start, lo, hi, iters=30)
    X = np.vstack([rng.uniform(lo, hi, size=(40000, 3)), _corners(3)])
    for k, pre in enumerate(net.pre_activations(X)):
        assert np.all(pre >= opt.lower[k]) and np.all(pre <= opt.upper[k]), k


def _corners(n: int) -> np.ndarray:
    return np.array(np.meshgrid(*[[-1.0, 1.0]] * n)).reshape(n, -1).T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_rounding_past_the_real_range_stays_inside(seed):
    """Layer 0 is active everywhere with biases of 1e5, layer 1 subtracts them again: layer 1 is
    linear in the input, its real range is attained at box corners, and float32 evaluations there
    leave that range by far more than the outward padding. The bounds must contain them."""
    rng = np.random.default_rng(seed)
    n, h = 4, 16
    W0 = np.float32(rng.normal(size=(h, n))).astype(float)
    b0 = np.full(h, 1e5)
    W1 = np.float32(rng.uniform(0.1, 0.4, size=(h, h)) * rng.choice([-1.0, 1.0], size=(h, h))).astype(float)
    b1 = np.float32(-(W1 @ b0) + rng.normal(size=h) * 0.1).astype(float)
    W2 = np.float32(rng.normal(size=(2, h))).astype(float)
    net = Network((Layer(W0, b0, Activation("relu")), Layer(W1, b1, Activation("relu")), Layer(W2, np.zeros(2))),
                  (n,), (2,))
    lo, hi = -np.ones(n), np.ones(n)
    start = symbolic_bounds(net, lo, hi)
    assert np.any((start.lower[1] < 0) & (start.upper[1] > 0))  # layer 1 gets re-bounded
    opt = optimised_bounds(net, start, lo, hi, iters=10)
    X = np.vstack([_corners(n), rng.uniform(lo, hi, size=(5000, n))])
    real = net.pre_activations(X)[1]
    f32 = _float32_pre_activations(net, X)[1]
    assert np.any((f32 < real.min(axis=0)) | (f32 > real.max(axis=0)))  # the trap is real
    assert np.all(f32 >= opt.lower[1]) and np.all(f32 <= opt.upper[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimisation_reaches_the_exact_range_where_the_best_slope_is_known(seed):
    """Layer 0: per input an unstable neuron ``t_j = a_j x_j + c_j`` (``u < -l``: the adaptive start
    slope is 0) and a copy shifted by ``K`` that is always active; layer 1 sums ``W (relu(t_j) -
    relu(t_j + K)) + W K + beta``, which is ``W relu(-t_j) + beta``: its minimum ``beta`` is what the
    lower slopes 1 give, its maximum the chords' value at the lower ends, both attained at one box
    corner. Interval and symbolic bounds start well below the minimum; the optimised bounds must
    reach it (and contain every corner's value)."""
    rng = np.random.default_rng(seed)
    n, h, K = 5, 8, 10.0
    a = np.float32(rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)).astype(float)
    c = np.float32(-rng.uniform(0.2, 0.45, n) * np.abs(a)).astype(float)  # l = c - |a| < -u = -(c + |a|) < 0
    W = np.float32(rng.uniform(0.2, 1.0, size=(h, n))).astype(float)
    beta = np.float32(-rng.uniform(0.5, 1.5, h)).astype(float)
    W0, b0 = np.vstack([np.diag(a), np.diag(a)]), np.concatenate([c, c + K])
    W1, b1 = np.hstack([W, -W]), np.float32(W.sum(axis=1) * K + beta).astype(float)
    net = Network((Layer(W0, b0, Activation("relu")), Layer(W1, b1, Activation("relu")),
                   Layer(np.float32(rng.normal(size=(1, h))).astype(float), np.zeros(1))), (n,), (1,))
    lo, hi = -np.ones(n), np.ones(n)
    start = symbolic_bounds(net, lo, hi)
    opt = optimised_bounds(net, start, lo, hi, iters=30)
    vals = net.pre_activations(_corners(n))[1]
    true_lo, true_hi = vals.min(axis=0), vals.max(axis=0)
    assert np.all(start.lower[1] < true_lo - 0.1)  # the unoptimised bound is well below
    assert np.all(opt.lower[1] <= true_lo) and np.all(opt.upper[1] >= true_hi)
    assert np.all(opt.lower[1] > true_lo - 1e-4), opt.lower[1] - true_lo
    assert np.all(opt.upper[1] < true_hi + 1e-4), opt.upper[1] - true_hi


@pytest.mark.parametrize("kind", ["relu", "leaky"])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_optimised_bounds_are_never_looser_and_tighter_on_deep_networks(kind, seed):
    net = mixed_network(seed, [6, 24, 24, 24, 24, 24, 3], kind)
    lo, hi = -np.ones(6), np.ones(6)
    start = symbolic_bounds(net, lo, hi)
    opt = optimised_bounds(net, start, lo, hi, iters=20)
    gained = 0.0
    for k in range(len(net.layers) - 1):
        assert np.all(opt.lower[k] >= start.lower[k]) and np.all(opt.upper[k] <= start.upper[k]), k
        gained += float(np.sum((start.upper[k] - start.lower[k]) - (opt.upper[k] - opt.lower[k])))
    # unstable neurons below the last hidden layers: optimised slopes narrow them (not by a rounding hair)
    assert gained > 1e-3 * sum(float(np.sum(start.upper[k] - start.lower[k])) for k in range(1, len(net.layers) - 1))
    assert opt.n_unstable(net) <= start.n_unstable(net)
    # the first hidden layer is affine in the input: its bounds are already exact, left as they were
    assert np.array_equal(opt.lower[0], start.lower[0]) and np.array_equal(opt.upper[0], start.upper[0])


def test_more_steps_never_loosen_and_an_expired_deadline_changes_nothing():
    net = mixed_network(7, [5, 20, 20, 20, 20, 2])
    lo, hi = -np.ones(5), np.ones(5)
    start = symbolic_bounds(net, lo, hi)
    one = optimised_bounds(net, start, lo, hi, iters=1)
    many = optimised_bounds(net, start, lo, hi, iters=40)
    for k in range(len(net.layers) - 1):
        # one step is the unoptimised CROWN bound (the adaptive slopes, as the symbolic bounds use)
        assert np.all(one.lower[k] >= start.lower[k]) and np.all(one.upper[k] <= start.upper[k])
        assert np.all(many.lower[k] >= one.lower[k] - 1e-9) and np.all(many.upper[k] <= one.upper[k] + 1e-9)
    assert sum(float(np.sum(many.upper[k] - many.lower[k])) for k in range(4)) < \
        sum(float(np.sum(one.upper[k] - one.lower[k])) for k in range(4))
    expired = optimised_bounds(net, start, lo, hi, deadline=Deadline.after(0.0))
    for k in range(len(net.layers)):
        assert np.array_equal(expired.lower[k], start.lower[k]) and np.array_equal(expired.upper[k], start.upper[k])
