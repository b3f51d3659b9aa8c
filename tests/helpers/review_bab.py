"""Networks of the adversarial review of the neuron-splitting branch and bound
(``tests/soundness/test_review_bab.py``).

* ``knife_edge_wide_onnx``: 13 inputs (so ``auto`` picks neuron splitting), a hidden layer of 64
  neurons of which about 60 are unstable (so ``prove_case`` does not hand the case to the MILP), and
  an output ``y = act(x0) + 1.5 * 2^-24`` (the other hidden neurons have output weight 0): in real
  arithmetic ``max y = 1 + 8.9e-8 < 1.0000001`` on ``[0, 1]^13``, but onnxruntime rounds
  ``1 + 1.5 * 2^-24`` up to ``1.00000012`` at ``x0 = 1``.
* ``cast_trap_net``: ``y = relu(-2^26 x + 13421774)`` on ``x in [0.1, 0.2]``: ``float32(0.2)`` lies
  *above* the box, and there the float32 network gives 1.0, while no float32 input inside the box
  gives less than 2.0 (and the real minimum, at 0.2, is 1.2).
* ``exact_max_net``: a ReLU net over 14 inputs with integer weights whose maximum 3 is attained
  exactly (in reals and in float32) at a box vertex, with ~50 unstable neurons that do not matter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

from verifier.network import Activation, Layer, Network

N_IN = 13
N_HIDDEN = 64
KNIFE_THRESHOLD = 1.0000001


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _hidden(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hidden weights: neuron 0 reads ``x0`` alone; the others are random and mostly unstable on [0, 1]^13."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((N_HIDDEN, N_IN)).astype(np.float32)
    b = (-0.5 * W.sum(axis=1)).astype(np.float32)  # centred on the box: both signs reachable
    W[0] = 0.0
    W[0, 0] = 1.0
    b[0] = 0.0
    return W, b


def knife_edge_wide_onnx(path: Path, act: str = "relu", seed: int = 0) -> Path:
    W, b = _hidden(seed)
    v = np.zeros((1, N_HIDDEN), np.float32)
    v[0, 0] = 1.0
    inits = [nh.from_array(W, "W0"), nh.from_array(b, "B0"), nh.from_array(v, "W1"),
             nh.from_array(np.array([1.5 * 2 ** -24], np.float32), "B1")]
    nodes = [oh.make_node("Gemm", ["X", "W0", "B0"], ["P0"], transB=1)]
    if act == "relu":
        nodes.append(oh.make_node("Relu", ["P0"], ["A0"]))
    elif act == "leaky":
        nodes.append(oh.make_node("LeakyRelu", ["P0"], ["A0"], alpha=0.125))
    else:
        inits += [nh.from_array(np.array(0.0, np.float32), "lo"), nh.from_array(np.array(2.0, np.float32), "hi")]
        nodes.append(oh.make_node("Clip", ["P0", "lo", "hi"], ["A0"]))
    nodes.append(oh.make_node("Gemm", ["A0", "W1", "B1"], ["Y"], transB=1))
    g = oh.make_graph(nodes, "knife_wide", [oh.make_tensor_value_info("X", TensorProto.FLOAT, [1, N_IN])],
                      [oh.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1])], inits)
    m = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def cast_trap_net() -> tuple[Network, np.ndarray, np.ndarray]:
    net = Network((Layer(np.array([[-2.0 ** 26]]), np.array([13421774.0]), Activation("relu")),
                   Layer(np.array([[1.0]]), np.zeros(1))), (1,), (1,))
    return net, np.array([0.1]), np.array([0.2])


def exact_max_net(seed: int = 0, n_in: int = 14, width: int = 56) -> Network:
    """``y = relu(x0 + x1 + x2) + 0 * (other neurons)`` over [0, 1]^n: the maximum 3 is exact
    (at x0 = x1 = x2 = 1; every sum is of small integers); the other neurons are unstable."""
    rng = np.random.default_rng(seed)
    W = _f32(rng.standard_normal((width, n_in)))
    b = _f32(-0.5 * W.sum(axis=1))
    W[0] = 0.0
    W[0, :3] = 1.0
    b[0] = 0.0
    v = np.zeros((1, width))
    v[0, 0] = 1.0
    return Network((Layer(W, b, Activation("relu")), Layer(v, np.zeros(1))), (n_in,), (1,))


def bab_dag_net(seed: int, n_in: int = 4, width: int = 12, depth: int = 4) -> tuple[Network, np.ndarray, np.ndarray]:
    """A random DAG for the split bounds: every hidden layer reads the previous tensor and, at
    random, earlier ones (the input included); ReLU, LeakyReLU (alpha 0 .. 0.5) or Clip layers; half
    of the weights CSR (``linalg`` keeps them sparse only if allowed: see the test's fixture); some
    layers scaled by 100; zero columns. Float32 numbers; a box with one input fixed."""
    from scipy import sparse as sp

    rng = np.random.default_rng(seed)
    sizes, layers = [n_in], []
    for k in range(depth + 1):
        last = k == depth
        srcs = sorted({len(sizes) - 1, *(int(t) for t in rng.choice(len(sizes), size=int(rng.integers(0, 3))))})
        n_out = 2 if last else width
        W = rng.standard_normal((n_out, sum(sizes[t] for t in srcs))) / np.sqrt(sum(sizes[t] for t in srcs))
        W *= 100.0 if rng.random() < 0.25 else 1.0
        W[:, rng.random(W.shape[1]) < 0.15] = 0.0
        kind = str(rng.choice(["relu", "leaky", "clip"]))
        act = None if last else (Activation("relu") if kind == "relu" else
                                 Activation("leaky", alpha=float(rng.choice([0.0, 0.01, 0.5]))) if kind == "leaky" else
                                 Activation("clip", lo=_f32(np.full(n_out, -0.5)), hi=_f32(np.full(n_out, 1.0))))
        W, b = _f32(W), _f32(0.3 * rng.standard_normal(n_out))
        layers.append(Layer(sp.csr_array(W) if rng.random() < 0.5 else W, b, act, sources=tuple(srcs)))
        sizes.append(n_out)
    net = Network(tuple(layers), (n_in,), (2,))
    lo = _f32(rng.uniform(-1.0, 0.0, n_in))
    hi = _f32(lo + rng.uniform(0.2, 1.5, n_in))
    hi[0] = lo[0]
    return net, lo, hi
