"""Optimisable back-substitution (``bounds.crown``): gradients, soundness inside every phase
region, the root bound against the symbolic one, and refinement."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import mixed_network
from verifier.bounds import _Relaxations, backsubstitute, crown, linear_bounds, rounding_errors, symbolic_bounds
from verifier.network import Activation, Layer, Network


def _random_splits(prob: crown.Problem, B: int, rng) -> crown.Batch:
    batch = crown.Batch.concat([prob.root()] * B)
    for j in prob.split_layers:
        idx = np.flatnonzero(prob.unstable(j))
        for b in range(B):
            for i in rng.choice(idx, size=min(2, idx.size), replace=False):
                batch.split(b, j, int(i), int(rng.choice([-1, 1])))
    return batch


def _params(prob, batch, m, rng):
    alpha = {j: rng.uniform(prob.lines[j].neg_slope, 1, size=(batch.size, m, v.lower.size))
             for j, v in prob.lines.items()}
    # bound multipliers of every neuron, of either sign (away from 0, where the bound has a kink)
    beta = {j: rng.choice([-1.0, 1.0], size=(batch.size, m, v.lower.size)) * rng.uniform(0.05, 1, size=(batch.size, m, v.lower.size))
            for j, v in prob.lines.items()}
    return alpha, beta


def _region_values(net, prob, batch, X, C, C_in, d):
    """Per sub-problem, the objective rows at the sampled inputs that lie in its phase region."""
    pres = net.pre_activations(X)
    Y = pres[-1]
    out = []
    for b in range(batch.size):
        ok = np.ones(len(X), bool)
        for j in prob.split_layers:
            s = batch.splits[j][b]
            ok &= np.all(pres[j][:, s > 0] >= 0, axis=1) & np.all(pres[j][:, s < 0] <= 0, axis=1)
        out.append(Y[ok] @ C.T + X[ok] @ C_in.T + d)
    return out


@pytest.mark.parametrize("kind", ["relu", "leaky"])
def test_gradient_matches_finite_differences(kind):
    rng = np.random.default_rng(3)
    net = mixed_network(1, [4, 12, 12, 12, 3], kind)
    lo, hi = -np.ones(4), np.ones(4)
    prob = crown.Problem(net, symbolic_bounds(net, lo, hi), lo, hi)
    batch = _random_splits(prob, 2, rng)
    C = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    d = np.array([0.1, -0.2])
    alpha, beta = _params(prob, batch, 2, rng)
    res = crown.bound(prob, batch, C, d, None, alpha, beta, grad=True)
    g_alpha = res.grad_alpha
    h = 1e-6
    checked = 0
    for j in prob.split_layers:
        for _ in range(15):
            b, r, i = rng.integers(2), rng.integers(2), rng.integers(alpha[j].shape[2])
            for which, grad in (("alpha", g_alpha), ("beta", res.grad_beta)):
                a2 = {k: v.copy() for k, v in alpha.items()}
                b2 = {k: v.copy() for k, v in beta.items()}
                (a2 if which == "alpha" else b2)[j][b, r, i] += h
                fd = (crown.bound(prob, batch, C, d, None, a2, b2).lower[b, r] - res.lower[b, r]) / h
                assert abs(fd - grad[j][b, r, i]) < 1e-5, (which, j, i, fd, grad[j][b, r, i])
                checked += 1
    assert checked > 0


@pytest.mark.parametrize("kind,residual", [("relu", False), ("leaky", False), ("clip", False), ("relu", True)])
@pytest.mark.parametrize("seed", [0, 1])
def test_split_bounds_are_sound_inside_each_phase_region(kind, residual, seed):
    rng = np.random.default_rng(seed)
    net = mixed_network(seed, [3, 10, 10, 10, 2], kind, residual)
    lo, hi = -np.ones(3), np.ones(3)
    prob = crown.Problem(net, symbolic_bounds(net, lo, hi), lo, hi)
    batch = _random_splits(prob, 4, rng)
    C = np.array([[1.0, -0.5], [-1.0, 2.0]])
    C_in = np.array([[0.3, 0.0, -0.2], [0.0, 0.0, 0.0]])
    d = np.array([0.05, 0.0])
    alpha, beta = _params(prob, batch, 2, rng)
    opt = crown.optimise(prob, batch, C, d, C_in, alpha, beta, iters=10)
    X = rng.uniform(lo, hi, size=(60000, 3))
    for b, vals in enumerate(_region_values(net, prob, batch, X, C, C_in, d)):
        if len(vals):
            assert np.all(vals.min(axis=0) >= opt.lower[b] - 1e-12), (b, vals.min(axis=0), opt.lower[b])


def test_root_bound_equals_symbolic_and_optimising_never_worsens_it():
    net = mixed_network(5, [5, 16, 16, 16, 4])
    lo, hi = -np.ones(5), np.ones(5)
    sym = symbolic_bounds(net, lo, hi)
    prob = crown.Problem(net, sym, lo, hi)
    root = prob.root()
    C = np.eye(4)
    init = crown.bound(prob, root, C, np.zeros(4), None, prob.init_alpha(root, 4), None)
    relax = _Relaxations(net, list(sym.lower), list(sym.upper), rounding_errors(net, sym, lo, hi))
    raw = backsubstitute(net, len(net.layers) - 1, C, np.zeros(4), lo, hi, relax)[0]
    # the same relaxation (adaptive lower lines, chords): the same bound up to the outward padding
    assert np.allclose(init.lower[0], raw, atol=1e-8)
    assert np.all(linear_bounds(net, sym, lo, hi, C)[0] >= raw - 1e-12)
    opt = crown.optimise(prob, root, C, np.zeros(4), None, prob.init_alpha(root, 4), prob.zero_beta(root, 4), iters=30)
    assert np.all(opt.lower >= init.lower - 1e-12)
    assert np.any(opt.lower > init.lower + 1e-6)  # alpha does something on this net


@pytest.mark.parametrize("first", [False, True])
def test_refined_bounds_are_sound_and_never_looser(first):
    rng = np.random.default_rng(7)
    net = mixed_network(7, [3, 12, 12, 12, 2])
    lo, hi = -np.ones(3), np.ones(3)
    prob = crown.Problem(net, symbolic_bounds(net, lo, hi), lo, hi)
    batch = _random_splits(prob, 3, rng)
    if first:  # smaller boxes: the first layer's bounds shrink too
        batch.hi[:, 0] = 0.0
    before = {j: (batch.lower[j].copy(), batch.upper[j].copy()) for j in batch.lower}
    crown.refine(prob, batch, None, first=first)
    X = rng.uniform(lo, hi, size=(40000, 3))
    pres = net.pre_activations(X)
    for b in range(batch.size):
        ok = np.all(X >= batch.lo[b], axis=1) & np.all(X <= batch.hi[b], axis=1)
        for j in prob.split_layers:
            s = batch.splits[j][b]
            ok &= np.all(pres[j][:, s > 0] >= 0, axis=1) & np.all(pres[j][:, s < 0] <= 0, axis=1)
        for j in prob.split_layers:
            l0, u0 = before[j]
            assert np.all(batch.lower[j][b] >= l0[b]) and np.all(batch.upper[j][b] <= u0[b])
            if ok.any():
                assert np.all(pres[j][ok] >= batch.lower[j][b] - 1e-12)
                assert np.all(pres[j][ok] <= batch.upper[j][b] + 1e-12)
    tighter = sum(int(np.sum(batch.upper[j] - batch.lower[j] < before[j][1] - before[j][0] - 1e-9)) for j in batch.lower)
    assert tighter > 0


def test_max_windows_are_not_supported():
    g = np.array([[0, 1], [2, 3]])
    layers = (Layer(np.eye(4), np.zeros(4), Activation("max", groups=g)), Layer(np.ones((1, 2)), np.zeros(1)))
    net = Network(layers, (4,), (1,))
    assert not crown.supports(net)
    with pytest.raises(crown.NotSupported):
        crown.Problem(net, symbolic_bounds(net, np.zeros(4), np.ones(4)), np.zeros(4), np.ones(4))


@pytest.mark.parametrize("kind", ["relu", "leaky"])
def test_separate_boxes_in_one_batch_get_their_own_bounds(kind):
    """``crown.boxes``: boxes with their own bounds and rounding bounds, bounded together, get the
    bound each gets alone (its own ``Problem``), with the same slopes and gradients; and every
    bound is below the sampled minimum of its box."""
    net = mixed_network(3, [3, 8, 8, 2], kind)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-1, 1, size=(5, 3))
    widths = rng.uniform(0.05, 0.6, size=(5, 3))
    LO, HI = centres - widths, centres + widths
    bs = [symbolic_bounds(net, LO[k], HI[k]) for k in range(5)]
    C, d = np.array([[1.0, -1.0], [0.3, 0.5]]), np.array([0.1, -0.2])
    prob, batch = crown.boxes(net, bs, LO, HI)
    alpha = {j: rng.uniform(prob.lines[j].neg_slope, 1.0, size=(5, 2, n)) for j, n in
             ((j, prob.lines[j].lower.size) for j in prob.act_layers)}
    res = crown.bound(prob, batch, C, d, None, alpha, None, grad=True)
    for k in range(5):
        alone = crown.Problem(net, bs[k], LO[k], HI[k])
        one = crown.bound(alone, alone.root(), C, d, None, {j: a[k:k + 1] for j, a in alpha.items()}, None,
                          grad=True)
        np.testing.assert_allclose(res.lower[k], one.lower[0], rtol=1e-12, atol=1e-12)
        for j in alpha:
            np.testing.assert_allclose(res.grad_alpha[j][k], one.grad_alpha[j][0], rtol=1e-12, atol=1e-12)
        X = rng.uniform(LO[k], HI[k], size=(4000, 3))
        assert np.all(net.forward(X) @ C.T + d >= res.lower[k] - 1e-12)
    with pytest.raises(ValueError, match="do not concatenate"):
        crown.Batch.concat([batch, batch])
