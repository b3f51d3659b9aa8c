"""Soundness of the pre-activation bounds (``interval_bounds``, ``symbolic_bounds``, ``linear_bounds``).

Every bound must contain the pre-activations of thousands of sampled inputs (box corners included),
and the symbolic bounds must be nested inside the interval bounds.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.networks import ACTIVATIONS, ActKind, random_network
from tests.helpers.paths import BENCH
from verifier.bounds import LayerBounds, interval_bounds, linear_bounds, symbolic_bounds
from verifier.errors import EncodingError
from verifier.network import Network
from verifier.onnx_loader import load_model
from verifier.spec import load_spec


def samples(lower: np.ndarray, upper: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Uniform points, every corner (up to 2^10), points on faces, and the centre."""
    rng = np.random.default_rng(seed)
    d = lower.size
    pts = [lower + (upper - lower) * rng.random((n, d))]
    if d <= 10:
        corners = np.array(list(itertools.product([0, 1], repeat=d)), dtype=float)
    else:
        corners = rng.integers(0, 2, (1024, d)).astype(float)
    pts.append(lower + (upper - lower) * corners)
    faces = lower + (upper - lower) * rng.random((n // 4, d))
    mask = rng.random(faces.shape) < 0.5
    faces[mask] = np.where(rng.random(mask.sum()) < 0.5, lower[np.nonzero(mask)[1]], upper[np.nonzero(mask)[1]])
    pts.append(faces)
    pts.append(((lower + upper) / 2)[None, :])
    return np.vstack(pts)


def assert_contains(network: Network, bounds: LayerBounds, xs: np.ndarray) -> None:
    pre = network.pre_activations(xs)
    assert len(pre) == len(bounds.lower) == len(network.layers)
    for k, p in enumerate(pre):
        lo, hi = bounds.lower[k], bounds.upper[k]
        below = p < lo
        above = p > hi
        assert not below.any(), (f"{bounds.method} layer {k}: sample below the lower bound by "
                                 f"{float((lo - p)[below].max())}")
        assert not above.any(), (f"{bounds.method} layer {k}: sample above the upper bound by "
                                 f"{float((p - hi)[above].max())}")


def assert_nested(inner: LayerBounds, outer: LayerBounds) -> None:
    for k, (il, iu, ol, ou) in enumerate(zip(inner.lower, inner.upper, outer.lower, outer.upper)):
        assert np.all(il >= ol), f"layer {k}: {inner.method} lower bound below the {outer.method} one"
        assert np.all(iu <= ou), f"layer {k}: {inner.method} upper bound above the {outer.method} one"
        assert np.all(il <= iu)


# --------------------------------------------------------------------------------- random nets
@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.name)
@pytest.mark.parametrize("widths", [(2, 8, 8, 2), (5, 12, 10, 8, 3)], ids=["2in", "5in"])
def test_bounds_contain_sampled_pre_activations(act: ActKind, widths):
    for seed in range(3):
        net = random_network(seed, act, widths)
        rng = np.random.default_rng(100 + seed)
        c = rng.uniform(-0.5, 0.5, widths[0]) * act.radius
        w = rng.uniform(0.05, 1.0, widths[0]) * act.radius
        lower, upper = c - w, c + w
        xs = samples(lower, upper, 4000, seed)
        ib = interval_bounds(net, lower, upper)
        sb = symbolic_bounds(net, lower, upper)
        assert ib.method == "interval" and sb.method == "symbolic"
        assert_contains(net, ib, xs)
        assert_contains(net, sb, xs)
        assert_nested(sb, ib)
        # any start bounds are intersected in (still sound, still inside the start)
        sb2 = symbolic_bounds(net, lower, upper, start=ib)
        assert_contains(net, sb2, xs)
        assert_nested(sb2, ib)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(act_index=st.integers(0, len(ACTIVATIONS) - 1), seed=st.integers(0, 2**31),
       centre=st.lists(st.floats(-1, 1), min_size=3, max_size=3),
       log_width=st.lists(st.floats(-6, 0.5), min_size=3, max_size=3))
def test_bounds_sound_on_random_boxes(act_index, seed, centre, log_width):
    """Boxes from very narrow (width 1e-6, nearly stable) to wide; also a degenerate coordinate."""
    act = ACTIVATIONS[act_index]
    net = random_network(seed % 1000, act, (3, 7, 6, 2))
    c = np.array(centre) * act.radius
    w = 10.0 ** np.array(log_width) * act.radius
    w[seed % 3] = 0.0 if seed % 5 == 0 else w[seed % 3]
    lower, upper = c - w, c + w
    xs = samples(lower, upper, 500, seed % 97)
    ib = interval_bounds(net, lower, upper)
    sb = symbolic_bounds(net, lower, upper)
    assert_contains(net, ib, xs)
    assert_contains(net, sb, xs)
    assert_nested(sb, ib)


@pytest.mark.parametrize("act", [ACTIVATIONS[0], ACTIVATIONS[1], ACTIVATIONS[3], ACTIVATIONS[6]],
                         ids=lambda a: a.name)
def test_linear_bounds_contain_sampled_output_combinations(act: ActKind):
    net = random_network(11, act, (3, 9, 9, 4))
    lower, upper = np.array([-1.0, -0.5, 0.0]), np.array([0.5, 1.0, 0.25])
    xs = samples(lower, upper, 4000)
    ys = net.forward(xs)
    rng = np.random.default_rng(3)
    C = rng.standard_normal((6, 4))
    C_in = rng.standard_normal((6, 3))
    d = rng.standard_normal(6)
    for b in (interval_bounds(net, lower, upper), symbolic_bounds(net, lower, upper)):
        lo, hi = linear_bounds(net, b, lower, upper, C, d, C_in)
        vals = ys @ C.T + xs @ C_in.T + d
        assert np.all(vals >= lo) and np.all(vals <= hi)
        # without C_in
        lo2, hi2 = linear_bounds(net, b, lower, upper, C)
        vals2 = ys @ C.T
        assert np.all(vals2 >= lo2) and np.all(vals2 <= hi2)


def test_bounds_are_exact_on_a_point_box_up_to_padding():
    """In exact arithmetic a point box gives the point (up to padding); a float32 network's bounds
    are the float32 rounding bound wide, no wider than its tiny multiple."""
    x = np.array([0.3, -0.2])
    for real, width in ((True, lambda p: 1e-7), (False, lambda p: 1e-5 * (1.0 + np.abs(p)))):
        net = random_network(4, ACTIVATIONS[3], (2, 8, 8, 2), real=real)
        pre = net.pre_activations(x)
        for b in (interval_bounds(net, x, x), symbolic_bounds(net, x, x)):
            for k, p in enumerate(pre):
                assert np.all(b.lower[k] <= p) and np.all(p <= b.upper[k])
                assert np.all(b.upper[k] - b.lower[k] <= width(p))
                if not real:
                    assert np.all(b.upper[k] - b.lower[k] >= 2 * b.errors[k])


def test_bad_boxes_are_rejected():
    net = random_network(0, ACTIVATIONS[0])
    with pytest.raises(EncodingError, match="lower bound"):
        interval_bounds(net, np.array([0.0, 1.0]), np.array([1.0, 0.0]))
    with pytest.raises(EncodingError, match="unbounded|finite"):
        symbolic_bounds(net, np.array([0.0, -np.inf]), np.array([1.0, 0.0]))
    with pytest.raises(EncodingError, match="inputs"):
        interval_bounds(net, np.zeros(3), np.ones(3))


def test_one_sided_clip_bounds_emit_no_runtime_warning():
    act = next(a for a in ACTIVATIONS if a.name == "min0.3")
    net = random_network(0, act)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        symbolic_bounds(net, np.full(2, -1.0), np.full(2, 1.0))


# --------------------------------------------------------------------------------- ACAS Xu
ACAS = [("ACASXU_run2a_1_1_batch_2000.onnx", "prop_1.vnnlib"),
        ("ACASXU_run2a_2_3_batch_2000.onnx", "prop_2.vnnlib"),
        ("ACASXU_run2a_4_5_batch_2000.onnx", "prop_3.vnnlib")]


@pytest.mark.skipif(not BENCH.is_dir(), reason=f"shared benchmarks not found at {BENCH}")
@pytest.mark.parametrize(("onnx_name", "prop"), ACAS)
def test_acasxu_bounds_contain_samples_and_nest(onnx_name, prop):
    net = load_model(BENCH / "acasxu" / onnx_name)
    spec = load_spec(BENCH / "acasxu" / prop)
    case = spec.cases[0]
    xs = samples(case.lower, case.upper, 5000)
    ib = interval_bounds(net, case.lower, case.upper)
    sb = symbolic_bounds(net, case.lower, case.upper)
    assert_contains(net, ib, xs)
    assert_contains(net, sb, xs)
    assert_nested(sb, ib)
    assert sb.n_unstable(net) <= ib.n_unstable(net)
    # also on a sub-box (as branch and bound produces): the tightest and the loosest still contain samples
    mid = (case.lower + case.upper) / 2
    sub_lo, sub_hi = case.lower, np.where(np.arange(5) % 2 == 0, mid, case.upper)
    xs2 = samples(sub_lo, sub_hi, 2000, 1)
    assert_contains(net, symbolic_bounds(net, sub_lo, sub_hi), xs2)
