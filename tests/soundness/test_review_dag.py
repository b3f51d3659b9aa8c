"""Regression tests from the adversarial review of the DAG work (residual / max / sparse networks,
fixed inputs folded into the biases, deadlines): each test is a case where the verifier answered,
or could answer, wrongly. The networks are in ``tests/helpers/review_nets.py``.

Truth is always the float32 evaluation the verifier promises to cover: onnxruntime for an ONNX
model, the network's own float32 forward pass (``NetworkOracle``) for one built in memory.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.review_nets import (
    random_dag_net,
    skip_max_net,
    wide_relu_chain,
)
from verifier import make_spec, output_bounds
from verifier.io.replay import NetworkOracle
from verifier.verify import Options, verify


def _best_sample(net, lower, upper, j: int, seed: int = 0, n: int = 500) -> tuple[np.ndarray, float, float]:
    """The float32 sample with the largest output ``j``, that output, and the sampled range of ``j``."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(lower, upper, (n, lower.size)).astype(np.float32).astype(np.float64)
    oracle = NetworkOracle(net)
    ys = np.array([oracle.run(x) for x in xs])[:, j]
    i = int(np.argmax(ys))
    return xs[i], float(ys[i]), float(ys.max() - ys.min())


# ------------------------------------------------------------------------------------ CBC's claims
# Found by fuzzing knife-edge-free properties ("y_j >= best sample - 5% of the range": a whole
# region of the box violates them). The bundled CBC with '-primalTolerance 1e-9 -preprocess off'
# answered "Problem proven infeasible" on these feasible MILPs (its LP relaxation is feasible and
# HiGHS, or CBC at its default primal tolerance 1e-7, finds the point): verify said *holds*. A
# tighter feasibility tolerance makes an infeasibility claim *less* reliable (the solver's own
# float noise exceeds it), so CBC now runs at 1e-7; the margin tau covers the enlargement.
@pytest.mark.parametrize("seed, j", [(55, 0), (271, 0), (271, 1)])
def test_cbc_infeasibility_claims_on_a_feasible_chain_milp(seed, j):
    net, lo, hi = wide_relu_chain(seed)
    x, y, width = _best_sample(net, lo, hi, j)
    threshold = y - 0.05 * width
    spec = make_spec(lo, hi, [[f"y{j} >= {threshold!r}"]]).bind(net.n_inputs, net.n_outputs)
    assert spec.cases[0].violated_at(x, NetworkOracle(net).run(x))  # premise: a sampled counterexample
    r = verify(net, spec, timeout=60, solver="cbc", options=Options(falsify=False, strategy="milp"))
    assert r.status == "violated", (r.status, r.reason, r.stats.get("disjunct_outcomes"))
    assert spec.cases[0].violated_at(r.counterexample.input, NetworkOracle(net).run(r.counterexample.input))


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("delta", [0.0, 10.0])
def test_cbc_claim_on_a_folded_skip_max_net(fold, delta):
    """Box 0 of ``skip_max_net(7)`` fixes 6 of its 7 inputs; with them folded, CBC claimed the
    disjunct MILP infeasible even 10 below the sampled maximum (the whole box violates)."""
    net, lowers, uppers = skip_max_net(7)
    x, y, _ = _best_sample(net, lowers[0], uppers[0], 1)
    spec = make_spec(lowers, uppers, [[f"y1 >= {y - delta!r}"]]).bind(net.n_inputs, net.n_outputs)
    assert spec.cases[0].violated_at(x, NetworkOracle(net).run(x))
    r = verify(net, spec, timeout=60, solver="cbc",
               options=Options(falsify=False, strategy="milp", fold_fixed_inputs=fold))
    assert r.status == "violated", (r.status, r.reason, r.stats.get("disjunct_outcomes"))


def _samples(net, lower, upper, n: int = 2000, seed: int = 0) -> np.ndarray:
    """Float32 outputs at the box corners and ``n`` uniform float32 points."""
    import itertools

    rng = np.random.default_rng(seed)
    xs = rng.uniform(lower, upper, (n, lower.size))
    xs = np.vstack([xs, np.array(list(itertools.product(*zip(lower, upper))))]).astype(np.float32)
    oracle = NetworkOracle(net)
    return np.array([oracle.run(x) for x in xs.astype(np.float64)])


# Large magnitudes (neuron bounds 1e6 .. 1e15): HiGHS at feasibility tolerance 1e-9 returned MILP
# "bounds" that cut off most of the sampled outputs (seed 49: lower bound 2.7e7 above the upper
# bound 8.4e4, both flagged exact), and CBC claimed a feasible disjunct MILP infeasible (seed 40,
# magnitude 1.7e7) even at tolerance 1e-7. Such MILPs are not trusted any more (numerical_doubt at
# 1e6): the query keeps the LP bounds, a disjunct stays open.
@pytest.mark.parametrize("seed", [5, 10, 40, 49, 73])
def test_milp_bounds_of_large_magnitude_dag_nets_contain_the_samples(seed):
    net, lo, hi = random_dag_net(seed)
    ys = _samples(net, lo, hi)
    b = output_bounds(net, lo, hi, method="milp", timeout=60)
    assert np.all(b.lower <= ys.min(axis=0)) and np.all(ys.max(axis=0) <= b.upper), (b.lower, b.upper, ys.min(0),
                                                                                       ys.max(0))


def test_cbc_claim_at_large_magnitude_is_no_proof():
    net, lo, hi = random_dag_net(40)
    x = np.array([0.2945016920566559, -0.21822437644004822])
    y = NetworkOracle(net).run(x)
    spec = make_spec(lo, hi, [[f"y1 <= {float(y[1])!r}"]]).bind(net.n_inputs, net.n_outputs)
    assert spec.cases[0].violated_at(x, y)
    r = verify(net, spec, timeout=60, solver="cbc", options=Options(falsify=False, strategy="milp"))
    assert r.status != "holds", r.stats.get("disjunct_outcomes")
