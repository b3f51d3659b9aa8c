"""Regression tests from the adversarial review of the DAG work (residual / max / sparse networks,
fixed inputs folded into the biases, deadlines): each test is a case where the verifier answered,
or could answer, wrongly. The networks are in ``tests/helpers/review_nets.py``.

Truth is always the float32 evaluation the verifier promises to cover: onnxruntime for an ONNX
model, the network's own float32 forward pass (``NetworkOracle``) for one built in memory.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.checks import check_counterexample, ort_eval
from tests.helpers.review_nets import (
    HAT_CENTRE,
    fused_residual_onnx,
    random_dag_net,
    skip_max_net,
    wide_relu_chain,
)
from verifier import linear_query, load_model, make_spec, output_bounds
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


# ----------------------------------------------------------- onnxruntime fuses MatMul + residual Add
# onnxruntime (MatMulAddFusion) turns MatMul(h, W) + s, s input-dependent, into Gemm(h, W, C=s);
# MLAS adds C to the accumulator once per block of 256 products, so s takes part in ceil(K/256)
# roundings: the loader counts the non-contraction side of such an Add with the contraction's
# kmax + 1 roundings (io/onnx_ops_linear), as it does for a constant bias (Conv + Add fuses alike).


def test_fused_residual_add_is_never_proved(tmp_path):
    """Real arithmetic: ``y0 - y1 = 16 x0 >= 8`` on the box, so ``y0 - y1 <= 4`` is unsafe and
    never reached. onnxruntime at ``x = (0.5, 2^27)`` (inside the box, where the hat ``s`` is
    ``2^24 + 2^22``) computes ``y0 - y1 = 0``. The load-time and in-box self-checks pass (there
    ``s = 0``), and falsification replays only points of the largest modelled float deviation
    (far from the hat). Verify answered *holds* (all strategies, with and without falsification)."""
    path = fused_residual_onnx(tmp_path / "fused.onnx")
    lo, hi = np.array([0.5, -2.0 ** 30]), np.array([0.875, 2.0 ** 28])
    spec = make_spec(lo, hi, [["y0 - y1 <= 4"]])
    x = np.array([0.5, HAT_CENTRE])
    y = ort_eval(path, x[None, :])[0]
    assert y[0] - y[1] <= 4  # premise: onnxruntime violates the property at x ...
    check_counterexample(path, spec, x)  # ... which lies in the box
    net = load_model(path)
    for strategy in ("milp", "input-split"):
        r = verify(net, spec, timeout=120, options=Options(strategy=strategy))
        assert r.status != "holds", strategy


def test_fused_residual_add_bound_contains_onnxruntime(tmp_path):
    """The query API's lower bound of ``y0 - y1`` (5.5) lies above onnxruntime's value (0)."""
    path = fused_residual_onnx(tmp_path / "fused.onnx")
    lo, hi = np.array([0.5, -2.0 ** 30]), np.array([0.875, 2.0 ** 28])
    y = ort_eval(path, np.array([[0.5, HAT_CENTRE]]))[0]
    b = linear_query(load_model(path), lo, hi, [[1.0, -1.0]], method="symbolic")
    assert b.lower[0] <= y[0] - y[1]
