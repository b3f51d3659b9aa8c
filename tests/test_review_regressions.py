"""Regression tests for soundness faults found in review.

1. With ``--jobs > 1``, sub-boxes that branch and bound left undecided before handing the open
   ones to the workers were forgotten, so the answer could be *holds*.
2. Bound-based proofs ignored float32 evaluation: a property that holds in real arithmetic by
   less than a float32 step was *proved*, although onnxruntime shows a counterexample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import verifier
from verifier import bab, parallel
from verifier.verify import Options, verify

ROOT = Path(__file__).resolve().parents[1]


def test_undecided_boxes_are_not_lost_when_the_search_goes_parallel(monkeypatch):
    orig = bab.milp_box
    calls = {"n": 0}

    def first_milp_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            return "solver error: injected (this sub-box stays undecided)"
        return orig(*args, **kwargs)

    def sequential_run_boxes(net, oracle, case, disjuncts, boxes, jobs, settings, wall_deadline, ci=0):
        return bab.input_split(net, case, disjuncts, oracle, settings, None, ci, boxes=boxes)

    monkeypatch.setattr(bab, "milp_box", first_milp_fails)
    monkeypatch.setattr(parallel, "run_boxes", sequential_run_boxes)
    for jobs in (1, 2):
        calls["n"] = 0
        opts = Options(strategy="input-split", jobs=jobs, parallel_after=40, timeout=60)
        r = verify(ROOT / "models/collision_advisory.onnx", ROOT / "specs/collision_behind_is_clear.toml",
                   options=opts)
        if calls["n"] == 0:
            pytest.skip("this search needed no MILP leaf, so nothing was injected")
        assert r.status == "unknown", (jobs, r.status, r.reason)
        assert "injected" in r.reason


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
