"""``search.disjunct.decide_disjunct`` on its own, with an injected fake solver (and once with CBC):
only the solver's explicit infeasibility is a proof; a solver point must replay in onnxruntime to be
a counterexample; a time-out or an error is never a proof."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.networks import CANCEL_MAX, RELU, SPIKE_A, SPIKE_B, cancel_network, network_to_onnx, spike_network
from verifier.bounds import margin_tau, symbolic_bounds
from verifier.budget import Deadline
from verifier.io.onnx import load_model
from verifier.io.replay import OnnxOracle
from verifier.milp.encoding import encode
from verifier.milp.solvers import SolveOutcome
from verifier.search.disjunct import (
    COUNTEREXAMPLE,
    ERROR,
    MARGIN_ABS,
    MARGIN_REL,
    OPEN,
    PROVED,
    SUBBOX_ATTACK,
    TIMEOUT,
    decide_disjunct,
    disjunct_problem,
)
from verifier.spec import make_spec


class Fake:
    """A solver object returning ``status``; a point (at ``x`` or the box centre) when feasible."""

    name = "fake"

    def __init__(self, status: str, x=None, message: str = "") -> None:
        self.status, self.x, self.message = status, x, message
        self.calls: list = []

    def solve(self, milp, time_limit=None, cancel=None):
        self.calls.append((milp, time_limit))
        values = None
        if self.status in ("feasible", "optimal"):
            values = np.zeros(milp.n_vars)
            mid = (milp.lb[milp.input_vars] + milp.ub[milp.input_vars]) / 2
            values[milp.input_vars] = mid if self.x is None else self.x
        return SolveOutcome(self.status, values, self.name, 0.0, self.message)


def setup(tmp_path, net, rows, box=((-1.0, -1.0), (1.0, 1.0))):
    path = network_to_onnx(net, RELU, tmp_path / "net.onnx")
    network = load_model(path)
    case = make_spec(list(box[0]), list(box[1]), [rows]).bind(network.n_inputs, network.n_outputs).cases[0]
    b = symbolic_bounds(network, case.lower, case.upper)
    milp = encode(network, b, case.lower, case.upper)
    return network, case, milp, margin_tau(b, MARGIN_ABS, MARGIN_REL), OnnxOracle(network)


def decide(net_parts, solver, deadline=None, **kw):
    network, case, milp, tau, oracle = net_parts
    return decide_disjunct(network, case, case.unsafe[0], milp, tau, solver, deadline, oracle,
                           np.random.default_rng(0), **kw)


@pytest.fixture
def cancel(tmp_path):
    return setup(tmp_path, cancel_network(), ["y0 >= 0.76"])


def test_infeasible_is_proved_and_the_rows_carry_tau(cancel):
    fake = Fake("infeasible")
    out = decide(cancel, fake)
    assert out.kind == PROVED and out.proved and out.counterexample is None
    network, case, milp, tau, _ = cancel
    solved, _ = fake.calls[0]
    expected = disjunct_problem(network, milp, case.unsafe[0], tau)
    assert np.allclose(solved.rhs, expected.rhs) and tau >= MARGIN_ABS
    assert solved.rhs[-1] > disjunct_problem(network, milp, case.unsafe[0], 0.0).rhs[-1]


def test_real_cbc_proves_the_disjunct(cancel):
    assert decide(cancel, "cbc", Deadline.after(60)).kind == PROVED


def test_replayed_solver_point_is_a_counterexample(tmp_path):
    parts = setup(tmp_path, cancel_network(), [f"y0 >= {CANCEL_MAX}"])  # y0 = 0.75 everywhere
    out = decide(parts, Fake("optimal"))
    assert out.kind == COUNTEREXAMPLE and not out.proved
    assert out.counterexample.output[0] >= CANCEL_MAX  # onnxruntime's output
    assert parts[1].contains(out.counterexample.input)


def test_nearby_attack_turns_a_near_miss_into_a_counterexample(tmp_path):
    w = 2e-3  # a small box around the spike (a branch-and-bound leaf)
    parts = setup(tmp_path, spike_network(), ["y0 >= 0.9"], ((SPIKE_A - w, SPIKE_B - w), (SPIKE_A + w, SPIKE_B + w)))
    near = np.array([SPIKE_A + 3e-4, SPIKE_B])  # just off the spike's top: y0 = 0.7 there
    out = decide(parts, Fake("feasible", x=near), attack=SUBBOX_ATTACK)
    assert out.kind == COUNTEREXAMPLE, out
    assert out.counterexample.output[0] >= 0.9


def test_non_replaying_point_is_open_with_the_reason(cancel):
    out = decide(cancel, Fake("feasible"))
    assert out.kind == OPEN and out.counterexample is None and not out.proved
    assert "tau" in out.reason and "onnxruntime" in out.reason


def test_timeout_is_never_proved(cancel):
    fake = Fake("timeout", message="time limit")
    out = decide(cancel, fake, Deadline.after(5.0), time_limit=1.5)
    assert out.kind == TIMEOUT and not out.proved and out.reason.startswith("timeout")
    assert fake.calls[0][1] == 1.5  # the caller's share reaches the solver


def test_deadline_is_the_default_time_limit(cancel):
    fake = Fake("timeout")
    decide(cancel, fake, Deadline.after(5.0))
    assert 4.0 < fake.calls[0][1] <= 5.0


@pytest.mark.parametrize("status", ["error", "cancelled", "unbounded?"])
def test_solver_error_is_never_proved(cancel, status):
    out = decide(cancel, Fake(status, message="simulated crash"))
    assert out.kind == ERROR and not out.proved and out.reason.startswith("solver error")


def test_an_already_solved_outcome_is_judged_the_same_way(cancel):
    network, case, milp, tau, _ = cancel
    prob = disjunct_problem(network, milp, case.unsafe[0], tau)
    fake = Fake("infeasible")
    out = decide(cancel, fake, problem=prob, solved=SolveOutcome("feasible", np.zeros(prob.n_vars), "x", 0.0))
    assert out.kind == OPEN and not fake.calls
