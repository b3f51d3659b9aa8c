"""Inputs fixed by the box are folded into the biases (``search.fixed_inputs``): the reduced network
computes the same function over the free inputs (DAG nets included), its bounds contain the
float32 outputs of the full network, verdicts are the same with and without folding, and
counterexamples come back over the full input (sequential and ``--jobs 2``)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from tests.helpers.checks import check_counterexample
from tests.helpers.dag_nets import dag_forward, maxpool_network, residual_network
from tests.helpers.networks import RELU, network_to_onnx, random_network
from verifier import Options, make_spec, verify
from verifier.bounds import interval_bounds, symbolic_bounds
from verifier.io.replay import NetworkOracle
from verifier.search.fixed_inputs import FixedInputs, ReducedCase
from verifier.spec import Case, Constraints


def _box(n: int, free: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A box with the inputs ``free`` in [-1, 1] and the others fixed at float32 values."""
    rng = np.random.default_rng(seed)
    lower = rng.uniform(-1, 1, n).astype(np.float32).astype(np.float64)
    upper = lower.copy()
    lower[free], upper[free] = -1.0, 1.0
    return lower, upper


@pytest.mark.parametrize("build", [residual_network, maxpool_network])
@pytest.mark.parametrize("seed", range(3))
def test_reduced_dag_network_is_the_same_function(build, seed):
    net = build(seed, n_in=5)
    lower, upper = _box(5, [1, 3], seed)
    fixed = FixedInputs.of_box(lower, upper)
    assert fixed.free.tolist() == [1, 3] and fixed.fixed.tolist() == [0, 2, 4]
    red = fixed.network(net)
    assert red.n_inputs == 2 and red.source is None and "onnx_bytes" not in red.meta
    X = np.random.default_rng(seed).uniform(-1, 1, (50, 2))
    np.testing.assert_allclose(red.forward(X), net.forward(fixed.expand(X)), rtol=1e-12, atol=1e-12)
    _, dev_red = red.float_deviation(X)
    _, dev_full = net.float_deviation(fixed.expand(X))
    assert np.all(dev_red >= dev_full) and np.all(dev_red <= dev_full * (1 + 1e-9) + 1e-30)


@pytest.mark.parametrize("build", [residual_network, maxpool_network])
@pytest.mark.parametrize("method", [interval_bounds, symbolic_bounds])
def test_reduced_bounds_contain_the_full_float32_outputs(build, method):
    net = build(4, n_in=5)
    lower, upper = _box(5, [0, 4], 4)
    fixed = FixedInputs.of_box(lower, upper)
    b = method(fixed.network(net), lower[fixed.free], upper[fixed.free])
    oracle = NetworkOracle(net)
    X = np.random.default_rng(0).uniform(-1, 1, (200, 2)).astype(np.float32)
    Y = np.array([oracle.run(x) for x in fixed.expand(X)])
    assert np.all(Y >= b.output_lower) and np.all(Y <= b.output_upper)
    np.testing.assert_array_equal(Y[0], dag_forward(net, fixed.expand(X[0]), np.float32))


def test_of_box_keeps_one_input_free_and_skips_unrepresentable_values():
    x = np.array([0.5, 0.25, 0.1])  # 0.1 is no float32 number: no float32 input can sit there
    fixed = FixedInputs.of_box(x, x)
    assert fixed.free.tolist() == [2] and fixed.fixed.tolist() == [0, 1]
    assert FixedInputs.of_box(x[:2], x[:2]).free.tolist() == [0]  # all fixed: the first stays free
    assert FixedInputs.of_box(x[:2], x[:2] + 1) is None
    assert FixedInputs.of_box(np.array([0.1, 0.5]), np.array([0.1, 0.5]), np.float64).fixed.tolist() == [1]


def test_constraint_rows_over_fixed_inputs_move_to_the_right_hand_side_rounded_up():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 6)
    lower, upper = x.copy(), x.copy()
    lower[2], upper[2] = -1, 1
    fixed = FixedInputs.of_box(lower, upper, np.float64)
    for _ in range(50):
        ax, ay, rhs = rng.standard_normal((1, 6)), rng.standard_normal((1, 2)), rng.standard_normal(1)
        red = fixed.constraints(Constraints(ax, ay, rhs, np.array([True])))
        exact = Fraction(rhs[0]) - sum(Fraction(ax[0, i]) * Fraction(x[i]) for i in fixed.fixed)
        assert Fraction(red.rhs[0]) >= exact and red.rhs[0] - float(exact) < 1e-12
        assert red.strict[0] and red.ax.shape == (1, 1) and red.ax[0, 0] == ax[0, 2]
    plain = fixed.constraints(Constraints(np.zeros((1, 6)), ay, rhs, np.array([False])))
    assert plain.rhs[0] == rhs[0]  # rows without input terms are kept exactly


def test_reduced_case_judges_replays_on_the_full_case():
    lower, upper = _box(4, [1], 0)
    cons = Constraints(np.array([[0.0, 0.0, 1.0, 0.0]]), np.array([[1.0]]), np.array([0.0]), np.array([False]))
    full = Case(lower, upper, (cons,))
    fixed = FixedInputs.of_box(lower, upper)
    red = fixed.case(full)
    assert isinstance(red, ReducedCase) and red.lower.tolist() == [-1.0]
    y = np.array([-lower[2]])  # exactly on the row: x2 + y0 <= 0
    assert red.violated_at(np.array([0.5]), y) == full.violated_at(fixed.expand(np.array([0.5])), y) is True
    assert not red.violated_at(np.array([0.5]), y + 1e-9)
    sub = replace(red, lower=np.array([0.0]), upper=np.array([0.5]))  # a sub-box keeps the judge
    assert isinstance(sub, ReducedCase) and not sub.violated_at(np.array([0.75]), y)


def _verdicts(net, spec, **kw):
    on = verify(net, spec, options=Options(timeout=60, **kw))
    off = verify(net, spec, options=Options(timeout=60, fold_fixed_inputs=False, **kw))
    return on, off


def _grid_outputs(net, lower, upper, free, n=201):
    """Outputs on an ``n`` x ``n`` grid over the two free inputs."""
    g = np.stack(np.meshgrid(*(np.linspace(lower[i], upper[i], n) for i in free)), -1).reshape(-1, 2)
    X = np.tile(lower, (len(g), 1))
    X[:, free] = g
    return net.forward(X)


@pytest.mark.parametrize("strategy", ["milp", "input-split"])
@pytest.mark.parametrize("seed", range(4))
def test_same_verdicts_with_and_without_folding(strategy, seed):
    net = random_network(seed, RELU, widths=(6, 10, 10, 2))
    lower, upper = _box(6, [1, 4], seed)
    ys = _grid_outputs(net, lower, upper, [1, 4])[:, 0]
    span = ys.max() - ys.min()
    # just above the maximum (the MILP or the split must prove it), and below it; the second
    # disjunct has a term on the fixed input x3 (moved to the right-hand side)
    for t, expected in ((ys.max() + 0.02 * span, "holds"), (ys.max() - 0.05 * span, "violated")):
        spec = make_spec(lower, upper, [[f"y0 >= {float(t)!r}"], [f"y1 - x3 >= {float(t) + 5!r}"]])
        on, off = _verdicts(net, spec, strategy=strategy, falsify=False)
        assert on.status == off.status == expected, (on.reason, off.reason)
        assert on.stats["fixed_inputs"] == {0: 4} and "fixed_inputs" not in off.stats
        assert on.stats["disjunct_outcomes"] == off.stats["disjunct_outcomes"]
        if expected == "violated":
            x = on.counterexample.input
            assert x.size == 6 and np.array_equal(x[[0, 2, 3, 5]], lower[[0, 2, 3, 5]])


def test_few_free_inputs_choose_input_splitting():
    net = random_network(1, RELU, widths=(40, 12, 2))
    lower, upper = _box(40, [7, 30], 1)
    ys = net.forward(np.random.default_rng(0).uniform(lower, upper, (4000, 40)))[:, 0]
    spec = make_spec(lower, upper, [[f"y0 >= {float(ys.max() + 0.01 * (ys.max() - ys.min()))!r}"]])
    on, off = _verdicts(net, spec, falsify=False)
    assert on.status == off.status == "holds", (on.reason, off.reason)
    assert on.stats["strategy"] == "input-split" and off.stats["strategy"] == "neuron-split"


@pytest.mark.parametrize("onnx_model", [False, True])
def test_parallel_input_split_expands_counterexamples(tmp_path, onnx_model):
    net = random_network(5, RELU, widths=(8, 12, 12, 2))
    lower, upper = _box(8, [2, 6], 5)
    ys = net.forward(np.random.default_rng(0).uniform(lower, upper, (4000, 8)))[:, 1]
    t = float(ys.max() - 0.02 * (ys.max() - ys.min()))
    spec = make_spec(lower, upper, [[f"y1 >= {t!r}"]])
    model = network_to_onnx(net, RELU, tmp_path / "net.onnx") if onnx_model else net
    res = verify(model, spec, options=Options(strategy="input-split", falsify=False, jobs=2, parallel_after=0,
                                              timeout=120))
    assert res.status == "violated", res.reason
    assert res.stats["parallel_jobs"] == 2 and res.stats["fixed_inputs"] == {0: 6}
    x = res.counterexample.input
    assert x.size == 8 and np.array_equal(np.delete(x, [2, 6]), np.delete(lower, [2, 6]))
    if onnx_model:
        check_counterexample(model, spec.bind(8, 2), x, res.counterexample.output)
    else:
        np.testing.assert_array_equal(res.counterexample.output, dag_forward(net, x, np.float32))


@pytest.mark.parametrize("falsify", [True, False])
def test_several_boxes_each_fold_their_own_inputs(falsify):
    net = random_network(2, RELU, widths=(6, 10, 10, 2))
    cands = [_box(6, free, seed) for seed, free in zip(range(10, 16), ([0, 1], [3], [2, 5]) * 2)]
    tops = [float(net.forward(np.random.default_rng(0).uniform(lo, hi, (40000, 6)))[:, 0].max()) for lo, hi in cands]
    order = np.argsort(tops)
    boxes = [cands[i] for i in order[-3:]]  # the box reaching highest comes last
    t = (tops[order[-2]] + tops[order[-1]]) / 2  # holds on the first two boxes, not on the last
    assert tops[order[-1]] - tops[order[-2]] > 0.05, "the boxes must differ clearly"
    spec = make_spec([b[0] for b in boxes], [b[1] for b in boxes], [[f"y0 >= {t!r}"]])
    res = verify(net, spec, options=Options(timeout=60, falsify=falsify, strategy="milp"))
    assert res.status == "violated", res.reason
    assert res.stats["fixed_inputs"] == {k: 6 - int(np.count_nonzero(b[1] > b[0])) for k, b in enumerate(boxes)}
    if not falsify:  # the first two boxes were proved (their views dropped) before the last one
        counts = res.stats["disjunct_outcomes"]
        assert counts["proved_by_bounds"] + counts["proved_by_milp"] + counts["proved_by_lp"] == 2
    cex = res.counterexample
    assert cex.case_index == 2 and cex.input.size == 6
    lo, hi = boxes[2]
    assert np.all(lo <= cex.input) and np.all(cex.input <= hi) and cex.output[0] >= t
    np.testing.assert_array_equal(cex.output, dag_forward(net, cex.input, np.float32))
