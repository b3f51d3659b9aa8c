"""The floating-point error model: bounds that contain what onnxruntime computes, and the review's
reproductions (float32 cancellation, a float16 cast, batched MatMul, a loader that checks itself).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto

from tests.helpers.onnx_builders import GraphBuilder, onnxruntime_outputs, random_inputs, save, tensor
from verifier import load_model, make_spec, verify
from verifier.bounds import interval_bounds, symbolic_bounds
from verifier.errors import ModelError
from verifier.floatmodel import UNIT_ROUNDOFF, dot_error, gamma
from verifier.network import Layer, Network
from verifier.onnx_loader import _self_check
from verifier.query import output_bounds


# ----------------------------------------------------------------- the dot-product bound itself
def _float32_sums(w: np.ndarray, z: np.ndarray, b: float, rng: np.random.Generator) -> list[float]:
    """``w . z + b`` in float32 in several orders: forward, backward, shuffled, pairwise."""
    terms = list((w.astype(np.float32) * z.astype(np.float32)).astype(np.float32)) + [np.float32(b)]
    out = []
    for order in (terms, terms[::-1], list(rng.permutation(np.array(terms, dtype=np.float32)))):
        s = np.float32(0.0)
        for t in order:
            s = np.float32(s + np.float32(t))
        out.append(float(s))
    out.append(float(np.sum(np.array(terms, dtype=np.float32), dtype=np.float32)))  # numpy's pairwise
    return out


@pytest.mark.parametrize("seed", range(20))
def test_dot_error_contains_float32_sums_in_any_order(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    w = (rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 4, n)).astype(np.float32).astype(np.float64)
    z = (rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 4, n)).astype(np.float32).astype(np.float64)
    b = float(np.float32(rng.standard_normal() * 1e4))
    ew, eb = dot_error(w[None, :], np.array([b]))
    bound = float(ew[0] @ np.abs(z) + eb[0])
    exact = float(np.dot(w, z) + b)  # float64 products of float32 numbers are exact; the sum nearly
    for s in _float32_sums(w, z, b, rng):
        assert abs(s - exact) <= bound + 1e-12 * (np.abs(w) @ np.abs(z))


def test_gamma_counts_rounding_steps():
    assert gamma(1) == pytest.approx(2.0 ** -24, rel=1e-6)
    assert gamma(785) == pytest.approx(785 * 2.0 ** -24, rel=1e-4)
    assert gamma(1, "float16") == pytest.approx(UNIT_ROUNDOFF["float16"], rel=1e-3)
    with pytest.raises(ValueError):
        gamma(2 ** 23)


def test_zero_weights_add_no_rounding():
    ew, _eb = dot_error(np.array([[1.0, 0.0, 0.0, 2.0]]), np.array([0.0]))
    assert ew[0, 1] == ew[0, 2] == 0.0
    assert ew[0, 0] == pytest.approx(gamma(2) * 1.0)


# ---------------------------------------------------- differential: operator chains in one layer
def _chain_models():
    """Single-layer operator chains that each round several times, as exporters write them."""
    g = GraphBuilder(0)  # Sub -> Div -> MatMul -> Add -> Relu -> Gemm(alpha, beta) -> Mul
    h = g.op("Sub", ["x", g.const(g.randn((6,), 300.0))])
    h = g.op("Div", [h, g.nonzero((6,))])
    h = g.matmul_add(h, 6, 8)
    h = g.op("Relu", [h])
    h = g.op("Gemm", [h, g.weight((8, 5)), g.const(g.randn((5,), 1e3))], alpha=0.37, beta=1.7)
    g.op("Mul", [h, g.const(np.float32(0.1))], out="y")
    yield "chain", g.model([tensor("x", [1, 6])], [tensor("y", [1, 5])])

    g = GraphBuilder(1)  # BatchNormalization not after a Conv (onnxruntime runs it unfused)
    h = g.matmul_add("x", 6, 4)
    h = g.op("Reshape", [h, g.ints([1, 4, 1, 1])])
    h = g.op("BatchNormalization", [h, g.positive((4,)), g.const(g.randn((4,), 50.0)), g.const(g.randn((4,), 80.0)),
                                    g.positive((4,), 0.01, 0.1)])
    h = g.op("Flatten", [h])
    g.op("Relu", [h], out="y")
    yield "batchnorm", g.model([tensor("x", [1, 6])], [tensor("y", [1, 4])])

    g = GraphBuilder(2)  # Conv + BatchNormalization (fused by onnxruntime) + Add of two branches
    h = g.op("Conv", ["x", g.weight((3, 2, 3, 3), 0.5), g.const(g.randn((3,), 100.0))], pads=[1, 1, 1, 1])
    h = g.op("BatchNormalization", [h, g.positive((3,)), g.const(g.randn((3,))), g.const(g.randn((3,), 100.0)),
                                    g.positive((3,))])
    a = g.op("Mul", [h, g.const(np.float32(3.0))])
    h = g.op("Add", [h, a])
    h = g.op("Relu", [h])
    g.op("Flatten", [h], out="y")
    yield "conv_bn", g.model([tensor("x", [1, 2, 4, 4])], [tensor("y", [1, 48])])

    g = GraphBuilder(3)  # float16 round trip inside the graph
    h = g.op("Cast", ["x"], to=TensorProto.FLOAT16)
    h = g.op("Cast", [h], to=TensorProto.FLOAT)
    h = g.gemm(h, 4, 6, scale=30.0)
    h = g.op("LeakyRelu", [h], alpha=0.05)
    g.gemm(h, 6, 2, out="y")
    yield "float16_cast", g.model([tensor("x", [1, 4])], [tensor("y", [1, 2])])


@pytest.mark.parametrize("name,model", list(_chain_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_onnxruntime_stays_within_the_error_bound(tmp_path, name, model):
    path = save(tmp_path, model)
    net = load_model(path)
    xs = random_inputs(model, n=200, seed=5, low=-3.0, high=3.0)
    ys = onnxruntime_outputs(path, xs)
    for x, y_rt in zip(xs.astype(np.float64), ys):
        y, dev = net.float_deviation(x)
        assert np.all(np.abs(y_rt - y) <= dev + 1e-9 * (1 + np.abs(y))), name
    # bounds over a box contain every onnxruntime output in it
    lo, hi = xs.min(axis=0), xs.max(axis=0)
    for b in (interval_bounds(net, lo, hi), symbolic_bounds(net, lo, hi)):
        assert np.all(ys >= b.output_lower) and np.all(ys <= b.output_upper)


# ------------------------------------------------------------------------ review reproductions
def _f32_cancellation(tmp_path):
    g = GraphBuilder(0)
    h = g.op("Gemm", ["x", g.const([[1.0], [1.0]]), g.const([1000.0, 3000.0])], transB=1)
    h = g.op("Relu", [h])
    g.op("Gemm", [h, g.const([[1.0, -1.0]]), g.const([2000.0])], out="y", transB=1)
    return save(tmp_path, g.model([tensor("x", [1, 1])], [tensor("y", [1, 1])]))


def test_float32_cancellation_is_never_proved(tmp_path):
    """y = relu(x + 1000) - relu(x + 3000) + 2000 is 0 in real arithmetic; onnxruntime gives 1.22e-4 at x = 0.004."""
    path = _f32_cancellation(tmp_path)
    xs = np.linspace(0.0, 1.0, 4001, dtype=np.float32)[:, None]
    assert onnxruntime_outputs(path, xs).max() >= 1e-4  # the premise
    spec = make_spec([0.0], [1.0], [["y0 >= 0.0001"]])
    for strategy in ("input-split", "milp"):
        for falsify in (True, False):
            from verifier.verify import Options

            res = verify(path, spec, options=Options(strategy=strategy, falsify=falsify, timeout=30))
            assert res.status != "holds", (strategy, falsify)
    b = output_bounds(path, [0.0], [1.0], method="symbolic")
    assert b.upper[0] >= onnxruntime_outputs(path, xs).max()


def test_float16_cast_is_rounding_not_identity(tmp_path):
    g = GraphBuilder(0)
    h = g.op("Cast", ["x"], to=TensorProto.FLOAT16)
    h = g.op("Cast", [h], to=TensorProto.FLOAT)
    h = g.op("Gemm", [h, g.const([[-1.0], [1.0]]), g.const([0.25, -0.25])], transB=1)
    h = g.op("Relu", [h])
    g.op("Gemm", [h, g.const([[100.156, 100.0]])], out="y", transB=1)
    path = save(tmp_path, g.model([tensor("x", [1, 1])], [tensor("y", [1, 1])]))
    assert onnxruntime_outputs(path, np.array([[0.5003]], np.float32))[0, 0] > 25.04
    from verifier.verify import Options

    res = verify(path, make_spec([0.0], [0.5003], [["y0 >= 25.04"]]), options=Options(falsify=False, timeout=30))
    assert res.status == "violated"


def test_cast_to_an_integer_type_is_refused_by_name(tmp_path):
    g = GraphBuilder(0)
    h = g.op("Cast", ["x"], to=TensorProto.INT32)
    g.op("Cast", [h], to=TensorProto.FLOAT, out="y")
    path = save(tmp_path, g.model([tensor("x", [1, 2])], [tensor("y", [1, 2])]))
    with pytest.raises(ModelError, match="Cast.*int32"):
        load_model(path)


def test_dropout_in_training_mode_is_refused(tmp_path):
    g = GraphBuilder(0)
    ratio = g.const(np.float32(0.5))
    train = g.const(np.array(True), dtype=np.bool_)
    g.op("Dropout", ["x", ratio, train], out="y")
    path = save(tmp_path, g.model([tensor("x", [1, 2])], [tensor("y", [1, 2])]))
    with pytest.raises(ModelError, match="training_mode"):
        load_model(path)


def test_float16_overflow_is_refused_on_boxes_that_reach_it(tmp_path):
    g = GraphBuilder(0)
    h = g.op("Cast", ["x"], to=TensorProto.FLOAT16)
    h = g.op("Cast", [h], to=TensorProto.FLOAT)
    g.gemm(h, 2, 1, out="y")
    path = save(tmp_path, g.model([tensor("x", [1, 2])], [tensor("y", [1, 1])]))
    net = load_model(path)
    interval_bounds(net, [-10.0, -10.0], [10.0, 10.0])  # fine
    from verifier.errors import EncodingError

    with pytest.raises(EncodingError, match="float16"):
        interval_bounds(net, [-1e5, -1.0], [1e5, 1.0])


@pytest.mark.parametrize("x_shape,w_shape", [((1, 2), (3, 2, 1)), ((1, 3), (2, 3, 4)), ((1, 2, 3), (4, 1, 3, 2)),
                                             ((3,), (3, 2)), ((3,), (2, 3, 1)), ((1, 2, 1, 3), (3, 2))])
def test_batched_matmul_matches_onnxruntime(tmp_path, x_shape, w_shape):
    g = GraphBuilder(7)
    g.op("MatMul", ["x", g.weight(w_shape, 1.0)], out="y")
    out_shape = np.matmul(np.zeros(x_shape), np.zeros(w_shape)).shape
    model = g.model([tensor("x", list(x_shape))], [tensor("y", list(out_shape))])
    path = save(tmp_path, model)
    net = load_model(path)
    assert net.output_shape == out_shape
    xs = random_inputs(model, n=5, seed=1)
    ys = onnxruntime_outputs(path, xs)
    np.testing.assert_allclose(net.forward(xs.astype(np.float64)), ys, rtol=1e-5, atol=1e-6)


def test_const_left_batched_matmul_matches_onnxruntime(tmp_path):
    g = GraphBuilder(8)
    g.op("MatMul", [g.weight((2, 4, 3), 1.0), "x"], out="y")
    model = g.model([tensor("x", [1, 3, 2])], [tensor("y", [2, 4, 2])])
    path = save(tmp_path, model)
    net = load_model(path)
    xs = random_inputs(model, n=5, seed=2)
    np.testing.assert_allclose(net.forward(xs.astype(np.float64)), onnxruntime_outputs(path, xs), rtol=1e-5, atol=1e-6)


def test_the_loader_compares_itself_with_onnxruntime(tmp_path):
    path = _f32_cancellation(tmp_path)
    net = load_model(path)
    first = net.layers[0]
    wrong = dataclasses.replace(first, bias=first.bias + np.array([0.0, 0.1]))
    bad = Network((wrong,) + net.layers[1:], net.input_shape, net.output_shape, net.source, meta=net.meta)
    with pytest.raises(ModelError, match="disagrees with onnxruntime"):
        _self_check(bad, str(path))
    _self_check(net, str(path))  # the real one passes


def test_in_memory_layer_defaults_to_one_float32_gemm():
    W = np.array([[1.0, -2.0], [0.0, 3.0]])
    b = np.array([0.5, 0.0])
    layer = Layer(W, b, None)
    ew, eb = dot_error(W, b)
    np.testing.assert_array_equal(layer.err_weight, ew)
    np.testing.assert_array_equal(layer.err_bias, eb)
    assert layer.rounding_error(np.array([1.0, 1.0]))[1] == pytest.approx(gamma(1) * 3.0 + 2.0 ** -149)


# ------------------------------------------------------------- second review: folded constants
def _weight_model(tmp_path, nodes_fn):
    """``y = x * w`` with ``w`` computed by a constant subgraph (``nodes_fn(g) -> name of w``)."""
    g = GraphBuilder(0)
    w = nodes_fn(g)
    g.op("Mul", ["x", w], out="y")
    return save(tmp_path, g.model([tensor("x", [1, 1])], [tensor("y", [1, 1])]))


@pytest.mark.parametrize("case", ["int_div", "float_then_int", "float16_double_rounding"])
def test_constant_subgraphs_fold_as_onnxruntime_folds_them(tmp_path, case):
    def build(g):
        if case == "int_div":  # ONNX integer Div truncates toward zero: -7 / 4 = -1, so w = 1
            q = g.op("Div", [g.const(np.array(-7), dtype=np.int64), g.const(np.array(4), dtype=np.int64)])
            s = g.op("Add", [q, g.const(np.array(2), dtype=np.int64)])
            return g.op("Cast", [s], to=TensorProto.FLOAT)
        a, b = (1.3276467323303223, 0.7532123923301697) if case == "float_then_int" else \
            (1.4306280612945557, 1.1095842123031616)
        p = g.op("Mul", [g.const(np.float32(a)), g.const(np.float32(b))])  # float32: rounds up to 1.0 / a midpoint
        to = TensorProto.INT32 if case == "float_then_int" else TensorProto.FLOAT16
        return g.op("Cast", [g.op("Cast", [p], to=to)], to=TensorProto.FLOAT)

    path = _weight_model(tmp_path, build)
    w_rt = onnxruntime_outputs(path, np.array([[1.0]], np.float32))[0, 0]
    assert load_model(path).layers[0].weight[0, 0] == w_rt


def test_leaky_relu_underflow_is_in_the_error_bound():
    from verifier.network import Activation

    act = Activation("leaky", alpha=0.3)
    e = act.output_error(np.array([-1e-44]), np.array([0.0]))
    assert e[0] >= 2.0 ** -149  # 0.3 * x rounds to a subnormal: an absolute error, not a relative one
    assert Activation("relu").output_error(np.array([-1.0]), np.array([1.0]))[0] == 0.0


def test_infeasibility_on_absurd_magnitudes_is_no_proof():
    from verifier.encoding import MILP
    from verifier.solve import numerical_doubt

    def milp(coef):
        return MILP(np.array([-1.0]), np.array([1.0]), np.zeros(1, bool), np.array([0, 1]), np.array([0]),
                    np.array([coef]), np.array([1.0]), np.zeros(1, bool), np.arange(1), (np.zeros(0), np.zeros(0)))

    assert numerical_doubt(milp(3.0)) is None
    assert "magnitude" in numerical_doubt(milp(3e57))


def test_milp_bounds_of_a_network_without_binaries_are_the_lp_optimum(tmp_path):
    """No unstable neuron: HiGHS solves an LP and reports no MIP dual bound; the bounds must still
    be an interval that contains the outputs."""
    g = GraphBuilder(3)
    h = g.op("Gemm", ["x", g.weight((4, 3)), g.const(np.full(4, 50.0))], transB=1)  # always active
    h = g.op("Relu", [h])
    g.gemm(h, 4, 2, out="y")
    model = g.model([tensor("x", [1, 3])], [tensor("y", [1, 2])])
    path = save(tmp_path, model)
    lo, hi = np.full(3, -0.05), np.full(3, 0.05)
    b = output_bounds(path, lo, hi, method="milp")
    xs = random_inputs(model, n=300, seed=1, low=-0.05, high=0.05)
    ys = onnxruntime_outputs(path, xs)
    assert np.all(b.lower <= b.upper)
    assert np.all(ys >= b.lower) and np.all(ys <= b.upper)
    assert np.all(b.exact)


# --------------------------------------------------------------- third review: overflow, bad clips
def test_float32_overflow_to_infinity_is_refused_not_proved(tmp_path):
    """y = 3e38 * relu(...) reaches +inf in float32 where the real value is 4.5e38: the bounds must
    refuse (the verifier does not model infinities), never prove y < 5e38."""
    g = GraphBuilder(0)
    h = g.op("Gemm", ["x", g.const([[1.0]]), g.const([0.5])], transB=1)
    h = g.op("Relu", [h])
    g.op("Mul", [h, g.const(np.float32(3e38))], out="y")
    path = save(tmp_path, g.model([tensor("x", [1, 1])], [tensor("y", [1, 1])]))
    assert np.isinf(onnxruntime_outputs(path, np.array([[1.0]], np.float32))[0, 0])
    from verifier.errors import EncodingError

    with pytest.raises(EncodingError, match="inf"):
        verify(path, make_spec([0.0], [1.0], [["y0 >= 5e38"]]))
    net = load_model(path)
    symbolic_bounds(net, [0.0], [0.1])  # far from overflow: fine (0.6 * 3e38 < 3.4e38)


def test_in_memory_clip_with_lo_above_hi_is_refused():
    from verifier.network import Activation

    with pytest.raises(ValueError, match="lo <= hi"):
        Activation("clip", lo=np.array([1.0]), hi=np.array([0.0]))
    with pytest.raises(ValueError, match="alpha"):
        Activation("leaky", alpha=1.5)
