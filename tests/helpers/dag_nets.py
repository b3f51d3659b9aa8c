"""DAG test networks built in memory (explicit ``sources=``): a residual net, a max-pool net, a
1-D convolutional net with sparse weights, and the test's own float32 / float64 DAG evaluation
(independent of ``verifier.network`` and ``io.replay``) to check them against."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from verifier.network import Activation, Layer, Network


def _f32(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(np.float32).astype(np.float64)


def residual_network(seed: int, n_in: int = 3, width: int = 6, n_out: int = 2) -> Network:
    """``h1 = relu(W0 x)``, ``h2 = relu(W1 h1 + V x)`` (skip from the input), ``y = W2 [h2, h1]``
    (skip from ``h1``): layer 1 reads tensors (1, 0), the output layer (2, 1)."""
    rng = np.random.default_rng(seed)
    layers = (
        Layer(_f32(rng, (width, n_in), 1 / np.sqrt(n_in)), _f32(rng, width, 0.3), Activation("relu")),
        Layer(_f32(rng, (width, width + n_in), 1 / np.sqrt(width)), _f32(rng, width, 0.3), Activation("relu"),
              sources=(1, 0)),
        Layer(_f32(rng, (n_out, 2 * width), 1 / np.sqrt(width)), _f32(rng, n_out, 0.3), None, sources=(2, 1)),
    )
    return Network(layers, (1, n_in), (1, n_out), meta={"input_dtype": "float32"})


def maxpool_network(seed: int, n_in: int = 3, n_out: int = 2) -> Network:
    """``h = relu(W0 x)`` (8 neurons), then a max over windows of an affine map of ``h`` (overlapping
    windows, one padded with -1), then ``y = W2 [m, x]`` (the output also reads the input)."""
    rng = np.random.default_rng(seed)
    groups = np.array([[0, 1, 2], [2, 3, 4], [5, 6, -1], [7, 0, 4]])
    layers = (
        Layer(_f32(rng, (8, n_in), 1 / np.sqrt(n_in)), _f32(rng, 8, 0.3), Activation("relu")),
        Layer(_f32(rng, (8, 8), 1 / np.sqrt(8)), _f32(rng, 8, 0.3), Activation("max", groups=groups)),
        Layer(_f32(rng, (n_out, 4 + n_in), 0.7), _f32(rng, n_out, 0.3), None, sources=(2, 0)),
    )
    return Network(layers, (1, n_in), (1, n_out), meta={"input_dtype": "float32"})


def conv1d_matrix(rng: np.random.Generator, c_in: int, length: int, c_out: int, kernel: int) -> sparse.csr_array:
    """A valid 1-D convolution (stride 1) as a sparse matrix: rows (c_out, length - kernel + 1),
    columns (c_in, length), float32-representable weights."""
    w = _f32(rng, (c_out, c_in, kernel), 1 / np.sqrt(c_in * kernel))
    n_pos = length - kernel + 1
    rows, cols, vals = [], [], []
    for o in range(c_out):
        for p in range(n_pos):
            for i in range(c_in):
                rows += [o * n_pos + p] * kernel
                cols += [i * length + p + t for t in range(kernel)]
                vals += list(w[o, i])
    return sparse.csr_array((vals, (rows, cols)), shape=(c_out * n_pos, c_in * length))


def conv1d_network(seed: int, length: int = 400, channels: int = 16, kernel: int = 5) -> Network:
    """Two ReLU 1-D convolutions (sparse weights) and a dense regression output over both conv
    layers' outputs (a skip connection): a network with about 12 000 neurons whose bounds are slow."""
    rng = np.random.default_rng(seed)
    w0 = conv1d_matrix(rng, 1, length, channels, kernel)
    n1 = w0.shape[0] // channels
    w1 = conv1d_matrix(rng, channels, n1, channels, kernel)
    h1, h2 = w0.shape[0], w1.shape[0]
    layers = (
        Layer(w0, _f32(rng, h1, 0.1), Activation("relu")),
        Layer(w1, _f32(rng, h2, 0.1), Activation("relu")),
        Layer(_f32(rng, (1, h2 + h1), 1 / np.sqrt(h2)), _f32(rng, 1, 0.1), None, sources=(2, 1)),
    )
    return Network(layers, (1, length), (1, 1), meta={"input_dtype": "float32"})


def _max_windows(groups: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.array([max(p[i] for i in row if i >= 0) for row in groups], dtype=p.dtype)


def _act(layer: Layer, p: np.ndarray) -> np.ndarray:
    kind = layer.activation.kind
    if kind == "relu":
        return np.maximum(p, p.dtype.type(0))
    if kind == "max":
        return _max_windows(layer.activation.groups, p)
    raise AssertionError(f"test evaluation knows relu and max, not {kind}")


def dag_forward(net: Network, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The network at one input, each layer ``W [sources] + b`` then its activation, in ``dtype``
    (float32: the evaluation an in-memory network's replay oracle performs)."""
    tensors = [np.asarray(x, dtype=dtype)]
    for layer in net.layers:
        srcs = layer.sources or (len(tensors) - 1,)
        z = np.concatenate([tensors[t] for t in srcs])
        W = layer.weight.toarray() if hasattr(layer.weight, "toarray") else layer.weight
        p = (W.astype(dtype) @ z + layer.bias.astype(dtype)).astype(dtype)
        tensors.append(p if layer.activation is None else _act(layer, p))
    return tensors[-1].astype(np.float64)
