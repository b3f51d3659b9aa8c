"""Regression test for a soundness fault found in review: bound-based proofs ignored float32
evaluation, so a property that holds in real arithmetic by less than a float32 step was *proved*,
although onnxruntime shows a counterexample.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import verifier
from verifier.verify import Options, verify


@pytest.mark.parametrize("strategy", ["input-split", "milp"])
def test_float32_knife_edge_is_never_proved(tmp_path, strategy):
    """y = relu(x) + 1.5 * 2^-24 on [0, 1]: in reals max y = 1 + 8.9e-8 < 1.0000001, but
    onnxruntime computes 1.00000012 at x = 1, which violates 'y >= 1.0000001'."""
    inits = [numpy_helper.from_array(np.array([[1.0]], np.float32), "W"),
             numpy_helper.from_array(np.array([[1.0]], np.float32), "W2"),
             numpy_helper.from_array(np.array([1.5 * 2 ** -24], np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(nodes, "knife", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], inits)
    path = tmp_path / "knife.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    spec = verifier.make_spec([0.0], [1.0], [["y0 >= 1.0000001"]])
    r = verify(path, spec, options=Options(strategy=strategy, timeout=60))
    assert r.status != "holds"
    if r.status == "violated":
        assert r.counterexample.output[0] >= 1.0000001
