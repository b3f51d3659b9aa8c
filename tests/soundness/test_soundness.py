"""The soundness rules of ``verify``, each tested on its own.

(a) a solver time-out is *unknown* (reason: timeout), never *holds*;
(b) a solver error is *unknown*;
(c) a solver point that does not replay in onnxruntime is *unknown*, never *violated*;
(d) every *violated* answer carries an input that really violates the property: replayed here with
    onnxruntime directly and the spec rows evaluated by hand (``tests.helpers.checks.check_counterexample``);
(e) *holds* only when the unsafe region enlarged by ``tau`` is infeasible: a property that holds by less
    than ``tau`` is *unknown*; a narrow planted violation that sampling misses is found by the MILP;
(f) ``cast_into_box`` returns float32 values inside the box, even for bounds float32 cannot represent.

Verdicts are also compared with dense-grid ground truth on random 2-input networks of every activation.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.helpers.checks import check_counterexample
from tests.helpers.networks import (
    ACTIVATIONS,
    RELU,
    SPIKE_A,
    SPIKE_B,
    SPIKE_K,
    ActKind,
    lipschitz,
    make_net,
    network_to_onnx,
    random_network,
    reference_forward,
)
from tests.helpers.paths import BENCH
from tests.helpers.solvers import FakeSolver
from verifier import falsify
from verifier.bounds import interval_bounds
from verifier.oracle import cast_into_box
from verifier.solve import SolveOutcome
from verifier.spec import load_spec, make_spec
from verifier.verify import Options, margin_for, verify

STRATEGIES = ["milp", "input-split"]


def strategy_options(strategy: str, **kw) -> Options:
    """Options selecting ``strategy`` (one MILP per disjunct, or branch and bound on input boxes)."""
    return Options(strategy=strategy, **kw)


# ----------------------------------------------------------------------------------- (a) timeouts
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_solver_timeout_is_unknown_never_holds(cancel_onnx, strategy):
    path, lower, upper = cancel_onnx
    calls = []

    def fake(milp, time_limit=None, solver="cbc", relax=False, maximize=False, **kw):
        calls.append(time_limit)
        return SolveOutcome("timeout", None, solver, 0.01, f"{solver} reached its time limit")

    spec = make_spec(lower, upper, [["y0 >= 0.76"]])  # holds by 0.01: a real solver would prove it
    res = verify(path, spec, options=strategy_options(strategy, timeout=60, solver=FakeSolver(fake)))
    assert calls, "the MILP was never called: the test is vacuous"
    assert res.status == "unknown"
    assert "timeout" in res.reason.lower()
    assert res.counterexample is None
    assert res.timed_out and res.vnncomp_text() == "timeout\n"
    assert res.exit_code == 3


MNIST_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def mnist_timeout_run():
    if not BENCH.is_dir():
        pytest.skip(f"shared benchmarks not found at {BENCH}")
    d = BENCH / "mnistfc"
    t0 = time.perf_counter()
    res = verify(d / "mnist-net_256x6.onnx", d / "prop_0_0.05.vnnlib", timeout=MNIST_TIMEOUT)
    return res, time.perf_counter() - t0


def test_real_timeout_on_hard_mnist_instance_is_unknown(mnist_timeout_run):
    """mnist-net_256x6 prop_0 eps 0.05: no VNN-COMP 2021 tool decided it; 2 s must give unknown (timeout)."""
    res, _ = mnist_timeout_run
    assert res.status == "unknown"
    assert "timeout" in res.reason.lower()
    assert res.timed_out and res.vnncomp_text() == "timeout\n"


def test_real_timeout_is_respected(mnist_timeout_run):
    _, elapsed = mnist_timeout_run
    assert elapsed <= MNIST_TIMEOUT + 1.0, f"timeout={MNIST_TIMEOUT} but verify took {elapsed:.1f} s"


# ------------------------------------------------------------------------------ (b) solver errors
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_solver_error_is_unknown(cancel_onnx, strategy):
    path, lower, upper = cancel_onnx

    def fake(milp, time_limit=None, solver="cbc", relax=False, maximize=False, **kw):
        return SolveOutcome("error", None, solver, 0.01, "cbc failed: simulated crash")

    res = verify(path, make_spec(lower, upper, [["y0 >= 0.76"]]),
                 options=strategy_options(strategy, solver=FakeSolver(fake)))
    assert res.status == "unknown"
    assert "error" in res.reason.lower() and "simulated crash" in res.reason
    assert res.vnncomp_text() == "unknown\n" and res.exit_code == 3


# ------------------------------------------------------------------- (c) points that do not replay
@pytest.mark.parametrize("status", ["feasible", "optimal"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_non_replaying_solver_point_is_unknown_never_violated(cancel_onnx, strategy, status):
    path, lower, upper = cancel_onnx
    seen = []

    def fake(milp, time_limit=None, solver="cbc", relax=False, maximize=False, **kw):
        values = np.zeros(milp.n_vars)
        x = (milp.lb[milp.input_vars] + milp.ub[milp.input_vars]) / 2  # a safe point: y0 = 0.75 there
        values[milp.input_vars] = x
        seen.append(x)
        return SolveOutcome(status, values, solver, 0.01, "Optimal", 0.0)

    res = verify(path, make_spec(lower, upper, [["y0 >= 0.76"]]),
                 options=strategy_options(strategy, falsify=False, solver=FakeSolver(fake)))
    assert seen
    assert res.status == "unknown", res
    assert res.counterexample is None
    assert "onnxruntime" in res.reason or "replay" in res.reason


# ---------------------------------------------------------------------------- (e) the margin tau
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_holds_by_less_than_tau_is_unknown(cancel_onnx, strategy):
    """True max of y0 is exactly 0.75; y0 >= 0.75 + 1e-7 never happens, but only by 1e-7 < tau."""
    path, lower, upper = cancel_onnx
    for falsify_first in (True, False):
        res = verify(path, make_spec(lower, upper, [["y0 >= 0.7500001"]]),
                     options=strategy_options(strategy, falsify=falsify_first))
        assert res.status == "unknown", "holds by 1e-7 < tau must not be proved"
        assert "tau" in res.reason


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strict_row_at_the_exact_maximum_is_unknown(cancel_onnx, strategy):
    path, lower, upper = cancel_onnx
    res = verify(path, make_spec(lower, upper, [["y0 > 0.75"]]), options=strategy_options(strategy, falsify=False))
    assert res.status == "unknown"


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("rhs", ["0.75", "0.7499999"])
def test_violated_by_zero_or_less_than_tau_is_violated(cancel_onnx, strategy, rhs):
    path, lower, upper = cancel_onnx
    spec = make_spec(lower, upper, [[f"y0 >= {rhs}"]])
    for falsify_first in (True, False):
        res = verify(path, spec, options=strategy_options(strategy, falsify=falsify_first))
        assert res.status == "violated"
        check_counterexample(path, spec, res.counterexample.input, res.counterexample.output)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_holds_by_more_than_tau_is_proved_by_the_milp(cancel_onnx, strategy):
    path, lower, upper = cancel_onnx
    res = verify(path, make_spec(lower, upper, [["y0 >= 0.751"]]), options=strategy_options(strategy))
    assert res.status == "holds"
    assert res.stats["disjunct_outcomes"]["proved_by_milp"] >= 1
    assert res.stats["margin_tau"] < 1e-3


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_larger_tau_is_really_applied(cancel_onnx, strategy):
    """With tau = 0.01 the same property (holding by 1e-3) can no longer be proved."""
    path, lower, upper = cancel_onnx
    res = verify(path, make_spec(lower, upper, [["y0 >= 0.751"]]),
                 options=strategy_options(strategy, margin_abs=0.01))
    assert res.status == "unknown"


def test_margin_formula():
    net = make_net([([[2.0, -3.0]], [0.5], "relu"), ([[4.0]], [1.0], None)])
    b = interval_bounds(net, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    big = max(float(np.max(np.maximum(np.abs(lo), np.abs(hi)))) for lo, hi in zip(b.lower, b.upper))
    assert big == pytest.approx(23.0, rel=1e-6)  # output bound 4 * 5.5 + 1
    opts = Options(margin_abs=1e-5, margin_rel=1e-8)
    assert margin_for(b, opts) == pytest.approx(1e-5 + 1e-8 * big)
    assert margin_for(b, opts) >= opts.margin_abs


# ------------------------------------------------------------------ (e) a narrow planted violation
def test_spike_premise_sampling_and_gradients_miss_it(spike_onnx):
    _, net = spike_onnx
    spec = make_spec([-1.0, -1.0], [1.0, 1.0], [["y0 >= 0.5"]])
    cons = spec.cases[0].unsafe[0]
    cands = falsify.search(net, cons, spec.cases[0].lower, spec.cases[0].upper, np.random.default_rng(0))
    assert np.all(falsify.margins(net, cons, cands) > 0), "the falsifier finds the spike: make it narrower"
    y = net.forward(np.array([SPIKE_A, SPIKE_B]))
    assert y[0] == 1.0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_narrow_planted_violation_is_found(spike_onnx, strategy):
    path, _ = spike_onnx
    spec = make_spec([-1.0, -1.0], [1.0, 1.0], [["y0 >= 0.5"]])
    for falsify_first in (True, False):
        res = verify(path, spec, options=strategy_options(strategy, falsify=falsify_first))
        assert res.status == "violated", res.reason
        assert res.stats.get("found_by") in ("milp", "branch and bound")
        check_counterexample(path, spec, res.counterexample.input, res.counterexample.output)
        x = res.counterexample.input
        assert abs(x[0] - SPIKE_A) + abs(x[1] - SPIKE_B) <= 0.5 / SPIKE_K + 1e-6


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_spike_above_its_peak_holds(spike_onnx, strategy):
    path, _ = spike_onnx
    # the peak is 1 in real arithmetic; the gain K = 1000 multiplies the first layer's float32 rounding
    # bound (~1e-7) and the 1000-weighted sum rounds on magnitudes up to ~5000 over the box, so the
    # guaranteed float32 bound on the whole box is ~1e-3 above the peak: 1.01 is provable, 1.001 not
    res = verify(path, make_spec([-1.0, -1.0], [1.0, 1.0], [["y0 >= 1.01"]]), options=strategy_options(strategy))
    assert res.status == "holds", res.reason


# ------------------------------------------------- (d) verdicts against dense-grid ground truth
@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: a.name)
def test_verdicts_agree_with_dense_grid(tmp_path, act: ActKind):
    net = random_network(21, act, (2, 8, 8, 2))
    path = network_to_onnx(net, act, tmp_path / "net.onnx")
    r = act.radius
    lower, upper = np.full(2, -r), np.full(2, r)
    t = np.linspace(-r, r, 201)
    grid = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    ys = reference_forward(net, act, grid)
    d = ys[:, 0] - ys[:, 1]
    h = 2 * r / 200
    slack = (lipschitz(net, 0) + lipschitz(net, 1)) * h
    gap = 0.05 * (1 + np.abs(d).max())
    # y0 - y1 >= thr: truly violated below the grid max, truly safe above grid max + slack
    for thr, truth in ((d.max() - gap, "violated"), (d.max() + slack + gap, "holds")):
        spec = make_spec(lower, upper, [[f"y0 - y1 >= {float(thr)!r}"]])
        for strategy in STRATEGIES:
            res = verify(path, spec, options=strategy_options(strategy))
            if truth == "violated":
                assert res.status != "holds", f"{strategy}: proved a property that the grid violates"
                assert res.status == "violated"
                check_counterexample(path, spec, res.counterexample.input, res.counterexample.output)
            else:
                assert res.status != "violated", f"{strategy}: counterexample to a true property"
                assert res.status == "holds", res.reason


@pytest.mark.parametrize("act", [ACTIVATIONS[0], ACTIVATIONS[2], ACTIVATIONS[4]], ids=lambda a: a.name)
def test_violated_results_replay_on_disjunctions_and_several_boxes(tmp_path, act: ActKind):
    net = random_network(3, act, (2, 8, 8, 3))
    path = network_to_onnx(net, act, tmp_path / "net.onnx")
    r = act.radius
    ys = reference_forward(net, act, np.random.default_rng(0).uniform(-r, r, (4000, 2)))
    q = np.quantile(ys, 0.9, axis=0)
    spec = make_spec([[-r, -r], [0.0, -r]], [[0.0, r], [r, r]],
                     [[f"y0 >= {float(q[0])!r}", f"y1 <= {float(np.median(ys[:, 1]))!r}"],
                      [f"y2 - y0 > {float(np.quantile(ys[:, 2] - ys[:, 0], 0.95))!r}"]])
    res = verify(path, spec)
    assert res.status == "violated"
    check_counterexample(path, spec, res.counterexample.input, res.counterexample.output)
    assert 0 <= res.counterexample.case_index < len(spec.cases)


@pytest.mark.skipif(not BENCH.is_dir(), reason=f"shared benchmarks not found at {BENCH}")
def test_violated_mnist_counterexample_replays():
    d = BENCH / "mnistfc"
    res = verify(d / "mnist-net_256x2.onnx", d / "prop_3_0.05.vnnlib", timeout=60)
    assert res.status in ("violated", "unknown")
    if res.status == "violated":
        check_counterexample(d / "mnist-net_256x2.onnx", load_spec(d / "prop_3_0.05.vnnlib"),
                             res.counterexample.input, res.counterexample.output)


def test_constant_network_violation_is_found_by_the_milp(tmp_path):
    net = make_net([([[1.0, 1.0]], [-5.0], "relu"), ([[1.0], [2.0]], [0.25, 0.0], None)])  # y = (0.25, 0)
    path = network_to_onnx(net, RELU, tmp_path / "const.onnx")
    spec = make_spec([-1.0, -1.0], [1.0, 1.0], [["y0 + x0 >= -0.75"]])
    res = verify(path, spec, options=Options(strategy="milp", falsify=False))
    assert res.status == "violated", res.reason


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_box_without_any_float32_input_is_unknown(spike_onnx, strategy):
    """x0 in [0.1, 0.1]: every real input violates, but no float32 input lies in the box, so nothing can be
    replayed: the answer must be unknown (never violated with an input outside the box, never holds)."""
    path, _ = spike_onnx
    res = verify(path, make_spec([0.1, -1.0], [0.1, 1.0], [["y0 >= -1"]]), options=strategy_options(strategy))
    assert res.status == "unknown"
    assert res.counterexample is None


def test_tiny_timeout_returns_unknown_quickly(cancel_onnx):
    path, lower, upper = cancel_onnx
    t0 = time.perf_counter()
    res = verify(path, make_spec(lower, upper, [["y0 >= 0.76"]]), timeout=1e-3)
    assert res.status == "unknown" and "timeout" in res.reason
    assert time.perf_counter() - t0 < 5


# ------------------------------------------------------------------------------ (f) cast_into_box
def _float32_exists_in(lo: float, hi: float) -> bool:
    c = np.float32(lo)
    if float(c) < lo:
        c = np.nextafter(c, np.float32(np.inf))
    return float(c) <= hi


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lo=finite, width=st.one_of(st.just(0.0), st.floats(0, 1e-6), st.floats(0, 10)),
       x=finite, frac=st.floats(0, 1))
@example(lo=0.1, width=0.0, x=0.1, frac=0.5)
@example(lo=0.1, width=1e-9, x=5.0, frac=0.5)
@example(lo=0.1, width=2e-9, x=-5.0, frac=0.5)
@example(lo=1 / 3, width=1e-12, x=1 / 3, frac=0.5)
@example(lo=0.5, width=0.0, x=1.0, frac=0.5)
def test_cast_into_box_gives_float32_values_inside(lo, width, x, frac):
    hi = lo + width
    xs = np.array([x, lo + frac * width])
    lower, upper = np.array([lo, lo]), np.array([hi, hi])
    out = cast_into_box(xs, lower, upper)
    if not _float32_exists_in(lo, hi):
        assert out is None
        return
    assert out is not None
    assert out.dtype == np.float64
    assert np.array_equal(out.astype(np.float32).astype(np.float64), out), "not float32-representable"
    assert np.all(lower <= out) and np.all(out <= upper), "outside the box"
    # close to the clipped input: at most one float32 step away from it
    clipped = np.clip(xs, lower, upper)
    step = np.spacing(np.abs(clipped).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(out - clipped) <= 2 * step)


def test_cast_into_box_float64_model_keeps_values():
    lower, upper = np.array([0.1, -1.0]), np.array([0.1 + 1e-12, 1.0])
    out = cast_into_box(np.array([0.3, 0.123456789012345]), lower, upper, dtype=np.float64)
    assert out[0] == 0.1 + 1e-12 and out[1] == 0.123456789012345
