"""Adversarial review of the neuron-splitting branch and bound (``bounds.crown``,
``search.branch_bound``, ``search.neuron_split``, strategy ``neuron-split`` of ``verify``).

Found: ``minimise`` replays its best input cast to float32 *without keeping it in the box*
(``best_x.astype(oracle.dtype)``, not ``io.replay.cast_into_box``): at a box corner that float32
cannot hold, the replayed input lies outside the box, and the value reported as reached (the upper
end of the minimum, and with it the proved lower bound, ``min(low, value)``) can be below every
value the network takes on the box (``test_minimise_reports_a_value_reached_inside_the_box``).

Attacked without a wrong answer (kept as regression tests): float32 knife edges on networks with
13 inputs and ~60 unstable neurons (``auto`` and ``neuron-split``, ReLU / LeakyReLU / Clip), also
with every counterexample replay disabled so that only the bounds decide; the float32 cancellation
traps of ``test_float32_soundness`` forced through branch and bound with replay disabled; a maximum
attained exactly (strict and non-strict rows at the boundary); split / refined / optimised bounds
on random DAGs (CSR weights, LeakyReLU with alpha 0 .. 0.5, Clip, the input read by several paths,
layers scaled by 100, a fixed input, sub-boxes, multipliers up to 1e4) against samples; the optimiser's parameters staying in their ranges.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.helpers.checks import ort_eval
from tests.helpers.review_bab import (
    KNIFE_THRESHOLD,
    N_IN,
    bab_dag_net,
    cast_trap_net,
    exact_max_net,
    knife_edge_wide_onnx,
)
from tests.soundness.test_float32_soundness import ACTS, _onnx, _random_layers, _real_max
from verifier import linalg, load_model, make_spec
from verifier.bounds import crown, symbolic_bounds
from verifier.budget import Deadline
from verifier.io.replay import NetworkOracle
from verifier.network import Activation, Network
from verifier.search import neuron_split
from verifier.search.neuron_split import minimise
from verifier.verify import Options, verify


@pytest.fixture
def no_replay(monkeypatch):
    """Branch and bound without counterexamples: only its bounds can end the search."""
    monkeypatch.setattr(neuron_split, "confirm", lambda *a, **k: None)


def test_minimise_reports_a_value_reached_inside_the_box():
    net, lo, hi = cast_trap_net()
    oracle = NetworkOracle(net)
    inside = np.float32(hi[0])
    assert float(inside) > hi[0]  # float32(0.2) is above the box
    inside = np.nextafter(inside, np.float32(0.0))
    floor = float(oracle.run(np.array([inside]))[0])  # the smallest float32 value on the box (y decreases in x)
    assert floor == 2.0 and float(oracle.run(np.array([np.float32(hi[0])]))[0]) == 1.0
    m = minimise(net, symbolic_bounds(net, lo, hi), lo, hi, np.array([1.0]), 0.0, 10.0, Deadline.after(10), oracle)
    assert lo[0] <= m.point[0] <= hi[0]
    assert m.value >= 1.2 - 1e-9, f"reported value {m.value} is not reached on the box (real min 1.2, float32 {floor})"


@pytest.mark.parametrize("strategy", ["neuron-split", "auto"])
@pytest.mark.parametrize("act", ["relu", "leaky", "clip"])
def test_wide_knife_edge_is_never_proved(tmp_path, act, strategy):
    path = knife_edge_wide_onnx(tmp_path / "knife.onnx", act)
    spec = make_spec([0.0] * N_IN, [1.0] * N_IN, [[f"y0 >= {KNIFE_THRESHOLD!r}"]])
    r = verify(path, spec, options=Options(strategy=strategy, falsify=False, timeout=20))
    if act == "clip" and strategy == "auto":  # Clip neurons cannot be split: auto takes the MILP
        assert r.stats.strategy == "milp"
    else:
        assert r.stats.strategy == "neuron-split" and r.stats.unstable_used[0] > neuron_split.MILP_MAX_UNSTABLE
    assert r.status == "violated", r.reason
    assert r.counterexample.output[0] >= KNIFE_THRESHOLD


@pytest.mark.parametrize("act", ["relu", "leaky", "clip"])
def test_wide_knife_edge_without_replay_stays_open(tmp_path, act, no_replay):
    path = knife_edge_wide_onnx(tmp_path / "knife.onnx", act)
    spec = make_spec([0.0] * N_IN, [1.0] * N_IN, [[f"y0 >= {KNIFE_THRESHOLD!r}"]])
    r = verify(path, spec, options=Options(strategy="neuron-split", falsify=False, timeout=0.5))
    # never holds; a violated answer (the MILP that takes over an undecided search may find the
    # float32 trap) carries a point the replay confirmed
    assert r.status in ("unknown", "violated") and r.stats.bab["explored"] >= 1, (r.status, r.reason)


@pytest.mark.parametrize("seed", [0, 15, 22, 34])
def test_float32_traps_through_branch_and_bound_stay_open(tmp_path, monkeypatch, no_replay, seed):
    """The cancellation traps of ``test_float32_soundness`` (onnxruntime exceeds the real maximum),
    forced through neuron splitting (no MILP hand-off) with no counterexample replay."""
    monkeypatch.setattr(neuron_split, "MILP_MAX_UNSTABLE", -1)
    act = ACTS[seed % 3]
    rng = np.random.default_rng(1000 + seed)
    layers = _random_layers(rng, act)
    alpha, clip_hi = float(np.float32(rng.uniform(0.01, 0.3))), float(np.float32(10.0 ** rng.uniform(4.0, 6.0)))
    _onnx(layers, act, alpha, clip_hi, tmp_path / "trap.onnx")
    net = load_model(tmp_path / "trap.onnx")
    grid = np.linspace(0, 1, 20001, dtype=np.float32)[:, None]
    ort_max = float(ort_eval(tmp_path / "trap.onnx", grid).max())
    real_max = _real_max(net, 0.0, 1.0)
    t = 0.5 * (real_max + ort_max)
    assert real_max < t < ort_max  # a real trap
    r = verify(net, make_spec([0.0], [1.0], [[f"y0 >= {t!r}"]]),
               options=Options(timeout=0.5, strategy="neuron-split", falsify=False))
    # never holds; a violated answer (the MILP that takes over an undecided search may find the
    # float32 trap) carries a point the replay confirmed
    assert r.status in ("unknown", "violated") and r.stats.bab["explored"] >= 1, (r.status, r.reason)


@pytest.mark.parametrize("strict", [False, True])
def test_rows_at_an_exactly_attained_maximum(strict, no_replay, monkeypatch):
    """``max y = 3`` exactly (at a vertex, float32-exact): ``y >= 3`` is violated there, so no
    proof; ``y > 3`` holds, and the padded bound cannot show it either (open)."""
    monkeypatch.setattr(neuron_split, "MILP_MAX_UNSTABLE", 40)  # branch and bound, not the MILP
    net = exact_max_net()
    lo, hi = np.zeros(net.n_inputs), np.ones(net.n_inputs)
    spec = make_spec(lo, hi, [["y0 > 3" if strict else "y0 >= 3"]])
    r = verify(net, spec, options=Options(strategy="neuron-split", falsify=False, timeout=0.5))
    assert r.stats.unstable_used[0] > neuron_split.MILP_MAX_UNSTABLE
    # never holds; a violated answer (the MILP that takes over an undecided search may find the
    # float32 trap) carries a point the replay confirmed
    assert r.status in ("unknown", "violated") and r.stats.bab["explored"] >= 1, (r.status, r.reason)
    m = minimise(net, symbolic_bounds(net, lo, hi), lo, hi, np.array([-1.0]), 0.0, 1e-6, Deadline.after(1))
    assert m.lower <= -3.0 <= m.value + 1e-12


def _split_batch(prob: crown.Problem, lo, hi, rng, B: int = 6) -> crown.Batch:
    """``B`` sub-problems: up to three random splits per layer, half of them on a half box."""
    batch = crown.Batch.concat([prob.root()] * B)
    for j in prob.split_layers:
        idx = np.flatnonzero(prob.unstable(j))
        for b in range(B):
            for i in rng.choice(idx, size=min(3, idx.size), replace=False):
                batch.split(b, j, int(i), int(rng.choice([-1, 1])))
    for b in range(B // 2):
        d = int(rng.integers(lo.size))
        mid = 0.5 * (lo[d] + hi[d])
        (batch.hi if rng.random() < 0.5 else batch.lo)[b, d] = mid
    return batch


@pytest.fixture
def sparse_weights(monkeypatch):
    """Small CSR weights stay CSR (``linalg.as_weight``): the batched products run on sparse rows."""
    monkeypatch.setattr(linalg, "SPARSE_MIN_SIZE", 0)
    monkeypatch.setattr(linalg, "SPARSE_MAX_DENSITY", 1.0)


@pytest.mark.parametrize("seed", [0, 1, 4, 6, 8, 9])
def test_split_refined_optimised_bounds_contain_the_samples(seed, sparse_weights):
    net, lo, hi = bab_dag_net(seed)
    rng = np.random.default_rng(seed)
    prob = crown.Problem(net, symbolic_bounds(net, lo, hi), lo, hi)
    batch = _split_batch(prob, lo, hi, rng, B=8)
    crown.refine(prob, batch, None, first=True)
    m = 3
    C, C_in, d = rng.normal(size=(m, net.n_outputs)), rng.normal(size=(m, lo.size)), rng.normal(size=m)
    alpha = {j: rng.uniform(v.neg_slope, 1, size=(batch.size, m, v.lower.size)) for j, v in prob.lines.items()}
    # huge multipliers of either sign on every neuron's bounds (splits included), big steps
    beta = {j: 1e4 * rng.normal(size=(batch.size, m, v.lower.size)) for j, v in prob.lines.items()}
    opt = crown.optimise(prob, batch, C, d, C_in, alpha, beta, iters=25, lr=0.5, lr_beta=1.0, multipliers="bounds")
    split_only = crown.optimise(prob, batch, C, d, C_in, alpha, beta, iters=25, lr=0.5, lr_beta=1.0,
                                multipliers="splits")
    X = np.vstack([rng.uniform(lo, hi, (20000, lo.size)), np.where(rng.random((2000, lo.size)) < 0.5, lo, hi)])
    pres, Y = net.pre_activations(X), net.forward(X)
    empty = batch.empty()
    for b in range(batch.size):
        ok = np.all((X >= batch.lo[b]) & (X <= batch.hi[b]), axis=1)
        for j in prob.split_layers:
            s = batch.splits[j][b]
            ok &= np.all(pres[j][:, s > 0] >= 0, axis=1) & np.all(pres[j][:, s < 0] <= 0, axis=1)
        if not ok.any():
            continue
        assert not empty[b]
        for j in prob.split_layers:
            assert np.all(pres[j][ok] >= batch.lower[j][b] - 1e-12) and np.all(pres[j][ok] <= batch.upper[j][b] + 1e-12)
        vals = Y[ok] @ C.T + X[ok] @ C_in.T + d
        assert np.all(vals.min(axis=0) >= opt.lower[b]), (b, vals.min(axis=0), opt.lower[b])
        assert np.all(vals.min(axis=0) >= split_only.lower[b]), (b, vals.min(axis=0), split_only.lower[b])


@pytest.mark.parametrize("kind", ["relu", "leaky"])
def test_optimised_parameters_stay_in_their_ranges(kind):
    """Big steps on alpha and beta: every alpha kept in [negative slope, 1]; with split multipliers
    only (what a certificate records), every beta of its split's sign (``beta * s >= 0``) and zero
    on neurons that are not split."""
    net = exact_max_net(seed=3, n_in=6, width=24)
    if kind == "leaky":
        net = Network(tuple(replace(ly, activation=Activation("leaky", alpha=0.2)) if ly.activation else ly
                            for ly in net.layers), net.input_shape, net.output_shape)
    lo, hi = np.zeros(net.n_inputs), np.ones(net.n_inputs)
    rng = np.random.default_rng(0)
    prob = crown.Problem(net, symbolic_bounds(net, lo, hi), lo, hi)
    batch = _split_batch(prob, lo, hi, rng, B=4)
    C = rng.normal(size=(2, 1))
    out = crown.optimise(prob, batch, C, np.zeros(2), None, prob.init_alpha(batch, 2), prob.zero_beta(batch, 2),
                         iters=40, lr=5.0, lr_beta=50.0, multipliers="splits")
    every = crown.optimise(prob, batch, C, np.zeros(2), None, prob.init_alpha(batch, 2), prob.zero_beta(batch, 2),
                           iters=40, lr=5.0, lr_beta=50.0, multipliers="bounds")
    for j in prob.split_layers:
        neg = prob.lines[j].neg_slope
        assert np.all(out.alpha[j] >= neg) and np.all(out.alpha[j] <= 1.0)
        assert np.all(every.alpha[j] >= neg) and np.all(every.alpha[j] <= 1.0)
        assert np.all(out.beta[j] * batch.splits[j][:, None, :] >= 0.0)
        assert np.all(out.beta[j][np.broadcast_to(batch.splits[j][:, None, :] == 0, out.beta[j].shape)] == 0.0)
