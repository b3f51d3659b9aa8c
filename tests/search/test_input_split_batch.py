"""Input splitting with batched sub-box bounds (``BabSettings.batch``, ``bound_boxes``): the same
verdicts as one box at a time, and every sub-box it closes is safe for onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.bounds.test_bounds_basic import samples
from tests.helpers.paths import BENCH, SKIP_NO_SHARED
from verifier.budget import Deadline
from verifier.io.onnx import load_model
from verifier.io.replay import OnnxOracle
from verifier.io.spec_file import load_spec
from verifier.search.input_split import BabSettings, BabStats, BoxStep, bound_boxes, input_split

pytestmark = SKIP_NO_SHARED


def acas(net: str, prop: int):
    network = load_model(BENCH / "acasxu" / f"ACASXU_run2a_{net}_batch_2000.onnx")
    case = load_spec(BENCH / "acasxu" / f"prop_{prop}.vnnlib").bind(network.n_inputs, network.n_outputs).cases[0]
    return network, case, OnnxOracle(network)


@pytest.mark.parametrize(("net", "prop"), [("1_1", 3), ("4_2", 3)])
def test_same_verdict_as_one_box_at_a_time(net, prop):
    """Batched, a box's bounds are intersected with its parent's (one box at a time they are not),
    so the tree may differ a little (a tighter bound may choose another split)."""
    network, case, oracle = acas(net, prop)
    outs = [input_split(network, case, list(case.unsafe), oracle, BabSettings(batch=n), Deadline.after(120))
            for n in (1, 32)]
    assert [o.status for o in outs] == ["holds", "holds"]
    one, many = outs[0].stats, outs[1].stats
    assert many.batches > 0 and one.batches == 0
    assert many.explored <= 1.25 * one.explored  # (tighter bounds may move a split: not monotone)


def test_violated_found_and_replayed():
    network, case, oracle = acas("1_2", 2)
    out = input_split(network, case, list(case.unsafe), oracle, BabSettings(batch=32), Deadline.after(120))
    assert out.status == "violated"
    y = oracle.run(out.counterexample.input)
    assert np.all(case.lower <= out.counterexample.input) and np.all(out.counterexample.input <= case.upper)
    assert any(np.all(c.ay @ y + c.ax @ out.counterexample.input <= c.rhs) for c in case.unsafe)


def test_closed_boxes_are_safe_in_onnxruntime():
    """Small sub-boxes of a property that holds: each one ``bound_boxes`` closes (bounds or LP) has
    no sampled point, onnxruntime-evaluated, inside the unsafe region."""
    network, case, oracle = acas("3_3", 2)
    rng = np.random.default_rng(0)
    w = case.upper - case.lower
    lo = case.lower + rng.random((48, 5)) * w * 0.95
    hi = np.minimum(lo + w * 2.0 ** -rng.integers(3, 8, (48, 5)), case.upper)
    boxes = [(lo[i], hi[i], 5) for i in range(lo.shape[0])]
    steps = bound_boxes(network, case, list(case.unsafe), oracle, boxes, BabStats(), BabSettings(), 0, True,
                        Deadline.after(120))
    assert len(steps) == len(boxes) and all(isinstance(s, BoxStep) for s in steps)
    closed = [i for i, s in enumerate(steps) if not s.alive]
    assert len(closed) >= 10, "too few closed boxes to test anything"
    for i in closed:
        for x in samples(lo[i], hi[i], 40, i):
            y = oracle.run(x)
            for c in case.unsafe:
                assert not np.all(c.ay @ y + c.ax @ x <= c.rhs), f"box {i} closed but {x} is unsafe"
