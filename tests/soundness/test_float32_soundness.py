"""Differential soundness against onnxruntime's float32 evaluation (float traps).

Seeded random one-input networks with hidden magnitudes up to 1e5 and cancelling branches (pairs
of neurons whose difference is constant in real arithmetic, so that the output is flat in real
arithmetic while float32 rounding makes it wiggle). For each network:

* **traps**: the threshold is placed between the real-arithmetic maximum and the largest value
  onnxruntime computes on a dense float32 grid. onnxruntime violates the property there, so the
  verifier must never answer holds (and any violated answer must replay).
* **not too cautious**: with the threshold above the real maximum by ten times the verifier's own
  float32 error bound, the verifier must still prove holds.

The real maximum of a one-input piecewise-linear network is computed exactly (up to float64) by
evaluating it at every breakpoint, found layer by layer.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

from verifier import load_model, make_spec, verify
from verifier.verify import Options

N_NETWORKS = 24
ACTS = ("relu", "leaky", "clip")


def _random_layers(rng: np.random.Generator, act: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """1 to 3 hidden layers of neurons in cancelling pairs ``w x + B`` / ``w x + B'`` (``|B|`` up to
    1e5) plus a few small ordinary neurons, and an output that subtracts each pair's second neuron
    from its first (constant where both are active); float32 weights."""
    layers = []
    n_in = 1
    for _ in range(int(rng.integers(1, 4))):
        mag = 10.0 ** rng.uniform(1.0, 5.0)
        pairs, small = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        w_pair = rng.uniform(0.5, 2.0, (pairs, n_in)) * rng.choice([-1, 1], (pairs, n_in))
        b_pair = mag * rng.uniform(1.0, 3.0, pairs)
        W = np.vstack([w_pair, w_pair, rng.standard_normal((small, n_in))])
        b = np.concatenate([b_pair, b_pair * rng.uniform(1.5, 2.5, pairs), 0.3 * rng.standard_normal(small)])
        layers.append((W, b))
        n_in = W.shape[0]
    n_h = layers[-1][0].shape[0]
    pairs = (n_h - 2) // 2 if n_h >= 4 else 1
    v = np.concatenate([np.ones(pairs), -np.ones(pairs), rng.uniform(-0.1, 0.1, n_h - 2 * pairs)])
    layers.append((v[None, :], np.zeros(1)))
    return [(np.asarray(W, np.float32), np.asarray(b, np.float32)) for W, b in layers]


def _onnx(layers, act: str, alpha: float, clip_hi: float, path) -> None:
    nodes, inits = [], []
    cur = "X"
    for k, (W, b) in enumerate(layers):
        inits += [nh.from_array(W, f"W{k}"), nh.from_array(b, f"B{k}")]
        nodes.append(oh.make_node("Gemm", [cur, f"W{k}", f"B{k}"], [f"P{k}"], transB=1))
        cur = f"P{k}"
        if k < len(layers) - 1:
            if act == "relu":
                nodes.append(oh.make_node("Relu", [cur], [f"A{k}"]))
            elif act == "leaky":
                nodes.append(oh.make_node("LeakyRelu", [cur], [f"A{k}"], alpha=alpha))
            else:
                inits += [nh.from_array(np.array(0.0, np.float32), f"lo{k}"),
                          nh.from_array(np.array(clip_hi, np.float32), f"hi{k}")]
                nodes.append(oh.make_node("Clip", [cur, f"lo{k}", f"hi{k}"], [f"A{k}"]))
            cur = f"A{k}"
    nodes.append(oh.make_node("Identity", [cur], ["Y"]))
    g = oh.make_graph(nodes, "trap", [oh.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 1])],
                      [oh.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])], inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))


def _real_max(net, lo: float, hi: float) -> float:
    """Exact maximum of a one-input piecewise-linear network over [lo, hi] (float64)."""
    xs = np.array([lo, hi])
    for k, layer in enumerate(net.layers[:-1]):
        pre = net.pre_activations(xs[:, None])[k]  # (points, neurons), linear between points
        kinks = [0.0] if layer.activation.kind != "clip" else [float(v) for v in np.unique(layer.activation.hi)] + [0.0]
        new = [xs]
        for c in kinks:
            d = pre - c
            a, b = d[:-1], d[1:]
            cross = (a * b < 0)
            t = np.where(cross, a / np.where(cross, a - b, 1.0), 0.0)
            x_new = xs[:-1, None] + t * (xs[1:] - xs[:-1])[:, None]
            new.append(x_new[cross])
        xs = np.unique(np.concatenate(new))
    return float(np.max(net.forward(xs[:, None])))


def _instances():
    for seed in range(N_NETWORKS):
        yield pytest.param(seed, ACTS[seed % 3], id=f"{ACTS[seed % 3]}-{seed}")


@pytest.mark.parametrize("seed,act", list(_instances()))
def test_float32_traps_never_hold_and_margins_prove(tmp_path, seed, act):
    rng = np.random.default_rng(1000 + seed)
    layers = _random_layers(rng, act)
    alpha = float(np.float32(rng.uniform(0.01, 0.3)))
    clip_hi = float(np.float32(10.0 ** rng.uniform(4.0, 6.0)))  # above most hidden values: clips some
    path = tmp_path / "trap.onnx"
    _onnx(layers, act, alpha, clip_hi, path)
    net = load_model(path)
    lo, hi = 0.0, 1.0
    real_max = _real_max(net, lo, hi)

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    grid = np.linspace(lo, hi, 20001, dtype=np.float32)[:, None]
    ys = sess.run(None, {"X": grid})[0].astype(np.float64).ravel()
    ort_max = float(ys.max())
    opts = Options(timeout=30, strategy="input-split")

    # (a) a float32 trap: onnxruntime exceeds the real maximum on the grid
    if ort_max > real_max:
        t = 0.5 * (real_max + ort_max)
        if t < ort_max:  # representable strictly between
            res = verify(net, make_spec([lo], [hi], [[f"y0 >= {t!r}"]]), options=opts)
            assert res.status != "holds", (f"holds although onnxruntime reaches {ort_max!r} >= {t!r} "
                                           f"(real max {real_max!r})")
            if res.status == "violated":
                y = sess.run(None, {"X": np.asarray(res.counterexample.input, np.float32)[None, :]})[0]
                assert float(y.ravel()[0]) >= t

    # (b) ten times the verifier's own float32 error bound above the real maximum: provable
    err = max(float(net.float_deviation(np.array([x]))[1][0]) for x in np.linspace(lo, hi, 201))
    t = real_max + 10.0 * err + 1e-12 * (1.0 + abs(real_max))
    assert ort_max < t
    res = verify(net, make_spec([lo], [hi], [[f"y0 >= {t!r}"]]), options=opts)
    assert res.status == "holds", res.reason


def test_the_traps_are_real():
    """The random family contains real float32 traps (else part (a) tests nothing)."""
    traps = 0
    for seed in range(N_NETWORKS):
        rng = np.random.default_rng(1000 + seed)
        act = ACTS[seed % 3]
        layers = _random_layers(rng, act)
        # forward in float32 (numpy, one summation order) vs float64
        x = np.linspace(0.0, 1.0, 2001)[:, None]
        z32, z64 = x.astype(np.float32), x
        for k, (W, b) in enumerate(layers):
            z32 = z32 @ W.T + b
            z64 = z64 @ W.astype(np.float64).T + b.astype(np.float64)
            if k < len(layers) - 1:
                z32, z64 = np.maximum(z32, 0), np.maximum(z64, 0)
        traps += bool(np.max(z32) > np.max(z64))
    assert traps >= N_NETWORKS // 3
