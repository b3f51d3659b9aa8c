"""Input splitting on DAG networks (residual skips, max windows): sub-box bounds, split choices and
attack points work on the DAG. The LP and MILP leaves are switched off here (their encoders are
tested in tests/milp): every sub-box is decided by bounds or by a replayed attack point."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.dag_nets import dag_forward, maxpool_network, residual_network
from verifier import make_spec
from verifier.io.replay import NetworkOracle
from verifier.search import input_split as bab
from verifier.search.fixed_inputs import FixedInputs

BUILDERS = {"residual": residual_network, "maxpool": maxpool_network}
NO_MILP = bab.BabSettings(milp_unstable=-1, max_depth=40)


@pytest.fixture(autouse=True)
def no_lp_leaves(monkeypatch):
    monkeypatch.setattr(bab, "highs_available", lambda: False)

    def no_milp(*args, **kwargs):
        raise AssertionError("a sub-box reached the MILP: the search should decide it by bounds")

    monkeypatch.setattr(bab, "milp_box", no_milp)


def _max_on_grid(net, lower, upper, free, n=301):
    g = np.stack(np.meshgrid(*(np.linspace(lower[i], upper[i], n) for i in free)), -1).reshape(-1, len(free))
    X = np.tile(lower, (len(g), 1))
    X[:, free] = g
    return float(net.forward(X)[:, 0].max())


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("seed", range(3))
def test_input_split_on_dag_nets(kind, seed):
    net = BUILDERS[kind](seed, n_in=2)
    lower, upper = -np.ones(2), np.ones(2)
    top = _max_on_grid(net, lower, upper, [0, 1])
    oracle = NetworkOracle(net)
    for t, expected in ((top + 0.05, "holds"), (top - 0.05, "violated")):
        case = make_spec(lower, upper, [[f"y0 >= {t!r}"]]).bind(2, 2).cases[0]
        out = bab.input_split(net, case, list(case.unsafe), oracle, NO_MILP, None)
        assert out.status == expected, out.reason
        if expected == "holds":
            # it had to split; boxes close by the symbolic bounds or by optimised slopes
            assert out.stats.explored > 1 and out.stats.proved_by_bounds + out.stats.proved_by_alpha >= 2
        else:
            x = out.counterexample.input
            assert dag_forward(net, x, np.float32)[0] >= t


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_input_split_over_the_free_inputs_of_a_dag_net(kind):
    net = BUILDERS[kind](1, n_in=5)
    lower = np.array([0.25, -1.0, -0.5, -1.0, 0.75])
    upper = np.array([0.25, 1.0, -0.5, 1.0, 0.75])
    fixed = FixedInputs.of_box(lower, upper)
    red, oracle = fixed.network(net), fixed.oracle(NetworkOracle(net))
    top = _max_on_grid(net, lower, upper, [1, 3])
    for t, expected in ((top + 0.05, "holds"), (top - 0.05, "violated")):
        case = fixed.case(make_spec(lower, upper, [[f"y0 >= {t!r}"]]).bind(5, 2).cases[0])
        out = bab.input_split(red, case, list(case.unsafe), oracle, NO_MILP, None)
        assert out.status == expected, out.reason
        if expected == "violated":  # judged on the full input; the counterexample is over the free ones
            x = fixed.expand(out.counterexample.input)
            assert dag_forward(net, x, np.float32)[0] >= t


# ------------------------------------------------------------------ the disjunct decision on a DAG
class _Problem:
    """What ``decide_disjunct`` reads of a solved MILP: where the input variables are."""

    def __init__(self, n: int) -> None:
        self.input_vars = np.arange(n)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_disjunct_decision_on_dag_nets(kind):
    from verifier.milp.solvers import SolveOutcome
    from verifier.search.disjunct import COUNTEREXAMPLE, OPEN, PROVED, decide_disjunct

    net = BUILDERS[kind](2, n_in=2)
    lower, upper = -np.ones(2), np.ones(2)
    top = _max_on_grid(net, lower, upper, [0, 1])
    oracle, rng = NetworkOracle(net), np.random.default_rng(0)

    def decide(t: float, status: str, x=None):
        case = make_spec(lower, upper, [[f"y0 >= {t!r}"]]).bind(2, 2).cases[0]
        values = None if x is None else np.asarray(x, dtype=np.float64)
        solved = SolveOutcome(status, values, "fake", 0.0)
        return decide_disjunct(net, case, case.unsafe[0], None, 1e-5, "cbc", None, oracle, rng,
                               problem=_Problem(2), solved=solved)

    assert decide(top + 0.05, "infeasible").kind == PROVED
    # a solver point that does not replay: the nearby attack on the DAG finds the violation
    corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    start = corners[np.argmin(net.forward(corners)[:, 0])]
    assert net.forward(start)[0] < top - 0.05
    out = decide(top - 0.05, "feasible", x=start)
    assert out.kind == COUNTEREXAMPLE and dag_forward(net, out.counterexample.input, np.float32)[0] >= top - 0.05
    assert decide(top + 0.05, "feasible", x=[0.0, 0.0]).kind == OPEN  # nothing replays above the maximum
