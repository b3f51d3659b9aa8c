"""The checker against the float32 trap networks of tests/soundness/test_float32_soundness.py.

A certificate built from real-arithmetic bounds (the verifier's bounds with every rounding term set
to zero) proves ``y0 < t`` for a threshold between the real maximum and what onnxruntime computes:
the checker, which applies its own float32 error model, must reject it. With the threshold ten times
the verifier's float error above the real maximum, a certificate from the float-aware bounds must be
accepted (the checker's model is not much more cautious than the verifier's).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import hand_certificates as C
from tests.soundness.test_float32_soundness import _onnx, _random_layers, _real_max
from verifier import load_model, load_spec
from verifier.checker import check_certificate
from verifier.network import Network


def _real(net: Network) -> Network:
    """The same network without any float rounding terms (what a real-arithmetic prover assumes)."""
    layers = []
    for layer in net.layers:
        act = layer.activation
        if act is not None:
            act = dataclasses.replace(act, rel_error=0.0, abs_error=0.0)
        layers.append(dataclasses.replace(layer, activation=act, err_weight=np.zeros(layer.weight.shape),
                                          err_bias=np.zeros(layer.n_out)))
    return dataclasses.replace(net, layers=tuple(layers))


def _spec(path, t: float):
    path.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0.0))\n"
                    f"(assert (<= X_0 1.0))\n(assert (>= Y_0 {t!r}))\n")
    return path


@pytest.mark.parametrize("seed", [s for s in range(24) if s % 3 != 2])  # ReLU and LeakyReLU (no Clip)
def test_real_arithmetic_certificates_of_float32_traps_are_rejected(tmp_path, seed):
    act = ("relu", "leaky")[seed % 3]
    rng = np.random.default_rng(1000 + seed)
    layers = _random_layers(rng, act)
    alpha = float(np.float32(rng.uniform(0.01, 0.3)))
    path = tmp_path / "trap.onnx"
    _onnx(layers, act, alpha, 1e5, path)
    net = load_model(path)
    real_max = _real_max(net, 0.0, 1.0)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    grid = np.linspace(0.0, 1.0, 20001, dtype=np.float32)[:, None]
    ort_max = float(sess.run(None, {"X": grid})[0].max())
    if ort_max > real_max and 0.5 * (real_max + ort_max) < ort_max:
        spec = _spec(tmp_path / "trap.vnnlib", 0.5 * (real_max + ort_max))
        doc = C.bisection_certificate(path, spec, _real(net), load_spec(spec))
        for mode in ("fast", "exact"):
            res = check_certificate(str(path), str(spec), str(C.save(doc, tmp_path / "c.json")), mode)
            assert not res.valid, f"accepted although onnxruntime reaches {ort_max!r}"
    err = max(float(net.float_deviation(np.array([x]))[1][0]) for x in np.linspace(0.0, 1.0, 201))
    spec = _spec(tmp_path / "margin.vnnlib", real_max + 10.0 * err + 1e-12 * (1.0 + abs(real_max)))
    doc = C.bisection_certificate(path, spec, net, load_spec(spec))
    res = check_certificate(str(path), str(spec), str(C.save(doc, tmp_path / "c.json")), "fast")
    assert res.valid, res.reason
