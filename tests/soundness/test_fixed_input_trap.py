"""Fixed inputs folded into the bias still round in float32: onnxruntime (and the in-memory float32
forward pass) multiply the fixed input's float value by its float weight and sum it with the rest.

The trap: one free input ``x0`` in a box of width 2^-20 and 300 fixed inputs whose products
cancel (terms of size 50 to 200 summing to about 10). In real arithmetic ``y`` stays within
2^-20 of ``R``; the float32 evaluation lands about 1e-4 to 1e-3 away. The threshold lies between the
two, on the side the float32 evaluation reaches: in real arithmetic the property holds, as a
float32 program it is violated. A folded layer re-modelled as a 2-term ``Gemm`` (``x0`` and the
bias) would claim an error of about 1e-6 and prove it: the error model of the folded layer must
keep the 300 fixed terms.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tests.helpers.checks import check_counterexample, ort_eval
from tests.helpers.networks import RELU, make_net, network_to_onnx
from verifier import Options, make_spec, verify
from verifier.io.replay import NetworkOracle
from verifier.search.fixed_inputs import FixedInputs

N_FIXED = 300
WIDTH = 2.0 ** -20


def trap_network(seed: int):
    rng = np.random.default_rng(seed)
    w = np.concatenate([[1.0], rng.uniform(1, 2, N_FIXED)]).astype(np.float32).astype(np.float64)
    c = (rng.uniform(50, 100, N_FIXED) * np.where(np.arange(N_FIXED) % 2 == 0, 1, -1)).astype(np.float32)
    c = c.astype(np.float64)
    b = float(np.float32(10.0 - float(w[1:] @ c)))
    net = make_net([([w.tolist()], [b], "relu"), ([[1.0]], [0.0], None)])
    x = np.concatenate([[0.0], c])
    exact = sum(Fraction(a) * Fraction(z) for a, z in zip(w, x)) + Fraction(b)
    return net, x, float(exact)


def trap_spec(x, real: float, computed: float):
    """The box (``x0`` free in ``[0, WIDTH]``, the rest fixed) and a threshold between the real
    range ``[real, real + WIDTH]`` and the float32 value at ``x``."""
    lower, upper = x.copy(), x.copy()
    upper[0] = WIDTH
    if computed < real:
        row = f"y0 <= {float((computed + real) / 2)!r}"
    else:
        assert computed > real + WIDTH
        row = f"y0 >= {float((computed + real + WIDTH) / 2)!r}"
    return make_spec(lower, upper, [[row]])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("falsify", [False, True])
def test_folded_inputs_keep_their_float32_rounding_in_memory(seed, falsify):
    net, x, real = trap_network(seed)
    computed = NetworkOracle(net).run(x)[0]
    assert abs(computed - real) > 1e-5, "not a trap: float32 agrees with real arithmetic"
    res = verify(net, trap_spec(x, real, computed), options=Options(falsify=falsify, timeout=60))
    assert res.stats["fixed_inputs"] == {0: N_FIXED}
    assert res.status == "violated", res.reason  # never holds; and the float32 point is found
    cex = res.counterexample.input
    assert cex.size == N_FIXED + 1 and np.array_equal(cex[1:], x[1:])


@pytest.mark.parametrize("seed", range(3))
def test_folded_inputs_keep_their_float32_rounding_in_onnxruntime(tmp_path, seed):
    net, x, real = trap_network(seed)
    path = network_to_onnx(net, RELU, tmp_path / "trap.onnx")
    computed = ort_eval(path, x[None])[0][0]
    assert abs(computed - real) > 1e-5, "not a trap: onnxruntime agrees with real arithmetic"
    spec = trap_spec(x, real, computed)
    res = verify(path, spec, options=Options(falsify=False, timeout=60))
    assert res.stats["fixed_inputs"] == {0: N_FIXED}
    assert res.status == "violated", res.reason
    check_counterexample(path, spec.bind(net.n_inputs, net.n_outputs), res.counterexample.input,
                         res.counterexample.output)


@pytest.mark.parametrize("seed", range(3))
def test_folded_layer_error_covers_the_float32_evaluation(seed):
    net, x, real = trap_network(seed)
    fixed = FixedInputs.of_box(x, x)
    reduced = fixed.network(net)
    assert reduced.n_inputs == 1
    y_real, dev = reduced.float_deviation(np.array([0.0]))
    assert abs(y_real[0] - real) < 1e-9
    computed = NetworkOracle(net).run(x)[0]
    assert abs(computed - real) <= dev[0]
    # the same error as the unfolded network's (its 301 terms), up to the float64 fold term
    _, dev_full = net.float_deviation(x)
    assert dev[0] >= dev_full[0] and dev[0] <= dev_full[0] * (1 + 1e-6)
