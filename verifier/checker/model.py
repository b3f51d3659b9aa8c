"""The checker's own reading of an ONNX model: a chain of affine layers and activations.

Supported operator subset (anything else is refused, naming the node): ``MatMul``, ``Gemm``
(alpha = beta = 1, transA = 0), ``Add`` / ``Sub`` of a constant, ``Mul`` by a constant (before
any contraction of its layer), ``Relu``, ``LeakyRelu``, ``Flatten``, ``Reshape``, ``Identity``,
``Constant``. One contraction and at most one bias per layer; float32 tensors, batch size 1.

A layer computes ``x = W z + b`` in float32; onnxruntime may sum in any order, with or without
FMA: ``|fl(x) - x| <= gamma_n (|W| |z| + |b|) + n eta`` with ``n`` the row's non-zero terms
(``error_bound`` in ``bounds``). Reshapes and flattens keep the row-major order of a batch-1
tensor, so they do not move any value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SUPPORTED = ("Add", "Constant", "Flatten", "Gemm", "Identity", "LeakyRelu", "MatMul", "Mul", "Relu", "Reshape",
             "Sub")
SHAPE_OPS = ("Flatten", "Identity", "Reshape")


class BadInput(Exception):
    """The model, spec or certificate cannot be read (exit code 2)."""


@dataclass
class Layer:
    weight: np.ndarray  # (n_out, n_in) float64 holding float32 values exactly
    bias: np.ndarray  # (n_out,)
    act: str | None  # "relu", "leaky" or None (affine only)
    slope: float = 0.0  # LeakyReLU's negative slope (a float32 value)
    terms: np.ndarray | None = None  # per row: summed non-zero terms (error model's n)

    def __post_init__(self) -> None:
        self.terms = np.count_nonzero(self.weight, axis=1) + (self.bias != 0)
        if not (np.all(np.isfinite(self.weight)) and np.all(np.isfinite(self.bias))):
            raise BadInput("a weight or bias is not finite")
        if self.terms.size and self.terms.max() * 2.0 ** -24 >= 0.01:
            raise BadInput(f"a row sums {int(self.terms.max())} terms: the float32 error model needs n u < 0.01")


@dataclass
class Model:
    layers: list[Layer]
    n_inputs: int
    n_outputs: int
    operators: list[str]
    sha256: str
    input_name: str

    @property
    def activation_layers(self) -> list[int]:
        """Layer index of each activation layer ``a = 0, 1, ...`` (the certificate's numbering)."""
        return [k for k, layer in enumerate(self.layers) if layer.act is not None]


def _constant(attrs: dict, where: str) -> np.ndarray:
    from onnx import numpy_helper

    if set(attrs) == {"value"}:
        return numpy_helper.to_array(attrs["value"])
    if set(attrs) in ({"value_float"}, {"value_floats"}):
        return np.asarray(next(iter(attrs.values())), dtype=np.float32)
    if set(attrs) in ({"value_int"}, {"value_ints"}):
        return np.asarray(next(iter(attrs.values())), dtype=np.int64)
    raise BadInput(f"{where}: a Constant needs one of value, value_float(s), value_int(s)")


def _unambiguous(proto, path: str) -> None:
    """Refuse what onnxruntime could read differently from the checker: operators of other
    domains or model-local functions (a ``Relu`` of another domain is not ReLU), sparse
    initializers, and any name defined twice (a Constant node redefining an initializer)."""
    g = proto.graph
    if len(proto.functions):
        raise BadInput(f"{path}: model-local functions are not supported")
    if len(g.sparse_initializer):
        raise BadInput(f"{path}: sparse initializers are not supported")
    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            raise BadInput(f"{path}: node {node.name or node.output[0]!r} is {node.domain}.{node.op_type}: "
                           "only the default ONNX domain is supported")
    names = [t.name for t in g.initializer] + [o for n in g.node for o in n.output if o]
    names += [i.name for i in g.input if i.name not in {t.name for t in g.initializer}]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadInput(f"{path}: tensor name {name!r} is defined more than once")
        seen.add(name)


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load(path: str) -> Model:
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(path)
    except Exception as exc:
        raise BadInput(f"{path}: not a readable ONNX model ({exc})") from exc
    g = proto.graph
    _unambiguous(proto, path)
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise BadInput(f"{path}: the checker needs one input and one output tensor")
    inp = inputs[0]
    if inp.type.tensor_type.elem_type != 1:
        raise BadInput(f"{path}: input {inp.name!r} is not float32")
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    if len(shape) > 1 and shape[0] <= 0:
        shape[0] = 1  # a symbolic batch dimension: one input at a time
    if any(d <= 0 for d in shape):
        raise BadInput(f"{path}: input {inp.name!r} needs a fixed shape, got {shape}")
    n_in = int(np.prod(shape))
    live = {inp.name: tuple(shape)}  # the one non-constant tensor: name -> shape
    chain = _Chain(n_in)
    ops = sorted({n.op_type for n in g.node})
    for node in g.node:
        where = f"{path}: node {node.name or node.output[0]!r} ({node.op_type})"
        if node.op_type not in SUPPORTED:
            raise BadInput(f"{where}: operator not in the checker's subset {', '.join(SUPPORTED)}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            consts[node.output[0]] = _constant(attrs, where)
            continue
        names = [n for n in node.input if n]
        var = [n for n in names if n in live]
        if not var:  # a constant subexpression: the checker does not fold constants
            raise BadInput(f"{where}: computes on constants only (fold it in the model)")
        if len(var) != 1 or names.count(var[0]) != 1:
            raise BadInput(f"{where}: reads the network's tensor more than once (only chains are supported)")
        other = [consts.get(n) for n in names if n != var[0]]
        if any(c is None for c in other):
            raise BadInput(f"{where}: an operand is neither a constant nor the network's tensor")
        if node.op_type not in SHAPE_OPS and any(c.dtype != np.float32 for c in other):
            raise BadInput(f"{where}: constants must be float32, found {[str(c.dtype) for c in other]}")
        shape = live.pop(var[0])
        shape = chain.apply(node.op_type, attrs, shape, names.index(var[0]), other, where)
        live = {node.output[0]: shape}
    if g.output[0].name not in live:
        raise BadInput(f"{path}: the output is not computed from the input by a chain")
    layers = chain.finish(None, f"{path}: output")
    if not layers or layers[-1].act is not None:
        raise BadInput(f"{path}: the network must end with an affine layer")
    return Model(layers, n_in, layers[-1].weight.shape[0], ops, sha256_file(path), inp.name)


class _Chain:
    """Accumulates the operators between two activations into one affine layer."""

    def __init__(self, n_in: int) -> None:
        self.layers: list[Layer] = []
        self.n = n_in
        self._reset()

    def _reset(self) -> None:
        self.W: np.ndarray | None = None  # None: identity (nothing pending)
        self.b = np.zeros(self.n)
        self.biased = False

    def finish(self, act: str | None, where: str, slope: float = 0.0) -> list[Layer]:
        if self.W is None and not self.biased:
            if act is None and not self.layers:
                raise BadInput(f"{where}: the network has no affine layer")
            if act is None:
                return self.layers
            raise BadInput(f"{where}: an activation must follow an affine map (found none since the last one)")
        W = np.eye(self.n) if self.W is None else self.W
        self.layers.append(Layer(W, self.b.copy(), act, slope))
        self._reset()
        return self.layers

    def apply(self, op: str, attrs: dict, shape: tuple, pos: int, other: list, where: str) -> tuple:
        size = int(np.prod(shape))
        if op in SHAPE_OPS:
            if shape and shape[0] != 1 and len(shape) > 1:
                raise BadInput(f"{where}: batch size must be 1")
            if op == "Flatten":
                axis = attrs.get("axis", 1)
                axis = axis + len(shape) if axis < 0 else axis
                return (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
            if op == "Reshape":
                target = [int(v) for v in other[0].ravel()]
                target = [shape[i] if v == 0 else v for i, v in enumerate(target)]
                if -1 in target:
                    rest = int(np.prod([v for v in target if v != -1]))
                    target[target.index(-1)] = size // rest
                if int(np.prod(target)) != size:
                    raise BadInput(f"{where}: reshape to {target} does not keep {size} values")
                return tuple(target)
            return shape
        if op in ("Relu", "LeakyRelu"):
            slope = float(np.float32(attrs.get("alpha", 0.01))) if op == "LeakyRelu" else 0.0
            if op == "LeakyRelu" and not 0.0 <= slope < 1.0:
                raise BadInput(f"{where}: LeakyRelu alpha {slope} outside [0, 1)")
            self.finish("relu" if op == "Relu" else "leaky", where, slope)
            return shape
        if op == "Gemm":
            return self._gemm(attrs, shape, pos, other, where)
        (c,) = other
        c = c.astype(np.float64)
        if op == "MatMul":
            if c.ndim != 2:
                raise BadInput(f"{where}: MatMul needs a 2-D constant matrix")
            return self._contract(shape, pos, c, None, where)
        vec = _broadcast(c, shape, where)
        if op == "Mul":
            if self.W is not None or self.biased:
                self.finish(None, where)  # a scaling after other operators is a layer of its own
            self.W = np.diag(vec)
            return shape
        if op == "Sub" and pos != 0:
            raise BadInput(f"{where}: constant minus the network's tensor is not supported")
        self._add_bias(vec if op == "Add" else -vec, where)
        return shape

    def _gemm(self, attrs: dict, shape: tuple, pos: int, other: list, where: str) -> tuple:
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise BadInput(f"{where}: Gemm with transA, alpha != 1 or beta != 1 is not supported")
        B = other[0].astype(np.float64)
        if B.ndim != 2:
            raise BadInput(f"{where}: Gemm needs a 2-D weight")
        M = B.T if attrs.get("transB", 0) else B
        bias = None
        if len(other) > 1:
            try:
                bias = np.broadcast_to(other[1].astype(np.float64), (1, M.shape[1])).ravel()
            except ValueError:
                raise BadInput(f"{where}: Gemm bias of shape {other[1].shape} does not broadcast to "
                               f"(1, {M.shape[1]})") from None
        return self._contract(shape, pos, M, bias, where)

    def _contract(self, shape: tuple, pos: int, M: np.ndarray, bias: np.ndarray | None, where: str) -> tuple:
        """``z @ M (+ bias)``: one contraction; whatever is pending becomes its own layer first."""
        if pos != 0 or len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != 1):
            raise BadInput(f"{where}: supported as a (1, n) tensor times a constant matrix only")
        if self.W is not None or self.biased:
            self.finish(None, where)
        if M.shape[0] != self.n:
            raise BadInput(f"{where}: weight has {M.shape[0]} rows, the tensor {self.n} values")
        self.W = M.T.copy()  # (n_out, n_in)
        self.n = self.W.shape[0]
        self.b = np.zeros(self.n)
        if bias is not None and np.any(bias != 0):
            self._add_bias(bias, where)
        return (1, self.n) if len(shape) == 2 else (self.n,)

    def _add_bias(self, vec: np.ndarray, where: str) -> None:
        if self.biased:
            raise BadInput(f"{where}: a second bias in one layer is not supported")
        self.b = vec.copy()
        self.biased = True


def _broadcast(c: np.ndarray, shape: tuple, where: str) -> np.ndarray:
    try:
        out = np.broadcast_to(c, shape)
    except ValueError as exc:
        raise BadInput(f"{where}: constant of shape {c.shape} does not broadcast to {shape}") from exc
    if out.shape != tuple(shape):
        raise BadInput(f"{where}: constant of shape {c.shape} changes the tensor's shape {shape}")
    return out.ravel().astype(np.float64)
