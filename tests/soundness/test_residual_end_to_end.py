"""A residual ONNX network built here, verified end to end: holds, violated (replayed in
onnxruntime) and unknown (a solver that times out), cross-checked against a dense grid of
onnxruntime evaluations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.helpers.onnx_builders import GraphBuilder, onnxruntime_outputs, save, tensor
from tests.helpers.solvers import FakeSolver
from verifier import make_spec
from verifier.io.onnx import load_model
from verifier.milp.solvers import SolveOutcome
from verifier.verify import Options, verify


def _residual_model(tmp_path):
    """x (2) -> h = relu(Gemm x) (8); r = relu(Gemm h) (8); s = relu(Gemm r + h) (8); y = Gemm s (1):
    the Add reads the block's input h (a skip connection over one ReLU layer)."""
    g = GraphBuilder(seed=7)
    h = g.op("Relu", [g.gemm("x", 2, 8)])
    r = g.op("Relu", [g.gemm(h, 8, 8)])
    s = g.op("Relu", [g.op("Add", [g.gemm(r, 8, 8), h])])
    g.gemm(s, 8, 1, out="y")
    return save(tmp_path, g.model([tensor("x", [1, 2])], [tensor("y", [1, 1])]))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = _residual_model(tmp_path_factory.mktemp("residual"))
    axis = np.linspace(-1.0, 1.0, 161)
    grid = np.array(list(itertools.product(axis, axis)))
    ys = onnxruntime_outputs(path, grid)[:, 0]
    return path, float(ys.max()), float(ys.min())


def test_it_is_a_dag(model):
    net = load_model(model[0])
    assert not net.is_chain and len(net.sources(2)) == 2


def test_holds_above_the_maximum(model):
    path, ymax, ymin = model
    t = ymax + 0.05 * (ymax - ymin) + 1e-3
    res = verify(path, make_spec([-1, -1], [1, 1], [[f"y0 >= {t!r}"]]), timeout=60)
    assert res.status == "holds", res.reason


def test_violated_below_the_maximum_with_a_replayed_point(model):
    path, ymax, ymin = model
    t = ymax - 0.05 * (ymax - ymin)
    res = verify(path, make_spec([-1, -1], [1, 1], [[f"y0 >= {t!r}"]]), timeout=60)
    assert res.status == "violated"
    y = onnxruntime_outputs(path, np.asarray(res.counterexample.input)[None, :])[0, 0]
    assert y >= t and np.all(np.abs(res.counterexample.input) <= 1)


def test_unknown_when_the_solver_times_out(model):
    """Bounds alone cannot decide a threshold just above the maximum; the MILP times out."""
    path, ymax, ymin = model

    def timeout(milp, time_limit=None, name="cbc", cancel=None):
        return SolveOutcome("timeout", None, name, 0.0, "time limit")

    t = ymax + 1e-3 * (ymax - ymin)
    opts = Options(timeout=60, strategy="milp", solver=FakeSolver(timeout), falsify=False)
    res = verify(path, make_spec([-1, -1], [1, 1], [[f"y0 >= {t!r}"]]), options=opts)
    assert res.status == "unknown" and "timeout" in res.reason
