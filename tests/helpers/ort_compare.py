"""The loaded network against onnxruntime: values, output shape and the float error bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from tests.helpers.checks import ort_session
from tests.helpers.onnx_builders import concrete_shape, graph_input, random_inputs
from verifier.network import Network
from verifier.onnx_loader import load_model


def assert_loads_like_onnxruntime(path: Path, *, n: int = 25, seed: int = 0, low: float = -1.0,
                                  high: float = 1.0) -> Network:
    """Load ``path`` and compare it with onnxruntime on ``n`` random inputs in ``[low, high]``: the
    output shape, the values (float32 tolerance), and every onnxruntime output within the loaded
    network's float error bound (``Network.float_deviation``)."""
    model = onnx.load(str(path))
    net = load_model(path)
    xs = random_inputs(model, n=n, seed=seed, low=low, high=high)
    inp = graph_input(model)
    sess = ort_session(path)
    shape = concrete_shape(inp)
    outs = [sess.run(None, {inp.name: x.reshape(shape)})[0] for x in xs]
    assert tuple(net.output_shape) == tuple(outs[0].shape)
    ys = np.stack([np.asarray(o, dtype=np.float64).reshape(-1) for o in outs])
    got = net.forward(xs.astype(np.float64))
    np.testing.assert_allclose(got, ys, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(ys).max())))
    for x, y_rt in zip(xs.astype(np.float64), ys):
        y, dev = net.float_deviation(x)
        assert np.all(np.abs(y_rt - y) <= dev + 1e-9 * (1 + np.abs(y))), "onnxruntime outside the error bound"
    return net
