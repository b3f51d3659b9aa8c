"""Structural checks of proof certificates for the prover's tests (not a checker: the evidence is
re-evaluated with the verifier's own bound code, to catch what the prover encodes wrongly: row
and layer indices, alpha rows, beta signs, input indices after folding fixed inputs).

``paths(tree)`` walks a tree's root-to-leaf paths, ``walk(tree)`` its nodes; ``leaf_of(root, x, pres, acts)`` descends to
the leaf whose region holds the point ``x`` (pre-activations ``pres``); ``replay_input_node`` and
``replay_neuron_leaf`` recompute the bound a node's evidence claims.
"""

from __future__ import annotations

import numpy as np

from verifier.bounds import crown, linear_bounds, symbolic_bounds
from verifier.io.certificate import decode_array
from verifier.network import Network
from verifier.spec import Constraints


def paths(root: dict):
    """Every root-to-leaf path of a tree, as the list of (node, child index taken) pairs (leaf: None)."""
    stack = [(root, [])]
    while stack:
        node, path = stack.pop()
        if "children" not in node:
            yield path + [(node, None)]
            continue
        for k, child in enumerate(node["children"]):
            stack.append((child, path + [(node, k)]))


def walk(root: dict):
    """Every node with its path from the root (ancestors with the child taken, then ``(node, None)``)."""
    stack = [(root, [])]
    while stack:
        node, path = stack.pop()
        yield node, path + [(node, None)]
        for k, child in enumerate(node.get("children", ())):
            stack.append((child, path + [(node, k)]))


def closed_on(path) -> set[int]:
    return {int(j) for node, _ in path for j in node.get("close", {})}


def layer_of(network: Network) -> dict[int, int]:
    """Activation-layer index a -> network layer."""
    return {a: j for a, j in enumerate(j for j, ly in enumerate(network.layers) if ly.activation is not None)}


def leaf_path(root: dict, x: np.ndarray, pres: list[np.ndarray], layers: dict[int, int]):
    """The path to the leaf whose region contains input ``x`` (pre-activations ``pres`` at ``x``)."""
    node, path = root, []
    while "children" in node:
        s = node["split"]
        v = x[s["input"]] if "input" in s else pres[layers[s["neuron"][0]]][s["neuron"][1]]
        k = 0 if v <= s["at"] else 1
        path.append((node, k))
        node = node["children"][k]
    return path + [(node, None)]


def cons_of(rows: list[dict], n_in: int, n_out: int) -> Constraints:
    ax, ay = np.zeros((len(rows), n_in)), np.zeros((len(rows), n_out))
    for k, r in enumerate(rows):
        for i, v in r["ax"]:
            ax[k, i] = v
        for i, v in r["ay"]:
            ay[k, i] = v
    return Constraints(ax, ay, np.array([r["rhs"] for r in rows]), np.array([r["strict"] for r in rows]))


def region(case: dict, path) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    """The box and the neuron splits ``(a, i, phase)`` of the node at the end of ``path``."""
    lo, hi = np.array(case["lower"]), np.array(case["upper"])
    splits = []
    for node, k in path[:-1]:
        s = node["split"]
        if "input" in s:
            if k == 0:
                hi[s["input"]] = min(hi[s["input"]], s["at"])
            else:
                lo[s["input"]] = max(lo[s["input"]], s["at"])
        else:
            splits.append((s["neuron"][0], s["neuron"][1], -1 if k == 0 else 1))
    return lo, hi, splits


def replay_input_node(network: Network, case: dict, path, j: int) -> float:
    """The lower bound of ``lam . (row - rhs)`` that the closing evidence of disjunct ``j`` at the end of an
    input-split ``path`` claims, recomputed on the node's box (``symbolic_bounds`` + ``linear_bounds``)."""
    lo, hi, splits = region(case, path)
    assert not splits
    ev = path[-1][0]["close"][str(j)]
    (r, lam), = ev["lam"]
    cons = cons_of(case["disjuncts"][j], network.n_inputs, network.n_outputs)
    b = symbolic_bounds(network, lo, hi)
    low, _ = linear_bounds(network, b, lo, hi, cons.ay[r:r + 1], None, cons.ax[r:r + 1])
    return float(lam * (low[0] - cons.rhs[r]))


def replay_neuron_leaf(network: Network, case: dict, path, j: int) -> float:
    """The bound the leaf evidence of disjunct ``j`` claims: back-substitution from the root's symbolic
    bounds clamped by the path's splits, with the leaf's alpha and beta (``crown.bound``)."""
    lo, hi, splits = region(case, path)
    ev = path[-1][0]["close"][str(j)]
    layers = layer_of(network)
    prob = crown.Problem(network, symbolic_bounds(network, lo, hi), lo, hi)
    batch = prob.root()
    for a, i, phase in splits:
        batch.split(0, layers[a], i, phase)
    if ev.get("empty"):
        return np.inf if batch.empty()[0] else -np.inf
    (r, lam), = ev["lam"]
    cons = cons_of(case["disjuncts"][j], network.n_inputs, network.n_outputs)
    alpha = prob.init_alpha(batch, 1)
    for a, arr in ev.get("alpha", {}).items():
        alpha[layers[int(a)]] = decode_array(arr).reshape(1, 1, -1)
    beta = prob.zero_beta(batch, 1)
    for a, pairs in ev.get("beta", {}).items():
        for i, v in pairs:
            j_ = layers[int(a)]
            beta[j_][0, 0, i] = v * batch.splits[j_][0, i]  # a certificate's beta >= 0; crown's: signed
    res = crown.bound(prob, batch, cons.ay[r:r + 1], -cons.rhs[r:r + 1], cons.ax[r:r + 1], alpha, beta)
    return float(lam * res.lower[0, 0])
