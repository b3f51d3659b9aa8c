"""Falsification of conjunctions (``search.conjunct``): reach-avoid regions ``y0 >= t`` and
``|y1| <= r`` and ``|y2| <= r`` (five rows) on a 5-input 3 x 64 ReLU network are found and their
counterexamples replay in onnxruntime; the penalty's gradient matches finite differences; the
bounds' vertices minimise each row's linear lower bound; single-row disjuncts keep the sign-PGD
search; the deadline stops the descent."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.checks import check_counterexample
from tests.helpers.networks import RELU, network_to_onnx
from tests.helpers.reach_avoid import inside_fraction, reach_avoid
from verifier import Options, load_model, make_spec, verify
from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.budget import Deadline
from verifier.io.replay import NetworkOracle
from verifier.search import conjunct, disjunct, falsify
from verifier.spec import Case, Constraints

SEEDS = (2, 4, 6, 7)  # instances on which the sign-PGD search of the worst row misses (measured)
HARD = 0.003  # r: this quantile of max(|y1|, |y2|) over the samples


@pytest.mark.parametrize("seed", SEEDS)
def test_reach_avoid_instance_is_small_but_not_empty(seed):
    inst = reach_avoid(seed, r_quantile=HARD)
    y = inst.network.forward(inst.witness[None])
    assert inst.constraints.worst_margin(inst.witness[None], y)[0] < 0
    assert inside_fraction(inst, n=50_000) < 1e-4


@pytest.mark.parametrize("seed", SEEDS)
def test_conjunct_search_finds_the_reach_avoid_region(seed):
    inst = reach_avoid(seed, r_quantile=HARD)
    cons = inst.constraints
    cands = conjunct.search(inst.network, cons, inst.lower, inst.upper, np.random.default_rng(0),
                            deadline=Deadline.after(30))
    assert falsify.margins(inst.network, cons, cands[:1])[0] < 0


def test_verify_falsifies_reach_avoid_and_the_point_replays(tmp_path):
    inst = reach_avoid(SEEDS[0], r_quantile=HARD)
    path = network_to_onnx(inst.network, RELU, tmp_path / "reach_avoid.onnx")
    rows = list(inst.rows)
    rows[0] = rows[0].replace(">=", ">")  # a strict row: the point must lie strictly inside
    spec = make_spec(inst.lower, inst.upper, [rows])
    res = verify(load_model(path), spec, options=Options(timeout=30))
    assert res.status == "violated", res.reason
    assert res.stats["found_by"] == "falsification"
    check_counterexample(path, spec, res.counterexample.input, res.counterexample.output)


def test_penalty_gradient_matches_finite_differences():
    inst = reach_avoid(SEEDS[0], r_quantile=HARD)
    cons, net = inst.constraints, inst.network
    X = np.random.default_rng(3).uniform(-1, 1, (10, 5))
    scale, tol = np.array([0.5, 0.1, 0.1, 0.2, 0.2]), np.full(5, 1e-3)
    h, grad, g = conjunct.penalty_and_grad(net, cons, X, scale, tol)
    np.testing.assert_allclose(g, falsify.margins(net, cons, X))
    np.testing.assert_allclose(h, conjunct.penalties(cons, X, net.forward(X), scale, tol))
    step = 1e-6
    for i in range(5):
        e = np.zeros(5)
        e[i] = step
        fd = (conjunct.penalties(cons, X + e, net.forward(X + e), scale, tol)
              - conjunct.penalties(cons, X - e, net.forward(X - e), scale, tol)) / (2 * step)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-4, atol=1e-6)


def test_bound_vertices_minimise_each_rows_linear_bound():
    inst = reach_avoid(SEEDS[0], r_quantile=HARD)
    net, cons, lo, hi = inst.network, inst.constraints, inst.lower, inst.upper
    b = symbolic_bounds(net, lo, hi)
    V = conjunct.bound_vertices(net, b, lo, hi, cons)
    assert V.shape == (cons.n_rows + 1, 5)
    _, _, coef = linear_bounds(net, b, lo, hi, cons.ay, None, cons.ax, return_coef=True)
    corners = np.where((np.arange(32)[:, None] >> np.arange(5)) & 1, hi, lo)
    for r in range(cons.n_rows):
        assert coef[r] @ V[r] == pytest.approx((corners @ coef[r]).min())
    assert conjunct.bound_vertices(net, None, lo, hi, cons).shape == (0, 5)


def test_single_row_disjuncts_keep_the_sign_descent(monkeypatch):
    inst = reach_avoid(SEEDS[0], r_quantile=HARD)
    net = inst.network

    def fail(*args, **kwargs):
        raise AssertionError("a single row must not go through conjunct.search")

    monkeypatch.setattr(conjunct, "search", fail)
    y0 = net.forward(inst.witness[None])[0, 0]
    cons = Constraints(np.zeros((1, 5)), np.array([[-1.0, 0.0, 0.0]]), np.array([-(y0 - 0.5)]), np.array([False]))
    case = Case(inst.lower, inst.upper, (cons,))
    cex = disjunct.attack_near(net, case, cons, NetworkOracle(net), inst.lower, inst.upper, np.random.default_rng(0))
    assert cex is not None and cex.output[0] >= y0 - 0.5


def test_descent_stops_at_the_deadline(monkeypatch):
    inst = reach_avoid(SEEDS[0], r_quantile=HARD)
    calls = []
    real = conjunct.penalty_and_grad

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(conjunct, "penalty_and_grad", counting)
    cands = conjunct.search(inst.network, inst.constraints, inst.lower, inst.upper, np.random.default_rng(0),
                            deadline=Deadline.after(0.0))
    assert len(calls) == 0 and len(cands) > 0
    # an unlimited search on a conjunction that holds everywhere runs both rounds to their end
    calls.clear()
    never = Constraints(np.zeros((2, 5)), np.array([[1.0, 0, 0], [-1.0, 0, 0]]), np.array([-1.0, -1.0]),
                        np.zeros(2, dtype=bool))  # y0 <= -1 and y0 >= 1
    conjunct.search(inst.network, never, inst.lower, inst.upper, np.random.default_rng(0), steps=10)
    assert len(calls) == 10 + 20
