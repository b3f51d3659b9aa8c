"""Differential tests of the ONNX operators of DAG networks against onnxruntime: each graph is
loaded, its forward pass compared with onnxruntime on random inputs (values and output shape),
and every onnxruntime output must lie within the loaded network's float error bound
(``Network.float_deviation``). Opset variants where the operator's ONNX form differs (attributes
versus inputs)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tests.helpers.onnx_builders import GraphBuilder, save, tensor
from tests.helpers.ort_compare import assert_loads_like_onnxruntime
from verifier.errors import ModelError
from verifier.onnx_loader import load_model


def differential(tmp_path, g: GraphBuilder, in_shape, *, opset: int = 13, n: int = 25, low: float = -1.0,
                 high: float = 1.0, seed: int = 0):
    """Load ``g``'s graph (input ``x``, output ``y``) and compare it with onnxruntime."""
    model = declared_output(g.model([tensor("x", list(in_shape))], [tensor("y", None)], opset=opset, check=False))
    return assert_loads_like_onnxruntime(save(tmp_path, model), n=n, seed=seed, low=low, high=high)


def declared_output(model):
    """``model`` with an output of the rank that ONNX shape inference gives, every dimension
    symbolic (the test compares the loaded shape with onnxruntime's), checked in full."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    rank = len(inferred.graph.output[0].type.tensor_type.shape.dim)
    model.graph.output[0].CopyFrom(tensor("y", [f"d{i}" for i in range(rank)]))
    onnx.checker.check_model(model, full_check=True)
    return model


def relu_conv(g: GraphBuilder, x: str, c_in: int, c_out: int, k: int = 3, nd: int = 2, **attrs) -> str:
    """Conv (random weights and bias) followed by Relu."""
    w = g.weight((c_out, c_in) + (k,) * nd, 0.5)
    return g.op("Relu", [g.op("Conv", [x, w, g.const(g.randn((c_out,), 0.2))], **attrs)])


# ====================================================================== two-tensor arithmetic
@pytest.mark.parametrize("op", ["Add", "Sub"])
@pytest.mark.parametrize("shapes", [((1, 6), (1, 6)), ((1, 6), (3, 1, 6)), ((2, 1, 3), (1, 4, 1)), ((1, 6), (6,))])
def test_add_sub_of_two_input_dependent_tensors(tmp_path, op, shapes):
    g = GraphBuilder(1)
    sa, sb = shapes
    a = g.op("Reshape", [g.gemm("x", 4, int(np.prod(sa))), g.ints(sa)])
    b = g.op("Relu", [g.op("Reshape", [g.gemm("x", 4, int(np.prod(sb))), g.ints(sb)])])
    g.op(op, [a, b] if op == "Add" else [b, a], out="y")
    net = differential(tmp_path, g, [1, 4])
    assert not net.is_chain


def test_residual_block_of_convolutions(tmp_path):
    g = GraphBuilder(2)
    h = relu_conv(g, "x", 2, 4, pads=[1, 1, 1, 1])
    r = relu_conv(g, h, 4, 4, pads=[1, 1, 1, 1])
    r = g.op("Conv", [r, g.weight((4, 4, 3, 3), 0.5)], pads=[1, 1, 1, 1])
    g.op("Relu", [g.op("Add", [r, h])], out="y")
    net = differential(tmp_path, g, [1, 2, 5, 5])
    assert net.sources(2) == (1, 2)


# ==================================================================================== Concat
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_concat_of_branches(tmp_path, axis):
    g = GraphBuilder(3)
    a = g.op("Reshape", [g.gemm("x", 4, 6), g.ints([1, 2, 3])])
    b = g.op("Relu", [g.op("Reshape", [g.gemm("x", 4, 6), g.ints([1, 2, 3])])])
    g.op("Concat", [a, b, a], out="y", axis=axis)
    differential(tmp_path, g, [1, 4])


@pytest.mark.parametrize("axis", [1, 2])
def test_concat_of_a_tensor_and_a_constant(tmp_path, axis):
    g = GraphBuilder(4)
    h = relu_conv(g, "x", 1, 2)
    shape = [1, 2, 2, 2]
    shape[axis] = 3
    c = g.const(g.randn(shape))
    g.op("Concat", [c, h], out="y", axis=axis)
    differential(tmp_path, g, [1, 1, 4, 4])


# ===================================================================================== Split
@pytest.mark.parametrize("opset,form", [(11, "attr"), (13, "input"), (13, "equal"), (18, "num_outputs")])
def test_split(tmp_path, opset, form):
    g = GraphBuilder(5)
    h = g.op("Relu", [g.gemm("x", 3, 7)])
    n_out = 3
    if form == "attr":
        parts = g.op("Split", [h], out=["s0", "s1", "s2"], axis=1, split=[2, 4, 1])
    elif form == "input":
        parts = g.op("Split", [h, g.ints([3, 3, 1])], out=["s0", "s1", "s2"], axis=-1)
    elif form == "equal":
        h = g.gemm("x", 3, 6)
        parts = g.op("Split", [h], out=["s0", "s1", "s2"], axis=1)
    else:
        parts = g.op("Split", [h], out=["s0", "s1", "s2"], axis=1, num_outputs=n_out)  # 3, 3, 1
    del parts
    s = g.op("Concat", ["s2", g.op("Relu", ["s0"])], axis=1)
    g.op("Concat", [s, g.op("Neg", ["s1"])], axis=1, out="y")
    differential(tmp_path, g, [1, 3], opset=opset)


# ===================================================================================== Slice
SLICES = [  # starts, ends, axes, steps
    ([1], [3], [1], None),
    ([-3], [100], [2], [1]),
    ([0, 4], [2, -100], [1, -1], [1, -2]),
    ([-1], [-100], [2], [-1]),
    ([10], [-10], [1], [-3]),
    ([0, 1, 0], [1, 2, 5], [0, 1, 2], [1, 1, 2]),
]


@pytest.mark.parametrize("opset,starts,ends,axes,steps", [
    (opset,) + case for opset in (9, 10, 13) for case in SLICES
    if opset >= 10 or case[3] is None or all(s == 1 for s in case[3])])  # steps exist from opset 10
def test_slice(tmp_path, opset, starts, ends, axes, steps):
    g = GraphBuilder(6)
    h = g.op("Reshape", [g.op("Relu", [g.gemm("x", 3, 15)]), g.ints([1, 3, 5])])
    if opset < 10:
        h = g.op("Slice", [h], starts=starts, ends=ends, axes=axes)
    else:
        ins = [h, g.ints(starts), g.ints(ends), g.ints(axes)] + ([g.ints(steps)] if steps else [])
        h = g.op("Slice", ins)
    g.op("Mul", [h, g.const(np.float32(2.0))], out="y")
    differential(tmp_path, g, [1, 3], opset=opset)


# ======================================================================================= Pad
@pytest.mark.parametrize("opset", [9, 11, 13, 18])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(tmp_path, opset, mode):
    g = GraphBuilder(7)
    h = relu_conv(g, "x", 1, 2)
    pads = [0, 0, 1, 2, 0, 0, 2, 0]
    if opset < 11:
        h = g.op("Pad", [h], mode=mode, pads=pads, value=0.5)
    elif opset < 18:
        h = g.op("Pad", [h, g.ints(pads)] + ([g.const(np.float32(-0.75))] if mode == "constant" else []), mode=mode)
    else:
        h = g.op("Pad", [h, g.ints([1, 2, 2, 0]), g.const(np.float32(1.5)), g.ints([2, 3])], mode=mode)
    h = g.op("Conv", [h, g.weight((2, 2, 2, 2), 0.5)])
    g.op("Flatten", [h], out="y")
    differential(tmp_path, g, [1, 1, 6, 6], opset=opset)


def test_pad_with_negative_pads_crops(tmp_path):
    g = GraphBuilder(8)
    h = relu_conv(g, "x", 1, 2)
    g.op("Pad", [h, g.ints([0, 0, -1, 1, 0, 0, 1, -1])], out="y")
    differential(tmp_path, g, [1, 1, 5, 5], opset=13)


def test_pad_mode_wrap_opset19(tmp_path):
    g = GraphBuilder(8)
    h = relu_conv(g, "x", 1, 2)
    g.op("Pad", [h, g.ints([0, 0, 1, 2, 0, 0, 2, 1])], out="y", mode="wrap")
    differential(tmp_path, g, [1, 1, 5, 5], opset=19)


# ====================================================================== Transpose and shapes
@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [3, 1, 0, 2], [0, 1, 3, 2], None])
def test_transpose_any_permutation(tmp_path, perm):
    g = GraphBuilder(9)
    h = relu_conv(g, "x", 2, 3)
    h = g.op("Transpose", [h], **({} if perm is None else {"perm": perm}))
    h = g.op("Flatten", [h], axis=0)
    g.gemm(h, 3 * 3 * 2, 4, out="y")
    differential(tmp_path, g, [1, 2, 5, 4])


@pytest.mark.parametrize("opset", [11, 13])
def test_reshape_squeeze_unsqueeze_inside_a_layer(tmp_path, opset):
    g = GraphBuilder(10)
    h = g.op("Conv", ["x", g.weight((3, 2, 2, 2), 0.5)])
    h = g.op("Reshape", [h, g.ints([1, 3, 1, 9])])
    h = g.op("Squeeze", [h], axes=[2]) if opset < 13 else g.op("Squeeze", [h, g.ints([2])])
    h = g.op("Unsqueeze", [h], axes=[0, 3]) if opset < 13 else g.op("Unsqueeze", [h, g.ints([0, 3])])
    h = g.op("Flatten", [h], axis=2)
    h = g.op("Relu", [h])
    g.op("Reshape", [h, g.ints([3, -1])], out="y")
    differential(tmp_path, g, [1, 2, 4, 4], opset=opset)


def test_gather_and_expand_of_a_tensor(tmp_path):
    g = GraphBuilder(11)
    h = g.op("Relu", [g.op("Reshape", [g.gemm("x", 3, 12), g.ints([1, 3, 4])])])
    h = g.op("Gather", [h, g.ints([2, -1, 0])], axis=2)
    g.op("Expand", [h, g.ints([2, 1, 1])], out="y")
    differential(tmp_path, g, [1, 3])


# ================================================================ AveragePool, Reduce*, Global*
POOLS_2D = [  # kernel, strides, pads, ceil_mode, count_include_pad
    ([2, 2], [2, 2], [0, 0, 0, 0], 0, 0),
    ([3, 3], [2, 2], [1, 1, 1, 1], 0, 0),
    ([3, 3], [2, 2], [1, 1, 1, 1], 0, 1),
    ([3, 2], [2, 3], [1, 0, 1, 1], 1, 0),
    ([3, 2], [2, 3], [1, 0, 1, 1], 1, 1),
    ([2, 2], [1, 1], [0, 1, 1, 0], 0, 1),
]


@pytest.mark.parametrize("kernel,strides,pads,ceil,include", POOLS_2D)
def test_average_pool_2d(tmp_path, kernel, strides, pads, ceil, include):
    g = GraphBuilder(12)
    h = relu_conv(g, "x", 1, 2)
    g.op("AveragePool", [h], out="y", kernel_shape=kernel, strides=strides, pads=pads, ceil_mode=ceil,
         count_include_pad=include)
    differential(tmp_path, g, [1, 1, 8, 7], opset=13)


@pytest.mark.parametrize("op", ["AveragePool", "MaxPool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_pooling_auto_pad(tmp_path, op, auto_pad):
    g = GraphBuilder(12)
    h = g.op("Conv", ["x", g.weight((2, 1, 2, 2), 0.5)])
    g.op(op, [h], out="y", kernel_shape=[3, 2], strides=[2, 2], auto_pad=auto_pad)
    differential(tmp_path, g, [1, 1, 7, 6], opset=13)


@pytest.mark.parametrize("ceil,include", [(0, 0), (1, 0), (1, 1)])
def test_average_pool_1d(tmp_path, ceil, include):
    g = GraphBuilder(13)
    h = relu_conv(g, "x", 2, 3, nd=1)
    g.op("AveragePool", [h], out="y", kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=ceil,
         count_include_pad=include)
    differential(tmp_path, g, [1, 2, 10], opset=13)


@pytest.mark.parametrize("nd", [1, 2])
def test_global_average_pool(tmp_path, nd):
    g = GraphBuilder(14)
    h = relu_conv(g, "x", 2, 3, nd=nd)
    h = g.op("GlobalAveragePool", [h])
    h = g.op("Flatten", [h])
    g.gemm(h, 3, 2, out="y")
    differential(tmp_path, g, [1, 2, 6] + ([5] if nd == 2 else []))


REDUCES = [  # axes (None = all, [] = none), keepdims, noop_with_empty_axes
    ([2, 3], 1, 0), ([-1], 0, 0), ([1, 3], 0, 0), (None, 1, 0), (None, 0, 0), ([], 1, 1),
]


REDUCE_OPSETS = [("ReduceMean", 13), ("ReduceMean", 18), ("ReduceSum", 11), ("ReduceSum", 13)]


def _input_from(op: str) -> int:
    """The opset from which a Reduce operator takes its axes as an input."""
    return 18 if op == "ReduceMean" else 13


@pytest.mark.parametrize("op,opset,axes,keepdims,noop", [
    pair + case for pair in REDUCE_OPSETS for case in REDUCES
    if not case[2] or pair[1] >= _input_from(pair[0])])  # noop_with_empty_axes comes with axes as an input
def test_reduce_mean_and_sum(tmp_path, op, opset, axes, keepdims, noop):
    input_from = _input_from(op)
    g = GraphBuilder(15)
    h = relu_conv(g, "x", 2, 3)
    attrs = {"keepdims": keepdims}
    if opset < input_from:
        if axes:
            attrs["axes"] = axes
        ins = [h]
    else:
        ins = [h] if axes is None else [h, g.ints(axes)]
        if noop:
            attrs["noop_with_empty_axes"] = 1
    g.op(op, ins, out="y", **attrs)
    differential(tmp_path, g, [1, 2, 5, 4], opset=opset)


# =============================================================================== MaxPool, Max
MAXPOOLS = [  # kernel, strides, pads, dilations, ceil_mode
    ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1], 0),
    ([3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 0),
    ([3, 2], [2, 2], [1, 0, 1, 1], [1, 1], 1),
    ([2, 2], [1, 2], [0, 0, 0, 0], [2, 1], 0),
    ([2, 3], [2, 2], [1, 1, 0, 1], [2, 1], 1),
]


@pytest.mark.parametrize("kernel,strides,pads,dil,ceil", MAXPOOLS)
def test_maxpool_2d(tmp_path, kernel, strides, pads, dil, ceil):
    g = GraphBuilder(16)
    h = g.op("Conv", ["x", g.weight((2, 1, 2, 2), 0.5), g.const(g.randn((2,), 0.2))])  # no Relu: negative values
    h = g.op("MaxPool", [h], kernel_shape=kernel, strides=strides, pads=pads, dilations=dil, ceil_mode=ceil)
    g.op("Flatten", [h], out="y")
    net = differential(tmp_path, g, [1, 1, 8, 7], opset=12)
    assert any(layer.activation is not None and layer.activation.kind == "max" for layer in net.layers)


@pytest.mark.parametrize("opset", [9, 12])
def test_maxpool_1d_after_relu(tmp_path, opset):
    g = GraphBuilder(17)
    h = relu_conv(g, "x", 2, 3, nd=1)
    h = g.op("MaxPool", [h], kernel_shape=[3], strides=[2], pads=[1, 1])
    h = g.op("Flatten", [h])
    g.gemm(h, 3 * 4, 2, out="y")
    differential(tmp_path, g, [1, 2, 10], opset=opset)


def test_maxpool_with_an_unused_indices_output(tmp_path):
    g = GraphBuilder(18)
    h = relu_conv(g, "x", 1, 2)
    g.op("MaxPool", [h], out=["y", "unused_indices"], kernel_shape=[2, 2], strides=[2, 2])
    differential(tmp_path, g, [1, 1, 6, 6], opset=12)


def test_maxpool_indices_that_are_used_are_refused(tmp_path):
    g = GraphBuilder(18)
    h = relu_conv(g, "x", 1, 2)
    g.op("MaxPool", [h], out=["p", "idx"], kernel_shape=[2, 2], strides=[2, 2])
    g.op("Cast", ["idx"], out="y", to=1)
    model = declared_output(g.model([tensor("x", [1, 1, 6, 6])], [tensor("y", None)], opset=12, check=False))
    with pytest.raises(ModelError, match="Indices"):
        load_model(save(tmp_path, model))


def test_global_max_pool(tmp_path):
    g = GraphBuilder(19)
    h = g.op("Conv", ["x", g.weight((3, 2, 2, 2), 0.5)])
    h = g.op("GlobalMaxPool", [h])
    g.op("Flatten", [h], out="y")
    differential(tmp_path, g, [1, 2, 5, 4])


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("n_operands", [2, 3])
def test_max_min_of_input_dependent_tensors(tmp_path, op, n_operands):
    g = GraphBuilder(20)
    parts = [g.gemm("x", 3, 4) for _ in range(n_operands - 1)] + [g.op("Reshape", [g.gemm("x", 3, 4), g.ints([4])])]
    h = g.op(op, parts)
    g.gemm(g.op("Reshape", [h, g.ints([1, 4])]), 4, 2, out="y")
    differential(tmp_path, g, [1, 3])


def test_max_of_a_tensor_and_a_constant_and_a_tensor(tmp_path):
    g = GraphBuilder(21)
    g.op("Max", [g.gemm("x", 3, 4), g.const(np.float32(0.1)), g.gemm("x", 3, 4)], out="y")
    differential(tmp_path, g, [1, 3])


# ===================================================================== Conv and ConvTranspose
@pytest.mark.parametrize("attrs", [
    {"strides": [2], "pads": [1, 2]},
    {"dilations": [2], "group": 2},
    {"auto_pad": "SAME_UPPER", "strides": [2]},
    {"auto_pad": "SAME_LOWER"},
    {"auto_pad": "VALID"},
])
def test_conv_1d(tmp_path, attrs):
    g = GraphBuilder(22)
    group = attrs.get("group", 1)
    h = g.op("Conv", ["x", g.weight((4, 4 // group, 3), 0.5), g.const(g.randn((4,)))], **attrs)
    g.op("Relu", [h], out="y")
    differential(tmp_path, g, [1, 4, 9])


@pytest.mark.parametrize("attrs", [
    {},
    {"strides": [2, 2], "pads": [1, 0, 0, 1]},
    {"strides": [2, 1], "output_padding": [1, 0]},
    {"dilations": [2, 1], "group": 2},
    {"strides": [2, 2], "output_shape": [8, 5]},
    {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"strides": [2, 2], "auto_pad": "SAME_LOWER"},
])
def test_conv_transpose_2d(tmp_path, attrs):
    g = GraphBuilder(23)
    group = attrs.get("group", 1)
    h = g.op("Relu", [g.op("Conv", ["x", g.weight((4, 1, 2, 2), 0.5)])])
    h = g.op("ConvTranspose", [h, g.weight((4, 6 // group, 3, 2), 0.5), g.const(g.randn((6,)))], **attrs)
    g.op("Flatten", [h], out="y")
    differential(tmp_path, g, [1, 1, 5, 4])


def test_conv_transpose_1d_without_bias(tmp_path):
    g = GraphBuilder(24)
    g.op("ConvTranspose", ["x", g.weight((2, 3, 4), 0.5)], out="y", strides=[3], pads=[1, 2])
    differential(tmp_path, g, [1, 2, 6])


# ==================================================================== BatchNormalization etc.
def test_batchnorm_after_maxpool_and_on_a_1d_tensor(tmp_path):
    g = GraphBuilder(25)
    h = relu_conv(g, "x", 2, 3, nd=1)
    h = g.op("MaxPool", [h], kernel_shape=[2], strides=[2])
    bn = [g.positive((3,)), g.const(g.randn((3,))), g.const(g.randn((3,))), g.positive((3,), 0.1, 1.0)]
    h = g.op("BatchNormalization", [h] + bn)
    g.op("Flatten", [h], out="y")
    differential(tmp_path, g, [1, 2, 9])


# =========================================================== float error of the rounding ops
def _large_then(g: GraphBuilder, op_fn) -> None:
    """Inputs scaled to thousands with a large offset (so that every sum rounds), then ``op_fn``."""
    h = g.op("Add", [g.op("Mul", ["x", g.const(np.float32(3001.7))]), g.const(np.float32(4093.3))])
    op_fn(h)


@pytest.mark.parametrize("case", ["avgpool", "reducemean", "reducesum", "globalavg", "convtranspose", "add2"])
def test_rounding_operators_stay_within_the_error_bound(tmp_path, case):
    g = GraphBuilder(26)

    def build(h):
        if case == "avgpool":
            g.op("AveragePool", [h], out="y", kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)
        elif case == "reducemean":
            g.op("ReduceMean", [h], out="y", axes=[1, 3])
        elif case == "reducesum":
            g.op("ReduceSum", [h, g.ints([2])], out="y")
        elif case == "globalavg":
            g.op("GlobalAveragePool", [h], out="y")
        elif case == "convtranspose":
            g.op("ConvTranspose", [h, g.weight((3, 2, 3, 3), 1.0), g.const(g.randn((2,), 1e3))], out="y", strides=[2, 2])
        else:
            r = g.op("Relu", [h])
            g.op("Sub", [g.op("Add", [r, h]), g.const(np.float32(77.7))], out="y")

    _large_then(g, build)
    differential(tmp_path, g, [1, 3, 5, 5], n=150, seed=3)


def test_unsupported_operators_are_all_named(tmp_path):
    g = GraphBuilder(27)
    h = g.op("Relu", [g.gemm("x", 3, 4)])
    h = g.op("Softmax", [h], name="soft")
    g.op("Erf", [h], out="y", name="erf")
    model = declared_output(g.model([tensor("x", [1, 3])], [tensor("y", None)], check=False))
    with pytest.raises(ModelError) as info:
        load_model(save(tmp_path, model))
    for part in ("soft", "Softmax", "erf", "Erf", "MaxPool", "ConvTranspose"):
        assert part in str(info.value)


# ============================================================ layer break before a costly composition
def _conv_conv(g: GraphBuilder) -> None:
    h = relu_conv(g, "x", 1, 3, pads=[1, 1, 1, 1])
    h = g.op("Conv", [h, g.weight((3, 3, 3, 3), 0.4)], pads=[1, 1, 1, 1])
    h = g.op("Conv", [h, g.weight((3, 3, 3, 3), 0.4), g.const(g.randn((3,)))], pads=[1, 1, 1, 1])
    g.op("Flatten", [g.op("Relu", [h])], out="y")


def test_convolutions_compose_into_one_layer_when_cheap(tmp_path):
    g = GraphBuilder(28)
    _conv_conv(g)
    net = differential(tmp_path, g, [1, 1, 6, 6])
    assert [layer.activation.kind if layer.activation else None for layer in net.layers] == ["relu", "relu", None]


def test_a_costly_composition_becomes_a_layer_break(tmp_path, monkeypatch):
    """Beyond the composition budget the tensor before the contraction ends a layer with the
    identity (Clip(-inf, inf)); the network still computes the same function."""
    import verifier.io.onnx_basis as basis

    monkeypatch.setattr(basis, "COMPOSE_MIN_PRODUCTS", 100)
    monkeypatch.setattr(basis, "COMPOSE_MAX_RATIO", 2.0)
    g = GraphBuilder(28)
    _conv_conv(g)
    net = differential(tmp_path, g, [1, 1, 16, 16], n=40, low=-3.0, high=3.0)  # large enough to be sparse
    kinds = [layer.activation.describe() if layer.activation else None for layer in net.layers]
    assert kinds == ["ReLU", "Clip(-inf, inf)", "ReLU", None]
    assert net.meta["layer_info"][1]["ops"][-1].startswith("(layer break before Conv")
