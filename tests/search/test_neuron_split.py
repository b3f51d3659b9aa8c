"""Neuron-splitting branch and bound (``search.branch_bound`` / ``search.neuron_split``): proofs and
counterexamples agree with the exact MILP optimum, exact bound queries meet the true extrema, and
the engine's limits (time, queue memory) give open answers, never proofs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.helpers.milp_checks import extreme
from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.budget import Deadline
from verifier.io.replay import NetworkOracle
from verifier.milp.encoding import encode
from verifier.network import Activation, Layer, Network
from verifier.search.branch_bound import Settings
from verifier.search.neuron_split import minimise, prove_disjunct
from verifier.spec import Case, Constraints


def _net(seed: int, n_in: int = 6, width: int = 12, depth: int = 3, n_out: int = 2, kind: str = "relu") -> Network:
    rng = np.random.default_rng(seed)
    sizes = [n_in] + [width] * depth + [n_out]
    layers = []
    for i in range(len(sizes) - 1):
        W = (rng.normal(size=(sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])).astype(np.float32).astype(float)
        b = (rng.normal(size=sizes[i + 1]) * 0.3).astype(np.float32).astype(float)
        act = None if i == len(sizes) - 2 else (Activation("leaky", alpha=0.125) if kind == "leaky" else Activation("relu"))
        layers.append(Layer(W, b, act))
    return Network(tuple(layers), (n_in,), (n_out,))


#: the input box [-R, R]^n of the neuron-splitting tests (a box on which the root bounds leave a
#: few dozen neurons unstable, the regime neuron splitting is for)
R = 0.4


def _case(net: Network, c: np.ndarray, t: float) -> Case:
    """Unsafe: ``c @ y >= t`` over [-R, R]^n."""
    n = net.n_inputs
    cons = Constraints(np.zeros((1, n)), -c[None, :], np.array([-t]), np.array([False]))
    return Case(-R * np.ones(n), R * np.ones(n), (cons,))


def _true_max(net: Network, c: np.ndarray) -> float:
    lo, hi = -R * np.ones(net.n_inputs), R * np.ones(net.n_inputs)
    b = symbolic_bounds(net, lo, hi)
    return extreme(net, encode(net, b, lo, hi), c, maximize=True)[0]


@pytest.mark.parametrize("close_iters", [0, 20])
@pytest.mark.parametrize("kind", ["relu", "leaky"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prove_and_refute_agree_with_the_milp_optimum(seed, kind, close_iters):
    net = _net(seed, kind=kind)
    c = np.array([1.0, -1.0])
    top = _true_max(net, c)
    lo, hi = -R * np.ones(net.n_inputs), R * np.ones(net.n_inputs)
    b = symbolic_bounds(net, lo, hi)
    assert b.n_unstable(net) >= 8  # the search has something to split
    oracle = NetworkOracle(net)
    settings = Settings(batch=8, leaf_unstable=6, close_iters=close_iters)  # 20: the closing pass (bound multipliers)
    above = prove_disjunct(net, b, _case(net, c, top + 0.02), _case(net, c, top + 0.02).unsafe[0], oracle,
                           Deadline.after(60), settings=settings)
    assert above.kind == "proved", above.reason
    below = _case(net, c, top - 0.02)
    found = prove_disjunct(net, b, below, below.unsafe[0], oracle, Deadline.after(60), settings=settings)
    assert found.kind == "counterexample"
    x = found.counterexample.input
    assert below.contains(x)
    y = oracle.run(x.astype(np.float32))
    assert c @ y >= top - 0.02


@pytest.mark.parametrize("close_iters", [0, 20])
@pytest.mark.parametrize("branching", ["neuron", "input"])
@pytest.mark.parametrize("seed", [3, 4])
def test_exact_minimum_meets_the_milp_optimum(seed, branching, close_iters):
    net = _net(seed, n_in=3)
    c = np.array([0.5, 1.0])
    lo, hi = -R * np.ones(3), R * np.ones(3)
    b = symbolic_bounds(net, lo, hi)
    true_min = -_true_max(net, -c)
    got = minimise(net, b, lo, hi, c, 0.0, 1e-3, Deadline.after(60), NetworkOracle(net),
                   Settings(batch=8, branching=branching, leaf_unstable=6, close_iters=close_iters))
    assert got.exact, got.reason
    assert got.lower <= true_min + 1e-6  # sound
    assert got.value >= true_min - 1e-5 and got.value - got.lower <= 1e-3  # an attained value, within the gap


def test_dense_grid_maximum_of_a_two_input_net():
    net = _net(8, n_in=2, width=10, depth=2, n_out=1)
    g = np.linspace(-1, 1, 401)
    X = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    grid_max = float(net.forward(X).max())
    lo, hi = -np.ones(2), np.ones(2)
    got = minimise(net, symbolic_bounds(net, lo, hi), lo, hi, np.array([-1.0]), 0.0, 1e-4, Deadline.after(60),
                   NetworkOracle(net), Settings(branching="input"))
    assert got.exact
    assert -got.lower >= grid_max - 1e-9  # the proved maximum is above every grid value ...
    assert -got.lower <= grid_max + 0.05  # ... and close to them (the grid's spacing allows this much)


def test_time_and_memory_limits_leave_the_question_open():
    net = _net(5, n_in=8, width=32, depth=3)
    c = np.array([1.0, -1.0])
    lo, hi = -R * np.ones(8), R * np.ones(8)
    b = symbolic_bounds(net, lo, hi)
    top = float(linear_bounds(net, b, lo, hi, c[None, :])[1][0])
    case = _case(net, c, top - 1e-3)  # just below the symbolic upper bound: the root cannot decide it
    oracle = NetworkOracle(net)
    out = prove_disjunct(net, b, case, case.unsafe[0], oracle, Deadline.after(0.05), settings=Settings(batch=2))
    assert out.kind in ("timeout", "proved", "counterexample")
    if out.kind == "timeout":
        assert "timeout" in out.reason
    tiny = prove_disjunct(net, b, case, case.unsafe[0], oracle, Deadline.after(60),
                          settings=Settings(batch=2, max_memory_mb=1e-4))
    assert tiny.kind != "proved" or tiny.stats.batches == 0  # no proof past the queue's limit
    if tiny.kind == "open":
        assert "memory limit" in tiny.reason


# ------------------------------------------------------------------------------ through verify
def _spec_pair(net: Network, seed: int):
    """Two specs over a 20-input box (auto strategy: neuron splitting) around the exact maximum
    of ``y0 - y1`` (MILP): one holding, one violated, each with a second disjunct that only the
    bounds of its row refute (an input term)."""
    from verifier import make_spec

    rng = np.random.default_rng(seed)
    lower = rng.uniform(-0.2, 0.0, 20)
    upper = lower + 0.2
    b = symbolic_bounds(net, lower, upper)
    c = np.array([1.0, -1.0])
    top = extreme(net, encode(net, b, lower, upper), c, maximize=True)[0]
    y1_hi = float(linear_bounds(net, b, lower, upper, np.array([[0.0, 1.0]]))[1][0])
    out = []
    for t in (top + 0.05, top - 0.05):
        out.append(make_spec(lower, upper, [[f"y0 - y1 >= {float(t)!r}"],
                                            [f"y1 - x3 >= {y1_hi - float(lower[3]) + 0.01!r}"]]))
    return out


@pytest.mark.parametrize("jobs", [1, 2])
def test_verify_uses_neuron_splitting_and_agrees_with_the_milp(jobs):
    from verifier import Options, verify

    net = _net(11, n_in=20, width=24, depth=3)
    for spec, expected in zip(_spec_pair(net, 1), ("holds", "violated")):
        res = verify(net, spec, options=Options(timeout=60, jobs=jobs, falsify=False))
        ref = verify(net, spec, options=Options(timeout=60, strategy="milp", falsify=False))
        assert res.stats["strategy"] == "neuron-split"
        assert res.status == ref.status == expected, (res.reason, ref.reason)
        if expected == "violated":
            case = spec.cases[res.counterexample.case_index]
            assert case.violated_at(res.counterexample.input, res.counterexample.output)


def test_recorded_leaves_cover_the_box_and_each_is_closed():
    """With ``record_leaves``, a proof leaves a tree of closed sub-problems: every sampled input
    lies in some leaf (the splits are exhaustive), and each leaf is closed by a positive row bound,
    by crossed bounds or by the exact check. The best bound over time never decreases."""
    from verifier.search.branch_bound import Engine

    net = _net(2, width=10)
    c = np.array([1.0, -1.0])
    top = _true_max(net, c)
    case = _case(net, c, top + 0.05)
    cons = case.unsafe[0]
    b = symbolic_bounds(net, case.lower, case.upper)
    from verifier.bounds import crown

    eng = Engine(crown.Problem(net, b, case.lower, case.upper), cons.ay, cons.ax, -cons.rhs, cons.strict,
                 Settings(batch=4, record_leaves=True))
    status, _low, reason = eng.run(Deadline.after(60), lambda: 0.0, lambda X: False)
    assert status == "proved", reason
    assert len(eng.leaves) > 4  # a real tree, not a root proof
    assert all(leaf["how"] != "bound" or leaf["lower"].max() > 0 for leaf in eng.leaves)
    X = np.random.default_rng(0).uniform(case.lower, case.upper, (5000, net.n_inputs))
    pres = net.pre_activations(X)
    covered = np.zeros(len(X), bool)
    for leaf in eng.leaves:
        inside = np.ones(len(X), bool)
        for j, i, phase in leaf["splits"]:
            inside &= pres[j][:, i] >= 0 if phase > 0 else pres[j][:, i] <= 0
        covered |= inside
    assert covered.all()
    bounds_over_time = [t[1] for t in eng.stats.trace]
    assert all(b2 >= b1 - 1e-12 for b1, b2 in itertools.pairwise(bounds_over_time))
