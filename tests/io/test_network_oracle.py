"""Networks built in memory: verified without an ONNX file, counterexamples replayed in the
network's own float32 forward pass (``io.replay.NetworkOracle``); ONNX networks keep onnxruntime,
from the model bytes the loader kept (the file may be gone)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import verifier
from tests.helpers.networks import RELU, cancel_network, f32, make_net, network_to_onnx, random_network
from tests.helpers.paths import REPO
from verifier import Options, VerifierError, make_spec, verify
from verifier.io.replay import NETWORK_FLOAT32, ONNX_BYTES, ONNXRUNTIME, NetworkOracle, OnnxOracle, make_oracle
from verifier.network import Layer, Network

BOX = ([-1.0, -1.0], [1.0, 1.0])


def float32_forward(net: Network, x: np.ndarray) -> np.ndarray:
    """The test's own float32 evaluation (ReLU networks): no verifier code."""
    z = np.asarray(x, dtype=np.float32)
    for layer in net.layers:
        z = layer.weight.astype(np.float32) @ z + layer.bias.astype(np.float32)
        if layer.activation is not None:
            z = np.maximum(z, np.float32(0))
    return z.astype(np.float64)


@pytest.mark.parametrize("strategy", ["milp", "input-split"])
def test_in_memory_network_holds(strategy):
    # y0 is exactly 0.75 everywhere; only the MILP / the split proves y0 >= 0.75 + 0.01 empty
    spec = make_spec(*BOX, [["y0 >= 0.76"]])
    res = verify(cancel_network(), spec, options=Options(strategy=strategy, falsify=False, timeout=60))
    assert res.status == "holds", res.reason
    assert res.stats["oracle"] == NETWORK_FLOAT32
    assert "onnxruntime_calls" not in res.stats and "onnxruntime" not in res.stats["float_model"]


@pytest.mark.parametrize("falsify", [True, False])
def test_in_memory_network_violated_checked_in_float32(falsify):
    net = cancel_network()
    spec = make_spec(*BOX, [["y1 >= 1.2"]])  # y1 = relu(x0 + 0.5 x1 - 0.125) reaches 1.375
    res = verify(net, spec, options=Options(strategy="milp", falsify=falsify, timeout=60))
    assert res.status == "violated", res.reason
    assert res.stats["oracle"] == NETWORK_FLOAT32 and res.stats["replay_calls"] >= 1
    x, y = res.counterexample.input, res.counterexample.output
    assert np.all(x >= -1.0) and np.all(x <= 1.0)
    assert np.array_equal(x, f32(x))  # the reported input is the float32 value that was evaluated
    assert np.array_equal(y, float32_forward(net, x))
    assert y[1] >= 1.2


def test_in_memory_network_unknown_below_the_margin():
    # y0 = 0.75 in float32 everywhere: 'y0 >= 0.75 + 2^-22' is not violated, and lies within the
    # float error bound and the margin tau: neither proved nor refuted
    spec = make_spec(*BOX, [[f"y0 >= {0.75 + 2.0 ** -22!r}"]])
    res = verify(cancel_network(), spec, options=Options(strategy="milp", timeout=60))
    assert res.status == "unknown", res.reason
    assert res.stats["oracle"] == NETWORK_FLOAT32


def test_in_memory_network_parallel_input_split():
    # the float32 forward pass is what the worker processes replay in, too
    spec = make_spec(*BOX, [["y1 >= 1.2"]])
    res = verify(cancel_network(), spec, options=Options(strategy="input-split", falsify=False, jobs=2,
                                                         parallel_after=0, timeout=120))
    assert res.status == "violated", res.reason
    assert res.stats["parallel_jobs"] == 2 and res.stats["oracle"] == NETWORK_FLOAT32
    assert res.counterexample.output[1] >= 1.2


def test_network_oracle_agrees_with_onnxruntime(tmp_path):
    net = random_network(3, RELU, widths=(4, 16, 16, 3))
    path = network_to_onnx(net, RELU, tmp_path / "net.onnx")
    ort, own = OnnxOracle(verifier.load_model(path)), NetworkOracle(net)
    assert (ort.name, own.name, own.dtype) == (ONNXRUNTIME, NETWORK_FLOAT32, np.float32)
    for x in np.random.default_rng(0).uniform(-1, 1, (50, 4)):
        y_own = own.run(x)
        assert np.array_equal(y_own, float32_forward(net, x))
        ref, dev = net.float_deviation(f32(x))
        assert np.all(np.abs(y_own - ref) <= dev) and np.all(np.abs(ort.run(x) - ref) <= dev)
    assert own.calls == 50


def test_non_float32_weights_are_refused():
    net = make_net([([[1.0, 1.0]], [0.0], "relu"), ([[1.0]], [0.0], None)])
    bad = Network((Layer(np.array([[0.1, 1.0]]), np.zeros(1), net.layers[0].activation),) + net.layers[1:],
                  net.input_shape, net.output_shape)
    with pytest.raises(VerifierError, match="not float32"):
        verify(bad, make_spec(*BOX, [["y0 >= 5"]]))


def test_onnx_network_keeps_onnxruntime_after_its_file_is_deleted(tmp_path):
    src = tmp_path / "model.onnx"
    shutil.copy(REPO / "models/collision_advisory.onnx", src)
    net = verifier.load_model(src)
    assert isinstance(net.meta[ONNX_BYTES], bytes)
    assert ONNX_BYTES not in repr(net)
    src.unlink()
    assert isinstance(make_oracle(net), OnnxOracle)

    res = verify(net, REPO / "specs/collision_no_strong_beyond_0p3.toml", options=Options(timeout=60))
    assert res.status == "violated", res.reason
    assert res.stats["oracle"] == ONNXRUNTIME and res.stats["onnxruntime_calls"] >= 1
    # a network naming a file that is gone, without the bytes: a clear error, as before
    gone = Network(net.layers, net.input_shape, net.output_shape, source=str(src))
    with pytest.raises(VerifierError, match="gone"):
        verify(gone, REPO / "specs/collision_no_strong_beyond_0p3.toml")
