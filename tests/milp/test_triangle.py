"""The compact triangle LP: same optimum as the relaxed big-M encoding, and never above a sample."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import ACT_BY_NAME, random_network, reference_forward
from verifier import triangle
from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.encoding import encode, output_rows, with_margin
from verifier.lp import LinearProgram


def _both(network, lo, hi, ay, ax, rhs):
    b = symbolic_bounds(network, lo, hi)
    low, up = linear_bounds(network, b, lo, hi, ay, None, ax)
    t_lo = float(np.max(low - rhs))
    t_hi = max(t_lo, float(np.max(up - rhs)))
    milp = encode(network, b, lo, hi)
    big, t_big = with_margin(milp, output_rows(network, milp, ax, ay, rhs), t_lo, t_hi)
    small, t_small = triangle.triangle_lp(network, b, lo, hi, ay, ax, rhs, t_lo, t_hi)
    v_big, _ = LinearProgram(big).minimize(np.array([t_big]), np.array([1.0]))
    v_small, _ = LinearProgram(small).minimize(np.array([t_small]), np.array([1.0]))
    return v_big, v_small, small, big, t_lo


@pytest.mark.parametrize("act_name", ["relu", "leaky0.1"])
@pytest.mark.parametrize("seed", range(6))
def test_same_optimum_as_the_relaxed_big_m_encoding_and_below_samples(act_name, seed):
    act = ACT_BY_NAME[act_name]
    net = random_network(seed, act, widths=(3, 10, 10, 8, 3), real=True)
    rng = np.random.default_rng(100 + seed)
    lo = rng.uniform(-1.0, 0.0, 3)
    hi = lo + rng.uniform(0.2, 1.5, 3)
    ay = rng.standard_normal((2, 3))
    ax = rng.standard_normal((2, 3)) * 0.3
    rhs = rng.standard_normal(2)
    v_big, v_small, small, big, t_lo = _both(net, lo, hi, ay, ax, rhs)
    assert v_big is not None and v_small is not None
    assert v_small == pytest.approx(v_big, abs=1e-6)
    assert v_small >= t_lo - 1e-9  # the LP is at least as tight as back-substitution
    assert small.n_vars <= big.n_vars and small.n_binaries == 0
    # the LP's minimum of the worst row never exceeds the worst row at a real input
    xs = rng.uniform(lo, hi, size=(4000, 3))
    ys = reference_forward(net, act, xs)
    worst = np.max(ys @ ay.T + xs @ ax.T - rhs, axis=1)
    assert v_small <= worst.min() + 1e-9


def test_only_relu_and_leaky_networks_with_few_inputs_take_it():
    assert triangle.worthwhile(random_network(0, ACT_BY_NAME["relu"], widths=(5, 8, 2)))
    assert triangle.worthwhile(random_network(0, ACT_BY_NAME["leaky0.1"], widths=(5, 8, 2)))
    assert not triangle.worthwhile(random_network(0, ACT_BY_NAME["clip01"], widths=(5, 8, 2)))
    assert not triangle.worthwhile(random_network(0, ACT_BY_NAME["relu"], widths=(100, 8, 2)))


def test_a_network_with_no_unstable_neuron_gives_the_exact_minimum():
    act = ACT_BY_NAME["relu"]
    net = random_network(3, act, widths=(2, 6, 2), real=True)
    x0 = np.array([0.3, -0.2])
    lo, hi = x0 - 1e-9, x0 + 1e-9
    ay = np.array([[1.0, -1.0]])
    _, v_small, small, _, _ = _both(net, lo, hi, ay, np.zeros((1, 2)), np.zeros(1))
    y0 = reference_forward(net, act, x0[None, :])[0]
    assert small.n_vars == 3  # two inputs and t
    assert v_small == pytest.approx(y0[0] - y0[1], abs=1e-6)


def test_non_finite_bounds_are_rejected():
    from verifier.bounds import LayerBounds
    from verifier.errors import EncodingError

    net = random_network(1, ACT_BY_NAME["relu"], widths=(2, 4, 2), real=True)
    lo, hi = -np.ones(2), np.ones(2)
    b = symbolic_bounds(net, lo, hi)
    bad = LayerBounds((np.full(4, np.nan), b.lower[1]), b.upper, "user")
    with pytest.raises(EncodingError):
        triangle.triangle_lp(net, bad, lo, hi, np.eye(2)[:1], None, np.zeros(1), -10.0, 10.0)
