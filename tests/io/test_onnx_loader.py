"""Tests of ``verifier.onnx_loader.load_model``: every supported operator is checked against
onnxruntime on random inputs, and every kind of bad model must raise ``ModelError``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.helpers.onnx_builders import (
    FLOAT,
    INT64,
    GraphBuilder,
    concrete_shape,
    declared_shape,
    graph_input,
    make_model,
    onnxruntime_outputs,
    random_inputs,
    save,
    tensor,
)
from verifier.errors import ModelError
from verifier.network import Network
from verifier.onnx_loader import load_model

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "vnncomp2021"

RTOL = 1e-5
ATOL = 1e-5


def assert_matches_ort(path: Path, *, n: int = 50, seed: int = 0, low: float = -1.0,
                       high: float = 1.0, n_layers: int | None = None) -> Network:
    """Load ``path`` and compare ``Network.forward`` with onnxruntime on ``n`` random inputs."""
    model = onnx.load(str(path))
    xs = random_inputs(model, n=n, seed=seed, low=low, high=high)
    expected = onnxruntime_outputs(path, xs)

    net = load_model(path)
    assert isinstance(net, Network)
    assert net.n_inputs == xs.shape[1], "input size differs from the ONNX input tensor's size"
    assert net.n_outputs == expected.shape[1], "output size differs from the ONNX output's size"
    assert int(np.prod(net.input_shape)) == net.n_inputs
    assert int(np.prod(net.output_shape)) == net.n_outputs
    declared_in = declared_shape(graph_input(model))
    if all(isinstance(d, int) for d in declared_in):
        assert tuple(net.input_shape) == declared_in

    # Tolerance relative to the output scale: onnxruntime computes in float32.
    atol = ATOL * max(1.0, float(np.abs(expected).max()))
    got = net.forward(xs.astype(np.float64))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=atol)
    single = net.forward(xs[0].astype(np.float64))
    assert single.shape == (net.n_outputs,)
    np.testing.assert_allclose(single, expected[0], rtol=RTOL, atol=atol)

    if n_layers is not None:
        assert len(net.layers) == n_layers, [
            (layer.n_in, layer.n_out, layer.activation and layer.activation.kind)
            for layer in net.layers
        ]
    return net


def conv_out(size: int, k: int, pad_begin: int = 0, pad_end: int = 0, stride: int = 1,
             dilation: int = 1) -> int:
    return (size + pad_begin + pad_end - dilation * (k - 1) - 1) // stride + 1


def mlp_tail(g: GraphBuilder, h: str, n_in: int, n_out: int = 3, *, hidden: int = 4,
             out: str = "y") -> str:
    """``Gemm -> Relu -> Gemm`` from a [1, n_in] tensor to the output [1, n_out]."""
    h = g.op("Relu", [g.gemm(h, n_in, hidden)])
    return g.gemm(h, hidden, n_out, out=out)


# =============================================================================================
# Gemm
# =============================================================================================

GEMM_CASES = [
    # alpha, beta, transB, C ("1d" = [m], "2d" = [1, m], "scalar" = [], None = no C)
    pytest.param(1.0, 1.0, 1, "1d", id="transB-C1d"),
    pytest.param(1.0, 1.0, 0, "1d", id="noTrans-C1d"),
    pytest.param(0.7, -1.3, 1, "2d", id="alpha-beta-transB-C2d"),
    pytest.param(2.0, 0.5, 0, "2d", id="alpha-beta-C2d"),
    pytest.param(1.0, 1.0, 1, "scalar", id="C-scalar"),
    pytest.param(0.5, 1.0, 0, None, id="no-C"),
    pytest.param(1.0, 3.0, 1, "1d", id="beta-only"),
]


@pytest.mark.parametrize(("alpha", "beta", "trans_b", "c_kind"), GEMM_CASES)
def test_gemm_variable_as_a(tmp_path, alpha, beta, trans_b, c_kind):
    n, m = 5, 4
    g = GraphBuilder(seed=1)
    inputs = ["x", g.weight((m, n) if trans_b else (n, m))]
    if c_kind is not None:
        inputs.append(g.weight({"1d": (m,), "2d": (1, m), "scalar": ()}[c_kind]))
    h = g.op("Gemm", inputs, alpha=alpha, beta=beta, transB=trans_b)
    h = g.op("Relu", [h])
    g.gemm(h, m, 3, out="y")
    model = g.model([tensor("x", [1, n])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_trans_a_with_column_input(tmp_path, trans_b):
    n, m = 5, 4
    g = GraphBuilder(seed=2)
    w = g.weight((m, n) if trans_b else (n, m))
    h = g.op("Gemm", ["x", w, g.weight((m,))], transA=1, transB=trans_b, alpha=1.5)
    g.gemm(g.op("Relu", [h]), m, 2, out="y")
    model = g.model([tensor("x", [n, 1])], [tensor("y", [1, 2])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


GEMM_B_CASES = [
    # transA, transB, input shape, C shape, alpha, beta
    pytest.param(0, 0, "col", (4, 1), 1.0, 1.0, id="W@x-col"),
    pytest.param(0, 1, "row", (4, 1), 1.0, 1.0, id="W@xT-row-transB"),
    pytest.param(1, 0, "col", (), 0.5, 2.0, id="WT@x-col-transA"),
    pytest.param(1, 1, "row", (4, 1), -1.0, 0.5, id="WT@xT-row-transA-transB"),
    pytest.param(0, 0, "col", None, 1.0, 1.0, id="W@x-col-noC"),
]


@pytest.mark.parametrize(("trans_a", "trans_b", "x_kind", "c_shape", "alpha", "beta"),
                         GEMM_B_CASES)
def test_gemm_variable_as_b(tmp_path, trans_a, trans_b, x_kind, c_shape, alpha, beta):
    """``Gemm(W, x)``: the variable is the second operand; the result is a column [m, 1]."""
    n, m = 5, 4
    g = GraphBuilder(seed=3)
    inputs = [g.weight((n, m) if trans_a else (m, n)), "x"]
    if c_shape is not None:
        inputs.append(g.weight(c_shape))
    h = g.op("Gemm", inputs, transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    h = g.op("Relu", [h])
    w2 = g.weight((2, m))
    g.op("Add", [g.op("MatMul", [w2, h]), g.weight((2, 1))], out="y")
    x_shape = [1, n] if x_kind == "row" else [n, 1]
    model = g.model([tensor("x", x_shape)], [tensor("y", [2, 1])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


# =============================================================================================
# MatMul
# =============================================================================================


def test_matmul_row_input_times_weight(tmp_path):
    g = GraphBuilder(seed=4)
    h = g.op("Relu", [g.matmul_add("x", 6, 5)])
    g.matmul_add(h, 5, 3, out="y")
    model = g.model([tensor("x", [1, 6])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_matmul_weight_times_column_input(tmp_path):
    """``W @ x`` with x a column [n, 1], as in some VNN-COMP nets."""
    g = GraphBuilder(seed=5)
    h = g.op("Add", [g.op("MatMul", [g.weight((5, 6)), "x"]), g.weight((5, 1))])
    h = g.op("Relu", [h])
    g.op("Add", [g.op("MatMul", [g.weight((3, 5)), h]), g.weight((3, 1))], out="y")
    model = g.model([tensor("x", [6, 1])], [tensor("y", [3, 1])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_matmul_1d_input(tmp_path):
    """x of shape [n]: ``x @ W`` is [m]."""
    g = GraphBuilder(seed=6)
    h = g.op("Relu", [g.matmul_add("x", 6, 5)])
    g.matmul_add(h, 5, 3, out="y")
    model = g.model([tensor("x", [6])], [tensor("y", [3])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert tuple(net.input_shape) == (6,)
    assert tuple(net.output_shape) == (3,)


def test_matmul_without_bias(tmp_path):
    g = GraphBuilder(seed=7)
    h = g.op("Relu", [g.op("MatMul", ["x", g.weight((4, 5))])])
    g.op("MatMul", [h, g.weight((5, 2))], out="y")
    model = g.model([tensor("x", [1, 4])], [tensor("y", [1, 2])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_matmul_symbolic_batch(tmp_path):
    g = GraphBuilder(seed=8)
    h = g.op("Relu", [g.matmul_add("x", 6, 5)])
    g.matmul_add(h, 5, 3, out="y")
    model = g.model([tensor("x", ["batch", 6])], [tensor("y", ["batch", 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


# =============================================================================================
# Elementwise affine ops with a constant
# =============================================================================================

CONST_SHAPES = {"vec": (5,), "row": (1, 5), "scalar": ()}
ELEMENTWISE_CASES = [
    pytest.param(op, side, shape, id=f"{op}-{side}-{shape}")
    for op in ("Add", "Sub", "Mul", "Div")
    for side in ("x_op_c", "c_op_x")
    for shape in CONST_SHAPES
    if not (op == "Div" and side == "c_op_x")
]


def _elementwise(g: GraphBuilder, op: str, side: str, x: str, shape: tuple[int, ...]) -> str:
    c = g.nonzero(shape) if op in ("Div", "Mul") else g.weight(shape, scale=0.7)
    return g.op(op, [x, c] if side == "x_op_c" else [c, x])


@pytest.mark.parametrize(("op", "side", "shape"), ELEMENTWISE_CASES)
def test_elementwise_on_input(tmp_path, op, side, shape):
    """Preprocessing on the input (as ACAS Xu's ``Sub``), merged into the first layer."""
    g = GraphBuilder(seed=9)
    h = _elementwise(g, op, side, "x", CONST_SHAPES[shape])
    mlp_tail(g, h, 5)
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


@pytest.mark.parametrize(("op", "side", "shape"), ELEMENTWISE_CASES)
def test_elementwise_after_gemm(tmp_path, op, side, shape):
    g = GraphBuilder(seed=10)
    h = _elementwise(g, op, side, g.gemm("x", 4, 5), CONST_SHAPES[shape])
    h = g.op("Relu", [h])
    g.gemm(h, 5, 2, out="y")
    model = g.model([tensor("x", [1, 4])], [tensor("y", [1, 2])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_elementwise_broadcast_1d_input_to_row(tmp_path):
    """x [n] + c [1, n] broadcasts to [1, n]; the flat vector is unchanged."""
    g = GraphBuilder(seed=11)
    h = g.op("Add", ["x", g.weight((1, 5))])
    h = g.op("Mul", [h, g.nonzero(())])
    mlp_tail(g, h, 5)
    model = g.model([tensor("x", [5])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Min", "Max"])
@pytest.mark.parametrize("c_shape", [(1, 5), (1, 1, 5)])
def test_constant_broadcast_that_raises_rank(tmp_path, op, c_shape):
    """x [5] op c [1, 5] -> [1, 5]; x [5] op c [1, 1, 5] -> [1, 1, 5] (then Reshape to a row)."""
    g = GraphBuilder(seed=43)
    c = g.nonzero(c_shape) if op in ("Mul", "Div") else g.weight(c_shape, scale=0.5)
    h = g.op(op, ["x", c])
    h = g.op("Reshape", [h, g.ints([1, -1])])
    mlp_tail(g, h, 5)
    model = g.model([tensor("x", [5])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model))


def test_per_channel_normalisation_of_image_input(tmp_path):
    """(x - mean[c,1,1]) / std[1,c,1,1] on an image, then Flatten and an MLP."""
    g = GraphBuilder(seed=12)
    h = g.op("Sub", ["x", g.weight((3, 1, 1))])
    h = g.op("Div", [h, g.positive((1, 3, 1, 1))])
    h = g.op("Flatten", [h], axis=1)
    mlp_tail(g, h, 3 * 4 * 4)
    model = g.model([tensor("x", [1, 3, 4, 4])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_consecutive_affine_ops_form_one_layer(tmp_path):
    g = GraphBuilder(seed=13)
    h = g.gemm("x", 5, 4)
    h = g.op("Add", [h, g.weight((4,))])
    h = g.op("Mul", [h, g.nonzero((1, 4))])
    g.op("Sub", [h, g.weight(())], out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 4])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=1)
    assert net.layers[0].activation is None


def test_consecutive_affine_ops_in_hidden_layers(tmp_path):
    g = GraphBuilder(seed=14)
    h = g.matmul_add("x", 5, 6)
    h = g.op("Div", [h, g.nonzero((6,))])
    h = g.op("Sub", [g.weight((1, 6)), h])
    h = g.op("Relu", [h])
    h = g.op("Mul", [g.nonzero(()), h])
    h = g.gemm(h, 6, 4)
    h = g.op("Add", [h, g.weight((4,))])
    h = g.op("Relu", [h])
    h = g.matmul_add(h, 4, 2)
    g.op("Mul", [h, g.nonzero((2,))], out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 2])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=3)
    assert [layer.activation is None for layer in net.layers] == [False, False, True]


# =============================================================================================
# Activations
# =============================================================================================


def test_relu_layers(tmp_path):
    g = GraphBuilder(seed=15)
    mlp_tail(g, "x", 5)
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert net.layers[0].activation is not None
    assert net.layers[0].activation.kind == "relu"
    assert net.layers[1].activation is None
    assert net.n_neurons == 4


@pytest.mark.parametrize("alpha", [None, 0.2, 0.5])
def test_leaky_relu(tmp_path, alpha):
    g = GraphBuilder(seed=16)
    attrs = {} if alpha is None else {"alpha": alpha}
    h = g.op("LeakyRelu", [g.gemm("x", 5, 4)], **attrs)
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    act = net.layers[0].activation
    assert act is not None and act.kind == "leaky"
    assert act.alpha == pytest.approx(0.01 if alpha is None else alpha, rel=1e-6)


@pytest.mark.parametrize("opset", [7, 10])
@pytest.mark.parametrize(("lo", "hi"), [(-0.5, 0.5), (0.0, None), (None, 0.3), (-0.2, 1.0)])
def test_clip_attributes_old_opset(tmp_path, opset, lo, hi):
    """Clip-6: bounds as ``min`` / ``max`` attributes (absent = unbounded)."""
    g = GraphBuilder(seed=17)
    attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
    h = g.op("Clip", [g.gemm("x", 5, 4)], **attrs)
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])], opset=opset)
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert net.layers[0].activation is not None


CLIP_INPUT_CASES = [
    pytest.param(-0.3, 0.4, "both", id="min-max"),
    pytest.param(None, 0.4, "empty-min", id="missing-min-empty-name"),
    pytest.param(-0.3, None, "omitted-max", id="missing-max-omitted"),
    pytest.param(-0.3, None, "empty-max", id="missing-max-empty-name"),
    pytest.param(0.0, 0.5, "constant-nodes", id="min-max-constant-nodes"),
]


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize(("lo", "hi", "form"), CLIP_INPUT_CASES)
def test_clip_inputs_new_opset(tmp_path, opset, lo, hi, form):
    """Clip-11+: bounds as optional scalar inputs 2 and 3."""
    g = GraphBuilder(seed=18)
    h = g.gemm("x", 5, 4)
    if form == "constant-nodes":
        inputs = [h, g.constant_node(np.float32(lo)), g.constant_node(np.float32(hi))]
    else:
        lo_name = "" if lo is None else g.const(np.float32(lo), "lo")
        hi_name = "" if hi is None else g.const(np.float32(hi), "hi")
        inputs = [h, lo_name, hi_name]
        if form == "omitted-max":
            inputs = inputs[:2]
    h = g.op("Clip", inputs)
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])], opset=opset)
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    act = net.layers[0].activation
    assert act is not None
    if form == "both":
        assert act.kind == "clip"
        np.testing.assert_allclose(act.lo, np.full(4, lo), rtol=1e-6)
        np.testing.assert_allclose(act.hi, np.full(4, hi), rtol=1e-6)


def test_clip_without_bounds_is_identity(tmp_path):
    g = GraphBuilder(seed=19)
    h = g.op("Clip", [g.gemm("x", 5, 4)])
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])], opset=13)
    assert_matches_ort(save(tmp_path, model))


MAX_MIN_CASES = [
    pytest.param("Max", 0.0, (), "x_first", id="Max(x,0)"),
    pytest.param("Max", 0.0, (), "c_first", id="Max(0,x)"),
    pytest.param("Max", 0.25, (), "x_first", id="Max(x,0.25)"),
    pytest.param("Max", 0.0, (1,), "x_first", id="Max(x,[0])"),
    pytest.param("Min", 0.5, (), "x_first", id="Min(x,0.5)"),
    pytest.param("Min", 0.5, (), "c_first", id="Min(0.5,x)"),
    pytest.param("Min", -0.2, (1,), "c_first", id="Min([-0.2],x)"),
    pytest.param("Min", None, (4,), "x_first", id="Min(x,c[m])-per-neuron"),
    pytest.param("Max", None, (1, 4), "c_first", id="Max(c[1,m],x)-per-neuron"),
]


@pytest.mark.parametrize(("op", "value", "shape", "order"), MAX_MIN_CASES)
def test_max_min_with_constant(tmp_path, op, value, shape, order):
    g = GraphBuilder(seed=20)
    h = g.gemm("x", 5, 4)
    if value is None:
        c = g.weight(shape, scale=0.5)
    else:
        c = g.const(np.full(shape, value, dtype=np.float32))
    h = g.op(op, [h, c] if order == "x_first" else [c, h])
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert net.layers[0].activation is not None


@pytest.mark.parametrize("position", ["hidden", "last"])
def test_relu_then_min_six(tmp_path, position):
    """Two activations in a row (ReLU6 as ``Min(Relu(x), 6)``)."""
    g = GraphBuilder(seed=21)
    h = g.op("Relu", [g.gemm("x", 5, 4, scale=3.0)])
    six = g.const(np.float32(6.0), "six")
    if position == "hidden":
        h = g.op("Min", [h, six])
        g.gemm(h, 4, 3, out="y")
        out = tensor("y", [1, 3])
    else:
        g.op("Min", [h, six], out="y")
        out = tensor("y", [1, 4])
    model = g.model([tensor("x", [1, 5])], [out])
    # Inputs in [-5, 5] so that some pre-activations exceed 6 and some are negative.
    assert_matches_ort(save(tmp_path, model), low=-5.0, high=5.0)


def test_network_ending_with_relu(tmp_path):
    g = GraphBuilder(seed=22)
    h = g.op("Relu", [g.gemm("x", 5, 4)])
    g.op("Relu", [g.gemm(h, 4, 3)], out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    net = assert_matches_ort(save(tmp_path, model))
    assert net.layers[-1].activation is None  # the Network invariant
    xs = np.random.default_rng(0).uniform(-1, 1, (50, 5))
    assert (net.forward(xs) >= 0).all()


# =============================================================================================
# Shape operators, no-ops and constants
# =============================================================================================


@pytest.mark.parametrize("axis", [None, 1])
def test_flatten_image(tmp_path, axis):
    g = GraphBuilder(seed=23)
    attrs = {} if axis is None else {"axis": axis}
    h = g.op("Flatten", ["x"], **attrs)
    mlp_tail(g, h, 2 * 3 * 4)
    model = g.model([tensor("x", [1, 2, 3, 4])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_flatten_of_row_and_of_3d_input(tmp_path):
    """MNIST-style [1, n, 1] input, and a Flatten of an already flat [1, m] tensor."""
    g = GraphBuilder(seed=24)
    h = g.op("Flatten", ["x"], axis=1)
    h = g.op("Relu", [g.gemm(h, 12, 6)])
    h = g.op("Flatten", [h])
    g.gemm(h, 6, 3, out="y")
    model = g.model([tensor("x", [1, 12, 1])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


@pytest.mark.parametrize("target", [[1, -1], [0, -1], [1, 24], [-1]])
def test_reshape(tmp_path, target):
    g = GraphBuilder(seed=25)
    h = g.op("Reshape", ["x", g.ints(target)])
    if target == [-1]:
        h = g.op("Relu", [g.matmul_add(h, 24, 5)])
        g.matmul_add(h, 5, 3, out="y")
        out = tensor("y", [3])
    else:
        mlp_tail(g, h, 24)
        out = tensor("y", [1, 3])
    model = g.model([tensor("x", [1, 2, 3, 4])], [out])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_reshape_of_output_and_of_hidden_layer(tmp_path):
    """Reshape between layers and on the output, with the shape from a Constant node."""
    g = GraphBuilder(seed=26)
    h = g.op("Relu", [g.gemm("x", 5, 6)])
    h = g.op("Reshape", [h, g.constant_node(np.array([1, 2, 3], np.int64), dtype=np.int64)])
    h = g.op("Reshape", [h, g.ints([1, 6])])
    h = g.gemm(h, 6, 4)
    g.op("Reshape", [h, g.ints([1, 2, 2])], out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 2, 2])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert net.n_outputs == 4


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(tmp_path, opset):
    """Axes as an attribute (opset 11) or as an int64 input (opset 13)."""
    g = GraphBuilder(seed=27)

    def axes_op(op: str, x: str, axes: list[int]) -> str:
        if opset >= 13:
            return g.op(op, [x, g.ints(axes, "axes")])
        return g.op(op, [x], axes=axes)

    h = axes_op("Unsqueeze", "x", [0])  # [5] -> [1, 5]
    h = g.op("Relu", [g.gemm(h, 5, 4)])  # [1, 4]
    h = axes_op("Unsqueeze", h, [2])  # [1, 4, 1]
    h = axes_op("Squeeze", h, [2])  # [1, 4]
    h = g.gemm(h, 4, 3)
    axes_op("Squeeze", h, [0])  # [3]
    g.nodes[-1].output[0] = "y"
    model = g.model([tensor("x", [5])], [tensor("y", [3])], opset=opset)
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert tuple(net.output_shape) == (3,)


def test_identity(tmp_path):
    g = GraphBuilder(seed=28)
    h = g.op("Identity", ["x"])
    h = g.op("Relu", [g.gemm(h, 5, 4)])
    h = g.op("Identity", [h])
    h = g.gemm(h, 4, 3)
    g.op("Identity", [h], out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


DROPOUT_CASES = [
    pytest.param(7, False, id="opset7"),
    pytest.param(10, False, id="opset10"),
    pytest.param(10, True, id="opset10-mask"),
    pytest.param(13, False, id="opset13"),
    pytest.param(13, True, id="opset13-mask"),
]


@pytest.mark.parametrize(("opset", "with_mask"), DROPOUT_CASES)
def test_dropout_is_identity(tmp_path, opset, with_mask):
    g = GraphBuilder(seed=29)
    h = g.op("Relu", [g.gemm("x", 5, 4)])
    out = [g.fresh("dropped"), "unused_mask"] if with_mask else None
    if opset >= 12:
        h = g.op("Dropout", [h, g.const(np.float32(0.3), "ratio")], out=out)
    else:
        h = g.op("Dropout", [h], out=out, ratio=0.3)
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])], opset=opset)
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_constant_nodes_as_weights(tmp_path):
    g = GraphBuilder(seed=30)
    w1 = g.constant_node(g.randn((4, 5), 0.5))
    b1 = g.constant_node(g.randn((4,), 0.3))
    h = g.op("Relu", [g.op("Gemm", ["x", w1, b1], transB=1)])
    h = g.op("MatMul", [h, g.constant_node(g.randn((4, 3), 0.5))])
    h = g.op("Add", [h, g.constant_node(g.randn((1, 3), 0.3))])
    g.op("Reshape", [h, g.constant_node(np.array([-1], np.int64), dtype=np.int64)], out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [3])])
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert tuple(net.output_shape) == (3,)


@pytest.mark.parametrize("where", ["hidden", "last"])
def test_batchnorm_after_gemm(tmp_path, where):
    g = GraphBuilder(seed=31)

    def bn(h: str, c: int) -> str:
        return g.op("BatchNormalization",
                    [h, g.nonzero((c,)), g.weight((c,)), g.weight((c,)), g.positive((c,))],
                    epsilon=1e-3)

    h = g.gemm("x", 5, 4)
    if where == "hidden":
        h = bn(h, 4)
    h = g.op("Relu", [h])
    h = g.gemm(h, 4, 3)
    if where == "last":
        h = bn(h, 3)
    g.nodes[-1].output[0] = "y"
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


@pytest.mark.parametrize("transposed", [False, True])
def test_transpose_that_only_permutes(tmp_path, transposed):
    """[1,c,h,w] -> [1,h,w,c] before Flatten (TF exporters), or NHWC input -> NCHW Conv."""
    g = GraphBuilder(seed=32)
    if transposed:
        h = g.op("Transpose", ["x"], perm=[0, 3, 1, 2])  # [1,4,5,2] -> [1,2,4,5]
    else:
        h = "x"
    h = g.op("Conv", [h, g.weight((3, 2, 3, 3), 0.3), g.weight((3,))], kernel_shape=[3, 3])
    h = g.op("Relu", [h])  # [1, 3, 2, 3]
    h = g.op("Transpose", [h], perm=[0, 2, 3, 1])  # [1, 2, 3, 3]
    h = g.op("Flatten", [h], axis=1)
    g.gemm(h, 18, 3, out="y")
    x_shape = [1, 4, 5, 2] if transposed else [1, 2, 4, 5]
    model = g.model([tensor("x", x_shape)], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_transpose_row_to_column(tmp_path):
    g = GraphBuilder(seed=33)
    h = g.op("Transpose", ["x"], perm=[1, 0])  # [1, 5] -> [5, 1]
    h = g.op("Relu", [g.op("Add", [g.op("MatMul", [g.weight((4, 5)), h]), g.weight((4, 1))])])
    h = g.op("Transpose", [h])  # default perm reverses: [4, 1] -> [1, 4]
    g.gemm(h, 4, 2, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 2])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


# =============================================================================================
# Conv and BatchNormalization after Conv
# =============================================================================================

CONV_CASES = [
    # c_in, c_out, kernel, pads (t, l, b, r), strides, dilations, group, bias
    pytest.param(2, 3, (3, 3), (0, 0, 0, 0), (1, 1), (1, 1), 1, True, id="basic"),
    pytest.param(2, 3, (3, 3), (1, 1, 1, 1), (2, 2), (1, 1), 1, True, id="pads-strides"),
    pytest.param(2, 3, (3, 3), (0, 1, 1, 0), (1, 2), (1, 1), 1, True, id="asym-pads-strides"),
    pytest.param(2, 2, (2, 2), (1, 1, 1, 1), (1, 1), (2, 2), 1, True, id="dilations"),
    pytest.param(4, 6, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1), 2, True, id="groups"),
    pytest.param(3, 3, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1), 3, True, id="depthwise"),
    pytest.param(2, 4, (3, 3), (0, 0, 0, 0), (2, 1), (1, 1), 2, False, id="depthwise-x2-nobias"),
    pytest.param(2, 3, (2, 3), (0, 0, 0, 0), (1, 1), (1, 1), 1, False, id="rect-kernel-nobias"),
    pytest.param(1, 2, (1, 1), (0, 0, 0, 0), (1, 1), (1, 1), 1, True, id="1x1"),
]


@pytest.mark.parametrize(("c_in", "c_out", "kernel", "pads", "strides", "dilations", "group",
                          "bias"), CONV_CASES)
def test_conv(tmp_path, c_in, c_out, kernel, pads, strides, dilations, group, bias):
    height, width = 6, 5
    g = GraphBuilder(seed=34)
    w = g.weight((c_out, c_in // group, *kernel), scale=0.5)
    inputs = ["x", w] + ([g.weight((c_out,), 0.3)] if bias else [])
    h = g.op("Conv", inputs, kernel_shape=list(kernel), pads=list(pads), strides=list(strides),
             dilations=list(dilations), group=group)
    h = g.op("Relu", [h])
    h = g.op("Flatten", [h], axis=1)
    oh = conv_out(height, kernel[0], pads[0], pads[2], strides[0], dilations[0])
    ow = conv_out(width, kernel[1], pads[1], pads[3], strides[1], dilations[1])
    g.gemm(h, c_out * oh * ow, 3, out="y")
    model = g.model([tensor("x", [1, c_in, height, width])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_conv_auto_pad(tmp_path, auto_pad):
    g = GraphBuilder(seed=44)
    h = g.op("Conv", ["x", g.weight((2, 2, 3, 2), 0.5), g.weight((2,))], auto_pad=auto_pad,
             strides=[2, 1])
    h = g.op("Flatten", [g.op("Relu", [h])])
    oh, ow = (3, 5) if auto_pad != "VALID" else (conv_out(6, 3, stride=2), conv_out(5, 2))
    g.gemm(h, 2 * oh * ow, 3, out="y")
    model = g.model([tensor("x", [1, 2, 6, 5])], [tensor("y", [1, 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_conv_without_optional_attributes(tmp_path):
    """Defaults: no kernel_shape (taken from W), no pads/strides/dilations/group."""
    g = GraphBuilder(seed=35)
    h = g.op("Relu", [g.op("Conv", ["x", g.weight((2, 1, 3, 3), 0.5), g.weight((2,))])])
    h = g.op("Flatten", [h])
    g.gemm(h, 2 * 3 * 3, 2, out="y")
    model = g.model([tensor("x", [1, 1, 5, 5])], [tensor("y", [1, 2])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_two_convs_with_symbolic_batch(tmp_path):
    g = GraphBuilder(seed=36)
    h = g.op("Conv", ["x", g.weight((4, 2, 3, 3), 0.4), g.weight((4,))], pads=[1, 1, 1, 1],
             strides=[2, 2])  # [N, 4, 4, 4]
    h = g.op("Relu", [h])
    h = g.op("Conv", [h, g.weight((4, 1, 3, 3), 0.5), g.weight((4,))], group=4)  # [N,4,2,2]
    h = g.op("Relu", [h])
    h = g.op("Flatten", [h], axis=1)
    mlp_tail(g, h, 16, 3)
    model = g.model([tensor("x", ["batch", 2, 8, 8])], [tensor("y", ["batch", 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=4)


@pytest.mark.parametrize("conv_bias", [True, False])
def test_batchnorm_after_conv(tmp_path, conv_bias):
    g = GraphBuilder(seed=37)
    inputs = ["x", g.weight((3, 2, 3, 3), 0.4)] + ([g.weight((3,))] if conv_bias else [])
    h = g.op("Conv", inputs, pads=[1, 1, 1, 1])
    h = g.op("BatchNormalization",
             [h, g.nonzero((3,)), g.weight((3,)), g.weight((3,)), g.positive((3,))],
             epsilon=1e-2)
    h = g.op("Relu", [h])
    h = g.op("Flatten", [h], axis=1)
    g.gemm(h, 3 * 4 * 4, 2, out="y")
    model = g.model([tensor("x", [1, 2, 4, 4])], [tensor("y", [1, 2])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


# =============================================================================================
# Input / output shapes and old opsets
# =============================================================================================

IO_CASES = [
    pytest.param([5], [3], id="in[n]-out[m]"),
    pytest.param([5], [1, 3], id="in[n]-out[1,m]"),
    pytest.param([1, 5], [3], id="in[1,n]-out[m]"),
    pytest.param([1, 5], [1, 3], id="in[1,n]-out[1,m]"),
    pytest.param(["N", 5], ["N", 3], id="in[N,n]-out[N,m]"),
    pytest.param(["batch", 5], ["batch", 3], id="in[batch,n]-out[batch,m]"),
]


@pytest.mark.parametrize(("in_shape", "out_shape"), IO_CASES)
def test_input_output_shapes(tmp_path, in_shape, out_shape):
    g = GraphBuilder(seed=38)
    h = "x" if len(in_shape) == 2 else g.op("Unsqueeze", ["x", g.ints([0])])
    h = g.op("Relu", [g.gemm(h, 5, 4)])
    h = g.gemm(h, 4, 3)
    if len(out_shape) == 1:
        h = g.op("Squeeze", [h, g.ints([0])])
    g.nodes[-1].output[0] = "y"
    model = g.model([tensor("x", in_shape)], [tensor("y", out_shape)])
    net = assert_matches_ort(save(tmp_path, model), n_layers=2)
    assert net.n_inputs == 5 and net.n_outputs == 3
    if all(isinstance(d, int) for d in out_shape):
        assert tuple(net.output_shape) == tuple(out_shape)


def test_symbolic_batch_image_input(tmp_path):
    g = GraphBuilder(seed=39)
    h = g.op("Relu", [g.op("Conv", ["x", g.weight((2, 1, 3, 3), 0.5), g.weight((2,))])])
    h = g.op("Flatten", [h], axis=1)
    g.gemm(h, 2 * 2 * 3, 3, out="y")
    model = g.model([tensor("x", ["N", 1, 4, 5])], [tensor("y", ["N", 3])])
    assert_matches_ort(save(tmp_path, model), n_layers=2)


def test_load_model_accepts_str_path(tmp_path):
    g = GraphBuilder(seed=40)
    mlp_tail(g, "x", 5)
    path = save(tmp_path, g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])]))
    net = load_model(str(path))
    assert net.n_inputs == 5 and net.n_outputs == 3


def test_opset8_acas_style_with_initializers_as_inputs(tmp_path):
    """Like the ACAS Xu files: opset 8, IR version 3, initializers also listed as inputs."""
    g = GraphBuilder(seed=41)
    h = g.op("Sub", ["input", g.weight((1, 1, 1, 5), 0.3, prefix="input_AvgImg")])
    h = g.op("Flatten", [h])
    h = g.op("Relu", [g.matmul_add(h, 5, 8)])
    h = g.op("Relu", [g.matmul_add(h, 8, 8)])
    g.matmul_add(h, 8, 5, out="y")
    model = g.model([tensor("input", [1, 1, 1, 5])], [tensor("y", [1, 5])], opset=8,
                    initializers_as_inputs=True)
    assert model.ir_version == 3
    net = assert_matches_ort(save(tmp_path, model), n_layers=3)
    assert tuple(net.input_shape) == (1, 1, 1, 5)


def test_opset9_mnist_style(tmp_path):
    """Like the mnistfc files: opset 9, [1, n, 1] input, Flatten, Gemm, BatchNormalization."""
    g = GraphBuilder(seed=42)
    h = g.op("Flatten", ["x"], axis=1)
    h = g.gemm(h, 12, 6)
    h = g.op("BatchNormalization",
             [h, g.nonzero((6,)), g.weight((6,)), g.weight((6,)), g.positive((6,))],
             epsilon=1e-5)
    h = g.op("Relu", [h])
    h = g.op("Relu", [g.gemm(h, 6, 6)])
    g.gemm(h, 6, 4, out="y")
    model = g.model([tensor("x", [1, 12, 1])], [tensor("y", [1, 4])], opset=9)
    assert_matches_ort(save(tmp_path, model), n_layers=3)


# =============================================================================================
# Real VNN-COMP 2021 files
# =============================================================================================


def _bench(relpaths: list[str] | str) -> list:
    """Parameters for benchmark files (a glob or a list); one skipping param if absent."""
    if not BENCH.is_dir():
        reason = f"VNN-COMP 2021 benchmarks not found at {BENCH}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="missing")]
    if isinstance(relpaths, str):
        relpaths = sorted(str(p.relative_to(BENCH)) for p in BENCH.glob(relpaths))
    return [pytest.param(rel, id=rel) for rel in relpaths]


def _bench_path(rel: str) -> Path:
    path = BENCH / rel
    if not path.is_file():
        pytest.skip(f"benchmark file {path} not found")
    return path


EXPECTED_LAYERS = {"test_tiny.onnx": 2, "test_small.onnx": 3, "test_sat.onnx": 7,
                   "test_unsat.onnx": 7}


@pytest.mark.parametrize("rel", _bench("test/*.onnx"))
def test_vnncomp_test_networks(rel):
    path = _bench_path(rel)
    assert_matches_ort(path, low=-2.0, high=2.0, n_layers=EXPECTED_LAYERS.get(path.name))


@pytest.mark.parametrize("rel", _bench([
    "acasxu/ACASXU_run2a_1_1_batch_2000.onnx",
    "acasxu/ACASXU_run2a_3_3_batch_2000.onnx",
    "acasxu/ACASXU_run2a_5_9_batch_2000.onnx",
]))
def test_vnncomp_acasxu(rel):
    net = assert_matches_ort(_bench_path(rel), n_layers=7)
    assert net.n_inputs == 5 and net.n_outputs == 5
    assert net.n_neurons == 300


@pytest.mark.parametrize("rel", _bench([
    "mnistfc/mnist-net_256x2.onnx",
    "mnistfc/mnist-net_256x4.onnx",
    "mnistfc/mnist-net_256x6.onnx",
]))
def test_vnncomp_mnistfc(rel):
    path = _bench_path(rel)
    depth = int(re.search(r"256x(\d+)", rel).group(1))
    net = assert_matches_ort(path, low=0.0, high=1.0, n_layers=depth + 1)
    assert net.n_inputs == 784 and net.n_outputs == 10
    assert net.n_neurons == 256 * depth


# =============================================================================================
# Errors
# =============================================================================================


def _without(msg: str, *parts: str) -> str:
    for part in parts:
        msg = msg.replace(part, "")
    return msg


def _mentions_number(msg: str, *numbers: int) -> bool:
    return any(re.search(rf"(?<![\w.]){k}(?![\w.])", msg) for k in numbers)


@pytest.mark.parametrize("op", ["Sigmoid", "Softmax", "Tanh"])
def test_unsupported_operator_is_reported_in_detail(tmp_path, op):
    g = GraphBuilder(seed=50)
    h = g.gemm("x", 5, 4)  # node 0
    h = g.op("Relu", [h])  # node 1
    h = g.op(op, [h], name="bad_activation")  # node 2
    g.gemm(h, 4, 3, out="y")  # node 3
    path = save(tmp_path, g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])]),
                name="unsupported.onnx")
    with pytest.raises(ModelError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "bad_activation" in msg
    assert op in msg
    # The node's index: 2 counting from 0 (3 counting from 1).
    assert _mentions_number(_without(msg, str(path)), 2, 3), msg
    for supported in ("Gemm", "Relu", "MatMul", "Conv"):
        assert supported in msg, f"supported operator {supported} not listed: {msg}"


def test_two_unsupported_operators_reported_together(tmp_path):
    g = GraphBuilder(seed=51)
    h = g.op("Sigmoid", [g.gemm("x", 5, 4)], name="first_bad")
    h = g.op("Tanh", [g.gemm(h, 4, 4)], name="second_bad")
    g.gemm(h, 4, 3, out="y")
    path = save(tmp_path, g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])]))
    with pytest.raises(ModelError) as info:
        load_model(path)
    msg = str(info.value)
    for part in ("first_bad", "second_bad", "Sigmoid", "Tanh"):
        assert part in msg, msg


def test_unsupported_operator_node_without_name(tmp_path):
    g = GraphBuilder(seed=52)
    h = g.op("Relu", [g.gemm("x", 5, 4)])
    h = g.op("Softplus", [h])
    g.nodes[-1].name = ""
    g.gemm(h, 4, 3, out="y")
    path = save(tmp_path, g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])]))
    with pytest.raises(ModelError, match="Softplus"):
        load_model(path)


@pytest.mark.parametrize("content", [
    pytest.param(np.random.default_rng(0).bytes(2000), id="random-bytes"),
    pytest.param(b"this is a plain text file, not a network\n" * 3, id="text"),
    pytest.param(b"", id="empty"),
])
def test_file_that_is_not_onnx(tmp_path, content):
    path = tmp_path / "not_a_model.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError):
        load_model(path)


def test_truncated_onnx_file(tmp_path):
    g = GraphBuilder(seed=53)
    mlp_tail(g, "x", 30, hidden=20)
    data = g.model([tensor("x", [1, 30])], [tensor("y", [1, 3])]).SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        load_model(path)


def test_missing_file(tmp_path):
    path = tmp_path / "does_not_exist.onnx"
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert "does_not_exist.onnx" in str(info.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ModelError):
        load_model(tmp_path)


def test_two_inputs(tmp_path):
    g = GraphBuilder(seed=54)
    h = g.op("Add", ["x1", "x2"])
    mlp_tail(g, h, 5)
    model = g.model([tensor("x1", [1, 5]), tensor("x2", [1, 5])], [tensor("y", [1, 3])])
    with pytest.raises(ModelError):
        load_model(save(tmp_path, model))


def test_two_outputs(tmp_path):
    g = GraphBuilder(seed=55)
    h = g.gemm("x", 5, 4, out="y1")
    g.op("Relu", [h], out="y2")
    model = g.model([tensor("x", [1, 5])], [tensor("y1", [1, 4]), tensor("y2", [1, 4])])
    with pytest.raises(ModelError):
        load_model(save(tmp_path, model))


def test_int64_input(tmp_path):
    g = GraphBuilder(seed=56)
    h = g.op("Cast", ["x"], to=FLOAT)
    mlp_tail(g, h, 5)
    model = g.model([tensor("x", [1, 5], INT64)], [tensor("y", [1, 3])])
    with pytest.raises(ModelError):
        load_model(save(tmp_path, model))


def test_int64_input_and_output_identity(tmp_path):
    g = GraphBuilder(seed=57)
    g.op("Identity", ["x"], out="y")
    model = g.model([tensor("x", [1, 5], INT64)], [tensor("y", [1, 5], INT64)])
    with pytest.raises(ModelError):
        load_model(save(tmp_path, model))


def test_matmul_of_two_variables(tmp_path):
    g = GraphBuilder(seed=58)
    column = g.op("Reshape", ["x", g.ints([4, 1])])
    h = g.op("MatMul", ["x", column])  # x @ x^T : [1, 1]
    g.gemm(h, 1, 2, out="y")
    model = g.model([tensor("x", [1, 4])], [tensor("y", [1, 2])])
    with pytest.raises(ModelError):
        load_model(save(tmp_path, model))


def test_add_of_a_tensor_and_its_activation_is_a_dag(tmp_path):
    """Add(h, relu(h)) reads a tensor from before the activation: the output layer reads the input
    (h recomposed from it) and the ReLU's output, and agrees with onnxruntime."""
    g = GraphBuilder(seed=59)
    h = g.gemm("x", 5, 4)
    h = g.op("Add", [h, g.op("Relu", [h])])
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    path = save(tmp_path, model)
    net = load_model(path)
    assert net.sources(len(net.layers) - 1) == (0, 1) and not net.is_chain
    xs = random_inputs(model, 40, seed=3)
    np.testing.assert_allclose(net.forward(xs), onnxruntime_outputs(path, xs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_elementwise_of_two_variables_that_is_not_affine(tmp_path, op):
    """Mul(h, h), Div(c, h) are not affine."""
    g = GraphBuilder(seed=59)
    h = g.gemm("x", 5, 4)
    if op == "Mul":
        h = g.op("Mul", [h, h])
    else:
        h = g.op("Div", [g.nonzero((4,)), h])
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    with pytest.raises(ModelError):
        load_model(save(tmp_path, model))


@pytest.mark.parametrize("shape", [[2, 5], [3, 1, 4]])
def test_fixed_batch_dimension_other_than_one(tmp_path, shape):
    g = GraphBuilder(seed=60)
    h = g.op("Flatten", ["features"]) if len(shape) == 3 else "features"
    n = int(np.prod(shape[1:]))
    h = g.op("Relu", [g.gemm(h, n, 4)])
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("features", shape)], [tensor("y", [shape[0], 3])])
    with pytest.raises(ModelError) as info:
        load_model(save(tmp_path, model))
    assert "features" in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_initializer(tmp_path, bad):
    g = GraphBuilder(seed=61)
    w = g.randn((4, 5))
    w[2, 3] = bad
    w_name = g.const(w, name="W_bad")
    h = g.op("Relu", [g.op("Gemm", ["x", w_name, g.weight((4,))], transB=1)])
    g.gemm(h, 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    with pytest.raises(ModelError) as info:
        load_model(save(tmp_path, model))
    assert "W_bad" in str(info.value)


def test_non_finite_bias(tmp_path):
    g = GraphBuilder(seed=62)
    h = g.gemm("x", 5, 4)
    h = g.op("Add", [h, g.const(np.array([0.0, np.nan, 1.0, 2.0], np.float32), name="bias_bad")])
    g.gemm(g.op("Relu", [h]), 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    with pytest.raises(ModelError) as info:
        load_model(save(tmp_path, model))
    assert "bias_bad" in str(info.value)


def test_non_finite_constant_node(tmp_path):
    g = GraphBuilder(seed=63)
    w = g.randn((5, 4))
    w[0, 0] = np.inf
    h = g.op("MatMul", ["x", g.constant_node(w, name="bad_const")])
    g.gemm(g.op("Relu", [h]), 4, 3, out="y")
    model = g.model([tensor("x", [1, 5])], [tensor("y", [1, 3])])
    with pytest.raises(ModelError) as info:
        load_model(save(tmp_path, model))
    # Node "bad_const_node", output "bad_const": either name identifies it.
    assert "bad_const" in str(info.value)


def test_concrete_shape_helper():
    """Sanity check of the test helpers themselves."""
    assert concrete_shape(tensor("x", ["N", 3, 4])) == (1, 3, 4)
    assert declared_shape(tensor("x", ["N", 3])) == ("N", 3)
    model = make_model([], [tensor("x", [1, 2])], [tensor("x", [1, 2])], check=False)
    assert graph_input(model).name == "x"
