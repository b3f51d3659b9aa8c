"""Exact bound queries (``method="exact"``, ``search.exact_query``): the proved bounds contain every
value the network takes (a dense grid on 2-input nets), they are within the gap of the grid's
extrema (plus the grid's slack), each witness replays to the reported value, a short time leaves
sound bounds that are not exact, and networks the optimising bounds do not support (max pooling)
fall back to the MILP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.dag_nets import maxpool_network
from tests.helpers.networks import ACT_BY_NAME, RELU, lipschitz, network_to_onnx, random_network
from verifier import load_model
from verifier.io.replay import make_oracle
from verifier.search.branch_bound import Settings
from verifier.search.query import METHODS, linear_query, output_bounds

GAP = 1e-3
N_GRID = 401


def _grid(net, lo, hi, n=N_GRID):
    g = [np.linspace(lo[i], hi[i], n) for i in range(2)]
    X = np.array(np.meshgrid(*g)).reshape(2, -1).T
    spacing = float(np.linalg.norm((hi - lo) / (n - 1))) / 2  # every point of the box is this close to the grid
    return net.forward(X), spacing


def _check_witnesses(net, b, lo, hi, C, d):
    """Each witness lies in the box and the oracle's value there is the reported one, between the bounds."""
    oracle = make_oracle(net)
    for X, V in ((b.witness_lower, b.value_lower), (b.witness_upper, b.value_upper)):
        for r in range(C.shape[0]):
            x = X[r]
            assert np.all(x >= lo) and np.all(x <= hi)
            assert np.array_equal(x.astype(oracle.dtype).astype(float), x)  # exactly what was fed
            assert V[r] == pytest.approx(float(C[r] @ oracle.run(x) + d[r]), abs=0, rel=0)
    assert np.all(b.lower <= b.value_lower) and np.all(b.value_upper <= b.upper)


@pytest.mark.parametrize("seed,act", [(0, "relu"), (1, "relu"), (2, "relu"), (3, "leaky0.1"), (4, "leaky0.01")])
def test_exact_bounds_match_a_dense_grid(seed, act):
    net = random_network(seed, ACT_BY_NAME[act], widths=(2, 12, 12, 2))
    lo, hi = -np.ones(2), np.ones(2)
    Y, spacing = _grid(net, lo, hi)
    b = output_bounds(net, lo, hi, method="exact", gap=GAP, timeout=60)
    assert b.exact.all(), b.stats
    assert "input branching" in b.engine
    for j in range(2):
        slack = GAP + lipschitz(net, j) * spacing + 1e-6
        assert b.lower[j] <= Y[:, j].min() and b.upper[j] >= Y[:, j].max()  # sound: never inside the grid's range
        assert b.lower[j] >= Y[:, j].min() - slack and b.upper[j] <= Y[:, j].max() + slack  # and tight
        assert b.upper[j] - b.value_upper[j] <= GAP and b.value_lower[j] - b.lower[j] <= GAP
    _check_witnesses(net, b, lo, hi, np.eye(2), np.zeros(2))


def test_linear_query_with_offset_is_exact_and_sound():
    net = random_network(5, RELU, widths=(2, 10, 10, 3))
    lo, hi = np.array([-1.0, 0.0]), np.array([0.5, 2.0])
    C, d = np.array([[1.0, -1.0, 0.0], [0.5, 0.5, 2.0]]), np.array([0.25, -1.0])
    b = linear_query(net, lo, hi, C, d, method="exact", gap=GAP, timeout=60)
    Y, spacing = _grid(net, lo, hi)
    V = Y @ C.T + d
    assert b.exact.all()
    assert np.all(b.lower <= V.min(axis=0)) and np.all(b.upper >= V.max(axis=0))
    assert np.all(b.upper <= V.max(axis=0) + GAP + 3 * lipschitz(net) * spacing)
    _check_witnesses(net, b, lo, hi, C, d)


def test_many_inputs_few_unstable_go_to_the_milp():
    net = random_network(6, RELU, widths=(16, 12, 12, 1))
    lo, hi = -0.3 * np.ones(16), 0.3 * np.ones(16)
    b = output_bounds(net, lo, hi, method="exact", gap=GAP, timeout=60)
    assert b.engine == "milp"
    Y = net.forward(np.random.default_rng(0).uniform(lo, hi, (20000, 16)))
    assert b.lower[0] <= Y.min() and b.upper[0] >= Y.max()
    _check_witnesses(net, b, lo, hi, np.eye(1), np.zeros(1))


def test_neuron_branching_is_sound():
    net = random_network(6, RELU, widths=(16, 12, 12, 1))
    lo, hi = -0.3 * np.ones(16), 0.3 * np.ones(16)
    b = output_bounds(net, lo, hi, method="exact", gap=GAP, timeout=10, settings=Settings(branching="neuron"))
    assert "neuron branching" in b.engine
    Y = net.forward(np.random.default_rng(0).uniform(lo, hi, (20000, 16)))
    assert b.lower[0] <= Y.min() and b.upper[0] >= Y.max()
    sym = output_bounds(net, lo, hi, method="symbolic")
    assert b.lower[0] >= sym.lower[0] - 1e-12 and b.upper[0] <= sym.upper[0] + 1e-12
    _check_witnesses(net, b, lo, hi, np.eye(1), np.zeros(1))


def test_timeout_leaves_sound_bounds_not_exact():
    net = random_network(7, RELU, widths=(2, 64, 64, 64, 2))
    lo, hi = -3 * np.ones(2), 3 * np.ones(2)
    b = output_bounds(net, lo, hi, method="exact", gap=1e-9, timeout=0.2)
    Y, _ = _grid(net, lo, hi, 201)
    assert not b.exact.all()
    assert np.all(b.lower <= Y.min(axis=0)) and np.all(b.upper >= Y.max(axis=0))
    reasons = [s[e].get("reason") for s in b.stats for e in ("lower", "upper")]
    assert any(r and "timeout" in r for r in reasons)
    sym = output_bounds(net, lo, hi, method="symbolic")
    assert np.all(b.lower >= sym.lower - 1e-12) and np.all(b.upper <= sym.upper + 1e-12)


def test_max_pooling_falls_back_to_the_milp():
    net = maxpool_network(3)
    lo, hi = -np.ones(3), np.ones(3)
    b = output_bounds(net, lo, hi, method="exact", gap=GAP, timeout=60)
    assert b.engine == "milp"
    Y = net.forward(np.random.default_rng(1).uniform(lo, hi, (20000, 3)))
    assert np.all(b.lower <= Y.min(axis=0)) and np.all(b.upper >= Y.max(axis=0))
    _check_witnesses(net, b, lo, hi, np.eye(2), np.zeros(2))
    milp = output_bounds(net, lo, hi, method="milp", timeout=60)
    assert np.allclose(b.lower, milp.lower, atol=1e-9) and np.allclose(b.upper, milp.upper, atol=1e-9)


def test_onnx_model_witnesses_replay_in_onnxruntime(tmp_path):
    import onnxruntime as ort

    src = random_network(8, RELU, widths=(2, 10, 10, 2))
    path = network_to_onnx(src, RELU, tmp_path / "m.onnx")
    lo, hi = np.array([-0.5, -1.0]), np.array([1.0, 0.25])
    b = output_bounds(str(path), lo, hi, method="exact", gap=GAP, timeout=60)
    assert b.oracle == "onnxruntime" and b.exact.all()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for X, V in ((b.witness_lower, b.value_lower), (b.witness_upper, b.value_upper)):
        for j in range(2):
            y = sess.run(None, {"input": X[j].astype(np.float32).reshape(1, 2)})[0].ravel()
            assert float(y[j]) == V[j]
    out = json.loads(json.dumps(b.to_json()))
    assert out["method"] == "exact" and out["gap"] == GAP and out["exact"] == [True, True]
    assert out["witness"]["upper"]["value"] == b.value_upper.tolist()
    assert np.array_equal(np.array(out["witness"]["lower"]["input"]), b.witness_lower)
    assert set(out["stats"][0]) == {"lower", "upper"} and "explored" in out["stats"][0]["upper"]
    again = output_bounds(load_model(path), lo, hi, method="exact", gap=GAP, timeout=60)
    assert np.array_equal(again.witness_upper, b.witness_upper)  # seeded: the same query, the same witnesses


def test_exact_is_listed_and_other_methods_keep_their_json():
    assert "exact" in METHODS
    net = random_network(9, RELU, widths=(2, 6, 2))
    b = output_bounds(net, -np.ones(2), np.ones(2), method="symbolic")
    assert set(b.to_json()) == {"method", "time_s", "lower", "upper", "exact"}
    with pytest.raises(Exception, match="gap"):
        output_bounds(net, -np.ones(2), np.ones(2), method="exact", gap=-1.0)
