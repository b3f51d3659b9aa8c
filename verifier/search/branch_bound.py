"""Branch and bound over neuron phases that *optimises*: the engine behind neuron splitting in
``verify`` and behind exact bound queries.

The question is always about rows ``r(x) = C @ f(x) + C_in @ x + d`` over an input box:

- ``prove`` (verification of one unsafe conjunction, its rows ``ax x + ay y - rhs``): the
  conjunction is empty on a sub-problem as soon as *some* row has a positive lower bound there
  (``>= 0`` for a strict row). A sub-problem whose rows all may be ``<= 0`` is split further; the
  input where the bound is lowest is tried as a counterexample (replayed by the caller's oracle).
- ``minimise`` (one row, a bound query): the smallest lower bound over the open sub-problems is a
  proved bound of ``min r``; the best point found is an upper bound; the search stops when the two
  meet within ``gap`` (sub-problems whose bound is within ``gap`` of the best point are closed).

Sub-problems are bounded in batches (``bounds.crown``: back-substitution with optimised lower
slopes ``alpha`` and multipliers ``beta`` of the neurons' bounds (splits included), warm-started from the parent). Branching picks,
per sub-problem, the free unstable neuron with the largest estimated effect on the bound (a BaBSR
style score: the relaxation intercept the row pays for it, and half the lower line's gap), or,
with ``Settings.candidates > 1``, the best of the top few re-scored by one cheap bound of their two
children (filtered smart branching). Every split neuron is a ReLU / LeakyReLU of the root's unstable
set; the pre-activation bounds stay those of the root, narrowed by each split.

Soundness: a sub-problem is closed only by a sound bound (``crown``), never by the optimiser
failing to find a point; the two children of a split cover their parent (``x >= 0`` or ``x <= 0``
of the float pre-activation); when the time or the queue's memory runs out the answer is open.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..bounds import crown
from ..budget import Deadline

#: a row whose lower bound is above this closes a sub-problem (verification); strict rows use ``>= 0``
PROVE_THRESHOLD = 0.0


@dataclass
class Settings:
    batch: int = 64  # sub-problems bounded together (each gives two children)
    root_iters: int = 30  # gradient steps on the root's alpha
    iters: int = 8  # gradient steps on each batch of children
    lr: float = 0.1  # Adam step of the slopes alpha (in [0, 1])
    lr_beta: float = 0.03  # ... of the bound multipliers beta
    candidates: int = 8  # > 1: filtered smart branching over this many top-scored neurons (measured: 8)
    max_memory_mb: float = 2048.0  # the queue never takes more than this (a case's disjuncts share it)
    use_beta: bool = True
    #: gradient steps of the closing pass: the children left open are bounded again with multipliers
    #: on the bounds of every neuron (``crown.optimise(multipliers="bounds")``, the LP's dual), which
    #: closes sub-problems whose splits contradict each other; 0: none. A search with
    #: ``record_leaves`` has none (a certificate records split multipliers only). Off by default: on
    #: MNIST-FC 256x4 it closed many sub-problems (open at 60 s: 702 -> 362, 605 -> 93) but moved no
    #: disjunct's lowest bound (those sub-problems' LPs are feasible) and flipped no instance
    close_iters: int = 0
    close_lr_beta: float = 0.03
    attack_every: int = 5  # batches between two gradient attacks from the most promising points
    branching: str = "neuron"  # "neuron": split neuron phases; "input": bisect the input box
    leaf_unstable: int = 0  # a sub-problem with at most this many free unstable neurons goes to ``leaf``
    record_leaves: bool = False  # keep the evidence of every closed sub-problem (``Engine.leaves``)
    refine: bool = False  # re-bound the unstable neurons of later layers in every child (``crown.refine``)
    refine_rows: int | None = None  # ... skipping layers with more unstable neurons than this


@dataclass
class Stats:
    explored: int = 0  # sub-problems bounded
    splits: int = 0  # neuron splits made (one per branched sub-problem)
    closed: int = 0
    max_depth: int = 0
    batches: int = 0
    bound_s: float = 0.0
    attack_s: float = 0.0
    peak_queue: int = 0
    leaves: int = 0  # sub-problems decided by the exact leaf check (LP / MILP)
    closed_by_bounds_pass: int = 0  # children closed by the closing pass (``Settings.close_iters``)
    trace: list = field(default_factory=list)  # (time, proved bound, open sub-problems)

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items() if k != "trace"}


@dataclass
class Outcome:
    """``status``: proved | counterexample | open. ``lower``: the proved bound (``minimise``: of the
    row; ``prove``: the smallest best-row bound over the open sub-problems). ``point``: the
    counterexample (``prove``) or the best input found (``minimise``), ``value`` its row value."""

    status: str
    lower: float
    reason: str | None = None
    point: np.ndarray | None = None
    value: float | None = None
    stats: Stats = field(default_factory=Stats)


@dataclass
class _Node:
    """One open sub-problem: its own bounds and splits (a batch of one), the parameters of its
    best bound so far (the children start from them) and the neurons to branch on."""

    sub: crown.Batch
    alpha: dict[int, np.ndarray]  # (m, n_j)
    beta: dict[int, np.ndarray]
    lower: np.ndarray  # (m,)
    branch: list[tuple[int, int]]  # candidate neurons (layer, index), best first
    depth: int

    def key(self) -> float:
        return float(np.max(self.lower))

    def nbytes(self) -> int:
        sub = self.sub
        return sum(a.nbytes for a in self.alpha.values()) + sum(b.nbytes for b in self.beta.values()) + \
            sum(x.nbytes for d in (sub.splits, sub.lower, sub.upper) for x in d.values())


class Engine:
    """One search over a ``crown.Problem`` for the rows ``C, C_in, d`` (``strict`` per row)."""

    def __init__(self, prob: crown.Problem, C: np.ndarray, C_in: np.ndarray | None, d: np.ndarray,
                 strict: np.ndarray | None = None, settings: Settings | None = None) -> None:
        self.prob = prob
        self.C = np.atleast_2d(np.asarray(C, float))
        self.m = self.C.shape[0]
        self.C_in = None if C_in is None else np.atleast_2d(np.asarray(C_in, float))
        self.d = np.asarray(d, float).reshape(self.m)
        self.strict = np.zeros(self.m, bool) if strict is None else np.asarray(strict, bool)
        self.settings = settings or Settings()
        self.stats = Stats()
        self.leaves: list[dict] = []  # with Settings.record_leaves: what closed each sub-problem
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------ bounding and branching
    def _bound(self, batch: crown.Batch, alpha, beta, iters: int, target: float | None) -> crown.Optimised:
        t = time.perf_counter()
        s = self.settings
        # float32 steps (the last ones, in float64, give the bounds) only while every sub-problem keeps
        # the root box: input branching's boxes soon get too narrow for float32 to tell their corners apart
        opt = crown.optimise_float32 if s.branching == "neuron" else crown.optimise
        out = opt(self.prob, batch, self.C, self.d, self.C_in, alpha, beta, iters=iters, lr=s.lr, target=target,
                  use_beta=s.use_beta, lr_beta=s.lr_beta, multipliers="splits")
        self.stats.bound_s += time.perf_counter() - t
        self.stats.explored += batch.size
        return out

    def _closed(self, lower: np.ndarray, threshold: float) -> np.ndarray:
        """Per sub-problem: some row's bound proves it (strict rows: ``>=``)."""
        return np.any(np.where(self.strict, lower >= threshold, lower > threshold), axis=-1)

    def _scores(self, res: crown.BoundResult, batch: crown.Batch, lower: np.ndarray) -> list[list[tuple[int, int]]]:
        """Per sub-problem, the free unstable neurons ordered by the BaBSR-style score of its best
        row (input branching: ``[(-1, d)]``, the input whose coefficient times width is largest)."""
        B = lower.shape[0]
        r = np.argmax(lower, axis=1)
        if self.settings.branching == "input":
            width = batch.hi - batch.lo
            sc = np.abs(res.coef_in[np.arange(B), r]) * width + 1e-12 * width
            return [[(-1, int(np.argmax(sc[b])))] if width[b].max() > 0 else [] for b in range(B)]
        per_layer = []
        for j in self.prob.split_layers:
            A = res.post_coef.get(j)
            if A is None:
                continue
            A = A[np.arange(B), r]  # (B, n)
            l, u = batch.lower[j], batch.upper[j]
            free = (l < 0) & (u > 0) & (batch.splits[j] == 0)
            if not free.any():
                continue
            neg = self.prob.lines[j].neg_slope
            width = np.where(free, u - l, 1.0)
            intercept = np.where(free, (neg - (u - neg * l) / width) * l, 0.0)
            gap_lo = np.where(free, np.minimum(-l, u), 0.0)  # largest gap of a lower line through the origin
            sc = np.maximum(-A, 0.0) * intercept + 0.5 * np.maximum(A, 0.0) * gap_lo
            per_layer.append((j, np.where(free, sc + 1e-12, -1.0)))
        k = max(1, self.settings.candidates)
        out = []
        for b in range(B):
            cands = []
            for j, sc in per_layer:
                row = sc[b]
                top = np.argpartition(-row, k)[:k] if row.size > k else np.arange(row.size)
                cands += [(float(row[i]), j, int(i)) for i in top if row[i] >= 0]
            cands.sort(reverse=True)
            out.append([(j, i) for _, j, i in cands[:k]])
        return out

    def _children(self, nodes: list[_Node]) -> tuple[crown.Batch, dict, dict, list[int]]:
        """The two children of every node (all active ones first), with the parents' parameters."""
        pick = self._choose(nodes)
        batch = crown.Batch.concat([n.sub for n in nodes] * 2)
        B = len(nodes)
        for b, (j, i) in enumerate(pick):
            if j < 0:  # an input: the two halves of the box
                mid = 0.5 * (batch.lo[b, i] + batch.hi[b, i])
                batch.hi[b, i] = mid
                batch.lo[B + b, i] = mid
            else:
                batch.split(b, j, i, 1)
                batch.split(B + b, j, i, -1)
        alpha, beta = self._params([n.alpha for n in nodes] * 2, [n.beta for n in nodes] * 2)
        self.stats.splits += B
        return batch, alpha, beta, [n.depth + 1 for n in nodes] * 2

    def _choose(self, nodes: list[_Node]) -> list[tuple[int, int]]:
        """The neuron to split per node: its best-scored candidate, or (filtered smart branching,
        nodes with several candidates) the candidate whose weaker child has the best bound, one
        bound pass per child with the parent's parameters, all nodes' candidates in one batch."""
        multi = [b for b, n in enumerate(nodes) if len(n.branch) > 1 and n.branch[0][0] >= 0]
        pick = [n.branch[0] for n in nodes]
        if not multi:
            return pick
        owners, subs, alphas, betas = [], [], [], []
        for b in multi:
            n = nodes[b]
            owners += [(b, j, i) for j, i in n.branch for _ in (1, -1)]
            subs += [n.sub] * (2 * len(n.branch))
            alphas += [n.alpha] * (2 * len(n.branch))
            betas += [n.beta] * (2 * len(n.branch))
        batch = crown.Batch.concat(subs)  # copies: the splits below change only the candidates
        for k, (_, j, i) in enumerate(owners):
            batch.split(k, j, i, 1 if k % 2 == 0 else -1)
        low = self._scout(batch, alphas, betas)
        worst = np.minimum(low[0::2], low[1::2])  # per candidate: its weaker child
        best: dict[int, tuple[float, tuple[int, int]]] = {}
        for w, (b, j, i) in zip(worst, owners[0::2]):
            if b not in best or w > best[b][0]:
                best[b] = (float(w), (j, i))
        for b, (_, cand) in best.items():
            pick[b] = cand
        return pick

    def _scout(self, batch: crown.Batch, alphas: list[dict], betas: list[dict]) -> np.ndarray:
        """Per candidate sub-problem, its best row's bound after one pass with the given parameters, in
        float32 (``Problem.float32``): only the branching choice reads it, never a proof, and float32
        halves its cost (with ``optimise_float32`` for the children: MNIST 256x4 prop 5 at eps 0.03 made
        14,109 splits in 60 s instead of 8,163)."""
        t = time.perf_counter()
        fast = self.prob.float32() if self.settings.branching == "neuron" else self.prob
        if fast is not self.prob:
            batch = batch.float32()
        f = batch.lo.dtype
        alpha, beta = self._params(alphas, betas)
        alpha, beta = {j: a.astype(f) for j, a in alpha.items()}, {j: b.astype(f) for j, b in beta.items()}
        C_in = None if self.C_in is None else self.C_in.astype(f)
        res = crown.bound(fast, batch, self.C.astype(f), self.d.astype(f), C_in, alpha, beta if self.settings.use_beta else None)
        self.stats.bound_s += time.perf_counter() - t
        self.stats.explored += batch.size
        return res.lower.max(axis=1).astype(np.float64)

    def _record(self, batch: crown.Batch, b: int, o: crown.Optimised, how: str, lower: np.ndarray) -> None:
        """Keep what closed sub-problem ``b``: its box, its splits (layer, neuron, phase), how it was
        closed (``bound``, ``empty``: crossed neuron bounds, ``exact check``), its row bounds, the row
        with the best one (``row``) and that row's parameters: the lower slopes of every activation
        layer (``alpha``: layer -> (n_j,)) and the multipliers of its split neurons (``beta``: layer
        -> (neuron indices, values)): the evidence a certificate is built from. Recorded leaves count
        towards the queue's memory limit."""
        splits = [(int(j), int(i), int(s[b, i])) for j, s in batch.splits.items() for i in np.flatnonzero(s[b])]
        r = int(np.argmax(lower))
        beta = {}
        for j, x in (o.beta or {}).items():
            idx = np.flatnonzero(batch.splits[j][b])
            beta[j] = (idx, x[b, r, idx] * batch.splits[j][b, idx])  # >= 0: the split's sign
        rec = {"lo": batch.lo[b].copy(), "hi": batch.hi[b].copy(), "splits": splits, "how": how,
               "lower": np.asarray(lower, float).copy(), "row": r,
               "alpha": {j: a[b, r].copy() for j, a in o.alpha.items()}, "beta": beta}
        self.leaves.append(rec)
        self.mem += rec["lo"].nbytes * 2 + sum(a.nbytes for a in rec["alpha"].values()) + \
            sum(i.nbytes + v.nbytes for i, v in beta.values()) + 64 * (len(splits) + 4)

    def _closing_pass(self, batch: crown.Batch, o: crown.Optimised, lower: np.ndarray, thr: float) -> None:
        """Bound the children still open again, from their parameters, with multipliers on every
        neuron's bounds (``Settings.close_iters``); raises ``lower`` in place. Sound: every multiplier
        gives a sound bound, and the larger of two sound bounds is one."""
        s = self.settings
        if s.close_iters <= 0 or s.record_leaves or not s.use_beta:
            return
        idx = np.flatnonzero(~self._closed(lower, thr))
        if not idx.size:
            return
        t = time.perf_counter()
        c = crown.optimise(self.prob, batch.take(idx), self.C, self.d, self.C_in,
                           {j: a[idx] for j, a in o.alpha.items()}, {j: b[idx] for j, b in o.beta.items()},
                           iters=s.close_iters, lr=s.lr, target=thr, lr_beta=s.close_lr_beta, multipliers="bounds")
        self.stats.bound_s += time.perf_counter() - t
        lower[idx] = np.maximum(lower[idx], c.lower)
        self.stats.closed_by_bounds_pass += int(self._closed(c.lower, thr).sum())

    @staticmethod
    def _free(node: _Node) -> int:
        sub = node.sub
        return int(sum(np.count_nonzero((sub.lower[j] < 0) & (sub.upper[j] > 0) & (sub.splits[j] == 0))
                       for j in sub.splits))

    def _node(self, batch: crown.Batch, b: int, o: crown.Optimised, beta, lower, branch, depth) -> _Node:
        """A queued sub-problem: its bounds in float64 (they must stay sound), its parameters in
        float32 (any alpha in range and any beta gives a sound bound: rounding costs no soundness,
        ``_params`` puts them back in range) to halve the queue's memory."""
        return _Node(batch.take([b]), {j: x[b].astype(np.float32) for j, x in o.alpha.items()},
                     {j: x[b].astype(np.float32) for j, x in (o.beta or beta).items()}, lower[b], branch, depth)

    def _params(self, alphas: list[dict], betas: list[dict]) -> tuple[dict, dict]:
        """Stacked float64 slopes (clipped into their range) and multipliers."""
        alpha = {j: np.clip(np.stack([a[j] for a in alphas]).astype(np.float64), self.prob.lines[j].neg_slope, 1.0)
                 for j in alphas[0]}
        beta = {j: np.stack([x[j] for x in betas]).astype(np.float64) for j in betas[0]}
        return alpha, beta

    # ------------------------------------------------------------------ the search loop
    def _root(self) -> tuple[_Node, crown.Optimised]:
        batch = self.prob.root()
        alpha = self.prob.init_alpha(batch, self.m)
        beta = self.prob.zero_beta(batch, self.m)
        out = self._bound(batch, alpha, beta, self.settings.root_iters, None)
        branch = self._scores(out.result, batch, out.lower)[0]
        return self._node(batch, 0, out, beta, out.lower, branch, 0), out

    def run(self, deadline: Deadline, threshold: Callable[[], float], on_points: Callable[[np.ndarray], bool],
            progress: Callable[[Stats, int, float], None] | None = None,
            leaf: Callable[[crown.Batch], tuple[str, float]] | None = None) -> tuple[str, float, str | None]:
        """Split until every sub-problem is closed (bound above ``threshold()``, re-read each batch:
        a query's threshold follows its best point) or ``on_points(X)`` (the inputs where the
        children's bounds are lowest, (b, n)) returns True (a counterexample: stop).

        ``leaf(sub)``: the exact check of a sub-problem with nothing left to split (or at most
        ``Settings.leaf_unstable`` free unstable neurons): ``("closed", its bound)``,
        ``("stop", bound)`` (a counterexample) or ``("open: reason", bound)``.

        Returns ``(status, proved lower bound, reason)``: status proved | stopped | open. A search
        that ran out of time can go on: ``resume`` with a later deadline."""
        self._hooks = (threshold, on_points, progress, leaf)
        s = self.settings
        root, out = self._root()
        self.closed_min = np.inf  # the smallest bound of a sub-problem closed so far
        self.heap, self.counter, self.mem = [], 1, 0
        if on_points(out.result.vertex(root.sub.lo, root.sub.hi)[0]):
            return self._end("stopped", float(root.key()), None)
        if self._closed(root.lower[None], threshold())[0]:
            if s.record_leaves:
                self._record(root.sub, 0, out, "bound", root.lower)
            return self._end("proved", float(root.key()), None)
        if not root.branch:
            return self._end("open", float(root.key()), "no unstable neuron left to split and the bound does not close")
        self.heap, self.mem = [(root.key(), 0, root)], root.nbytes()
        self.limit = s.max_memory_mb * 2 ** 20
        return self.resume(deadline)

    def _end(self, status: str, low: float, reason: str | None) -> tuple[str, float, str | None]:
        self.final = status != "open" or not (reason or "").startswith("timeout")
        if self.final:
            self.heap, self.mem = [], 0  # nothing to resume: free the queue
        return status, low, reason

    def resume(self, deadline: Deadline) -> tuple[str, float, str | None]:
        """Go on with the open sub-problems until ``deadline`` (see ``run``)."""
        progress = self._hooks[2]
        while self.heap:
            lowest = min(self.heap[0][0], self.closed_min)
            if deadline.expired():
                return self._end("open", lowest, f"timeout during branch and bound ({len(self.heap)} sub-problems open)")
            step = self._step()
            if step is not None:
                return self._end(step[0], lowest, step[1])
            cur = min(self.heap[0][0] if self.heap else np.inf, self.closed_min)
            self.stats.trace.append((round(time.perf_counter() - self.t0, 4), cur, len(self.heap)))
            if progress is not None:
                progress(self.stats, len(self.heap), cur)
        return self._end("proved", self.closed_min, None)

    def _step(self) -> tuple[str, str | None] | None:
        """Branch one batch of the lowest-bound sub-problems; ``(status, reason)`` if that ends the search."""
        threshold, on_points, _, leaf = self._hooks
        s = self.settings
        take = [heapq.heappop(self.heap)[2] for _ in range(min(s.batch, len(self.heap)))]
        self.mem -= sum(n.nbytes() for n in take)
        batch, alpha, beta, depth = self._children(take)
        if s.branching == "input":  # every layer's bounds shrink with the box
            crown.refine(self.prob, batch, s.refine_rows, first=True)
        elif s.refine:
            crown.refine(self.prob, batch, s.refine_rows)
        empty = batch.empty()
        thr = threshold()
        o = self._bound(batch, alpha, beta, s.iters, thr)
        parent = np.concatenate([n.lower for n in take] * 2).reshape(-1, self.m)
        lower = np.maximum(o.lower, parent)
        lower[empty] = np.inf  # no float evaluation reaches these sub-problems
        self._closing_pass(batch, o, lower, thr)
        done = self._closed(lower, thr)
        self.stats.batches += 1
        self.stats.closed += int(done.sum())
        self.stats.max_depth = max(self.stats.max_depth, max(depth))
        if done.any():
            self.closed_min = min(self.closed_min, float(lower[done].max(axis=1).min()))
            if s.record_leaves:
                for b in np.flatnonzero(done):
                    self._record(batch, b, o, "empty" if empty[b] else "bound", lower[b])
        open_idx = np.flatnonzero(~done)
        if open_idx.size:
            pts = o.result.vertex(batch.lo, batch.hi)
            if on_points(pts[open_idx, np.argmin(lower[open_idx], axis=1)]):
                return "stopped", None
            branches = self._scores(o.result, batch, o.lower)
            for b in open_idx:
                node = self._node(batch, b, o, beta, lower, branches[b], depth[b])
                if node.branch and (leaf is None or self._free(node) > s.leaf_unstable):
                    heapq.heappush(self.heap, (node.key(), self.counter, node))
                    self.counter += 1
                    self.mem += node.nbytes()
                    continue
                if leaf is None:
                    return "open", "a sub-problem with every unstable neuron split is not closed by its bound"
                self.stats.leaves += 1
                verdict, leaf_low = leaf(node.sub)
                if verdict == "stop":
                    return "stopped", None
                if verdict != "closed":
                    return "open", verdict.removeprefix("open: ")
                self.closed_min = min(self.closed_min, leaf_low)
                self.stats.closed += 1
                if s.record_leaves:
                    self._record(batch, b, o, "exact check", lower[b])
        self.stats.peak_queue = max(self.stats.peak_queue, len(self.heap))
        if self.mem > self.limit:
            return "open", (f"branch and bound queue exceeded its memory limit of {s.max_memory_mb:g} MiB "
                            f"({len(self.heap)} sub-problems open)")
        return None
