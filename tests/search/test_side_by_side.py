"""``--jobs N`` on the MILP path: disjunct MILPs solved side by side, cancelled on a counterexample."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

import verifier.solve as solve_mod
from tests.helpers.checks import check_counterexample
from tests.helpers.networks import RELU, SPIKE_A, SPIKE_B, random_network
from tests.helpers.solvers import FakeSolver
from verifier.bounds import symbolic_bounds
from verifier.encoding import encode, output_rows
from verifier.solve import SolveOutcome, solve
from verifier.spec import make_spec
from verifier.verify import Options, verify

MILP2 = Options(strategy="milp", falsify=False, jobs=2)


def test_several_disjuncts_proved_side_by_side(cancel_onnx):
    path, lower, upper = cancel_onnx
    spec = make_spec(lower, upper, [["y0 >= 0.76"], ["y0 <= 0.74"], ["y1 >= 5"]])
    res = verify(path, spec, options=MILP2)
    assert res.status == "holds", res.reason
    assert res.stats["milps_side_by_side"] == 2
    assert res.stats["disjunct_outcomes"]["proved_by_milp"] >= 2


def test_narrow_violation_found_side_by_side(spike_onnx):
    path, _ = spike_onnx
    spec = make_spec([-1.0, -1.0], [1.0, 1.0], [["y0 >= 2"], ["y0 >= 1.5"], ["y0 >= 0.9"]])
    res = verify(path, spec, options=MILP2)
    assert res.status == "violated", res.reason
    check_counterexample(path, spec, res.counterexample.input, res.counterexample.output)
    assert abs(res.counterexample.input[0] - SPIKE_A) < 1e-3 and abs(res.counterexample.input[1] - SPIKE_B) < 1e-3


def test_timeouts_side_by_side_are_unknown(cancel_onnx):
    path, lower, upper = cancel_onnx

    def fake(milp, time_limit=None, solver="cbc", relax=False, maximize=False, cancel=None):
        return SolveOutcome("timeout", None, solver, 0.01, "time limit")

    res = verify(path, make_spec(lower, upper, [["y0 >= 0.76"], ["y0 <= 0.74"]]),
                 options=replace(MILP2, solver=FakeSolver(fake)))
    assert res.status == "unknown" and "timeout" in res.reason


def test_a_counterexample_cancels_the_other_solves(cancel_onnx):
    path, lower, upper = cancel_onnx
    cancelled = []
    real = solve_mod.solve

    def fake(milp, time_limit=None, solver="cbc", relax=False, maximize=False, cancel=None):
        if milp.rhs[-1] > -0.1:  # y0 >= 0.76 (its constant 0.75 is folded: rhs about -0.01): slow and hard
            assert cancel is not None
            t0 = time.perf_counter()
            while not cancel.is_set() and time.perf_counter() - t0 < 30:
                time.sleep(0.01)
            cancelled.append(cancel.is_set())
            return SolveOutcome("cancelled", None, solver, time.perf_counter() - t0, "cancelled")
        time.sleep(0.2)  # let the slow one start first
        return real(milp, time_limit, solver)

    spec = make_spec(lower, upper, [["y0 >= 0.76"], ["y1 >= 0.5"]])
    t0 = time.perf_counter()
    res = verify(path, spec, options=replace(MILP2, solver=FakeSolver(fake)))
    assert res.status == "violated"
    check_counterexample(path, spec, res.counterexample.input, res.counterexample.output)
    assert cancelled == [True]
    assert time.perf_counter() - t0 < 20


def test_cbc_stops_when_cancelled():
    net = random_network(5, RELU, widths=(12, 300, 300, 300, 2))
    lo, hi = -np.ones(12), np.ones(12)
    b = symbolic_bounds(net, lo, hi)
    milp = encode(net, b, lo, hi)
    ub = float(b.output_upper[0])
    problem = milp.with_rows(output_rows(net, milp, np.zeros((1, 12)), np.array([[-1.0, 0.0]]),
                                         np.array([-0.9 * ub])))  # y0 >= 0.9 of its bound: hard
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    t0 = time.perf_counter()
    out = solve(problem, 60, "cbc", cancel=cancel)
    took = time.perf_counter() - t0
    if out.status != "cancelled" and took < 1.0:
        pytest.skip(f"CBC finished before the cancel ({out.status} in {took:.2f} s): nothing to test")
    assert out.status == "cancelled" and took < 5.0, (out.status, took)


def test_a_failing_solve_stops_the_others_and_is_raised(cancel_onnx):
    path, lower, upper = cancel_onnx
    stopped = []

    def fake(milp, time_limit=None, solver="cbc", relax=False, maximize=False, cancel=None):
        if milp.rhs[-1] > -0.1:  # y0 >= 0.76: a long solve that only a cancel ends
            t0 = time.perf_counter()
            while not cancel.is_set() and time.perf_counter() - t0 < 30:
                time.sleep(0.01)
            stopped.append(cancel.is_set())
            return SolveOutcome("cancelled", None, solver, 0.0, "cancelled")
        time.sleep(0.2)
        raise RuntimeError("solver blew up")

    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="blew up"):
        verify(path, make_spec(lower, upper, [["y0 >= 0.76"], ["y1 >= 0.5"]]),
               options=replace(MILP2, solver=FakeSolver(fake)))
    assert stopped == [True] and time.perf_counter() - t0 < 20
