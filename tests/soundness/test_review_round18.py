"""Adversarial review, round 18: the lower slopes of a batch's boxes optimised together in the
certifying input-splitting search (``crown.boxes``, ``Batch.errors``, ``box_slopes.alpha_proofs``;
commit 1715c38).

Found (fixed):

* R18-1 ``crown.boxes`` on a network with a Clip layer: ``_slopes`` takes the fixed lines of a layer
  that is not split (Clip) from the ``Problem``, i.e. from the *first* box's bounds, for every box of
  the batch. A larger box than the first then gets Clip lines that are not valid on it, and its
  "lower bound" lies above values the network takes there (unsound). The search only batches dense
  ReLU chains (``bounds.batch.supports``), so no verdict was affected; ``crown.boxes`` now refuses
  several boxes of a network with non-splittable activations (``NotSupported``); one box still works.

Held up (plain tests):

* a batch of 32 sub-boxes of very different sizes (some with a fixed input) of the 5-input collision
  network: ``bound_boxes`` with optimised slopes closes exactly the disjuncts ``bound_box`` closes box
  by box, and every recorded slope set replays (``crown.bound`` on the box alone) to a positive bound;
* certificates of random small ReLU / LeakyReLU float32 networks (large biases, fixed inputs,
  several disjuncts, input terms, strict rows) written by ``verify --certificate`` are accepted by the
  checker, and no sampled onnxruntime point contradicts a holds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers.networks import mixed_network
from tests.helpers.onnx_builders import GraphBuilder, save, tensor
from tests.helpers.paths import REPO
from verifier import load_model, load_spec, verify
from verifier.bounds import crown, symbolic_bounds
from verifier.checker.check import check_certificate
from verifier.io.replay import make_oracle
from verifier.search import box_slopes
from verifier.search import input_split as isp
from verifier.search.certify import ALPHA_ITERS, MAX_DEPTH
from verifier.spec import Constraints
from verifier.verify import Options


def _boxes(seed: int, B: int, n: int):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1, 1, size=(B, n))
    widths = rng.uniform(0.01, 1.0, size=(B, n))
    LO, HI = centres - widths, centres + widths
    LO[0], HI[0] = -0.01 * np.ones(n), 0.01 * np.ones(n)  # a small first box
    return LO, HI


def test_r18_1_separate_boxes_with_clip_layers_are_not_bounded_by_the_first_boxs_lines():
    """R18-1: every box's bound of a Clip network is below the sampled minimum (or ``crown.boxes``
    refuses the batch); a single box is still bounded as alone."""
    net = mixed_network(3, [3, 8, 8, 2], "clip")
    LO, HI = _boxes(0, 6, 3)
    bs = [symbolic_bounds(net, LO[k], HI[k]) for k in range(6)]
    C, d, C_in = np.array([[1.0, -1.0], [0.3, 0.5]]), np.array([0.1, -0.2]), np.array([[0.5, 0, -1], [0, 0, 0.0]])
    rng = np.random.default_rng(1)
    try:
        prob, batch = crown.boxes(net, bs, LO, HI)
    except crown.NotSupported:
        pass
    else:
        res = crown.bound(prob, batch, C, d, C_in, prob.init_alpha(batch, 2), None)
        for k in range(6):
            X = rng.uniform(LO[k], HI[k], size=(20000, 3))
            assert np.all(net.forward(X) @ C.T + X @ C_in.T + d >= res.lower[k]), k
    for k in range(6):
        prob, batch = crown.boxes(net, bs[k:k + 1], LO[k:k + 1], HI[k:k + 1])
        alone = crown.Problem(net, bs[k], LO[k], HI[k])
        got = crown.bound(prob, batch, C, d, C_in, prob.init_alpha(batch, 2), None).lower[0]
        want = crown.bound(alone, alone.root(), C, d, C_in, alone.init_alpha(alone.root(), 2), None).lower[0]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_batched_alpha_closes_what_each_box_closes_alone():
    """32 sub-boxes of very different sizes (2^0 .. 2^-7 of the case box per input, some with a fixed
    input): the batched step closes the same disjuncts as the one-box step, and the recorded slopes
    replay on the box alone to a positive bound."""
    net = load_model(REPO / "models" / "collision_advisory.onnx")
    spec = load_spec(REPO / "specs" / "collision_behind_is_clear.toml").bind(5, 5)
    oracle = make_oracle(net)
    settings = replace(isp.BabSettings(), milp_unstable=-1, max_depth=MAX_DEPTH, lp_check=False, exact_leaves=False,
                       alpha_iters=ALPHA_ITERS, alpha_gap=10.0)
    n_alpha = 0
    for seed in range(2):
        rng = np.random.default_rng(seed)
        case = spec.cases[seed % 2]
        boxes = []
        for _ in range(32):
            w = (case.upper - case.lower) * 2.0 ** -rng.integers(0, 8, 5)
            lo = case.lower + rng.uniform(0, 1, 5) * (case.upper - case.lower - w)
            hi = lo + w
            if rng.random() < 0.2:
                k = rng.integers(5)
                hi[k] = lo[k]
            boxes.append((lo, hi, 3))
        stats = isp.BabStats()
        steps = isp.bound_boxes(net, case, case.unsafe, oracle, boxes, stats, settings, 0, False, None, None)
        n_alpha += stats.proved_by_alpha
        for (lo, hi, _), step in zip(boxes, steps):
            one = isp.bound_box(net, case, case.unsafe, oracle, lo, hi, isp.BabStats(), settings, 0, False, None)
            assert isinstance(step, isp.BoxStep) and isinstance(one, isp.BoxStep)
            assert set(step.proved) == set(one.proved) and step.alive == one.alive
            for i, slopes in (step.slopes or {}).items():
                prob = crown.Problem(net, step.bounds, lo, hi)
                cons, r = case.unsafe[i], step.proved[i]
                res = crown.bound(prob, prob.root(), cons.ay[r:r + 1], -cons.rhs[r:r + 1], cons.ax[r:r + 1],
                                  {j: a[None, None] for j, a in slopes.items()}, None)
                assert res.lower[0, 0] > 0
    assert n_alpha > 0


def _net(rng, n_in: int, widths: list[int], act: str, bias: float, big: float):
    g = GraphBuilder(seed=int(rng.integers(1 << 30)))
    h, n = "x", n_in
    for k, w in enumerate(widths):
        W = (rng.standard_normal((w, n)) / np.sqrt(n) * 1.5).astype(np.float32)
        b = (bias * rng.standard_normal(w)).astype(np.float32)
        if big and k == 0:
            b[:2] += np.float32(big)
        h = g.op("Gemm", [h, g.const(W), g.const(b)], transB=1)
        h = g.op("Relu", [h]) if act == "relu" else g.op("LeakyRelu", [h], alpha=0.1)
        n = w
    W = (rng.standard_normal((3, n)) / np.sqrt(n)).astype(np.float32)
    b = (bias * rng.standard_normal(3)).astype(np.float32)
    g.op("Gemm", [h, g.const(W), g.const(b)], out="y", transB=1)
    return g.model([tensor("x", ["N", n_in])], [tensor("y", ["N", 3])])


@pytest.mark.parametrize("seed", [100, 122, 216, 224])
def test_random_certificates_are_accepted(tmp_path: Path, seed: int):
    rng = np.random.default_rng(seed)
    n_in = int(rng.choice([2, 3, 4]))
    widths = [int(rng.integers(6, 16)) for _ in range(int(rng.integers(1, 4)))]
    act = "relu" if rng.random() < 0.8 else "leaky"
    big = float(rng.choice([0, 0, 0, 1000.0, 3e4]))
    model = save(tmp_path, _net(rng, n_in, widths, act, float(rng.choice([0.1, 0.5, 2.0])), big))
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    lo = rng.uniform(-1, 0, n_in)
    hi = lo + rng.uniform(0.2, 1.5, n_in)
    if rng.random() < 0.4:
        k = int(rng.integers(n_in))
        hi[k] = lo[k]
    lo, hi = lo.astype(np.float32).astype(float), hi.astype(np.float32).astype(float)
    X = rng.uniform(lo, hi, (40000, n_in))
    V = np.array(np.meshgrid(*[[a, b] for a, b in zip(lo, hi)])).reshape(n_in, -1).T
    X = np.vstack([X, V]).astype(np.float32)
    Y = sess.run(None, {"x": X})[0].astype(float)
    blocks, rows_all = [], []
    for _ in range(int(rng.integers(1, 4))):
        rows, tests = [], []
        for r in range(int(rng.integers(1, 3))):
            c = rng.integers(-2, 3, 3).astype(float)
            if not c.any():
                c[0] = 1
            cx = np.where(rng.random(n_in) < 0.3, rng.integers(-2, 3, n_in), 0).astype(float) * 0.5
            val = Y @ c + X.astype(float) @ cx
            thr = float(val.max() + rng.choice([0.01, 0.03, 0.08, 0.2]) * (val.max() - val.min() + 1e-9))
            if r > 0 and rng.random() < 0.5:
                thr = float(np.quantile(val, 0.3))
            op = ">" if rng.random() < 0.3 else ">="
            terms = " + ".join([f"{float(c[i])!r}*y{i}" for i in range(3) if c[i]]
                               + [f"{float(cx[i])!r}*x{i}" for i in range(n_in) if cx[i]])
            rows.append(f'"{terms} {op} {thr!r}"')
            tests.append((val > thr) if op == ">" else (val >= thr))
        blocks.append(f"[[unsafe]]\nall = [{', '.join(rows)}]\n")
        rows_all.append(np.all(tests, axis=0))
    spec = tmp_path / "s.toml"
    spec.write_text(f"[[input.boxes]]\nlower = {list(map(float, lo))}\nupper = {list(map(float, hi))}\n\n"
                    + "\n".join(blocks))
    cert = tmp_path / "c.json"
    res = verify(str(model), str(spec), options=Options(timeout=30, certificate=str(cert)))
    assert res.status == "holds"
    assert not np.any(rows_all)  # no sampled onnxruntime point is unsafe
    assert res.stats["certificate"]["written"]
    got = check_certificate(str(model), str(spec), str(cert))
    assert got.valid, got.reason


def test_alpha_on_a_clip_network_goes_box_by_box():
    """Optimised slopes on a network with a Clip layer (not batched, ``crown.boxes`` per box): no
    exception, and every closing they record replays on its box."""
    net = mixed_network(3, [3, 8, 8, 2], "clip")
    LO, HI = _boxes(2, 5, 3)
    bs = [symbolic_bounds(net, LO[k], HI[k]) for k in range(5)]
    X = np.random.default_rng(0).uniform(LO.min(0), HI.max(0), size=(20000, 3))
    top = float((net.forward(X) @ np.array([1.0, -1.0])).max())
    cons = Constraints(np.zeros((1, 3)), np.array([[1.0, -1.0]]), np.array([top + 0.05]), np.array([False]))
    tris = [isp._Triage([0], {}, {0: 0.1}, 0, [], {}) for _ in range(5)]
    settings = replace(isp.BabSettings(), alpha_iters=ALPHA_ITERS)
    out = box_slopes.alpha_proofs(net, [cons], bs, LO, HI, tris, np.full(5, 3), settings, isp.BabStats())
    for k, got in out.items():
        if got.get(0) is None:
            continue
        r, slopes = got[0]
        prob = crown.Problem(net, bs[k], LO[k], HI[k])
        res = crown.bound(prob, prob.root(), cons.ay[r:r + 1], -cons.rhs[r:r + 1], cons.ax[r:r + 1],
                          {j: a[None, None] for j, a in slopes.items()}, None)
        assert res.lower[0, 0] > 0
