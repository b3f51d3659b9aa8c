"""``search.input_split`` on its own (no ``verify``): a 2-input network that holds, one that is
violated (narrow spike: found by the splitting), and a spent deadline (unknown, never holds)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import CANCEL_MAX, RELU, SPIKE_A, SPIKE_B, cancel_network, network_to_onnx, spike_network
from verifier.budget import Deadline, clock
from verifier.io.onnx import load_model
from verifier.io.replay import OnnxOracle
from verifier.search.input_split import BabSettings, input_split
from verifier.spec import make_spec


def run(tmp_path, net, rows, deadline=None, settings=None):
    network = load_model(network_to_onnx(net, RELU, tmp_path / "net.onnx"))
    case = make_spec([-1.0, -1.0], [1.0, 1.0], [rows]).bind(network.n_inputs, network.n_outputs).cases[0]
    return input_split(network, case, list(case.unsafe), OnnxOracle(network), settings or BabSettings(), deadline)


def test_holds(tmp_path):
    out = run(tmp_path, cancel_network(), ["y0 >= 0.76"], Deadline.after(60))
    assert out.status == "holds", out.reason
    assert out.counterexample is None and out.stats.explored >= 1


def test_violated_narrow_spike(tmp_path):
    out = run(tmp_path, spike_network(), ["y0 >= 0.9"], Deadline.after(60))
    assert out.status == "violated", out.reason
    x, y = out.counterexample.input, out.counterexample.output
    assert abs(x[0] - SPIKE_A) < 1e-3 and abs(x[1] - SPIKE_B) < 1e-3 and y[0] >= 0.9


def test_violated_everywhere(tmp_path):
    out = run(tmp_path, cancel_network(), [f"y0 >= {CANCEL_MAX}"])
    assert out.status == "violated"


@pytest.mark.parametrize("deadline", [Deadline(clock() - 1.0), clock() - 1.0])  # a Deadline or a perf_counter time
def test_spent_deadline_is_unknown_timeout(tmp_path, deadline):
    out = run(tmp_path, cancel_network(), ["y0 >= 0.76"], deadline)
    assert out.status == "unknown" and out.reason.startswith("timeout")


def test_seed_reaches_the_leaf_attack(tmp_path):
    # the seed only changes where the nearby attack samples; the verdict must not change
    for seed in (0, 1):
        out = run(tmp_path, cancel_network(), ["y0 >= 0.76"], Deadline.after(60), BabSettings(seed=seed))
        assert out.status == "holds"
    assert np.isfinite(BabSettings().margin_abs)
