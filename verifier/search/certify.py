"""The certifying search: a proof of one case that the certificate checker can recompute.

Everything the checker uses is the case's box, the splits, the default relaxation
(``bounds.symbolic_bounds`` and ``linear_bounds``) and, per leaf, the multipliers ``lam`` and the
parameters ``alpha`` / ``beta`` of its bound. So the proof is searched with bounds only:

- disjuncts that the case's own symbolic bounds refute close at the root of one tree (``lam`` on
  the refuting row);
- networks verified by input splitting: ``input_split`` with the LP check off and no MILP leaves
  (a box is split further instead; a box too deep or that cannot be split ends the attempt); a box
  whose best row nearly closes tries ``ALPHA_ITERS`` steps of optimised lower slopes (recorded as
  the evidence's ``alpha``) where the normal search would try the LP; the tree is written down by
  ``box_tree.BoxTreeRecorder``: one tree for all the remaining disjuncts;
- networks verified by neuron splitting: per disjunct, branch and bound from the case's symbolic
  bounds (no LP tightening, no MILP for few unstable neurons, no exact leaf check), its recorded
  leaves rebuilt into a tree by ``phase_tree``: one tree per disjunct.

The search runs over the case's free inputs (``search.fixed_inputs`` folded the fixed ones into the
network); input indices are translated back with ``inputs`` (the model's index of each free
input). Disjunct, row and layer indices are those of the model and the spec already. An outcome is
a ``CaseProof``, a counterexample (replayed: the case is violated) or ``NotCertified`` (why).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..bounds import LayerBounds, linear_bounds, symbolic_bounds
from ..budget import Deadline
from ..io.replay import Counterexample
from ..network import Network
from ..spec import Case
from .box_tree import BoxTreeRecorder
from .input_split import BabSettings, BabStatus, input_split
from .neuron_split import prove_case
from .phase_tree import TreeError, activation_index, phase_tree

#: input splitting without MILP leaves may go deeper than the normal search (60) before it gives up
MAX_DEPTH = 120
#: gradient steps on the lower slopes of a box the default bounds leave open, before it is split
#: (with ``BabSettings.alpha_lr``; measured on the hardest ACAS Xu holds: 6 steps of 0.3 beat 10 of 0.1)
ALPHA_ITERS = 6
#: activation kinds a certificate can describe
CERTIFIABLE_KINDS = ("relu", "leaky")


@dataclass
class CaseProof:
    """The trees of one case (certificate ``CASE.trees``) and their size."""

    trees: list[dict]
    nodes: int = 0
    leaves: int = 0
    strategy: str = ""
    stats: dict = field(default_factory=dict)


@dataclass
class NotCertified:
    """The certifying search could not prove the case (``timed_out``: it ran out of time)."""

    reason: str
    timed_out: bool = False


def not_certifiable(network: Network) -> str | None:
    """Why no certificate can describe a proof for ``network`` (None: one can)."""
    if not network.is_chain:
        return "the network is not a chain of layers (certificates describe chains only)"
    kinds = sorted({ly.activation.kind for ly in network.layers if ly.activation is not None} - set(CERTIFIABLE_KINDS))
    if kinds:
        return f"activation kinds {kinds} (certificates describe ReLU and LeakyReLU networks only)"
    dtype = network.meta.get("input_dtype", "float32")
    if dtype != "float32" or any(ly.guards for ly in network.layers):
        what = f"its input is {dtype}" if dtype != "float32" else "it computes in float16 in places"
        return f"the model is not a float32 model ({what}; the certificate's float model is float32)"
    return None


def certify_case(network: Network, case: Case, todo: list[int], bounds: LayerBounds, oracle, deadline: Deadline,
                 case_index: int, strategy: str, inputs: np.ndarray | None = None,
                 settings: BabSettings | None = None, progress=None) -> CaseProof | Counterexample | NotCertified:
    """Prove every disjunct of ``case`` (those not in ``todo`` are refuted by ``bounds`` already)
    with a proof a certificate records. ``strategy``: ``input-split`` or ``neuron-split``.
    ``bounds``: the case's bounds (used if symbolic, recomputed otherwise); ``settings``: the
    input-splitting settings to start from (solver, margins, seed)."""
    t0 = time.perf_counter()
    if bounds.method != "symbolic":
        bounds = symbolic_bounds(network, case.lower, case.upper, deadline=deadline)
    closed, rest = _refuted_at_root(network, bounds, case, [j for j in range(len(case.unsafe)) if j not in todo])
    trees = []
    if closed:
        trees.append({"disjuncts": sorted(closed), "root": {"bounds": True, "close": {
            str(j): {"lam": [[r, 1.0]]} for j, r in sorted(closed.items())}}})
    proof = CaseProof(trees, len(trees), len(trees), strategy)
    todo = sorted(set(todo) | set(rest))
    if not todo:
        return proof
    if strategy == "input-split":
        got = _by_input_split(network, case, todo, oracle, deadline, case_index, inputs, settings, progress)
    else:
        got = _by_neuron_split(network, case, todo, bounds, oracle, deadline, case_index, progress)
    if not isinstance(got, CaseProof):
        return got
    proof.trees += got.trees
    proof.nodes += got.nodes
    proof.leaves += got.leaves
    proof.stats = {**got.stats, "search_s": round(time.perf_counter() - t0, 4)}
    return proof


def _refuted_at_root(network: Network, bounds: LayerBounds, case: Case, which: list[int]
                     ) -> tuple[dict[int, int], list[int]]:
    """Of the disjuncts ``which``: those some row of which the bounds refute (disjunct -> that row), and the rest."""
    closed, rest = {}, []
    for j in which:
        cons = case.unsafe[j]
        if cons.rhs.size:
            low, _ = linear_bounds(network, bounds, case.lower, case.upper, cons.ay, None, cons.ax)
            slack = low - cons.rhs
            if np.any(slack > 0):
                closed[j] = int(np.argmax(slack))
                continue
        rest.append(j)
    return closed, rest


def _by_input_split(network, case, todo, oracle, deadline, case_index, inputs, settings, progress):
    base = settings or BabSettings()
    settings = replace(base, milp_unstable=-1, max_depth=MAX_DEPTH, lp_check=False, exact_leaves=False,
                       alpha_iters=ALPHA_ITERS)
    rec = BoxTreeRecorder(todo, inputs, activation_index(network))
    report = None
    if progress is not None:
        def report(st, n_open: int) -> None:
            progress(f"certifying input splitting: {st.explored} sub-boxes explored, {n_open} open, "
                     f"depth {st.max_depth}")
    out = input_split(network, case, [case.unsafe[j] for j in todo], oracle, settings, deadline, case_index,
                      progress=report, recorder=rec)
    if out.status == BabStatus.VIOLATED:
        return out.counterexample
    if out.status != BabStatus.HOLDS:
        reason = out.reason or "input splitting left sub-boxes open"
        return NotCertified(reason, reason.startswith("timeout"))
    return CaseProof([{"disjuncts": list(todo), "root": rec.root}], rec.nodes, rec.leaves, "input-split",
                     {"explored": out.stats.explored, "max_depth": out.stats.max_depth,
                      "proved_by_alpha": out.stats.proved_by_alpha})


def _by_neuron_split(network, case, todo, bounds, oracle, deadline, case_index, progress):
    out = prove_case(network, bounds, case, todo, oracle, deadline, case_index, progress, certify=True)
    if out.counterexample is not None:
        return out.counterexample
    if out.timed_out or out.to_milp or out.proved < len(todo):
        reasons = list(out.open_reasons) + [f"disjunct {j}: {r}" for j, r in sorted(out.to_milp_reasons.items())]
        return NotCertified("; ".join(dict.fromkeys(reasons)) or "neuron splitting left disjuncts open",
                            out.timed_out)
    acts = activation_index(network)
    proof = CaseProof([], strategy="neuron-split", stats=out.stats_dict())
    for j in todo:
        try:
            root, nodes, leaves = phase_tree(out.leaves.get(j, []), j, acts)
        except TreeError as exc:
            return NotCertified(f"disjunct {j}: {exc}")
        proof.trees.append({"disjuncts": [j], "root": root})
        proof.nodes += nodes
        proof.leaves += leaves
    return proof
