"""Builders for small ONNX test graphs, and onnxruntime as the reference implementation.

Typical use::

    g = GraphBuilder(seed=0)
    h = g.gemm("x", 4, 3)
    h = g.op("Relu", [h])
    g.gemm(h, 3, 2, out="y")
    model = g.model([tensor("x", [1, 4])], [tensor("y", [1, 2])])
    path = save(tmp_path, model)
    xs = random_inputs(model, n=50)
    expected = onnxruntime_outputs(path, xs)

This module does not import the verifier, so any test can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64

Dim = int | str


# ---------------------------------------------------------------------------------------------
# Plain helpers
# ---------------------------------------------------------------------------------------------


def tensor(name: str, shape: Sequence[Dim] | None, elem_type: int = FLOAT) -> onnx.ValueInfoProto:
    """A graph input/output declaration; string dims are symbolic (``dim_param``)."""
    return helper.make_tensor_value_info(name, elem_type, None if shape is None else list(shape))


def initializer(name: str, array, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name=name)


def make_model(
    nodes: Iterable[onnx.NodeProto],
    inputs: Iterable[onnx.ValueInfoProto],
    outputs: Iterable[onnx.ValueInfoProto],
    initializers: Iterable[onnx.TensorProto] = (),
    opset: int = 13,
    *,
    ir_version: int | None = None,
    initializers_as_inputs: bool = False,
    check: bool = True,
) -> onnx.ModelProto:
    """Assemble a model for the default ONNX domain at ``opset``.

    ``initializers_as_inputs`` also lists every initializer as a graph input, as old exporters
    (IR version 3, e.g. the ACAS Xu files) do. ``check`` runs the ONNX checker with full shape
    inference, so a test graph with inconsistent shapes fails loudly at construction time.
    """
    initializers = list(initializers)
    graph = helper.make_graph(list(nodes), "test_graph", list(inputs), list(outputs),
                              initializer=initializers)
    if initializers_as_inputs:
        graph.input.extend(tensor(t.name, list(t.dims), t.data_type) for t in initializers)
    opset_id = helper.make_opsetid("", opset)
    model = helper.make_model(graph, opset_imports=[opset_id], producer_name="verifier-tests")
    if ir_version is None:
        ir_version = helper.find_min_ir_version_for([opset_id])
        if not initializers_as_inputs:
            ir_version = max(ir_version, 4)  # IR < 4 requires initializers to be graph inputs
    model.ir_version = ir_version
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def save(tmp_path: Path, model: onnx.ModelProto, name: str = "model.onnx") -> Path:
    path = Path(tmp_path) / name
    onnx.save(model, str(path))
    return path


# ---------------------------------------------------------------------------------------------
# Graph builder
# ---------------------------------------------------------------------------------------------


class GraphBuilder:
    """Accumulates nodes and initializers with unique names and seeded random weights."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counts: dict[str, int] = {}

    def fresh(self, prefix: str) -> str:
        k = self._counts.get(prefix, 0)
        self._counts[prefix] = k + 1
        return f"{prefix}_{k}"

    # -- constants ------------------------------------------------------------------------------

    def randn(self, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
        return (scale * self.rng.standard_normal(tuple(shape))).astype(np.float32)

    def const(self, array, prefix: str = "c", dtype=np.float32, name: str | None = None) -> str:
        """Add an initializer holding ``array``; returns its name."""
        name = name or self.fresh(prefix)
        self.initializers.append(initializer(name, array, dtype))
        return name

    def ints(self, values: Sequence[int], prefix: str = "ints") -> str:
        """An int64 initializer (shapes, axes)."""
        return self.const(np.asarray(values, dtype=np.int64), prefix, dtype=np.int64)

    def weight(self, shape: Sequence[int], scale: float | None = None, prefix: str = "W") -> str:
        """A random float32 initializer; default scale 1/sqrt(last dim) keeps activations O(1)."""
        if scale is None:
            scale = 1.0 / np.sqrt(max(1, shape[-1])) if len(shape) else 0.5
        return self.const(self.randn(shape, scale), prefix)

    def positive(self, shape: Sequence[int], low: float = 0.5, high: float = 2.0,
                 prefix: str = "p") -> str:
        return self.const(self.rng.uniform(low, high, tuple(shape)).astype(np.float32), prefix)

    def nonzero(self, shape: Sequence[int], prefix: str = "d") -> str:
        """Random values with |v| in [0.5, 2] (safe divisors)."""
        mag = self.rng.uniform(0.5, 2.0, tuple(shape))
        sign = self.rng.choice([-1.0, 1.0], tuple(shape))
        return self.const((mag * sign).astype(np.float32), prefix)

    def constant_node(self, array, prefix: str = "const", dtype=np.float32,
                      name: str | None = None) -> str:
        """A ``Constant`` node with a ``value`` tensor attribute; returns its output name."""
        out = name or self.fresh(prefix)
        value = initializer(f"{out}_value", array, dtype)
        self.nodes.append(helper.make_node("Constant", [], [out], name=f"{out}_node", value=value))
        return out

    # -- nodes ----------------------------------------------------------------------------------

    def op(self, op_type: str, inputs: Sequence[str], *, out: str | Sequence[str] | None = None,
           name: str | None = None, **attrs) -> str:
        """Append a node; returns the name of its (first) output."""
        if out is None:
            outputs = [self.fresh(op_type.lower())]
        elif isinstance(out, str):
            outputs = [out]
        else:
            outputs = list(out)
        node_name = name or self.fresh(f"{op_type}_node")
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=node_name, **attrs))
        return outputs[0]

    def gemm(self, x: str, n_in: int, n_out: int, *, out: str | None = None,
             scale: float | None = None) -> str:
        """PyTorch-style ``Gemm(x, W, b, transB=1)`` with W of shape (n_out, n_in)."""
        w = self.weight((n_out, n_in), scale)
        b = self.const(self.randn((n_out,), 0.3), "b")
        return self.op("Gemm", [x, w, b], out=out, transB=1)

    def matmul_add(self, x: str, n_in: int, n_out: int, *, out: str | None = None) -> str:
        """TensorFlow-style ``Add(MatMul(x, W), b)`` with W of shape (n_in, n_out)."""
        w = self.const(self.randn((n_in, n_out), 1.0 / np.sqrt(n_in)), "W")
        b = self.const(self.randn((n_out,), 0.3), "b")
        return self.op("Add", [self.op("MatMul", [x, w]), b], out=out)

    def model(self, inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto],
              opset: int = 13, **kwargs) -> onnx.ModelProto:
        return make_model(self.nodes, inputs, outputs, self.initializers, opset, **kwargs)


# ---------------------------------------------------------------------------------------------
# onnxruntime reference
# ---------------------------------------------------------------------------------------------


def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The single graph input that is not an initializer."""
    inits = {t.name for t in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in inits]
    assert len(real) == 1, [i.name for i in real]
    return real[0]


def declared_shape(value_info: onnx.ValueInfoProto) -> tuple[Dim, ...]:
    """Dims as ints, or the ``dim_param`` string (``"?"`` if neither) for symbolic ones."""
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def concrete_shape(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    """The declared shape with every symbolic dimension set to 1."""
    return tuple(d if isinstance(d, int) else 1 for d in declared_shape(value_info))


def random_inputs(model: onnx.ModelProto, n: int = 50, seed: int = 0, low: float = -1.0,
                  high: float = 1.0) -> np.ndarray:
    """``n`` flat float32 inputs of shape (n, prod(input shape with batch 1))."""
    size = int(np.prod(concrete_shape(graph_input(model))))
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (n, size)).astype(np.float32)


def onnxruntime_outputs(path: Path, xs: np.ndarray) -> np.ndarray:
    """Run ``xs`` (n, n_inputs) through onnxruntime one sample at a time; returns (n, n_outputs)."""
    import onnxruntime as ort

    model = onnx.load(str(path))
    inp = graph_input(model)
    shape = concrete_shape(inp)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # silence warnings about initializers listed as inputs
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = []
    for x in np.asarray(xs, dtype=np.float32):
        (y,) = session.run(None, {inp.name: x.reshape(shape)})
        rows.append(np.asarray(y, dtype=np.float64).reshape(-1))
    return np.stack(rows)
