"""Test networks: the activation kinds the verifier supports (``ActKind``, ``ACTIVATIONS``), small
random networks as ``Network`` objects and as ONNX files (float32-representable weights, so that the
ONNX file and the ``Network`` compute the same function), and planted networks (cancel, spike)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from tests.helpers.onnx_builders import initializer, make_model, tensor
from verifier.network import Activation, Layer, Network


# ------------------------------------------------------------------------------------ activations
@dataclass(frozen=True)
class ActKind:
    """An activation to test: its ONNX form (op + parameters) and the input half-width to use."""

    name: str
    kind: str  # relu / leaky / clip
    alpha: float = 0.0
    lo: float = -np.inf
    hi: float = np.inf
    onnx_op: str = "Relu"  # Relu / LeakyRelu / Clip / Max / Min
    radius: float = 1.0  # inputs in [-radius, radius]^n put kinks inside the bounds

    def activation(self, n: int) -> Activation:
        if self.kind == "relu":
            return Activation("relu")
        if self.kind == "leaky":
            return Activation("leaky", alpha=self.alpha)
        return Activation("clip", lo=np.full(n, self.lo), hi=np.full(n, self.hi))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Reference implementation, independent of ``verifier.network``."""
        if self.kind == "relu":
            return np.maximum(x, 0.0)
        if self.kind == "leaky":
            return np.where(x >= 0.0, x, self.alpha * x)
        return np.minimum(np.maximum(x, self.lo), self.hi)

    def kinks(self) -> list[float]:
        if self.kind in ("relu", "leaky"):
            return [0.0]
        return [k for k in (self.lo, self.hi) if np.isfinite(k)]


ACTIVATIONS = [
    ActKind("relu", "relu"),
    ActKind("leaky0.1", "leaky", alpha=0.1, onnx_op="LeakyRelu"),
    ActKind("leaky0.01", "leaky", alpha=0.01, onnx_op="LeakyRelu"),
    ActKind("clip01", "clip", lo=0.0, hi=1.0, onnx_op="Clip"),
    ActKind("clip_half", "clip", lo=-0.5, hi=0.5, onnx_op="Clip"),
    ActKind("max0.2", "clip", lo=0.2, onnx_op="Max"),
    ActKind("min0.3", "clip", hi=0.3, onnx_op="Min"),
    ActKind("relu6", "clip", lo=0.0, hi=6.0, onnx_op="Clip", radius=6.0),
]
ACT_BY_NAME = {a.name: a for a in ACTIVATIONS}


# ---------------------------------------------------------------------------------- networks
def random_network(seed: int, act: ActKind, widths: tuple[int, ...] = (2, 8, 8, 2), scale: float = 1.0,
                   source: str | None = None, real: bool = False) -> Network:
    """A random fully-connected network ``widths[0] -> ... -> widths[-1]`` with ``act`` on hidden layers.

    Weights and biases are float32-representable so the same network can be written to ONNX exactly.
    ``real``: the network is evaluated in exact arithmetic (no float rounding: zero error bounds),
    for tests of the real-arithmetic encodings; otherwise it is a float32 network.
    """
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(widths) - 1):
        n_in, n_out = widths[k], widths[k + 1]
        w = (scale * rng.standard_normal((n_out, n_in)) / np.sqrt(n_in) * 1.5).astype(np.float32)
        b = (scale * 0.3 * rng.standard_normal(n_out)).astype(np.float32)
        last = k == len(widths) - 2
        a = None if last else act.activation(n_out)
        if real:
            a = None if a is None else dataclasses.replace(a, rel_error=0.0, abs_error=0.0)
            layers.append(Layer(w.astype(np.float64), b.astype(np.float64), a, np.zeros((n_out, n_in)), np.zeros(n_out)))
        else:
            layers.append(Layer(w.astype(np.float64), b.astype(np.float64), a))
    return Network(tuple(layers), (1, widths[0]), (1, widths[-1]), source=source,
                   meta={"input_dtype": "float32"})


def reference_forward(network: Network, act: ActKind, x: np.ndarray) -> np.ndarray:
    """Forward pass with the test's own activation code (float64)."""
    z = np.asarray(x, dtype=np.float64)
    for layer in network.layers:
        z = z @ layer.weight.T + layer.bias
        if layer.activation is not None:
            z = act.apply(z)
    return z


def lipschitz(network: Network, output: int | None = None) -> float:
    """An upper bound on the 2-norm Lipschitz constant (every activation here is 1-Lipschitz)."""
    L = 1.0
    for k, layer in enumerate(network.layers):
        W = layer.weight
        if output is not None and k == len(network.layers) - 1:
            W = W[output:output + 1]
        L *= float(np.linalg.norm(W, 2))
    return L


def _activation_nodes(act: ActKind, src: str, out: str, k: int) -> tuple[list, list]:
    from onnx import helper

    if act.onnx_op == "Relu":
        return [helper.make_node("Relu", [src], [out])], []
    if act.onnx_op == "LeakyRelu":
        return [helper.make_node("LeakyRelu", [src], [out], alpha=act.alpha)], []
    if act.onnx_op == "Clip":
        lo, hi = f"clip_lo_{k}", f"clip_hi_{k}"
        inits = [initializer(lo, np.float32(act.lo)), initializer(hi, np.float32(act.hi))]
        return [helper.make_node("Clip", [src, lo, hi], [out])], inits
    c = f"c_{k}"
    value = act.lo if act.onnx_op == "Max" else act.hi
    return [helper.make_node(act.onnx_op, [src, c], [out])], [initializer(c, np.full((1,), value, np.float32))]


def network_to_onnx(network: Network, act: ActKind | None, path: Path) -> Path:
    """Write ``network`` as Gemm (+ activation) nodes; ``act`` gives the ONNX form of its activation."""
    from onnx import helper

    nodes, inits = [], []
    cur = "input"
    for k, layer in enumerate(network.layers):
        w, b = f"W_{k}", f"b_{k}"
        inits += [initializer(w, layer.weight), initializer(b, layer.bias)]
        last = k == len(network.layers) - 1
        pre = "output" if last else f"pre_{k}"
        nodes.append(helper.make_node("Gemm", [cur, w, b], [pre], transB=1))
        if not last:
            assert act is not None
            post = f"post_{k}"
            new_nodes, new_inits = _activation_nodes(act, pre, post, k)
            nodes += new_nodes
            inits += new_inits
            cur = post
    model = make_model(nodes, [tensor("input", [1, network.n_inputs])], [tensor("output", [1, network.n_outputs])],
                       inits, opset=13)
    onnx.save(model, str(path))
    return path


# ------------------------------------------------------------------------------ planted networks
RELU = ActKind("relu", "relu")
CANCEL_MAX = 0.75
SPIKE_A, SPIKE_B, SPIKE_K = 0.3125, -0.4375, 1000.0


def f32(a) -> np.ndarray:
    """``a`` rounded to float32, as float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_net(layers: list[tuple[list, list, str | None]]) -> Network:
    """A network from layers ``(W, b, 'relu' | None)``, with float32-representable numbers."""
    out = [Layer(f32(W), f32(b), Activation(act) if act else None) for W, b, act in layers]
    return Network(tuple(out), (1, out[0].n_in), (1, out[-1].n_out), meta={"input_dtype": "float32"})


def cancel_network() -> Network:
    """``y0 = 0.75 + relu(p) - relu(p)``, ``y1 = (relu(p) + relu(p)) / 2`` with ``p = x0 + 0.5 x1 - 0.125``.

    ``y0`` is exactly 0.75 everywhere (in float32 too), while interval and symbolic bounds on
    ``[-1, 1]^2`` leave ``y0 <= 0.75 + (about 1)``: only the MILP can prove ``y0 >= 0.75 + d`` empty.
    """
    return make_net([([[1.0, 0.5], [1.0, 0.5]], [-0.125, -0.125], "relu"),
                     ([[1.0, -1.0], [0.5, 0.5]], [CANCEL_MAX, 0.0], None)])


def spike_network() -> Network:
    """``y0 = relu(1 - K (|x0 - a| + |x1 - b|))``: a peak of height 1 at (a, b), above 0.5 only on a diamond
    of radius 0.5/K = 5e-4 (area 5e-7 of the box [-1, 1]^2), with zero gradient everywhere outside it."""
    a, b, k = SPIKE_A, SPIKE_B, SPIKE_K
    return make_net([([[1, 0], [-1, 0], [0, 1], [0, -1]], [-a, a, -b, b], "relu"),
                     ([[-k, -k, -k, -k]], [1.0], "relu"),
                     ([[1.0]], [0.0], None)])


def mixed_network(seed: int, sizes: list[int], kind: str = "relu", residual: bool = False, bias: float = 0.2) -> Network:
    """Random float32 layers: ReLU (``kind`` "leaky": LeakyReLU 0.1, "clip": one Clip [0, 0.6] layer),
    optionally a skip into layer 2 (``residual``), the affine last layer without an activation."""
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(sizes) - 1):
        W = rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])
        b = rng.normal(size=sizes[i + 1]) * bias
        last = i == len(sizes) - 2
        act = None if last else (Activation("leaky", alpha=0.1) if kind == "leaky" else
                                 Activation("clip", lo=np.full(sizes[i + 1], 0.0), hi=np.full(sizes[i + 1], 0.6))
                                 if kind == "clip" and i == 1 else Activation("relu"))
        src = None
        if residual and i == 2 and sizes[i + 1] == sizes[i - 1]:  # layer 2 reads tensors 2 and 1
            W = np.hstack([W, np.eye(sizes[i + 1])])
            src = (2, 1)
        layers.append(Layer(W.astype(np.float32).astype(float), b.astype(np.float32).astype(float), act,
                            sources=src))
    return Network(tuple(layers), (sizes[0],), (sizes[-1],))
