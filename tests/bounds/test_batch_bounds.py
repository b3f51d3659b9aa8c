"""``bounds.batch``: the symbolic bounds of many boxes at once must be the one-box bounds
(``symbolic_bounds`` / ``linear_bounds``) of every box, contain sampled pre-activations, and
contain what onnxruntime computes on ACAS Xu (float32). ``supports`` refuses what it cannot do."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bounds.test_bounds_basic import samples
from tests.helpers.networks import ACT_BY_NAME, random_network
from tests.helpers.paths import BENCH, SKIP_NO_SHARED
from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.bounds.batch import batch_bounds, batch_linear_bounds, supports
from verifier.io.onnx import load_model
from verifier.io.replay import OnnxOracle
from verifier.io.spec_file import load_spec

RELU = ACT_BY_NAME["relu"]


def random_boxes(rng, lower, upper, n):
    w = upper - lower
    lo = lower + rng.random((n, lower.size)) * w * 0.8
    hi = np.minimum(lo + w * 2.0 ** -rng.integers(0, 6, (n, lower.size)), upper)
    hi[0] = lo[0]  # a point box
    return lo, hi


def assert_same(a, b, what):
    scale = 1.0 + np.maximum(np.abs(a), np.abs(b))
    assert np.all(np.abs(a - b) <= 1e-9 * scale), f"{what}: batch {a} one-box {b}"


@pytest.mark.parametrize("seed", range(6))
def test_batch_equals_one_box_bounds(seed):
    net = random_network(seed, RELU, widths=(3, 12, 10, 9, 4))
    rng = np.random.default_rng(seed)
    lo, hi = random_boxes(rng, -np.ones(3), np.ones(3), 12)
    C, C_in = rng.standard_normal((3, 4)), rng.standard_normal((3, 3))
    bb = batch_bounds(net, lo, hi)
    low, up, coef = batch_linear_bounds(net, bb, lo, hi, C, C_in)
    for i in range(lo.shape[0]):
        one = symbolic_bounds(net, lo[i], hi[i])
        for k in range(len(net.layers)):
            assert_same(bb.lower[k][i], one.lower[k], f"box {i} layer {k} lower")
            assert_same(bb.upper[k][i], one.upper[k], f"box {i} layer {k} upper")
            assert_same(bb.errors[k][i], one.errors[k], f"box {i} layer {k} e_k")
        assert_same(bb.influence[i], one.influence, f"box {i} influence")
        ol, ou, oc = linear_bounds(net, one, lo[i], hi[i], C, None, C_in, return_coef=True)
        assert_same(low[i], ol, f"box {i} rows lower")
        assert_same(up[i], ou, f"box {i} rows upper")
        assert_same(coef[i], oc, f"box {i} rows coefficients")
        assert bb.n_unstable(net)[i] == one.n_unstable(net)


@pytest.mark.parametrize("seed", range(4))
def test_batch_bounds_contain_samples(seed):
    net = random_network(100 + seed, RELU, widths=(2, 16, 16, 3), scale=1.5)
    rng = np.random.default_rng(seed)
    lo, hi = random_boxes(rng, -np.ones(2), np.ones(2), 8)
    C = rng.standard_normal((2, 3))
    bb = batch_bounds(net, lo, hi)
    low, up, _ = batch_linear_bounds(net, bb, lo, hi, C)
    for i in range(lo.shape[0]):
        xs = samples(lo[i], hi[i], 400, seed)
        pre = net.pre_activations(xs)
        for k, p in enumerate(pre):
            assert np.all(p >= bb.lower[k][i]) and np.all(p <= bb.upper[k][i]), f"box {i} layer {k}"
        rows = pre[-1] @ C.T
        assert np.all(rows >= low[i]) and np.all(rows <= up[i]), f"box {i} rows"


def test_supports():
    assert supports(random_network(0, RELU))
    assert not supports(random_network(0, ACT_BY_NAME["leaky0.1"]))
    assert not supports(random_network(0, ACT_BY_NAME["clip01"]))


def test_refuses_bad_boxes():
    net = random_network(0, RELU)
    with pytest.raises(Exception, match="lower <= upper"):
        batch_bounds(net, np.ones((2, 2)), np.zeros((2, 2)))


@SKIP_NO_SHARED
def test_acas_rows_contain_onnxruntime_outputs():
    """The float32 network as onnxruntime runs it: its outputs on sampled points of each box lie
    within the batched row bounds (the rounding terms are in them)."""
    net = load_model(BENCH / "acasxu" / "ACASXU_run2a_3_3_batch_2000.onnx")
    case = load_spec(BENCH / "acasxu" / "prop_2.vnnlib").cases[0]
    cons = case.unsafe[0]
    oracle = OnnxOracle(net)
    rng = np.random.default_rng(3)
    lo, hi = random_boxes(rng, case.lower, case.upper, 10)
    bb = batch_bounds(net, lo, hi)
    low, up, _ = batch_linear_bounds(net, bb, lo, hi, cons.ay, cons.ax)
    for i in range(lo.shape[0]):
        for x in samples(lo[i], hi[i], 60, i).astype(np.float32):
            x = np.clip(x.astype(np.float64), lo[i], hi[i])
            if not np.all(x.astype(np.float32) == x):
                continue  # the float32 point lies outside the box: not an input of it
            r = cons.ay @ oracle.run(x) + cons.ax @ x
            assert np.all(r >= low[i]) and np.all(r <= up[i]), f"box {i}"


@pytest.mark.parametrize("seed", range(4))
def test_parent_bounds_tighten_and_stay_sound(seed):
    """``start`` = the parent box's bounds: the children's bounds still contain every sampled
    pre-activation, and no neuron the parent proved stable is unstable in a child."""
    net = random_network(200 + seed, RELU, widths=(3, 16, 16, 16, 3), scale=1.5)
    rng = np.random.default_rng(seed)
    plo, phi = random_boxes(rng, -np.ones(3), np.ones(3), 6)
    parent = batch_bounds(net, plo, phi)
    mid = 0.5 * (plo + phi)
    d = rng.integers(0, 3, plo.shape[0])
    rows = np.arange(plo.shape[0])
    lo, hi = plo.copy(), phi.copy()
    hi[rows, d] = mid[rows, d]  # the low child of each parent
    start = (parent.lower, parent.upper)
    child = batch_bounds(net, lo, hi, start=start)
    for i in range(lo.shape[0]):
        pre = net.pre_activations(samples(lo[i], hi[i], 300, seed))
        for k, p in enumerate(pre):
            assert np.all(p >= child.lower[k][i]) and np.all(p <= child.upper[k][i]), f"box {i} layer {k}"
            assert np.all(child.lower[k][i] >= parent.lower[k][i]) and np.all(child.upper[k][i] <= parent.upper[k][i])
