"""The network side of ``check_specs.py``: an own ONNX graph loader, a float64 forward pass and
sound bounds (interval arithmetic tightened by linear back-substitution) over a DAG of nodes.

It is deliberately independent of the verifier (no code shared with ``verifier/``), small, and
written for clarity rather than speed: every tensor is a flat float64 vector per sample; a
network is a list of nodes in topological order, tensor 0 is the network input and tensor
``k + 1`` is the output of node ``k``. Node kinds:

- ``affine``: ``W z + b`` of one tensor (``Gemm``, ``MatMul``, ``Add``/``Sub`` of a constant,
  and ``Conv``, which is expanded into its dense matrix by a direct loop over the kernel);
- ``act``: a monotone elementwise activation (``Relu``, ``LeakyRelu``, ``Clip``);
- ``max``: ``y_j = max_{i in G_j} z_i`` over index windows (``MaxPool``);
- ``add``: the sum of two input-dependent tensors (a skip connection).

``Flatten`` / ``Reshape`` / ``Identity`` only rename a tensor (flat vectors in C order, as
onnxruntime lays them out).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

MAX_ELEMENTS = 4_000_000  # coefficient entries per back-substitution chunk (memory bound)


@dataclass(frozen=True)
class Node:
    """One operation of the graph; only the fields of its ``op`` are set."""

    op: str  # "affine" | "act" | "max" | "add"
    inputs: tuple[int, ...]
    weight: np.ndarray | None = None  # affine: (n_out, n_in)
    bias: np.ndarray | None = None
    act: tuple | None = None  # act: ("relu",), ("leaky", alpha) or ("clip", lo, hi)
    groups: np.ndarray | None = None  # max: (n_out, k) input indices; short windows repeat an index


@dataclass
class Graph:
    """The nodes, the input shape (without the batch dimension) and the size of every tensor."""

    nodes: list[Node]
    input_shape: tuple[int, ...]
    sizes: list[int]

    @property
    def n_inputs(self) -> int:
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


def conv_matrix(w: np.ndarray, in_shape: tuple[int, int, int], strides: list[int],
                pads: list[int], dilations: list[int]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Dense matrix of a 2-D convolution (no groups) on a flat ``(C, H, W)`` input, and the output shape.

    Output ``(o, i, j)`` adds ``w[o, c, a, b] * z[c, i*s0 - p0 + a*d0, j*s1 - p1 + b*d1]`` over
    the kernel, skipping positions outside the input (zero padding).
    """
    c_out, c_in, kh, kw = w.shape
    c, h, wd = in_shape
    if c != c_in:
        raise ValueError(f"Conv: weight expects {c_in} channels, input has {c}")
    oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    mat = np.zeros((c_out, oh, ow, c, h, wd))
    for i, j, a, b in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        r, s = i * strides[0] - pads[0] + a * dilations[0], j * strides[1] - pads[1] + b * dilations[1]
        if 0 <= r < h and 0 <= s < wd:
            mat[:, i, j, :, r, s] += w[:, :, a, b]
    return mat.reshape(c_out * oh * ow, c * h * wd), (c_out, oh, ow)


def pool_groups(in_shape: tuple[int, int, int], kernel: list[int], strides: list[int],
                pads: list[int]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Index windows of a 2-D max-pool (padding never wins a max, so padded positions are left
    out; a window cut short by padding repeats one of its indices)."""
    c, h, w = in_shape
    oh = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    groups = []
    for ch, i, j in itertools.product(range(c), range(oh), range(ow)):
        rows = [i * strides[0] - pads[0] + a for a in range(kernel[0])]
        cols = [j * strides[1] - pads[1] + b for b in range(kernel[1])]
        idx = [ch * h * w + r * w + s for r in rows for s in cols if 0 <= r < h and 0 <= s < w]
        groups.append(idx + [idx[0]] * (kernel[0] * kernel[1] - len(idx)))
    return np.array(groups), (c, oh, ow)


class _Builder:
    """State of :func:`load_graph`: ONNX tensor name -> (tensor id, shape), constants, nodes."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
        inp = next(i for i in model.graph.input if i.name not in self.consts)
        shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim[1:])
        self.tensors: dict[str, tuple[int, tuple[int, ...]]] = {inp.name: (0, shape)}
        self.uses: dict[str, int] = {}
        for node in model.graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1
        self.nodes: list[Node] = []
        self.input_shape = shape
        self.sizes = [int(np.prod(shape))]

    def emit(self, name: str, node: Node, shape: tuple[int, ...]) -> None:
        self.nodes.append(node)
        self.sizes.append(int(np.prod(shape)))
        self.tensors[name] = (len(self.nodes), shape)

    def affine(self, name: str, src: str, w: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> None:
        self.emit(name, Node("affine", (self.tensors[src][0],), weight=w, bias=b), shape)

    def add_const(self, name: str, src: str, c: np.ndarray) -> None:
        """``src + c``: folded into the affine node that produced ``src`` when nothing else reads it."""
        tid, shape = self.tensors[src]
        c = np.broadcast_to(c, (1, *shape)).reshape(-1)
        last = self.nodes[-1] if self.nodes else None
        if last is not None and last.op == "affine" and tid == len(self.nodes) and self.uses.get(src) == 1:
            self.nodes[-1] = Node("affine", last.inputs, weight=last.weight, bias=last.bias + c)
            self.tensors[name] = (tid, shape)
        else:
            self.affine(name, src, np.eye(len(c)), c, shape)


def _gemm(bld: _Builder, node: onnx.NodeProto, attrs: dict) -> None:
    if attrs.get("transA", 0):
        raise ValueError("Gemm with transA is not supported")
    mat = bld.consts[node.input[1]] * attrs.get("alpha", 1.0)
    w = mat if attrs.get("transB", 0) else mat.T
    b = bld.consts[node.input[2]] * attrs.get("beta", 1.0) if len(node.input) > 2 else np.zeros(len(w))
    bld.affine(node.output[0], node.input[0], w, np.broadcast_to(b, (len(w),)).copy(), (len(w),))


def _conv(bld: _Builder, node: onnx.NodeProto, attrs: dict) -> None:
    if attrs.get("group", 1) != 1:
        raise ValueError("grouped Conv is not supported")
    w = bld.consts[node.input[1]]
    _, shape = bld.tensors[node.input[0]]
    mat, out_shape = conv_matrix(w, shape, attrs.get("strides", [1, 1]), attrs.get("pads", [0, 0, 0, 0]),
                                 attrs.get("dilations", [1, 1]))
    b = bld.consts[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0])
    bld.affine(node.output[0], node.input[0], mat, np.repeat(b, out_shape[1] * out_shape[2]), out_shape)


def _maxpool(bld: _Builder, node: onnx.NodeProto, attrs: dict) -> None:
    if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise ValueError("MaxPool with ceil_mode or dilations is not supported")
    kernel = attrs["kernel_shape"]
    tid, shape = bld.tensors[node.input[0]]
    groups, out_shape = pool_groups(shape, kernel, attrs.get("strides", [1, 1]), attrs.get("pads", [0, 0, 0, 0]))
    bld.emit(node.output[0], Node("max", (tid,), groups=groups), out_shape)


def _activation(bld: _Builder, node: onnx.NodeProto, attrs: dict) -> None:
    if node.op_type == "Relu":
        act: tuple = ("relu",)
    elif node.op_type == "LeakyRelu":
        act = ("leaky", float(attrs.get("alpha", 0.01)))
    else:
        lo = float(bld.consts[node.input[1]]) if len(node.input) > 1 and node.input[1] else -np.inf
        hi = float(bld.consts[node.input[2]]) if len(node.input) > 2 and node.input[2] else np.inf
        act = ("clip", lo, hi)
    tid, shape = bld.tensors[node.input[0]]
    bld.emit(node.output[0], Node("act", (tid,), act=act), shape)


def _add(bld: _Builder, node: onnx.NodeProto, sign: float) -> None:
    a, b = node.input
    if b in bld.consts:
        bld.add_const(node.output[0], a, sign * bld.consts[b])
    elif a in bld.consts and sign > 0:
        bld.add_const(node.output[0], b, bld.consts[a])
    else:
        (ta, sa), (tb, sb) = bld.tensors[a], bld.tensors[b]
        if sa != sb or sign < 0:
            raise ValueError(f"{node.op_type} of tensors {sa} and {sb} is not supported")
        bld.emit(node.output[0], Node("add", (ta, tb)), sa)


def load_graph(path: Path) -> Graph:
    """Read the ONNX graphs that ``build_models.py`` writes into a :class:`Graph` (float64 copies
    of the float32 weights). Unsupported operators raise ``ValueError``."""
    model = onnx.load(str(path))
    bld = _Builder(model)
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "Gemm":
            _gemm(bld, node, attrs)
        elif op == "MatMul":
            w = bld.consts[node.input[1]].T
            bld.affine(node.output[0], node.input[0], w, np.zeros(len(w)), (len(w),))
        elif op == "Conv":
            _conv(bld, node, attrs)
        elif op == "MaxPool":
            _maxpool(bld, node, attrs)
        elif op in ("Relu", "LeakyRelu", "Clip"):
            _activation(bld, node, attrs)
        elif op in ("Add", "Sub"):
            _add(bld, node, 1.0 if op == "Add" else -1.0)
        elif op in ("Flatten", "Reshape", "Identity"):
            tid, shape = bld.tensors[node.input[0]]
            bld.tensors[node.output[0]] = (tid, shape if op == "Identity" else (int(np.prod(shape)),))
        else:
            raise ValueError(f"{path}: unsupported operator {op}")
    if bld.tensors[model.graph.output[0].name][0] != len(bld.nodes):
        raise ValueError(f"{path}: the output is not the last node's result")
    return Graph(bld.nodes, bld.input_shape, bld.sizes)


# --------------------------------------------------------------------------------------------
# Forward pass and intervals
# --------------------------------------------------------------------------------------------


def apply_act(act: tuple, z: np.ndarray) -> np.ndarray:
    """Apply a (monotone, non-decreasing) activation elementwise."""
    if act[0] == "relu":
        return np.maximum(z, 0.0)
    if act[0] == "leaky":
        return np.where(z >= 0.0, z, act[1] * z)
    return np.clip(z, act[1], act[2])


def forward(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Outputs for inputs ``x`` of shape (..., n) in float64."""
    vals = [x]
    for node in graph.nodes:
        z = vals[node.inputs[0]]
        if node.op == "affine":
            vals.append(z @ node.weight.T + node.bias)
        elif node.op == "act":
            vals.append(apply_act(node.act, z))
        elif node.op == "max":
            vals.append(z[..., node.groups].max(axis=-1))
        else:
            vals.append(z + vals[node.inputs[1]])
    return vals[-1]


def interval(node: Node, bounds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of a node's output from the bounds of its inputs (all ops are monotone
    except the affine one, which uses the centre / radius form)."""
    lo, hi = bounds[0]
    if node.op == "affine":
        centre, radius = (lo + hi) / 2 @ node.weight.T + node.bias, (hi - lo) / 2 @ np.abs(node.weight).T
        return centre - radius, centre + radius
    if node.op == "act":
        return apply_act(node.act, lo), apply_act(node.act, hi)
    if node.op == "max":
        return lo[:, node.groups].max(axis=-1), hi[:, node.groups].max(axis=-1)
    return lo + bounds[1][0], hi + bounds[1][1]


# --------------------------------------------------------------------------------------------
# Back-substitution
# --------------------------------------------------------------------------------------------


def relax(act: tuple, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Linear bounds ``al*p + bl <= act(p) <= au*p + bu`` valid for every ``p`` in ``[lo, hi]``.

    - ReLU / LeakyReLU(a), 0 <= a < 1, with ``lo < 0 < hi``: upper bound = the chord through
      ``(lo, act(lo))`` and ``(hi, act(hi))`` (the function is convex); lower bound =
      ``p`` if ``hi >= -lo`` else ``a*p`` (both are below ``max(p, a*p)``). Stable neurons are
      exact.
    - Clip(c0, c1): exact where ``[lo, hi]`` lies in one linear piece; otherwise the constant
      bounds ``act(lo) <= act(p) <= act(hi)`` (the function is non-decreasing).
    """
    zero = np.zeros_like(lo)
    if act[0] in ("relu", "leaky"):
        a = 0.0 if act[0] == "relu" else act[1]
        unstable = (lo < 0) & (hi > 0)
        width = np.where(unstable, hi - lo, 1.0)
        chord = np.where(unstable, (hi - a * lo) / width, 0.0)
        au = np.where(hi <= 0, a, np.where(lo >= 0, 1.0, chord))
        bu = np.where(unstable, a * lo - chord * lo, 0.0)
        al = np.where(hi <= 0, a, np.where(lo >= 0, 1.0, np.where(hi >= -lo, 1.0, a)))
        return al, zero, au, bu
    c0, c1 = act[1], act[2]
    linear = (lo >= c0) & (hi <= c1)
    const_lo, const_hi = np.clip(lo, c0, c1), np.clip(hi, c0, c1)
    slope = np.where(linear, 1.0, 0.0)
    return slope, np.where(linear, 0.0, const_lo), slope, np.where(linear, 0.0, const_hi)


def max_back(coef: np.ndarray, groups: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Substitute linear bounds of ``y_j = max_{i in G_j} z_i`` into ``coef . y``.

    With ``i*`` the index of the largest lower bound in ``G_j``: ``y_j >= z_{i*}`` always (used
    where the coefficient is >= 0). Where it is < 0: ``y_j <= max_{i in G_j} hi_i``, or
    ``y_j = z_{i*}`` when ``i*`` is the only index whose upper bound reaches ``lo_{i*}`` (every
    other candidate is then below ``z_{i*}``). Returns (coefficients on ``z``, constant term).
    """
    n_box, n_out = lo.shape[0], groups.shape[0]
    lg, ug = lo[:, groups], hi[:, groups]
    best = lg.argmax(axis=-1)
    istar = groups[np.arange(n_out)[None, :], best]
    cand = ug >= lg.max(axis=-1, keepdims=True)
    gi = np.broadcast_to(groups, lg.shape)
    single = np.where(cand, gi, np.iinfo(np.int64).max).min(axis=-1) == np.where(cand, gi, -1).max(axis=-1)
    pos, neg = np.maximum(coef, 0.0), np.minimum(coef, 0.0)
    to_z = pos + np.where(single[:, None, :], neg, 0.0)
    const = np.einsum("brj,bj->br", neg, np.where(single, 0.0, ug.max(axis=-1)))
    out = np.zeros((*coef.shape[:2], lo.shape[1]))
    rows = np.arange(n_box)
    for j in range(n_out):
        out[rows, :, istar[:, j]] += to_z[:, :, j]
    return out, const


def backsubstitute(graph: Graph, start: dict[int, np.ndarray], const: np.ndarray,
                   bounds: dict[int, tuple[np.ndarray, np.ndarray]], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Lower bound over each input box of ``sum_t start[t] . z_t + const`` (rows of a batch).

    ``start[t]`` has shape (boxes, rows, size of tensor t). Going back through the nodes in
    reverse topological order, each node's coefficients are pushed to its inputs: affine maps
    and sums exactly, activations and max windows through linear relaxations that hold on the
    input bounds ``bounds`` (lower relaxation where the coefficient is >= 0, upper where < 0).
    At the input the linear form is minimised over the box.
    """
    coefs = dict(start)

    def push(t: int, c: np.ndarray) -> None:
        coefs[t] = coefs[t] + c if t in coefs else c

    for k in range(max(coefs) - 1, -1, -1):
        if k + 1 not in coefs:
            continue
        a, node = coefs.pop(k + 1), graph.nodes[k]
        src = node.inputs[0]
        if node.op == "affine":
            const = const + a @ node.bias
            push(src, a @ node.weight)
        elif node.op == "add":
            push(src, a)
            push(node.inputs[1], a)
        elif node.op == "act":
            al, bl, au, bu = relax(node.act, *bounds[src])
            pos = a >= 0
            const = const + np.sum(a * np.where(pos, bl[:, None, :], bu[:, None, :]), axis=-1)
            push(src, a * np.where(pos, al[:, None, :], au[:, None, :]))
        else:
            c, extra = max_back(a, node.groups, *bounds[src])
            const = const + extra
            push(src, c)
    a0 = coefs.pop(0, np.zeros((*const.shape, lo.shape[1])))
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    return const + np.einsum("brn,bn->br", a0, centre) - np.einsum("brn,bn->br", np.abs(a0), radius)


def tensor_bounds(graph: Graph, lo: np.ndarray, hi: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Bounds of every tensor for a batch of input boxes.

    Interval arithmetic, intersected with back-substitution bounds for the tensors that feed an
    activation or a max and are computed by an affine node (not directly from the input, where
    intervals are already exact) or by a sum (both bounds are sound, so is their intersection).
    """
    feeds_nonlinear = {n.inputs[0] for n in graph.nodes if n.op in ("act", "max")}
    bounds = {0: (lo, hi)}
    for k, node in enumerate(graph.nodes):
        t = k + 1
        low, up = interval(node, [bounds[i] for i in node.inputs])
        if t in feeds_nonlinear and (node.op == "add" or (node.op == "affine" and node.inputs != (0,))):
            eye = np.broadcast_to(np.eye(graph.sizes[t]), (len(lo), graph.sizes[t], graph.sizes[t]))
            zero = np.zeros((len(lo), graph.sizes[t]))
            low = np.maximum(low, backsubstitute(graph, {t: eye}, zero, bounds, lo, hi))
            up = np.minimum(up, -backsubstitute(graph, {t: -eye}, zero, bounds, lo, hi))
        bounds[t] = (low, up)
    return bounds


def linear_lower_bounds(graph: Graph, cy: np.ndarray, cx: np.ndarray, const: np.ndarray,
                        lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(boxes, rows) lower bounds of ``cy . y + cx . x + const`` over each box (chunked)."""
    out = []
    rows = max(len(cy), max(graph.sizes))
    step = max(1, MAX_ELEMENTS // (rows * max(graph.sizes)))
    for s in range(0, len(lo), step):
        l, h = lo[s:s + step], hi[s:s + step]
        bounds = tensor_bounds(graph, l, h)
        n = len(l)
        start = {len(graph.nodes): np.broadcast_to(cy, (n, *cy.shape)), 0: np.broadcast_to(cx, (n, *cx.shape))}
        out.append(backsubstitute(graph, start, np.broadcast_to(const, (n, len(const))), bounds, l, h))
    return np.concatenate(out)


def input_sensitivity(graph: Graph) -> np.ndarray:
    """Per input, the sum of the absolute weights that read it (a bisection heuristic)."""
    sens = np.zeros(graph.n_inputs)
    for node in graph.nodes:
        if node.op == "affine" and node.inputs == (0,):
            sens += np.abs(node.weight).sum(axis=0)
    return np.where(sens > 0, sens, 1.0)


def self_test(graph: Graph, rng: np.random.Generator, n_boxes: int = 64) -> None:
    """Sanity check of the bound code: random sub-boxes (some inputs fixed), random points in
    them, random linear objectives; every sampled value must lie above its computed lower bound."""
    n_in, n_out = graph.n_inputs, graph.n_outputs
    centre = rng.uniform(-1, 1, size=(n_boxes, n_in))
    radius = rng.uniform(0.01, 0.5, size=(n_boxes, n_in)) * (rng.random((n_boxes, n_in)) < 0.7)
    lo, hi = centre - radius, centre + radius
    cy, cx = rng.normal(size=(3, n_out)), rng.normal(size=(3, n_in))
    lower = linear_lower_bounds(graph, cy, cx, np.zeros(3), lo, hi)
    x = lo[:, None, :] + (hi - lo)[:, None, :] * rng.random((n_boxes, 256, n_in))
    values = forward(graph, x) @ cy.T + x @ cx.T  # (boxes, points, objectives)
    if np.any(values < lower[:, None, :] - 1e-9):
        raise AssertionError("bound self-test failed: a sampled value is below its lower bound")
