"""Networks found by the adversarial review of the DAG work (``tests/soundness/test_review_dag.py``).

* ``wide_relu_chain``: a plain ``n -> 6 -> 4 -> 2`` ReLU chain with first-layer weights of size
  ~1000; on some seeds the bundled CBC, run with a primal tolerance of 1e-9, "proved" feasible
  disjunct MILPs infeasible.
* ``skip_max_net``: a DAG whose three layers all read the input (tensor 0), with a max layer, over
  two boxes that fix complementary inputs (the folded MILP of box 0 was one of those CBC claims).
* ``fused_residual_onnx``: ``y = MatMul(h, W) + s`` where ``s`` is another input-dependent tensor
  (a residual): onnxruntime fuses the pair into one ``Gemm`` with ``C = s``, and its kernel adds
  ``C`` to the accumulator once per block of 256 products, so ``s`` takes part in ``K / 256``
  roundings, not one.
* ``random_dag_net``: random DAGs (skips, max windows, ties) with weights scaled by 1e4, so that
  neuron bounds reach 1e6..1e15: the solvers' feasibility tolerances no longer decide there.

Every network is float32-exact (the in-memory ones are replayed by their float32 forward pass).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verifier.network import Activation, Layer, Network


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def wide_relu_chain(seed: int) -> tuple[Network, np.ndarray, np.ndarray]:
    """``n_in -> 6 ReLU -> 4 ReLU -> 2`` (first layer scaled by 10^0..10^3) and its input box."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 4))
    big = 10.0 ** int(rng.integers(0, 4))
    net = Network((Layer(_f32(big * rng.standard_normal((6, n_in))), _f32(rng.standard_normal(6)), Activation("relu")),
                   Layer(_f32(rng.standard_normal((4, 6))), _f32(rng.standard_normal(4)), Activation("relu")),
                   Layer(_f32(rng.standard_normal((2, 4))), _f32(rng.standard_normal(2)), None)),
                  (1, n_in), (1, 2))
    lo = _f32(rng.uniform(-1, 0, n_in))
    hi = _f32(lo + rng.uniform(0, 1, n_in))
    return net, lo, hi


def skip_max_net(seed: int) -> tuple[Network, list[np.ndarray], list[np.ndarray]]:
    """``h = relu(W0 x)``, ``m = max-windows(W1 [h, x])``, ``y = W2 [m, x, h]``: tensor 0 is read by
    all three layers. Two boxes; each fixes (lower == upper) the inputs the other leaves free."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(3, 8))
    big = 10.0 ** int(rng.integers(0, 4))
    groups = np.array([[0, 1], [1, 2], [3, -1]])
    layers = (Layer(_f32(big * rng.standard_normal((4, n_in))), _f32(rng.standard_normal(4)), Activation("relu")),
              Layer(_f32(rng.standard_normal((4, 4 + n_in))), _f32(rng.standard_normal(4)),
                    Activation("max", groups=groups), sources=(1, 0)),
              Layer(_f32(rng.standard_normal((2, 3 + n_in + 4))), _f32(rng.standard_normal(2)), None,
                    sources=(2, 0, 1)))
    net = Network(layers, (1, n_in), (1, 2))
    lowers, uppers = [], []
    for b in range(2):
        lo = _f32(rng.uniform(-1, 0, n_in))
        hi = _f32(lo + rng.uniform(0, 1, n_in))
        fixed = rng.random(n_in) < 0.6
        if b == 1:
            fixed = ~fixed
        hi[fixed] = lo[fixed]
        lowers.append(lo)
        uppers.append(hi)
    return net, lowers, uppers


#: ``fused_residual_onnx``: products per row of the fused MatMul, the kernel's block of products,
#: the centre and half-width of the hat ``s``
FUSED_K = 4096
FUSED_BLOCK = 256
HAT_CENTRE = 2.0 ** 27
HAT_HALF_WIDTH = 2.0 ** 24 + 2.0 ** 22


def fused_residual_onnx(path: Path) -> Path:
    """Inputs ``(x0, x1)``; ``h = relu(x0)`` repeated ``FUSED_K`` times; ``s = relu(D - |x1 - c|)`` (a hat
    of height ``D`` at ``x1 = c``, zero far from it); ``y = MatMul(h, W) + s`` with ``W[:, 0]`` one
    at every ``FUSED_BLOCK``-th row and ``W[:, 1] = 0``.

    In real arithmetic ``y0 - y1 = 16 x0``. Where ``s >= 2^24`` onnxruntime adds each block's
    partial sum ``x0 < 1`` to ``s`` separately and every one of them is rounded away:
    ``y0 - y1 = 0``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w0 = np.zeros((2, FUSED_K), np.float32)
    w0[0, :] = 1.0
    w = np.zeros((FUSED_K, 2), np.float32)
    w[::FUSED_BLOCK, 0] = 1.0
    inits = {"W0": w0, "Wr": np.array([[0, 0], [1, -1]], np.float32),
             "br": np.array([-HAT_CENTRE, HAT_CENTRE], np.float32), "Wd": np.array([[-1], [-1]], np.float32),
             "bd": np.array([HAT_HALF_WIDTH], np.float32), "W": w}
    nodes = [helper.make_node("MatMul", ["x", "W0"], ["p"]), helper.make_node("Relu", ["p"], ["h"]),
             helper.make_node("Gemm", ["x", "Wr", "br"], ["q"]), helper.make_node("Relu", ["q"], ["r"]),
             helper.make_node("Gemm", ["r", "Wd", "bd"], ["t"]), helper.make_node("Relu", ["t"], ["s"]),
             helper.make_node("MatMul", ["h", "W"], ["a"]), helper.make_node("Add", ["a", "s"], ["y"])]
    graph = helper.make_graph(nodes, "fused_residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def random_dag_net(seed: int, big: float = 1e4) -> tuple[Network, np.ndarray, np.ndarray]:
    """A random DAG of 2-4 layers (each reads 1-3 earlier tensors, in random order; ReLU or max
    windows with ``-1`` padding, some zero weights, repeated rows = ties); 70% of the layers are
    scaled by ``big``, so the neuron bounds reach 1e6..1e15. Returns the net and an input box."""
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 4))
    sizes, layers = [n_in], []
    n_layers = int(rng.integers(2, 5))
    for k in range(n_layers):
        m = int(rng.integers(1, min(3, k + 1) + 1))
        srcs = list(rng.choice(list(range(k + 1)), size=m, replace=False))
        if k not in srcs and rng.random() < 0.7:
            srcs[0] = k
        srcs = tuple(int(s) for s in srcs)
        n_in_k = sum(sizes[s] for s in srcs)
        scale = big if rng.random() < 0.7 else 1.0
        act = None
        n_out = 2
        if k < n_layers - 1:
            kind = rng.choice(["relu", "max", "max"])
            n_out = int(rng.integers(2, 7))
            if kind == "relu":
                act = Activation("relu")
            else:
                n_post, width = int(rng.integers(1, 5)), int(rng.integers(1, 4))
                groups = rng.integers(0, n_out, (n_post, width))
                groups[:, 1:][rng.random((n_post, width - 1)) < 0.3] = -1
                act = Activation("max", groups=groups)
        W = _f32(scale * rng.standard_normal((n_out, n_in_k)) / np.sqrt(n_in_k))
        if rng.random() < 0.2:
            W[rng.random(W.shape) < 0.5] = 0
        if rng.random() < 0.2 and n_out > 1:
            W[1] = W[0]
        b = _f32(scale * 0.3 * rng.standard_normal(n_out))
        layers.append(Layer(W, b, act, sources=srcs))
        sizes.append(layers[-1].n_post)
    net = Network(tuple(layers), (1, n_in), (1, 2))
    rng = np.random.default_rng(seed + 1000)
    lo = _f32(rng.uniform(-1, 0, n_in))
    hi = _f32(lo + rng.uniform(0, 2, n_in))
    if rng.random() < 0.3:
        i = int(rng.integers(n_in))
        hi[i] = lo[i]
    return net, lo, hi
