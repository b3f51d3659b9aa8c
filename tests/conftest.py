"""Shared fixtures of the verifier tests (the helpers they use live in ``tests/helpers/``).

* ``bench_dir``: the shared VNN-COMP 2021 benchmarks (tests skip when ``../shared`` is absent);
* ``cancel_onnx`` / ``spike_onnx``: the planted networks of ``tests.helpers.networks`` as ONNX files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.networks import CANCEL_MAX, RELU, cancel_network, network_to_onnx, spike_network
from tests.helpers.paths import BENCH
from verifier.bounds import interval_bounds, symbolic_bounds


@pytest.fixture
def bench_dir() -> Path:
    if not BENCH.is_dir():
        pytest.skip(f"shared benchmarks not found at {BENCH}")
    return BENCH


@pytest.fixture
def cancel_onnx(tmp_path):
    """See ``networks.cancel_network``: y0 is exactly 0.75; only the MILP can prove y0 >= 0.75 + d empty."""
    net = cancel_network()
    path = network_to_onnx(net, RELU, tmp_path / "cancel.onnx")
    lower, upper = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    # premise: the bounds cannot decide y0 >= 0.75 + 1e-3
    for b in (interval_bounds(net, lower, upper), symbolic_bounds(net, lower, upper)):
        assert b.output_upper[0] > CANCEL_MAX + 0.1
    return path, lower, upper


@pytest.fixture
def spike_onnx(tmp_path):
    net = spike_network()
    return network_to_onnx(net, RELU, tmp_path / "spike.onnx"), net
