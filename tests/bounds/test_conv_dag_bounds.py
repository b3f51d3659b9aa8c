"""Interval and symbolic bounds of convolutional DAG networks (Conv, MaxPool with padding and
overlapping windows, AveragePool, a residual Add, Concat), loaded from ONNX, against sampled
forward passes and against onnxruntime: every sampled pre-activation and every onnxruntime output
lies within the bounds of its layer."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.onnx_builders import GraphBuilder, onnxruntime_outputs, save, tensor
from verifier.bounds import interval_bounds, symbolic_bounds
from verifier.io.onnx import load_model


def _conv_dag(tmp_path, seed: int):
    g = GraphBuilder(seed=seed)
    c1 = g.op("Relu", [g.op("Conv", ["x", g.weight((3, 1, 3, 3), 0.6), g.const(g.randn((3,), 0.2))],
                            pads=[1, 1, 1, 1])])                                   # 3x6x6
    c2 = g.op("Conv", [c1, g.weight((3, 3, 3, 3), 0.4), g.const(g.randn((3,), 0.2))], pads=[1, 1, 1, 1])
    res = g.op("Relu", [g.op("Add", [c2, c1])])                                    # residual, 3x6x6
    mp = g.op("MaxPool", [res], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])  # overlapping, 3x3x3
    ap = g.op("AveragePool", [c1], kernel_shape=[2, 2], strides=[2, 2])            # 3x3x3
    cat = g.op("Concat", [mp, ap], axis=1)                                         # 6x3x3
    flat = g.op("Flatten", [cat])
    h = g.op("Relu", [g.gemm(flat, 54, 10)])
    g.gemm(h, 10, 3, out="y")
    return save(tmp_path, g.model([tensor("x", [1, 1, 6, 6])], [tensor("y", [1, 3])]))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("method", ["interval", "symbolic"])
def test_bounds_contain_samples_and_onnxruntime(tmp_path, seed, method):
    path = _conv_dag(tmp_path, seed)
    net = load_model(path)
    assert not net.is_chain and any(layer.activation is not None and layer.activation.kind == "max"
                                    for layer in net.layers)
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 1, net.n_inputs)
    lower, upper = centre - 0.15, centre + 0.15
    b = (interval_bounds if method == "interval" else symbolic_bounds)(net, lower, upper)
    xs = rng.uniform(lower, upper, (2000, net.n_inputs))
    xs = np.vstack([xs, lower, upper, np.where(rng.random((200, net.n_inputs)) < 0.5, lower, upper)])
    xs = xs.astype(np.float32).astype(np.float64)
    for k, pre in enumerate(net.pre_activations(xs)):
        assert np.all(pre >= b.lower[k] - 1e-9) and np.all(pre <= b.upper[k] + 1e-9), f"layer {k}"
    y_rt = onnxruntime_outputs(path, xs)
    assert np.all(y_rt >= b.output_lower) and np.all(y_rt <= b.output_upper)


def test_symbolic_is_no_looser_than_interval(tmp_path):
    net = load_model(_conv_dag(tmp_path, 5))
    lower, upper = np.full(net.n_inputs, 0.3), np.full(net.n_inputs, 0.6)
    ib, sb = interval_bounds(net, lower, upper), symbolic_bounds(net, lower, upper)
    for k in range(len(net.layers)):
        assert np.all(sb.lower[k] >= ib.lower[k] - 1e-9) and np.all(sb.upper[k] <= ib.upper[k] + 1e-9)
    assert np.sum(sb.upper[-1] - sb.lower[-1]) < np.sum(ib.upper[-1] - ib.lower[-1])
