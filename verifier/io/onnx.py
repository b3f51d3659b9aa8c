"""Load an ONNX file into the internal ``Network`` (affine layers + piecewise-linear activations).

How it works: every tensor that depends on the network input is kept as a *basis tensor* ``T``
of shape ``(n_vars + 1, *shape)``: ``T[i]`` is the tensor's response to the i-th variable of the
current layer input and ``T[-1]`` its constant part, so ``tensor = sum_i T[i] * v_i + T[-1]``.
Every linear ONNX operator (MatMul, Gemm, Conv, Reshape, Transpose, Mul by a constant, ...) is
applied to ``T`` directly with numpy, the constant row also receiving biases. Consecutive affine
operators therefore compose into one affine layer for free. An activation node closes the current
affine layer (``W = T[:-1]`` flattened and transposed, ``b = T[-1]``) and starts a fresh variable
space: the identity over the activation's outputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..floatmodel import FOLD_SLACK, LARGEST, UNDERFLOW, UNIT_ROUNDOFF, gamma, round_step
from ..network import Activation, Layer, Network
from .replay import ONNX_BYTES

SUPPORTED_OPS = (
    "Add", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Dropout",
    "Flatten", "Gather", "Gemm", "Identity", "LeakyRelu", "MatMul", "Max", "Min", "Mul", "Neg",
    "Relu", "Reshape", "Shape", "Squeeze", "Sub", "Transpose", "Unsqueeze",
)

_FLOAT_TYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}
_INT_TYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 12: "uint32",
              13: "uint64"}


@dataclass
class _Var:
    """A tensor that depends on the input: basis tensor ``T`` over variable space ``space``.

    ``R`` (same shape, non-negative, None = zero) is its floating-point *error basis*: with the
    layer's float inputs bounded by ``|z| <= m``, the value onnxruntime computes lies within
    ``R[:-1] . m + R[-1]`` of the real value ``T[:-1] . z + T[-1]`` (see ``floatmodel``).
    ``dtype`` is the floating-point type the tensor is computed in.
    """

    T: np.ndarray
    space: int
    R: np.ndarray | None = None
    dtype: str = "float32"
    #: terms of the last contraction (MatMul / Gemm / Conv) this tensor comes from in its layer:
    #: onnxruntime may fold later constant additions into that contraction's bias, where they
    #: take part in its ``kmax`` additions (0: none since the layer began or since a cast)
    kmax: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.T.shape[1:])

    @property
    def err(self) -> np.ndarray:
        return np.zeros(self.T.shape) if self.R is None else self.R

    @property
    def mag(self) -> np.ndarray:
        """Magnitude basis: ``|value| <= mag[:-1] . m + mag[-1]`` for the float value."""
        return np.abs(self.T) + self.err

    def exact(self, fn) -> _Var:
        """Apply an operator that rounds nothing (reshape, transpose, negation) to ``T`` and ``R``."""
        return _Var(fn(self.T), self.space, None if self.R is None else np.abs(fn(self.R)), self.dtype, self.kmax)

    def rounded(self, T: np.ndarray, prop: np.ndarray, local: np.ndarray, k, dtype: str | None = None,
                kmax: int | None = None, const: np.ndarray | None = None, k_const: int = 0) -> _Var:
        """The result ``T`` of a rounding operator (see ``floatmodel.round_step``).

        ``const`` (a basis tensor with only its constant row set) are constant terms that onnxruntime
        may fold into an earlier contraction's bias: they are counted with ``k_const`` roundings.
        ``kmax`` is the result's contraction length (default: this tensor's).
        """
        dtype = dtype or self.dtype
        R = round_step(prop, local, k, dtype)
        if const is not None:
            R = R + gamma(k_const, dtype) * const
        return _Var(T, self.space, R, dtype, self.kmax if kmax is None else int(kmax))


def _nnz(W: np.ndarray, axis: int) -> np.ndarray:
    """Non-zero terms per output of a contraction over ``axis`` (kept as a size-1 axis)."""
    return np.count_nonzero(W, axis=axis, keepdims=True)


def _const_row(shape_k: tuple[int, ...], c) -> np.ndarray:
    """A basis tensor that is zero except for the constant row, which holds ``|c|`` broadcast."""
    out = np.zeros(shape_k)
    out[-1] = np.abs(np.broadcast_to(c, shape_k[1:]))
    return out


class _NodeError(Exception):
    """Raised inside operator handlers; turned into a ModelError that names the node."""


def load_model(path: str | os.PathLike) -> Network:
    """Read, check and convert the ONNX file at ``path``; raise ``ModelError`` on any problem."""
    import onnx

    path = str(path)
    if not Path(path).is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types for garbage / truncated files
        raise ModelError(f"{path}: not a readable ONNX model (corrupt or truncated file?): {exc}") from None
    if len(model.graph.node) == 0 and len(model.graph.input) == 0:
        raise ModelError(f"{path}: not a readable ONNX model (no graph found)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: the ONNX checker rejects this model: {str(exc).strip()}") from None
    # the model as read (external data inlined): onnxruntime replays from these bytes, here and in
    # worker processes, never from the file again (io/replay.py)
    model_bytes = model.SerializeToString()
    try:
        model = onnx.shape_inference.infer_shapes(model)
        inferred = True
    except Exception:  # noqa: BLE001 - shapes are recomputed while loading; inference is a cross-check
        inferred = False
    network = _GraphConverter(model, path).convert()
    network.meta["shape_inference"] = inferred
    network.meta[ONNX_BYTES] = model_bytes
    _self_check(network, path)
    return network


def _self_check(network: Network, path: str, n_points: int = 3) -> None:
    """Compare the loaded network with onnxruntime at a few inputs (zero and random points in
    [-1, 1]; ``verify`` repeats this inside the spec's boxes): a difference beyond the float error
    bound means the loader misread the model, which must be an error, never a silently wrong network."""
    from .replay import OnnxOracle

    try:
        oracle = OnnxOracle(network)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelError(f"{path}: onnxruntime cannot load this model: {str(exc).strip()}") from None
    rng = np.random.default_rng(0)
    points = [np.zeros(network.n_inputs)] + [rng.uniform(-1.0, 1.0, network.n_inputs) for _ in range(n_points)]
    compare_with_onnxruntime(network, oracle, points)


def compare_with_onnxruntime(network: Network, oracle, points) -> None:
    """Raise ``ModelError`` if onnxruntime's outputs at ``points`` differ from the loaded network's
    by more than the float error bound (``Network.float_deviation``)."""
    path = network.source or "<network>"
    for x in points:
        x = np.asarray(x).astype(oracle.dtype).astype(np.float64)
        try:
            y_rt = oracle.run(x)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"{path}: onnxruntime cannot run this model: {str(exc).strip()}") from None
        y, dev = network.float_deviation(x)
        if y_rt.shape != y.shape:
            raise ModelError(f"{path}: onnxruntime computes {y_rt.size} outputs, the loaded network {y.size}")
        bad = ~(np.abs(y_rt - y) <= dev + 1e-9 * (1.0 + np.abs(y)))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ModelError(f"{path}: the loaded network disagrees with onnxruntime at a test input (output {i}: "
                             f"onnxruntime {y_rt[i]:.9g}, loaded {y[i]:.9g} +- {dev[i]:.3g}); the loader misreads an "
                             "operator of this model, please report it")


def _opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


class _GraphConverter:
    """Walks the (topologically ordered) ONNX graph once and builds the layer list."""

    def __init__(self, model, path: str) -> None:
        self.model = model
        self.path = path
        self.graph = model.graph
        self.opset = _opset(model)
        self.values: dict[str, np.ndarray | _Var] = {}
        self.layers: list[Layer] = []
        self.space = 0
        self.guards: list[tuple[np.ndarray, float]] = []  # float16 magnitudes of the current layer
        self.depth: dict[str, int] = {}  # constants: roundings onnxruntime may apply when folding them
        self.fold = 0  # the current operator's largest constant fold depth (added to its rounding count)
        self.cdtype: dict[str, str] = {}  # float constants: the type onnxruntime holds (and folds) them in
        self.inferred = {vi.name: vi for vi in list(model.graph.value_info) + list(model.graph.output)}

    # ----------------------------------------------------------------------------------- driver
    def convert(self) -> Network:
        from onnx import numpy_helper

        g = self.graph
        init_names = {t.name for t in g.initializer}
        for t in g.initializer:
            arr = numpy_helper.to_array(t)
            if arr.dtype.kind == "f":
                self.cdtype[t.name] = str(arr.dtype)
                arr = arr.astype(np.float64)
                if not np.all(np.isfinite(arr)):
                    raise ModelError(f"{self.path}: initializer '{t.name}' contains NaN or infinite values")
            self.values[t.name] = arr
        inputs = [i for i in g.input if i.name not in init_names]
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs) or "none"
            raise ModelError(f"{self.path}: the model must have exactly one input, found {len(inputs)} ({names})")
        if len(g.output) != 1:
            names = ", ".join(o.name for o in g.output)
            raise ModelError(f"{self.path}: the model must have exactly one output, found {len(g.output)} ({names})")
        inp = inputs[0]
        in_shape = self._input_shape(inp)
        n_in = int(np.prod(in_shape))
        in_dtype = _FLOAT_TYPES[inp.type.tensor_type.elem_type]
        self.values[inp.name] = _Var(_identity_basis(n_in, in_shape), self.space, None, in_dtype)

        unsupported = [(i, n) for i, n in enumerate(g.node) if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx")]
        if unsupported:
            listed = "; ".join(f"node #{i} '{n.name or '(unnamed)'}' op {n.domain + '.' if n.domain else ''}{n.op_type}" for i, n in unsupported)
            raise ModelError(f"{self.path}: unsupported operator(s): {listed}. Supported operators: {', '.join(SUPPORTED_OPS)}")

        for index, node in enumerate(g.node):
            try:
                self._run_node(node)
            except _NodeError as exc:
                raise ModelError(f"{self.path}: node #{index} '{node.name or '(unnamed)'}' ({node.op_type}): {exc}") from None
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - a malformed node (wrong shapes, bad attributes) must not crash
                raise ModelError(f"{self.path}: node #{index} '{node.name or '(unnamed)'}' ({node.op_type}) cannot be converted: {exc}") from None

        out_name = g.output[0].name
        out = self.values.get(out_name)
        if not isinstance(out, _Var):
            raise ModelError(f"{self.path}: the output '{out_name}' does not depend on the input")
        if out.space != self.space:
            raise ModelError(f"{self.path}: the output '{out_name}' skips over an activation (non-sequential graphs are not supported)")
        self._check_output_shape(out)
        self.layers.append(self._close_layer(out, None))
        for k, layer in enumerate(self.layers):
            if not (np.all(np.isfinite(layer.weight)) and np.all(np.isfinite(layer.bias))):
                raise ModelError(f"{self.path}: layer {k} has NaN or infinite weights after folding constants")
        return Network(
            layers=tuple(self.layers),
            input_shape=in_shape,
            output_shape=out.shape,
            source=self.path,
            input_name=inp.name,
            output_name=out_name,
            meta={"opset": self.opset, "producer": self.model.producer_name, "n_nodes": len(g.node),
                  "input_dtype": in_dtype},
        )

    def _input_shape(self, inp) -> tuple[int, ...]:
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type") or tt.elem_type not in _FLOAT_TYPES:
            raise ModelError(f"{self.path}: input '{inp.name}' must be a float tensor (found element type {tt.elem_type}); "
                             "only float inputs are supported")
        if _FLOAT_TYPES[tt.elem_type] == "bfloat16":  # numpy has no bfloat16: nothing to feed onnxruntime
            raise ModelError(f"{self.path}: input '{inp.name}' is bfloat16, which is not supported (counterexamples "
                             "could not be replayed); supported input types: float16, float32, float64")
        dims = list(tt.shape.dim)
        if not dims:
            raise ModelError(f"{self.path}: input '{inp.name}' has no declared shape")
        shape = []
        for k, d in enumerate(dims):
            fixed = d.HasField("dim_value") and d.dim_value > 0
            if fixed:
                column = len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value == 1
                if k == 0 and len(dims) >= 2 and d.dim_value != 1 and not column:
                    raise ModelError(f"{self.path}: input '{inp.name}' has batch dimension {d.dim_value}; "
                                     "the batch dimension must be 1 or symbolic")
                shape.append(int(d.dim_value))
            elif k == 0 and len(dims) >= 2:
                shape.append(1)  # symbolic batch dimension: verify one sample
            else:
                raise ModelError(f"{self.path}: input '{inp.name}' has a symbolic dimension at axis {k}; "
                                 "only the batch axis (0) may be symbolic")
        return tuple(shape)

    # --------------------------------------------------------------------------------- helpers
    def _get(self, name: str):
        if name == "":
            return None
        if name not in self.values:
            raise _NodeError(f"input tensor '{name}' is not produced by any earlier node")
        return self.values[name]

    def _const(self, name: str, what: str) -> np.ndarray | None:
        v = self._get(name)
        if isinstance(v, _Var):
            raise _NodeError(f"{what} must be a constant, but it depends on the network input")
        return v

    def _check_space(self, v: _Var) -> None:
        if v.space != self.space:
            raise _NodeError("uses a tensor from before an activation (skip connections / non-sequential graphs are not supported)")

    def _attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def _close_layer(self, v: _Var, act: Activation | None) -> Layer:
        weight, bias = _affine_of(v)
        err_w, err_b = _affine_of(_Var(v.err, v.space))
        guards = tuple((*_affine_of(_Var(g, v.space)), limit) for g, limit in self.guards)
        self.guards = []
        return Layer(weight, bias, act, np.abs(err_w), np.abs(err_b), guards)

    def _activation(self, v: _Var, act: Activation | None) -> _Var:
        """Close the current affine layer with ``act`` and return the identity over its outputs."""
        self._check_space(v)
        if act is None:
            return v
        self.layers.append(self._close_layer(v, act))
        self.space += 1
        return _Var(_identity_basis(int(np.prod(v.shape)), v.shape), self.space, None, v.dtype)

    def _check_output_shape(self, out: _Var) -> None:
        """The loaded output must have the shape the model declares (symbolic dimensions aside)."""
        declared = self.graph.output[0].type.tensor_type.shape.dim
        dims = [d.dim_value if d.HasField("dim_value") else None for d in declared]
        if dims and (len(dims) != len(out.shape)
                     or any(d is not None and d != s for d, s in zip(dims, out.shape))):
            raise ModelError(f"{self.path}: the loaded network computes an output of shape {list(out.shape)}, "
                             f"but the model declares {['?' if d is None else d for d in dims]} for "
                             f"'{self.graph.output[0].name}' (an operator is not supported as used here)")

    # ------------------------------------------------------------------------------- operators
    def _run_node(self, node) -> None:
        op = node.op_type
        ins = list(node.input)
        attrs = self._attrs(node)
        vals = [self._get(n) for n in ins]
        is_var = [isinstance(v, _Var) for v in vals]
        for v in vals:
            if isinstance(v, _Var):
                self._check_space(v)
        depths = [self.depth.get(n, 0) for n in ins if n]
        if not any(is_var) and op not in ("Constant",):
            # constant folding for shape computations and weight preprocessing, in the constants' own
            # float type (elementwise IEEE operations then give onnxruntime's folded values exactly)
            dtype = next((self.cdtype[n] for n in ins if n in self.cdtype), None)
            out = _fold_constant(op, vals, attrs, self.opset, dtype)
            self.values[node.output[0]] = out
            self.depth[node.output[0]] = _fold_depth(op, vals, depths, attrs)
            if isinstance(out, np.ndarray) and out.dtype.kind == "f":
                to = attrs.get("to") if op == "Cast" else None
                self.cdtype[node.output[0]] = _FLOAT_TYPES.get(to, dtype or "float32") if op == "Cast" else (dtype or "float32")
            return
        if depths and max(depths) > FOLD_SLACK:
            raise _NodeError("uses a constant that onnxruntime computes from other constants with more roundings "
                             "than the float error model covers (fold that constant before export)")
        handler = getattr(self, f"_op_{op}")
        self.fold = max(depths, default=0)  # roundings of this operator's folded constants
        result = handler(node, vals, attrs)
        if isinstance(result, _Var):
            self._check_inferred(node.output[0], result)
            if result.dtype == "float16" and result is not vals[0]:
                self.guards.append((result.mag, LARGEST["float16"]))
        self.values[node.output[0]] = result

    def _check_inferred(self, name: str, v: _Var) -> None:
        """Compare a tensor's loaded shape with ONNX shape inference (a loader bug must not pass silently)."""
        vi = self.inferred.get(name)
        if vi is None or not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            return
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if len(dims) != len(v.shape) or any(d is not None and d != s for d, s in zip(dims, v.shape)):
            raise _NodeError(f"output '{name}' loads with shape {list(v.shape)}, but ONNX shape inference gives "
                             f"{['?' if d is None else d for d in dims]} (this use of the operator is not supported)")

    def _op_Constant(self, node, vals, attrs):
        from onnx import numpy_helper

        if "value" in attrs:
            arr = numpy_helper.to_array(attrs["value"])
            if arr.dtype.kind == "f":
                self.cdtype[node.output[0]] = str(arr.dtype)
        elif "value_float" in attrs:
            arr = np.array(attrs["value_float"])
        elif "value_floats" in attrs:
            arr = np.array(attrs["value_floats"])
        elif "value_int" in attrs:
            arr = np.array(attrs["value_int"], dtype=np.int64)
        elif "value_ints" in attrs:
            arr = np.array(attrs["value_ints"], dtype=np.int64)
        else:
            raise _NodeError("only value / value_float(s) / value_int(s) constants are supported")
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64)
            if not np.all(np.isfinite(arr)):
                raise _NodeError("constant contains NaN or infinite values")
        return arr

    def _op_Identity(self, node, vals, attrs):
        return vals[0]

    def _op_Dropout(self, node, vals, attrs):
        training = vals[2] if len(vals) > 2 else None
        if isinstance(training, _Var) or (training is not None and bool(np.any(np.asarray(training)))):
            raise _NodeError("Dropout with a training_mode input that is not the constant false is not supported "
                             "(export the model in inference mode)")
        return vals[0]

    def _op_Cast(self, node, vals, attrs):
        """A cast to a wider float type is exact; to a narrower one it rounds once (relative ``u`` of the
        target type, plus its underflow unit); to an integer type it is refused (not piecewise linear)."""
        to = attrs.get("to")
        v = vals[0]
        if to not in _FLOAT_TYPES:
            name = _INT_TYPES.get(to, f"type {to}")
            raise _NodeError(f"Cast of an input-dependent tensor to {name} is not supported (it changes values "
                             "in a way that is not piecewise linear); only casts between float types are")
        target = _FLOAT_TYPES[to]
        if UNIT_ROUNDOFF[target] <= UNIT_ROUNDOFF[v.dtype] and LARGEST[target] >= LARGEST[v.dtype]:
            return _Var(v.T, v.space, v.R, target, v.kmax)  # widening: exact
        return v.rounded(v.T, v.err, v.mag, 1, target, kmax=0)

    def _op_Neg(self, node, vals, attrs):
        return vals[0].exact(np.negative)

    def _op_Add(self, node, vals, attrs):
        return _elementwise_linear(vals[0], vals[1], "add", self.fold)

    def _op_Sub(self, node, vals, attrs):
        return _elementwise_linear(vals[0], vals[1], "sub", self.fold)

    def _op_Mul(self, node, vals, attrs):
        a, b = vals
        if isinstance(a, _Var) and isinstance(b, _Var):
            raise _NodeError("product of two input-dependent tensors is not piecewise-linear")
        v, c = (a, b) if isinstance(a, _Var) else (b, a)
        v = _broadcast(v, np.broadcast_shapes(v.shape, np.shape(c)))
        return v.rounded(v.T * c, v.err * np.abs(c), v.mag * np.abs(c), 1 + self.fold)

    def _op_Div(self, node, vals, attrs):
        a, b = vals
        if isinstance(b, _Var):
            raise _NodeError("division by an input-dependent tensor is not piecewise-linear")
        if np.any(b == 0):
            raise _NodeError("division by a constant that contains zero")
        a = _broadcast(a, np.broadcast_shapes(a.shape, np.shape(b)))
        # two roundings: onnxruntime may compute x * fl(1 / c) instead of x / c (fused into MatMul)
        return a.rounded(a.T / b, a.err / np.abs(b), a.mag / np.abs(b), 2 + self.fold)

    def _op_MatMul(self, node, vals, attrs):
        """ONNX (numpy) MatMul semantics with one constant side: 1-D operands are promoted and the
        promoted axis dropped again, batch axes broadcast; the basis axis stays first."""
        a, b = vals
        if isinstance(a, _Var) and isinstance(b, _Var):
            raise _NodeError("MatMul of two input-dependent tensors is not supported (one side must be a constant)")
        v, W, left = (a, b, True) if isinstance(a, _Var) else (b, a, False)
        absW = np.abs(W)
        # non-zero products per output: the same contraction of an all-ones input with W != 0
        k = _matmul_basis(np.ones((1,) + v.shape), (W != 0).astype(np.float64), left)[0]
        return v.rounded(_matmul_basis(v.T, W, left), _matmul_basis(v.err, absW, left),
                         _matmul_basis(v.mag, absW, left), k + self.fold, kmax=int(np.max(k, initial=0)))

    def _op_Gemm(self, node, vals, attrs):
        a, b = vals[0], vals[1]
        c = vals[2] if len(vals) > 2 else None
        alpha = float(attrs.get("alpha", 1.0))
        beta = float(attrs.get("beta", 1.0))
        if isinstance(c, _Var):
            raise _NodeError("Gemm with an input-dependent C is not supported")
        if isinstance(a, _Var) and isinstance(b, _Var):
            raise _NodeError("Gemm of two input-dependent tensors is not supported")

        def t(x, flag):
            if not flag:
                return x
            return x.transpose(0, 2, 1) if isinstance(x, np.ndarray) and x.ndim == 3 else x.T

        v = a if isinstance(a, _Var) else b
        if v.T.ndim != 3:
            raise _NodeError(f"Gemm expects a 2-D input, got shape {list(v.shape)}")
        if isinstance(a, _Var):
            def mm(X, B):
                return alpha * np.matmul(X.transpose(0, 2, 1) if attrs.get("transA", 0) else X,
                                         t(B, attrs.get("transB", 0)))
            W = b
            k = _nnz(t(b, attrs.get("transB", 0)), 0)  # per output column
        else:
            def mm(X, A):
                return alpha * np.matmul(t(A, attrs.get("transA", 0)), X.transpose(0, 2, 1) if attrs.get("transB", 0) else X)
            W = a
            k = _nnz(t(a, attrs.get("transA", 0)), 1)  # per output row
        sign = -1.0 if alpha < 0 else 1.0  # mm scales by alpha; the error terms need |alpha|
        T, prop, local = mm(v.T, W), sign * mm(v.err, np.abs(W)), sign * mm(v.mag, np.abs(W))
        if c is not None:
            full = (T.shape[0],) + np.broadcast_shapes(T.shape[1:], c.shape)
            T, prop, local = (np.array(np.broadcast_to(x, full)) for x in (T, prop, local))
            T[-1] = T[-1] + beta * c
            local[-1] = local[-1] + np.abs(beta * c)
        # the non-zero products, the bias, and the scaling by alpha (beta * C is a folded constant)
        k = k + (0 if c is None else 1) + (alpha != 1.0) + (0 if c is None or beta == 1.0 else 1) + self.fold
        return v.rounded(T, prop, local, k, kmax=int(np.max(k, initial=0)))

    def _op_BatchNormalization(self, node, vals, attrs):
        x, scale, bias, mean, var = vals[:5]
        if attrs.get("training_mode", 0):
            raise _NodeError("training_mode=1 is not supported (export the model in inference mode)")
        if any(isinstance(v, _Var) for v in (scale, bias, mean, var)):
            raise _NodeError("BatchNormalization parameters must be constants")
        eps = float(attrs.get("epsilon", 1e-5))
        if len(x.shape) < 2:
            raise _NodeError("BatchNormalization expects an input with a channel axis (axis 1)")
        cshape = (-1,) + (1,) * (len(x.shape) - 2)
        factor = (scale / np.sqrt(var + eps)).reshape(cshape)
        shift = (bias - mean * scale / np.sqrt(var + eps)).reshape(cshape)
        T = x.T * factor
        T = np.array(np.broadcast_to(T, T.shape))
        T[-1] = T[-1] + shift
        # onnxruntime computes (x - mean) / sqrt(var + eps) * scale + bias, or a fused form of it:
        # at most six roundings on |factor| (|x| + |mean|) + |bias| (counted as eight for margin); fused
        # into a Conv, the shift joins the Conv's bias and its kmax additions (plus four roundings)
        shift_mag = _const_row(T.shape, (np.abs(mean * scale / np.sqrt(var + eps)) + np.abs(bias)).reshape(cshape))
        return x.rounded(T, x.err * np.abs(factor), x.mag * np.abs(factor), 8 + self.fold, const=shift_mag,
                         k_const=max(8, x.kmax + 5) + self.fold)

    def _op_Conv(self, node, vals, attrs):
        x, w = vals[0], vals[1]
        b = vals[2] if len(vals) > 2 else None
        if isinstance(w, _Var) or isinstance(b, _Var):
            raise _NodeError("Conv weights and bias must be constants")
        if len(x.shape) != 4 or w.ndim != 4:
            raise _NodeError(f"only 2-D convolutions on [1, C, H, W] inputs are supported (input shape {list(x.shape)})")
        group = int(attrs.get("group", 1))
        strides = list(attrs.get("strides", [1, 1]))
        dil = list(attrs.get("dilations", [1, 1]))
        kh, kw = w.shape[2], w.shape[3]
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        H, W = x.shape[2], x.shape[3]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for size, k, s, d in ((H, kh, strides[0], dil[0]), (W, kw, strides[1], dil[1])):
                out = -(-size // s)
                total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
                small, big = total // 2, total - total // 2
                pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
            pads = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
        elif auto_pad == "VALID":
            pads = [0, 0, 0, 0]
        k = x.T.shape[0]

        def conv(X, weights):  # (k, C, H, W): the batch axis (size 1) is dropped
            return _conv2d(X.reshape((k,) + x.shape[1:]), weights, strides, pads, dil, group)[:, None]

        out, prop, local = conv(x.T, w), conv(x.err, np.abs(w)), conv(x.mag, np.abs(w))
        if b is not None:
            out[-1] += b.reshape(1, -1, 1, 1)
            local[-1] += np.abs(b).reshape(1, -1, 1, 1)
        k = _nnz(w.reshape(w.shape[0], -1), 1).reshape(1, -1, 1, 1) + (b is not None) + self.fold
        return x.rounded(out, prop, local, k, kmax=int(np.max(k, initial=0)))

    def _op_Flatten(self, node, vals, attrs):
        x = vals[0]
        axis = int(attrs.get("axis", 1))
        shape = x.shape
        if axis < 0:
            axis += len(shape)
        new = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
        return x.exact(lambda T: T.reshape((T.shape[0],) + new))

    def _op_Reshape(self, node, vals, attrs):
        x, shape = vals[0], vals[1]
        if isinstance(shape, _Var):
            raise _NodeError("the target shape must be a constant")
        new = _resolve_reshape(x.shape, [int(s) for s in np.asarray(shape).ravel()], int(attrs.get("allowzero", 0)))
        return x.exact(lambda T: T.reshape((T.shape[0],) + new))

    def _axes(self, vals, attrs) -> list[int] | None:
        if "axes" in attrs:
            return [int(a) for a in attrs["axes"]]
        if len(vals) > 1 and vals[1] is not None:
            if isinstance(vals[1], _Var):
                raise _NodeError("axes must be a constant")
            return [int(a) for a in np.asarray(vals[1]).ravel()]
        return None

    def _op_Squeeze(self, node, vals, attrs):
        x = vals[0]
        axes = self._axes(vals, attrs)
        shape = list(x.shape)
        if axes is None:
            new = [d for d in shape if d != 1]
        else:
            axes = sorted(a % len(shape) for a in axes)
            for a in axes:
                if shape[a] != 1:
                    raise _NodeError(f"cannot squeeze axis {a} of size {shape[a]}")
            new = [d for i, d in enumerate(shape) if i not in axes]
        return x.exact(lambda T: T.reshape((T.shape[0],) + tuple(new)))

    def _op_Unsqueeze(self, node, vals, attrs):
        x = vals[0]
        axes = self._axes(vals, attrs)
        if axes is None:
            raise _NodeError("Unsqueeze needs axes")
        rank = len(x.shape) + len(axes)
        axes = sorted(a % rank for a in axes)
        new = list(x.shape)
        for a in axes:
            new.insert(a, 1)
        return x.exact(lambda T: T.reshape((T.shape[0],) + tuple(new)))

    def _op_Transpose(self, node, vals, attrs):
        x = vals[0]
        perm = attrs.get("perm")
        if perm is None:
            perm = list(range(len(x.shape)))[::-1]
        return x.exact(lambda T: T.transpose([0] + [int(p) + 1 for p in perm]))

    def _op_Shape(self, node, vals, attrs):
        shape = np.array(vals[0].shape, dtype=np.int64)
        start = int(attrs.get("start", 0))
        end = attrs.get("end")
        return shape[start:end]

    def _op_Gather(self, node, vals, attrs):
        raise _NodeError("Gather on an input-dependent tensor is not supported")

    def _op_Concat(self, node, vals, attrs):
        raise _NodeError("Concat of input-dependent tensors is not supported")

    # ----- activations
    def _op_Relu(self, node, vals, attrs):
        return self._activation(vals[0], Activation("relu"))

    def _op_LeakyRelu(self, node, vals, attrs):
        alpha = float(attrs.get("alpha", 0.01))
        if alpha == 0.0:
            return self._activation(vals[0], Activation("relu"))
        if alpha == 1.0:
            return vals[0]
        if not 0.0 < alpha < 1.0:
            raise _NodeError(f"LeakyRelu alpha={alpha:g} is not supported (0 <= alpha <= 1 is)")
        return self._activation(vals[0], Activation("leaky", alpha=alpha, rel_error=UNIT_ROUNDOFF[vals[0].dtype],
                                                    abs_error=UNDERFLOW[vals[0].dtype]))

    def _op_Clip(self, node, vals, attrs):
        x = vals[0]
        if self.opset < 11:
            lo = attrs.get("min", -np.inf)
            hi = attrs.get("max", np.inf)
        else:
            lo = vals[1] if len(vals) > 1 and vals[1] is not None else -np.inf
            hi = vals[2] if len(vals) > 2 and vals[2] is not None else np.inf
            if isinstance(lo, _Var) or isinstance(hi, _Var):
                raise _NodeError("Clip bounds must be constants")
        return self._clip(x, np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))

    def _minmax(self, vals, which: str):
        if len(vals) != 2:
            raise _NodeError(f"{which} is supported with exactly two operands (one input-dependent, one constant)")
        a, b = vals
        if isinstance(a, _Var) and isinstance(b, _Var):
            raise _NodeError(f"{which} of two input-dependent tensors is not supported")
        return (a, np.asarray(b, dtype=np.float64)) if isinstance(a, _Var) else (b, np.asarray(a, dtype=np.float64))

    def _op_Max(self, node, vals, attrs):
        x, c = self._minmax(vals, "Max")
        return self._clip(x, c, np.asarray(np.inf))

    def _op_Min(self, node, vals, attrs):
        x, c = self._minmax(vals, "Min")
        return self._clip(x, np.asarray(-np.inf), c)

    def _clip(self, x: _Var, lo: np.ndarray, hi: np.ndarray) -> _Var:
        shape = np.broadcast_shapes(x.shape, lo.shape, hi.shape)
        x = _broadcast(x, shape)
        n = int(np.prod(shape))
        lo_v = np.broadcast_to(lo, shape).reshape(n).astype(np.float64)
        hi_v = np.broadcast_to(hi, shape).reshape(n).astype(np.float64)
        if np.any(np.isnan(lo_v)) or np.any(np.isnan(hi_v)):
            raise _NodeError("clip bound is NaN")
        if np.any(lo_v > hi_v):
            raise _NodeError("clip lower bound exceeds its upper bound")
        if np.all(np.isneginf(lo_v)) and np.all(np.isposinf(hi_v)):
            return x
        if np.all(lo_v == 0.0) and np.all(np.isposinf(hi_v)):
            return self._activation(x, Activation("relu"))
        return self._activation(x, Activation("clip", lo=lo_v, hi=hi_v))


# ------------------------------------------------------------------------------ numeric helpers
def _identity_basis(n: int, shape: tuple[int, ...]) -> np.ndarray:
    T = np.zeros((n + 1, n))
    T[:n] = np.eye(n)
    return T.reshape((n + 1,) + tuple(shape))


def _affine_of(v: _Var) -> tuple[np.ndarray, np.ndarray]:
    k = v.T.shape[0]
    flat = v.T.reshape(k, -1)
    return np.ascontiguousarray(flat[:-1].T), flat[-1].copy()


def _broadcast(v: _Var, shape: tuple[int, ...]) -> _Var:
    """``v`` broadcast to ``shape`` (numpy rules: leading axes of size 1 are added first)."""
    shape = tuple(shape)
    if v.shape == shape:
        return v
    def grow(T):
        T = T.reshape((T.shape[0],) + (1,) * (len(shape) - len(v.shape)) + v.shape)
        return np.array(np.broadcast_to(T, (T.shape[0],) + shape))

    return v.exact(grow)


def _elementwise_linear(a, b, kind: str, fold: int = 0) -> _Var:
    """``a + b`` / ``a - b`` where at least one side is input-dependent (both in the same space)."""
    if isinstance(a, _Var) and isinstance(b, _Var):
        shape = np.broadcast_shapes(a.shape, b.shape)
        a, b = _broadcast(a, shape), _broadcast(b, shape)
        return a.rounded(a.T + b.T if kind == "add" else a.T - b.T, a.err + b.err, a.mag + b.mag, 1,
                         kmax=max(a.kmax, b.kmax))
    if isinstance(a, _Var):
        v, c, sign_v, sign_c = a, b, 1.0, (1.0 if kind == "add" else -1.0)
    else:
        v, c, sign_v, sign_c = b, a, (1.0 if kind == "add" else -1.0), 1.0
    v = _broadcast(v, np.broadcast_shapes(v.shape, np.shape(c)))
    T = sign_v * v.T
    T[-1] = T[-1] + sign_c * c
    # one rounding on |v| + |c|; onnxruntime may instead fold c into the bias of the contraction v
    # comes from (MatMul + Add -> Gemm), where it takes part in that contraction's additions
    return v.rounded(T, v.err, v.mag, 1 + fold, const=_const_row(v.T.shape, c), k_const=max(1, v.kmax + 1) + fold)


def _matmul_basis(T: np.ndarray, W: np.ndarray, var_left: bool) -> np.ndarray:
    """``var @ W`` (``var_left``) or ``W @ var`` for a basis tensor ``T`` (basis axis first) with
    numpy / ONNX MatMul semantics: a 1-D side is promoted to a matrix and the promoted axis
    removed from the result; batch axes broadcast against each other, never against the basis."""
    k, vs = T.shape[0], T.shape[1:]
    if len(vs) == 0 or W.ndim == 0:
        raise _NodeError("MatMul needs operands of rank 1 or more")
    v2 = vs if len(vs) >= 2 else ((1,) + vs if var_left else vs + (1,))
    W2 = W if W.ndim >= 2 else (W[:, None] if var_left else W[None, :])
    nb = max(len(v2), W2.ndim) - 2
    Tv = T.reshape((k,) + (1,) * (nb - (len(v2) - 2)) + v2)
    Wb = W2.reshape((1,) * (nb - (W2.ndim - 2) + 1) + W2.shape)
    out = np.matmul(Tv, Wb) if var_left else np.matmul(Wb, Tv)
    if len(vs) == 1:
        out = out.squeeze(-2 if var_left else -1)
    if W.ndim == 1:
        out = out.squeeze(-1 if var_left else -2)
    return out


def _cast_constant(a: np.ndarray, to: int | None) -> np.ndarray:
    """``Cast`` of a constant with onnxruntime's semantics: float types round to nearest (the value
    is kept as float64 but equals the cast one exactly), integer types truncate toward zero, bool is
    ``!= 0``. Values stay float64 / int64 inside the loader."""
    if to in _FLOAT_TYPES:
        name = _FLOAT_TYPES[to]
        if name == "bfloat16":
            raise _NodeError("Cast of a constant to bfloat16 is not supported (numpy has no bfloat16)")
        if a.dtype.kind == "f" and name != "float64":
            with np.errstate(over="ignore"):
                out = a.astype(name)
            if not np.all(np.isfinite(out)):
                raise _NodeError(f"Cast of a constant to {name} overflows")
            return out.astype(np.float64)
        return a.astype(np.float64)
    if to == 9:  # bool
        return (a != 0).astype(np.int64)
    if to in _INT_TYPES:
        if a.dtype.kind == "f":
            if not np.all(np.isfinite(a)):
                raise _NodeError("Cast of a non-finite constant to an integer type")
            a = np.trunc(a)
        info = np.iinfo(_INT_TYPES[to])
        if np.any(a < info.min) or np.any(a > info.max):
            raise _NodeError(f"Cast of a constant to {_INT_TYPES[to]} is out of range")
        return a.astype(np.int64)
    raise _NodeError(f"Cast to type {to} is not supported")


def _fold_depth(op: str, vals: list, depths: list[int], attrs: dict) -> int:
    """How far a folded float constant may be from the value onnxruntime folds, in roundings (beyond
    FOLD_SLACK it is refused when used). Elementwise Add / Sub / Mul / Max / Min / Neg of exact
    operands are computed in the constants' own type, so they are exact (IEEE operations are
    correctly rounded); Div counts one rounding (onnxruntime might multiply by a reciprocal); a sum
    of inexact values, a product of constant matrices, or a cast (to an integer or narrower float
    type) of an inexact value is not a small relative rounding of it."""
    d = max(depths, default=0)
    if not any(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in vals):
        return d
    refused = FOLD_SLACK + 1
    if op == "Mul":
        return d + (1 if d else 0)
    if op == "Div":
        return d + 1
    if op in ("Add", "Sub"):
        return 0 if d == 0 else refused
    if op in ("MatMul", "Gemm", "Conv"):
        return refused
    if op == "Cast" and d > 0 and _FLOAT_TYPES.get(attrs.get("to")) != "float64":
        return refused
    return d


def _resolve_reshape(shape: tuple[int, ...], target: list[int], allowzero: int) -> tuple[int, ...]:
    total = int(np.prod(shape))
    out = []
    for i, s in enumerate(target):
        if s == 0 and not allowzero:
            if i >= len(shape):
                raise _NodeError(f"Reshape: 0 at axis {i} has no matching input axis")
            out.append(shape[i])
        else:
            out.append(s)
    if out.count(-1) > 1:
        raise _NodeError("Reshape: more than one -1 in the target shape")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        if known == 0 or total % known:
            raise _NodeError(f"Reshape: cannot reshape {list(shape)} to {target}")
        out[out.index(-1)] = total // known
    if int(np.prod(out)) != total:
        raise _NodeError(f"Reshape: cannot reshape {list(shape)} to {target}")
    return tuple(out)


def _conv2d(x: np.ndarray, w: np.ndarray, strides, pads, dil, group: int) -> np.ndarray:
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (M, C/group, kh, kw), ONNX semantics."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    if c != cg * group or m % group:
        raise _NodeError(f"Conv: {c} input channels do not match weights {list(w.shape)} with group={group}")
    sh, sw = strides
    dh, dw = dil
    pt, pl, pb, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        raise _NodeError("Conv: output would be empty")
    mg = m // group
    out = np.zeros((n, m, ho, wo))
    for gi in range(group):
        xs = xp[:, gi * cg:(gi + 1) * cg]
        ws = w[gi * mg:(gi + 1) * mg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                out[:, gi * mg:(gi + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j], optimize=True)
    return out


def _fold_constant(op: str, vals: list, attrs: dict, opset: int, dtype: str | None = None) -> np.ndarray:
    """Evaluate an operator whose inputs are all constants (shape arithmetic, weight preprocessing).

    Float arithmetic is done in ``dtype`` (the constants' own type, as onnxruntime folds it) and the
    result kept as float64; integer ``Div`` truncates toward zero, as onnxruntime does."""
    v = vals
    if op == "Cast":
        return _cast_constant(np.asarray(v[0]), attrs.get("to"))
    if op in ("Identity", "Dropout"):
        return v[0]
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
        arrs = [np.asarray(x) for x in v]
        if all(a.dtype.kind in "iub" for a in arrs):
            if op == "Div":
                a, b = arrs
                if np.any(b == 0):
                    raise _NodeError("integer division by zero in a constant")
                q = np.abs(a) // np.abs(b)
                return np.where((a < 0) != (b < 0), -q, q).astype(np.int64)
        elif dtype in ("float32", "float16"):
            arrs = [a.astype(dtype) for a in arrs]
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
              "Max": np.maximum, "Min": np.minimum}[op]
        out = arrs[0]
        for other in arrs[1:]:
            out = fn(out, other)
        return out.astype(np.float64) if out.dtype.kind == "f" else out
    if op == "Neg":
        return -v[0]
    if op == "Relu":
        return np.maximum(v[0], 0)
    if op == "MatMul":
        return np.matmul(v[0], v[1])
    if op == "Gather":
        return np.take(v[0], np.asarray(v[1]).astype(np.int64), axis=int(attrs.get("axis", 0)))
    if op == "Concat":
        return np.concatenate([np.atleast_1d(x) for x in v], axis=int(attrs.get("axis", 0)))
    if op == "Unsqueeze":
        axes = attrs.get("axes") if "axes" in attrs else list(np.asarray(v[1]).ravel())
        out = np.asarray(v[0])
        rank = out.ndim + len(axes)
        for a in sorted(int(a) % rank for a in axes):
            out = np.expand_dims(out, a)
        return out
    if op == "Squeeze":
        axes = attrs.get("axes") if "axes" in attrs else (list(np.asarray(v[1]).ravel()) if len(v) > 1 else None)
        return np.squeeze(v[0], axis=None if axes is None else tuple(int(a) for a in axes))
    if op == "Reshape":
        return np.reshape(v[0], _resolve_reshape(np.shape(v[0]), [int(s) for s in np.asarray(v[1]).ravel()],
                                                 int(attrs.get("allowzero", 0))))
    if op == "Flatten":
        axis = int(attrs.get("axis", 1))
        s = np.shape(v[0])
        axis = axis % len(s) if axis < 0 else axis
        return np.reshape(v[0], (int(np.prod(s[:axis])), int(np.prod(s[axis:]))))
    if op == "Transpose":
        return np.transpose(v[0], attrs.get("perm"))
    if op == "Shape":
        return np.array(np.shape(v[0]), dtype=np.int64)
    raise _NodeError(f"{op} on constant inputs only is not supported")
