"""Networks found by the adversarial review of the DAG work (``tests/soundness/test_review_dag.py``).

* ``wide_relu_chain``: a plain ``n -> 6 -> 4 -> 2`` ReLU chain with first-layer weights of size
  ~1000; on some seeds the bundled CBC, run with a primal tolerance of 1e-9, "proved" feasible
  disjunct MILPs infeasible.
* ``skip_max_net``: a DAG whose three layers all read the input (tensor 0), with a max layer, over
  two boxes that fix complementary inputs (the folded MILP of box 0 was one of those CBC claims).
* ``random_dag_net``: random DAGs (skips, max windows, ties) with weights scaled by 1e4, so that
  neuron bounds reach 1e6..1e15: the solvers' feasibility tolerances no longer decide there.

Every network is float32-exact (the in-memory ones are replayed by their float32 forward pass).
"""

from __future__ import annotations

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
