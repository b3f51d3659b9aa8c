"""Load an ONNX file into the internal ``Network`` (a DAG of affine layers + piecewise-linear
activations).

How it works: every tensor that depends on the network input is kept as a *basis tensor*
(``onnx_basis._Var``): its flattened values are ``A @ z + b`` with ``z`` the variables of its
*space* (the network input and the activation outputs it depends on), ``A`` dense or sparse.
Every linear ONNX operator (MatMul, Gemm, Conv, pooling, Reshape, Transpose, Slice, Mul by a
constant, ...) is a map on the flattened tensor (``onnx_maps``), applied to ``A`` and ``b``;
consecutive affine operators therefore compose into one affine layer for free, and a convolution
costs its weights, not inputs x outputs. An activation node closes an affine layer (``W = A``,
reading the tensors of the space) and starts a fresh variable space: the identity over the
activation's outputs, a new network tensor. Operators on two input-dependent tensors (residual
``Add``, ``Concat``, ``Max``) first embed both into the union of their spaces, so any graph of
such operators becomes a DAG of layers.

Layout: this module walks the graph (``load_model``, ``_GraphConverter``: checks, constant folding
dispatch, shape checks against ONNX shape inference, the load-time comparison with onnxruntime);
the operator handlers live in ``onnx_ops_linear`` / ``onnx_ops_shape`` / ``onnx_ops_index`` /
``onnx_ops_pool`` / ``onnx_ops_act``, constant folding in ``onnx_fold``, the basis tensor and its
helpers in ``onnx_basis``, the sparse maps of the operators in ``onnx_maps``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..floatmodel import FOLD_SLACK, LARGEST
from ..linalg import all_finite
from ..network import Activation, Layer, Network
from . import onnx_ops_act, onnx_ops_index, onnx_ops_linear, onnx_ops_pool, onnx_ops_shape
from .onnx_basis import (  # noqa: F401 - re-exported: the names of this module before the split
    _FLOAT_TYPES,
    _INT_TYPES,
    _NodeError,
    _Var,
    align,
    composition_costly,
    identity_var,
    merge_history,
    note_magnitude,
)
from .onnx_fold import _cast_constant, _fold_constant, _fold_depth  # noqa: F401 - re-exported
from .onnx_ops_linear import _elementwise_linear  # noqa: F401 - re-exported
from .onnx_ops_shape import _resolve_reshape  # noqa: F401 - re-exported
from .replay import ONNX_BYTES

SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
    "ConvTranspose", "Div", "Dropout", "Expand", "Flatten", "Gather", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "Identity", "LeakyRelu", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "Pad",
    "ReduceMean", "ReduceSum", "Relu", "Reshape", "Shape", "Slice", "Split", "Squeeze", "Sub", "Transpose",
    "Unsqueeze",
)

#: operator name -> handler ``(converter, node, vals, attrs) -> value``
HANDLERS = {**onnx_ops_linear.HANDLERS, **onnx_ops_shape.HANDLERS, **onnx_ops_index.HANDLERS,
            **onnx_ops_pool.HANDLERS, **onnx_ops_act.HANDLERS}
assert set(HANDLERS) == set(SUPPORTED_OPS), "every supported operator needs exactly one handler"


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
        self.depth: dict[str, int] = {}  # constants: roundings onnxruntime may apply when folding them
        self.fold = 0  # the current operator's largest constant fold depth (added to its rounding count)
        self.cdtype: dict[str, str] = {}  # float constants: the type onnxruntime holds (and folds) them in
        self.inferred = {vi.name: vi for vi in list(model.graph.value_info) + list(model.graph.output)}
        self.meta_notes: list[str] = []
        self.label = ""  # the current node, as the layers record it ("Conv 'name'")
        self.layer_info: list[dict] = []  # per layer: its ONNX operators and shapes (``verifier info``)
        self.tensor_shapes: list[tuple[int, ...]] = []  # per network tensor: its ONNX shape
        self._consumed = {n for node in model.graph.node for n in node.input} | {o.name for o in model.graph.output}

    # ----------------------------------------------------------------------------------- driver
    def convert(self) -> Network:
        g = self.graph
        inp = self._read_initializers_and_input()
        in_shape = self._input_shape(inp)
        n_in = int(np.prod(in_shape))
        in_dtype = _FLOAT_TYPES[inp.type.tensor_type.elem_type]
        self.values[inp.name] = identity_var(n_in, in_shape, ((0, n_in),), in_dtype)
        self.tensor_shapes.append(tuple(in_shape))
        self._check_supported()
        self._run_nodes()
        out_name = g.output[0].name
        out = self._final_output(out_name)
        return Network(
            layers=tuple(self.layers),
            input_shape=in_shape,
            output_shape=out.shape,
            source=self.path,
            input_name=inp.name,
            output_name=out_name,
            meta={"opset": self.opset, "producer": self.model.producer_name, "n_nodes": len(g.node),
                  "input_dtype": in_dtype, "layer_info": tuple(self.layer_info),
                  "tensor_shapes": tuple(self.tensor_shapes), "notes": tuple(self.meta_notes)},
        )

    def _read_initializers_and_input(self):
        """Store the initializers (floats as float64, their own type in ``cdtype``); return the one graph
        input (checking there is one input and one output)."""
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
        return inputs[0]

    def _check_supported(self) -> None:
        g = self.graph
        unsupported = [(i, n) for i, n in enumerate(g.node) if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx")]
        if unsupported:
            listed = "; ".join(f"node #{i} '{n.name or '(unnamed)'}' op {n.domain + '.' if n.domain else ''}{n.op_type}" for i, n in unsupported)
            raise ModelError(f"{self.path}: unsupported operator(s): {listed}. Supported operators: {', '.join(SUPPORTED_OPS)}")

    def _run_nodes(self) -> None:
        for index, node in enumerate(self.graph.node):
            try:
                self._run_node(node)
            except _NodeError as exc:
                raise ModelError(f"{self.path}: node #{index} '{node.name or '(unnamed)'}' ({node.op_type}): {exc}") from None
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - a malformed node (wrong shapes, bad attributes) must not crash
                raise ModelError(f"{self.path}: node #{index} '{node.name or '(unnamed)'}' ({node.op_type}) cannot be converted: {exc}") from None

    def _final_output(self, out_name: str) -> _Var:
        """Check the graph output and close the last layer with it."""
        out = self.values.get(out_name)
        if not isinstance(out, _Var):
            raise ModelError(f"{self.path}: the output '{out_name}' does not depend on the input")
        self._check_output_shape(out)
        self.layers.append(self._close_layer(out, None))
        for k, layer in enumerate(self.layers):
            if not (all_finite(layer.weight) and all_finite(layer.bias)):
                raise ModelError(f"{self.path}: layer {k} has NaN or infinite weights after folding constants")
        return out

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

    def _attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def distrust_inference(self) -> None:
        """Stop comparing shapes with ONNX shape inference (where it is known to differ from onnxruntime)."""
        self.inferred = {}
        self.meta_notes.append("ONNX shape inference differs from onnxruntime (a ceil_mode pooling)")

    def consumed(self, name: str) -> bool:
        """Whether a node or the graph output reads the tensor ``name``."""
        return name in self._consumed

    def _close_layer(self, v: _Var, act: Activation | None, ops: tuple = ()) -> Layer:
        """The affine layer computing ``v`` from the tensors of its space, followed by ``act``."""
        from scipy import sparse

        self._note_magnitude(v)
        err_w = v.E if v.E is not None else sparse.csr_array(v.A.shape)
        err_b = v.e if v.e is not None else np.zeros(v.size)
        guards = tuple((G, g, limit) for (G, g), limit in v.guards)
        layer = Layer(v.A, v.b, act, err_w, err_b, guards, v.ovf, sources=tuple(t for t, _ in v.space))
        self.layer_info.append({"ops": v.ops + tuple(ops), "shape": v.shape})
        return layer

    def _note_magnitude(self, v: _Var) -> None:
        """Fold this tensor's magnitude into its overflow guard (``onnx_basis.note_magnitude``).
        float16 tensors have exact per-element guards instead (``_Var.guards``)."""
        if v.dtype != "float16":
            note_magnitude(v, LARGEST[v.dtype])

    def activation(self, v: _Var, act: Activation | None, out_shape: tuple[int, ...] | None = None) -> _Var:
        """Close an affine layer computing ``v`` with ``act`` and return the identity over its outputs
        (a new network tensor, of shape ``out_shape`` if the activation changes it)."""
        if act is None:
            return v
        return self._new_layer(v, act, out_shape, (self.label,))

    def compose_or_split(self, v: _Var, M) -> _Var:
        """``v``, or, where composing the contraction ``M`` onto it would cost far more products than
        both hold (``onnx_basis.composition_costly``), the identity over ``v`` after a layer break: a
        layer ending in the identity (Clip(-inf, inf), every neuron stable). The break sits before a
        contraction, which onnxruntime fuses nothing across; the contraction then starts a layer."""
        if not composition_costly(M, v.A):
            return v
        n = v.size
        identity = Activation("clip", lo=np.full(n, -np.inf), hi=np.full(n, np.inf))
        out = self._new_layer(v, identity, None, (f"(layer break before {self.label})",))
        out.kmax, out.ops = v.kmax, (self.label,)
        return out

    def _new_layer(self, v: _Var, act: Activation, out_shape, ops: tuple) -> _Var:
        layer = self._close_layer(v, act, ops)
        self.layers.append(layer)
        shape = v.shape if out_shape is None else tuple(out_shape)
        n = layer.n_post
        if int(np.prod(shape)) != n:
            raise _NodeError(f"activation output shape {list(shape)} does not hold its {n} values")
        self.layer_info[-1]["out_shape"] = shape
        self.tensor_shapes.append(shape)
        return identity_var(n, shape, ((len(self.layers), n),), v.dtype)

    def _check_output_shape(self, out: _Var) -> None:
        """The loaded output must have the shape the model declares (symbolic dimensions aside)."""
        if self.meta_notes:  # the declared shape may be ONNX shape inference's, not onnxruntime's
            return
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
        if sum(is_var) > 1:
            vals = align(*vals)  # a residual Add, a Concat of branches: one common variable space
        depths = [self.depth.get(n, 0) for n in ins if n]
        if not any(is_var) and op not in ("Constant",):
            self._fold_node(node, vals, attrs, depths)
            return
        if depths and max(depths) > FOLD_SLACK:
            raise _NodeError("uses a constant that onnxruntime computes from other constants with more roundings "
                             "than the float error model covers (fold that constant before export)")
        handler = HANDLERS[op]
        self.fold = max(depths, default=0)  # roundings of this operator's folded constants
        self.label = f"{op} '{node.name}'" if node.name else op
        result = handler(self, node, vals, attrs)
        results = result if isinstance(result, list) else [result]
        for name, r in zip(node.output, results):
            if isinstance(r, _Var):
                self._check_inferred(name, r)
                if not any(r is v for v in vals):
                    merge_history(r, vals, self.label)
                    self._note_magnitude(r)
                    if r.dtype == "float16":
                        r.guards = r.guards + ((r.mag, LARGEST["float16"]),)
            if name:
                self.values[name] = r

    def _fold_node(self, node, vals: list, attrs: dict, depths: list[int]) -> None:
        """Constant folding for shape computations and weight preprocessing, in the constants' own
        float type (elementwise IEEE operations then give onnxruntime's folded values exactly)."""
        op = node.op_type
        dtype = next((self.cdtype[n] for n in node.input if n in self.cdtype), None)
        out = _fold_constant(op, vals, attrs, self.opset, dtype, n_outputs=len(node.output))
        depth = _fold_depth(op, vals, depths, attrs)
        for name, value in zip(node.output, out if isinstance(out, list) else [out]):
            self.values[name] = value
            self.depth[name] = depth
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                to = attrs.get("to") if op == "Cast" else None
                self.cdtype[name] = _FLOAT_TYPES.get(to, dtype or "float32") if op == "Cast" else (dtype or "float32")

    def _check_inferred(self, name: str, v: _Var) -> None:
        """Compare a tensor's loaded shape with ONNX shape inference (a loader bug must not pass silently)."""
        vi = self.inferred.get(name)
        if vi is None or not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            return
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if len(dims) != len(v.shape) or any(d is not None and d != s for d, s in zip(dims, v.shape)):
            raise _NodeError(f"output '{name}' loads with shape {list(v.shape)}, but ONNX shape inference gives "
                             f"{['?' if d is None else d for d in dims]} (this use of the operator is not supported)")
