"""The certificate trees of the certifying searches: ``phase_tree`` rebuilds a neuron-splitting tree
from recorded leaves (and refuses leaves that do not cover the root, or that only an exact check
closed), ``BoxTreeRecorder`` writes down the input-splitting tree (every box a node, every disjunct
closed once per path)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.certificates import closed_on, paths
from tests.helpers.networks import ACT_BY_NAME, random_network
from verifier.io.certificate import decode_array
from verifier.io.replay import NetworkOracle
from verifier.search.box_tree import BoxTreeRecorder
from verifier.search.input_split import BabSettings, BabStatus, input_split
from verifier.search.phase_tree import TreeError, activation_index, phase_tree
from verifier.spec import Case, Constraints

ACTS = {0: 0, 2: 1}  # network layer -> activation-layer index (layers 0 and 2 carry the activations)


def _leaf(splits, how="bound", lower=1.0, n=4):
    return {"splits": splits, "how": how, "lower": np.array([-1.0, lower]), "row": 1,
            "alpha": {0: np.full(n, 0.5), 2: np.ones(n)},
            "beta": {0: (np.array([i for j, i, _ in splits if j == 0], dtype=int),
                         np.array([0.25 for j, _, _ in splits if j == 0])), 2: (np.zeros(0, int), np.zeros(0))}}


def test_leaves_of_a_binary_tree_make_the_tree():
    leaves = [_leaf([(0, 1, 1), (2, 3, 1)]), _leaf([(0, 1, 1), (2, 3, -1)]), _leaf([(0, 1, -1)], how="empty")]
    root, nodes, n_leaves = phase_tree(leaves, 5, ACTS)
    assert (nodes, n_leaves) == (5, 3)
    assert root["bounds"] is True and root["split"] == {"neuron": [0, 1], "at": 0.0}
    low, high = root["children"]
    assert low["close"] == {"5": {"empty": True}} and "children" not in low
    assert high["split"] == {"neuron": [1, 3], "at": 0.0} and high["bounds"] is False
    ev = high["children"][1]["close"]["5"]
    assert ev["lam"] == [[1, 1.0]] and ev["beta"] == {"0": [[1, 0.25]]}
    assert np.array_equal(decode_array(ev["alpha"]["0"]), np.full(4, 0.5))
    assert all(5 in closed_on(p) for p in paths(root))


def test_one_leaf_is_a_root_proof():
    root, nodes, n_leaves = phase_tree([_leaf([])], 0, ACTS)
    assert (nodes, n_leaves) == (1, 1) and "split" not in root and "lam" in root["close"]["0"]


@pytest.mark.parametrize("leaves, why", [
    ([_leaf([(0, 1, 1)])], "cover"),  # the low phase of neuron 1 is missing
    ([_leaf([(0, 1, 1), (2, 3, 1)]), _leaf([(0, 1, -1)])], "cover"),  # (+1, -3) missing
    ([_leaf([(0, 1, 1)]), _leaf([(0, 1, 1)]), _leaf([(0, 1, -1)])], "cover"),  # the same region twice
    ([_leaf([(0, 1, 1)]), _leaf([(0, 1, -1)], how="exact check")], "exact check"),
    ([_leaf([(0, 1, 1)]), _leaf([(0, 1, -1)], lower=0.0)], "not > 0"),
    ([], "no closed sub-problem"),
])
def test_leaves_that_make_no_certificate_are_refused(leaves, why):
    with pytest.raises(TreeError, match=why):
        phase_tree(leaves, 0, ACTS)


def test_activation_index_counts_the_layers_with_an_activation():
    net = random_network(0, ACT_BY_NAME["relu"], (2, 4, 4, 4, 2))
    assert activation_index(net) == {0: 0, 1: 1, 2: 2}


def test_box_tree_of_input_splitting():
    """The recorder's tree: a node per box bounded, splits by input, each disjunct closed once per path,
    input indices translated."""
    net = random_network(3, ACT_BY_NAME["relu"], (2, 12, 12, 2))
    lo, hi = -np.ones(2), np.ones(2)
    X = np.random.default_rng(0).uniform(lo, hi, (4000, 2))
    y = net.forward(X)
    t0, t1 = float(np.max(y[:, 0] - y[:, 1])), float(np.max(y[:, 1]))
    rows = [Constraints(np.zeros((1, 2)), np.array([[-1.0, 1.0]]), np.array([-t0 - 0.3]), np.array([False])),
            Constraints(np.zeros((1, 2)), np.array([[0.0, -1.0]]), np.array([-t1 - 0.3]), np.array([False]))]
    case = Case(lo, hi, tuple(rows))
    rec = BoxTreeRecorder([4, 7], np.array([10, 20]))
    settings = BabSettings(milp_unstable=-1, max_depth=40, lp_check=False, exact_leaves=False)
    out = input_split(net, case, list(rows), NetworkOracle(net), settings, None, recorder=rec)
    assert out.status == BabStatus.HOLDS
    assert rec.nodes == out.stats.explored and rec.nodes == 2 * rec.leaves - 1 and rec.leaves > 1
    for path in paths(rec.root):
        assert closed_on(path) == {4, 7}
        seen: list[int] = []
        for node, _ in path:
            seen += [int(j) for j in node["close"]]
            assert node["bounds"] == bool(node["close"])
        assert len(seen) == len(set(seen))  # each disjunct closed once on the path
        assert all(node["split"]["input"] in (10, 20) for node, k in path if k is not None)


def test_a_recorded_search_needs_bounds_only_proofs():
    net = random_network(0, ACT_BY_NAME["relu"], (2, 4, 2))
    case = Case(-np.ones(2), np.ones(2), (Constraints(np.zeros((1, 2)), np.array([[1.0, 0.0]]), np.array([0.0]),
                                                      np.array([False])),))
    with pytest.raises(ValueError, match="bounds-only"):
        input_split(net, case, list(case.unsafe), NetworkOracle(net), BabSettings(), None,
                    recorder=BoxTreeRecorder([0]))


def test_box_tree_records_optimised_slopes_and_they_give_the_bound():
    """With ``alpha_iters``, boxes the default bounds leave open may close with optimised lower slopes:
    the node's evidence carries them (per activation layer) and, recomputed on the node's box, they
    give a positive bound."""
    from tests.helpers.certificates import replay_neuron_leaf, walk
    from verifier.io.certificate import rows

    net = random_network(1, ACT_BY_NAME["leaky0.1"], (2, 16, 16, 2))
    lo, hi = -np.ones(2), np.ones(2)
    X = np.random.default_rng(0).uniform(lo, hi, (20000, 2))
    y = net.forward(X)
    t = float(np.max(y[:, 0] - y[:, 1]))
    cons = Constraints(np.zeros((1, 2)), np.array([[-1.0, 1.0]]), np.array([-t - 0.05]), np.array([False]))
    case = Case(lo, hi, (cons,))
    rec = BoxTreeRecorder([0], None, activation_index(net))
    settings = BabSettings(milp_unstable=-1, max_depth=40, lp_check=False, exact_leaves=False, alpha_iters=20,
                           alpha_gap=np.inf)
    out = input_split(net, case, [cons], NetworkOracle(net), settings, None, recorder=rec)
    assert out.status == BabStatus.HOLDS and out.stats.proved_by_alpha > 0
    entry = {"lower": list(lo), "upper": list(hi), "disjuncts": [rows(cons)]}
    with_alpha = [(node, path) for node, path in walk(rec.root) if "alpha" in node["close"].get("0", {})]
    assert with_alpha
    for node, path in with_alpha:
        assert sorted(node["close"]["0"]["alpha"]) == ["0", "1"]
        assert replay_neuron_leaf(net, entry, path, 0) > 0
