"""The input-splitting search tree written down as proof-certificate nodes (``io.certificate``).

``BoxTreeRecorder`` is the ``input_split.BoxRecorder`` of a certifying search: every box the
search bounds becomes a NODE; a box where the symbolic bounds prove some disjuncts empty closes
them with the evidence ``{"lam": [[row, 1.0]]}`` (with ``"alpha"``, the row's lower slopes per
activation layer, when they were optimised; the checker recomputes the box's bounds:
``"bounds": true``); a box that closes nothing new gets ``"bounds": false``; a split box gets
``"split": {"input": i, "at": mid}`` and its two halves as ``children`` (low: ``x_i <= mid``, then
high). A disjunct already closed on the path from the root is not closed again.

Indices are translated while recording: ``disjuncts[k]`` is the case's index of the search's
``k``-th disjunct, ``inputs[i]`` the model's index of the search network's input ``i`` (fixed
inputs folded away, ``search.fixed_inputs``), ``activations[j]`` the activation-layer index of
network layer ``j``.
"""

from __future__ import annotations

import numpy as np

from ..io.certificate import encode_array
from .input_split import Box


class BoxTreeRecorder:
    """Builds the tree (``root``) while ``input_split`` runs; ``nodes`` / ``leaves`` count it."""

    def __init__(self, disjuncts: list[int], inputs: np.ndarray | None = None,
                 activations: dict[int, int] | None = None) -> None:
        self.disjuncts = list(disjuncts)
        self.inputs = None if inputs is None else np.asarray(inputs, dtype=np.int64)
        self.activations = activations
        self.root: dict | None = None
        self.nodes = 0
        self.leaves = 0
        #: id of a box not yet visited -> (the box, kept alive so that its id stays unique; its node;
        #: the disjuncts closed on its path)
        self._pending: dict[int, tuple[Box, dict, frozenset[int]]] = {}
        self._last: tuple[Box, dict, frozenset[int]] | None = None

    def visit(self, box: Box, proved: dict[int, int], slopes: dict[int, dict[int, np.ndarray]] | None = None) -> None:
        if self.root is None:
            node, closed = {}, frozenset()
            self.root = node
        else:
            _, node, closed = self._pending.pop(id(box))
        new = {k: r for k, r in proved.items() if self.disjuncts[k] not in closed}
        node["bounds"] = bool(new)
        node["close"] = {str(self.disjuncts[k]): self._evidence(r, (slopes or {}).get(k))
                         for k, r in sorted(new.items(), key=lambda kv: self.disjuncts[kv[0]])}
        self.nodes += 1
        self.leaves += 1  # until it is split
        self._last = (box, node, closed | frozenset(self.disjuncts[k] for k in new))

    def _evidence(self, row: int, slopes: dict[int, np.ndarray] | None) -> dict:
        ev: dict = {"lam": [[int(row), 1.0]]}
        if slopes:
            ev["alpha"] = {str(j if self.activations is None else self.activations[j]): encode_array(a)
                           for j, a in sorted(slopes.items())}
        return ev

    def split(self, box: Box, dim: int, at: float, low: Box, high: Box) -> None:
        last, node, closed = self._last
        if last is not box:
            raise RuntimeError("BoxTreeRecorder.split: not the box visited last")
        node["split"] = {"input": int(dim if self.inputs is None else self.inputs[dim]), "at": float(at)}
        node["children"] = [{}, {}]
        for child, child_node in zip((low, high), node["children"]):
            self._pending[id(child)] = (child, child_node, closed)
        self.leaves -= 1
        self._last = None
