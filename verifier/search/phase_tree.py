"""The neuron-splitting proof of one disjunct as a tree of certificate nodes (``io.certificate``).

Branch and bound (``search.branch_bound.Engine`` with ``Settings.record_leaves``) keeps only its
closed sub-problems, each with its set of splits ``(layer, neuron, phase)``. ``phase_tree`` builds
the binary tree back from those sets: at a node, the neuron that every leaf of the node's group
splits (and the path does not yet) is the node's split; the group is partitioned by its phase (low
child: ``x <= 0``, phase -1; high child: ``x >= 0``, phase +1). A node whose group is one leaf with
exactly the path's splits is a leaf. Anything else (two leaves for one region, a phase nobody
covers) raises ``TreeError``: the leaves would not cover the root, and no certificate is made.

Each leaf closes the disjunct with the evidence of its record: ``{"empty": true}`` for crossed
bounds, else the best row (``{"lam": [[row, 1.0]]}``) with that row's lower slopes ``alpha`` per
activation layer (dense float64) and its split multipliers ``beta`` (sparse, nonzero ones only).
A leaf closed by the exact check (LP / MILP) has no such evidence: ``TreeError``. Layers are
written as activation-layer indices ``a`` (the number of layers with an activation before it).
"""

from __future__ import annotations

from ..io.certificate import encode_array
from ..network import Network


class TreeError(ValueError):
    """The recorded leaves do not make a certificate tree (the reason says why)."""


def activation_index(network: Network) -> dict[int, int]:
    """Network layer -> activation-layer index ``a`` (layers with an activation, counted in order)."""
    out, a = {}, 0
    for j, layer in enumerate(network.layers):
        if layer.activation is not None:
            out[j] = a
            a += 1
    return out


def leaf_evidence(leaf: dict, act_index: dict[int, int]) -> dict:
    """The EVIDENCE of one recorded leaf."""
    if leaf["how"] == "empty":
        return {"empty": True}
    if leaf["how"] != "bound":
        raise TreeError(f"a sub-problem was closed by the {leaf['how']} (LP / MILP), which a certificate cannot "
                        "record")
    r = leaf["row"]
    if not leaf["lower"][r] > 0.0:  # a strict row may close a sub-problem at 0; the checker needs > 0
        raise TreeError(f"a sub-problem is closed by a bound of {leaf['lower'][r]!r} (not > 0)")
    ev: dict = {"lam": [[int(r), 1.0]],
                "alpha": {str(act_index[j]): encode_array(a)
                          for j, a in sorted(leaf["alpha"].items())}}
    beta = {}
    for j, (idx, vals) in sorted(leaf["beta"].items()):
        pairs = [[int(i), float(v)] for i, v in zip(idx, vals) if v != 0.0]
        if pairs:
            beta[str(act_index[j])] = pairs
    if beta:
        ev["beta"] = beta
    return ev


def phase_tree(leaves: list[dict], disjunct: int, act_index: dict[int, int]) -> tuple[dict, int, int]:
    """The root NODE of the tree of ``leaves`` closing ``disjunct``, and its numbers of nodes and leaves."""
    if not leaves:
        raise TreeError("no closed sub-problem was recorded")
    keys = [{(j, i): phase for j, i, phase in leaf["splits"]} for leaf in leaves]
    root: dict = {"bounds": True, "close": {}}
    stack: list[tuple[list[int], frozenset, dict]] = [(list(range(len(leaves))), frozenset(), root)]
    n_nodes = n_leaves = 0
    while stack:
        group, path, node = stack.pop()
        n_nodes += 1
        node.setdefault("bounds", False)
        node.setdefault("close", {})
        if len(group) == 1 and len(keys[group[0]]) == len(path):
            node["close"][str(disjunct)] = leaf_evidence(leaves[group[0]], act_index)
            n_leaves += 1
            continue
        common = set.intersection(*(set(keys[g]) for g in group)) - path
        for j, i in sorted(common):
            low = [g for g in group if keys[g][(j, i)] < 0]
            high = [g for g in group if keys[g][(j, i)] > 0]
            if low and high:
                break
        else:
            raise TreeError(f"the recorded sub-problems do not cover the region of a node at depth {len(path)} "
                            f"({len(group)} sub-problems, no neuron split into both phases by all of them)")
        node["split"] = {"neuron": [act_index[j], int(i)], "at": 0.0}
        node["children"] = [{}, {}]
        stack.append((high, path | {(j, i)}, node["children"][1]))
        stack.append((low, path | {(j, i)}, node["children"][0]))
    return root, n_nodes, n_leaves
