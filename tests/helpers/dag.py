"""DAG test networks built in memory with explicit ``sources=``: max-pooling nets (overlapping
windows, ``-1`` padding, a window of always-inactive ReLUs), a residual net (a layer reading
``(h, s)``), a 1-D convolution stored as a sparse matrix; plus the test's own forward pass and a
per-output Lipschitz bound, both independent of ``verifier.network``'s evaluation code.

``real=True`` networks carry zero float error bounds (real-arithmetic tests of the encodings);
otherwise the layers get the default float32 ``Gemm`` error model.
"""

from __future__ import annotations

import numpy as np

from verifier.layer_bounds import LayerBounds
from verifier.network import Activation, Layer, Network

#: windows of the max layer in ``maxpool_network`` over its 8 pre-activations: overlapping
#: (0..2 / 1..3 / 4,5,0), padded with -1, one single-candidate window (5) and the window of the two
#: pre-activations that copy always-inactive ReLUs (6, 7), whose values are exactly 0
WINDOWS = np.array([[0, 1, 2], [1, 2, 3], [3, 4, -1], [5, -1, -1], [6, 7, -1], [4, 5, 0]])
DEAD = (6, 7)


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _layer(W, b, act: Activation | None, sources: tuple[int, ...] | None, real: bool) -> Layer:
    W = W if hasattr(W, "tocsr") else _f32(W)
    b = _f32(b)
    if real:
        zero_w = W * 0.0 if hasattr(W, "tocsr") else np.zeros(W.shape)
        return Layer(W, b, act, zero_w, np.zeros(b.size), sources=sources)
    return Layer(W, b, act, sources=sources)


def _net(layers: list[Layer], n_in: int) -> Network:
    return Network(tuple(layers), (1, n_in), (1, layers[-1].n_out), meta={"input_dtype": "float32"})


def _dense(rng, n_out: int, n_in: int, scale: float = 1.5) -> np.ndarray:
    return scale * rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)


def maxpool_network(seed: int, n_in: int = 2, after: bool = True, real: bool = True) -> Network:
    """``n_in -> 8 ReLU -> max over WINDOWS (6 outputs) [-> 4 ReLU] -> 2``.

    The max layer's pre-activations 0..5 are a random affine map of the ReLU outputs; 6 and 7 copy
    ReLU neurons 6 and 7, whose bias (-50) keeps them inactive on ``[-1, 1]^n``: the window ``(6, 7)``
    is a window of inactive ReLUs. ``after``: a ReLU layer reads the max outputs (else the output layer does).
    """
    rng = np.random.default_rng(seed)
    W0, b0 = _dense(rng, 8, n_in), 0.3 * rng.standard_normal(8)
    W0[list(DEAD)] = np.abs(W0[list(DEAD)])
    b0[list(DEAD)] = -50.0
    W1, b1 = np.zeros((8, 8)), np.zeros(8)
    W1[:6] = _dense(rng, 6, 8)
    b1[:6] = 0.3 * rng.standard_normal(6)
    W1[6, 6] = W1[7, 7] = 1.0
    layers = [_layer(W0, b0, Activation("relu"), None, real),
              _layer(W1, b1, Activation("max", groups=WINDOWS), None, real)]
    if after:
        layers.append(_layer(_dense(rng, 4, 6), 0.3 * rng.standard_normal(4), Activation("relu"), None, real))
    n = layers[-1].n_post
    layers.append(_layer(_dense(rng, 2, n), 0.3 * rng.standard_normal(2), None, None, real))
    return _net(layers, n_in)


def residual_network(seed: int, n_in: int = 2, width: int = 6, real: bool = True, pool: bool = False) -> Network:
    """``h0 = relu(W0 x)``, ``h1 = relu(W1 h0)``, ``h2 = relu([W2 | I] (h1, h0))`` (reads tensors
    (2, 1): a residual block), then the output ``W3 (h2, x)`` (reads (3, 0): a skip from the input).
    ``pool``: ``h2`` is followed by a max over overlapping pairs before the output layer."""
    rng = np.random.default_rng(seed)
    W2 = np.hstack([_dense(rng, width, width), np.eye(width)])
    layers = [_layer(_dense(rng, width, n_in), 0.3 * rng.standard_normal(width), Activation("relu"), None, real),
              _layer(_dense(rng, width, width), 0.3 * rng.standard_normal(width), Activation("relu"), (1,), real),
              _layer(W2, 0.3 * rng.standard_normal(width), Activation("relu"), (2, 1), real)]
    last_src = 3
    if pool:
        groups = np.array([[i, i + 1] for i in range(width - 1)])
        layers.append(_layer(np.eye(width) + 0.3 * rng.standard_normal((width, width)), np.zeros(width),
                             Activation("max", groups=groups), (3,), real))
        last_src = 4
    n = layers[-1].n_post
    layers.append(_layer(_dense(rng, 2, n + n_in), 0.3 * rng.standard_normal(2), None, (last_src, 0), real))
    return _net(layers, n_in)


def conv1d_matrix(n: int, kernel: np.ndarray):
    """The ``n x n`` matrix of a 1-D convolution (stride 1, zero padding keeping the size) as a CSR array."""
    from scipy import sparse

    k = kernel.size
    half = k // 2
    rows, cols, vals = [], [], []
    for i in range(n):
        for t in range(k):
            j = i + t - half
            if 0 <= j < n:
                rows.append(i)
                cols.append(j)
                vals.append(kernel[t])
    return sparse.csr_array((_f32(vals), (rows, cols)), shape=(n, n))


def conv_network(seed: int, n: int = 512, kernel_size: int = 3, real: bool = True) -> Network:
    """``n -> conv1d (ReLU) -> conv1d (ReLU) -> 2`` with the convolutions as sparse matrices
    (stored sparse by ``Layer`` when ``n * n`` is large enough: ``linalg.as_weight``)."""
    rng = np.random.default_rng(seed)
    layers = [_layer(conv1d_matrix(n, rng.standard_normal(kernel_size)), 0.1 * rng.standard_normal(n),
                     Activation("relu"), None, real),
              _layer(conv1d_matrix(n, rng.standard_normal(kernel_size)), 0.1 * rng.standard_normal(n),
                     Activation("relu"), None, real),
              _layer(_dense(rng, 2, n), 0.1 * rng.standard_normal(2), None, None, real)]
    return _net(layers, n)


# ------------------------------------------------------------------------- the test's own evaluation
def _act(act: Activation, x: np.ndarray) -> np.ndarray:
    if act.kind == "relu":
        return np.maximum(x, 0.0)
    assert act.kind == "max", act.kind
    g = act.groups
    xg = np.where(g >= 0, x[..., np.maximum(g, 0)], -np.inf)
    return xg.max(axis=-1)


def dag_forward(network: Network, x: np.ndarray) -> np.ndarray:
    """Outputs for inputs ``x`` ((b, n)), walking ``Layer.sources`` with the test's own activations."""
    tensors = [np.atleast_2d(np.asarray(x, dtype=np.float64))]
    for k, layer in enumerate(network.layers):
        src = layer.sources if layer.sources is not None else (k,)
        z = np.concatenate([tensors[t] for t in src], axis=1)
        p = np.asarray(z @ layer.weight.T) + layer.bias
        tensors.append(p if layer.activation is None else _act(layer.activation, p))
    return tensors[-1]


def lipschitz_inf(network: Network) -> np.ndarray:
    """Per output ``j``: ``|y_j(x) - y_j(x')| <= L_j ||x - x'||_inf`` (per-entry constants carried
    through ``|W|``; ReLU and max are 1-Lipschitz per entry in the sup norm)."""
    lam = [np.ones(network.n_inputs)]
    for k, layer in enumerate(network.layers):
        src = layer.sources if layer.sources is not None else (k,)
        pre = np.asarray(abs(layer.weight) @ np.concatenate([lam[t] for t in src]))
        act = layer.activation
        if act is not None and act.kind == "max":
            g = act.groups
            pre = np.where(g >= 0, pre[np.maximum(g, 0)], 0.0).max(axis=1)
        lam.append(pre)
    return lam[-1]


def snap_dead(network: Network, bounds: LayerBounds, k: int = 1) -> LayerBounds:
    """``bounds`` with the pre-activations ``DEAD`` of the max layer ``k`` set to exactly ``[0, 0]``
    (sound: they copy ReLUs that are inactive on the whole box, so they are 0 in real arithmetic)."""
    lo, hi = [a.copy() for a in bounds.lower], [a.copy() for a in bounds.upper]
    assert network.layers[k].activation.kind == "max"
    lo[k][list(DEAD)] = 0.0
    hi[k][list(DEAD)] = 0.0
    return LayerBounds(tuple(lo), tuple(hi), "snapped")
