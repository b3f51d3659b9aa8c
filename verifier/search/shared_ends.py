"""One input-bisection tree that minimises many rows at once (the ends of an exact bound query).

``minimise_rows(network, lower, upper, C, d, gap, deadline)``: for every row ``r`` of
``C @ y + d`` a proved lower bound of its minimum over the box and the best input found, to within
``gap``. The rows share one set of open sub-boxes: a box stays while *some* row may still have its
minimum in it (its bound at or below that row's threshold, the best value found minus half the
gap) and is split for all rows at once, so the boxes the rows have in common (the max and the min
of an output are often decided in the same corner of the input space; the boxes near the threshold
of one row are also bounded for the others) are bounded once. Every step bounds a batch of children
with the batched symbolic bounds (``bounds.batch``: DeepPoly / CROWN lines with the float rounding
terms, far cheaper per box than optimised slopes on a small network), starts their interval bounds
from their parent's (sound for any sub-box), and keeps per row the larger of the child's and the
parent's bound (both are sound on the child); the children some row still needs then get a few
steps of optimised lower slopes, all in one batch (``ALPHA_ITERS``). The boxes split next are, for every row still open,
its lowest-bound boxes (an equal share of the batch each); the split input is the one whose
influence on the box's relaxation gaps times its width is largest (``BoxBatch.influence``, as
``verify``'s input splitting; on ACAS Xu prop 3 boxes of 1_1 and 2_3, 10 s each, it left gaps of
2.6e-3 and 1.9e-3 where the row coefficients summed over the open rows left 3.1e-3 and 3.3e-3).

A row is done once its proved bound is within ``FREEZE`` of the gap of its best value (its bound
is kept from then on and it keeps no box open): the query needs the gap, not half of it.

Soundness: a box is dropped only when every row's bound there is above that row's threshold (or
the row is done); a row's proved bound is the smallest of its bounds over the open boxes and over the dropped ones
(never above its best value, a value the network takes). The two halves of a split cover their
parent. Only chains of dense ReLU layers (``bounds.batch.supports``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..bounds import batch as batched
from ..bounds import crown
from ..budget import Deadline
from ..network import Network

#: boxes split per step (each gives two children bounded in one batch)
BATCH = 256
#: a row is done once its proved bound is within this fraction of the gap of its best value (the
#: replayed float32 value may differ from the float64 one by a few rounding steps)
FREEZE = 0.9
#: gradient steps on the lower slopes of every child box some row still needs, all such children in
#: one batch (``crown.boxes``), each row with its own slopes; the child keeps the larger bound. Measured
#: on the prop 3 boxes of 4_2 and 2_1 (30 s each): 0 / 2 / 4 / 8 / 16 steps left max gaps 6.4e-2 /
#: 4.6e-2 / 4.2e-2 / 4.0e-2 / 4.2e-2 and 1.1e-2 / 5.3e-3 / 1.2e-3 / 8.8e-4 (all exact, 22 s) / 8.9e-4
#: (25 s): fewer, better-bounded boxes
ALPHA_ITERS = 8
ALPHA_LR = 0.3
#: an input whose width is below this fraction of the root box's is not split again while others are wider
FINE = 2.0 ** -16


@dataclass
class RowsResult:
    lower: np.ndarray  # (m,) proved lower bounds of the rows' minima
    value: np.ndarray  # (m,) best values found (float64 forward pass)
    point: np.ndarray  # (m, n_in) the inputs where they are reached
    closed: np.ndarray  # (m,) bool: the search closed the row (value - lower <= gap up to the threshold)
    stats: dict = field(default_factory=dict)


@dataclass
class _Open:
    """The open boxes of ``minimise_rows``, one entry per box: its corners, its row bounds (N, m), the
    rows' input coefficients, its inputs' influence on the relaxation gaps, its per-layer bounds
    (the start of its children's) and its depth."""

    LO: np.ndarray
    HI: np.ndarray
    LOW: np.ndarray
    COEF: np.ndarray
    INF: np.ndarray
    LB: list
    UB: list
    depth: np.ndarray

    @property
    def size(self) -> int:
        return int(self.LO.shape[0])

    def take(self, idx) -> _Open:
        return _Open(self.LO[idx], self.HI[idx], self.LOW[idx], self.COEF[idx], self.INF[idx],
                     [a[idx] for a in self.LB], [a[idx] for a in self.UB], self.depth[idx])

    def join(self, o: _Open) -> _Open:
        return _Open(np.vstack([self.LO, o.LO]), np.vstack([self.HI, o.HI]), np.vstack([self.LOW, o.LOW]),
                     np.concatenate([self.COEF, o.COEF]), np.vstack([self.INF, o.INF]),
                     [np.vstack([a, c]) for a, c in zip(self.LB, o.LB)],
                     [np.vstack([a, c]) for a, c in zip(self.UB, o.UB)], np.concatenate([self.depth, o.depth]))

    def box_bytes(self) -> int:
        """The memory one box takes (float64 entries of every array)."""
        return 8 * (2 * sum(a.shape[1] for a in self.LB) + self.COEF[0].size + self.INF.shape[1]
                    + 2 * self.LO.shape[1] + 2 * self.LOW.shape[1] + 1)


class _Best:
    """Per row the smallest value found (float64 forward pass) and its input; every input seen is
    clipped into the root box first."""

    def __init__(self, network: Network, C: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        self.network, self.C, self.d, self.lo, self.hi = network, C, d, lo, hi
        self.v = np.full(C.shape[0], np.inf)
        self.x = np.repeat(0.5 * (lo + hi), C.shape[0], axis=0)

    def see(self, X: np.ndarray) -> None:
        X = np.clip(X, self.lo, self.hi)
        V = self.network.forward(X) @ self.C.T + self.d  # (p, m)
        i = np.argmin(V, axis=0)
        v = V[i, np.arange(V.shape[1])]
        better = v < self.v
        self.v[better] = v[better]
        self.x[better] = X[i[better]]


def _pick(open_: np.ndarray, LOW: np.ndarray, batch: int) -> np.ndarray:
    """The boxes to split: for every open row its lowest-bound boxes, an equal share of ``batch`` each."""
    rows = np.flatnonzero(open_.any(axis=0))
    quota = max(1, batch // rows.size)
    pick = np.zeros(LOW.shape[0], bool)
    for r in rows:
        cand = np.flatnonzero(open_[:, r])
        if cand.size > quota:
            cand = cand[np.argpartition(LOW[cand, r], quota)[:quota]]
        pick[cand] = True
    return pick


def minimise_rows(network: Network, lower: np.ndarray, upper: np.ndarray, C: np.ndarray, d: np.ndarray,
                  gap: float, deadline: Deadline, starts: np.ndarray | None = None,
                  batch: int = BATCH, max_memory_mb: float = 2048.0, alpha_iters: int = ALPHA_ITERS) -> RowsResult:
    """``min C[r] @ f(x) + d[r]`` for every row ``r`` over the box (see the module docstring). The
    open boxes never take more than ``max_memory_mb``: past it the search stops with its sound
    bounds (reason ``memory``), as the per-end engine does."""
    t0 = time.perf_counter()
    C = np.atleast_2d(np.asarray(C, float))
    d = np.asarray(d, float).reshape(-1)
    m, n_in = C.shape[0], network.n_inputs
    root_lo = np.asarray(lower, float).reshape(1, n_in)
    root_hi = np.asarray(upper, float).reshape(1, n_in)
    fine = (root_hi - root_lo) * FINE
    best = _Best(network, C, d, root_lo, root_hi)
    see, best_v, best_x = best.see, best.v, best.x  # updated in place
    st = {"explored": 0, "batches": 0, "bound_s": 0.0, "alpha_s": 0.0, "peak_queue": 1, "max_depth": 0}
    if not crown.splits_every_layer(network):  # ``crown.boxes`` needs it (review R18-1)
        alpha_iters = 0
    see(np.vstack([0.5 * (root_lo + root_hi), root_lo, root_hi] + ([] if starts is None else [np.atleast_2d(starts)])))

    def bound(LO, HI, start):
        t = time.perf_counter()
        bb = batched.batch_bounds(network, LO, HI, start=start)
        low, _, coef = batched.batch_linear_bounds(network, bb, LO, HI, C)
        st["bound_s"] += time.perf_counter() - t
        st["explored"] += LO.shape[0]
        st["batches"] += 1
        return bb, low + d, coef

    bb, low, coef = bound(root_lo, root_hi, None)
    box = _Open(root_lo, root_hi, low, coef, bb.influence, [a.copy() for a in bb.lower], [a.copy() for a in bb.upper],
                np.zeros(1, dtype=np.int64))
    dropped = np.full(m, np.inf)  # per row: the smallest bound of a dropped box
    frozen = np.zeros(m, bool)
    frozen_low = np.full(m, np.inf)
    reason = None
    see(np.where(coef[0] >= 0, root_lo, root_hi))  # the root's vertex minimising each row's lower line
    while True:
        # a row whose proved bound is within the gap of its best value is done: its bound is kept
        # (sound whatever is split later) and it keeps no box open
        cur = np.minimum(dropped, box.LOW.min(axis=0))
        done = ~frozen & (best_v - cur <= FREEZE * gap)
        frozen_low[done], frozen[done] = cur[done], True
        thr = np.where(frozen, -np.inf, best_v - 0.5 * gap)
        open_ = box.LOW <= thr  # (N, m)
        keep = open_.any(axis=1)
        if not keep.all():
            dropped = np.minimum(dropped, box.LOW[~keep].min(axis=0))
            box, open_ = box.take(keep), open_[keep]
        if box.size == 0:
            break
        if deadline.expired():
            reason = "timeout"
            break
        if (2 * min(batch, box.size) + box.size) * box.box_bytes() > max_memory_mb * 2 ** 20:
            reason = f"memory: the open boxes would exceed {max_memory_mb:g} MiB ({box.size} open)"
            break
        pick = _pick(open_, box.LOW, batch)
        par = box.take(np.flatnonzero(pick))
        CLO, CHI = _halves(par.LO, par.HI, par.INF, fine)
        cbb, clow, ccoef = bound(CLO, CHI, ([np.vstack([a, a]) for a in par.LB], [np.vstack([a, a]) for a in par.UB]))
        # per child, the vertex minimising the lower line of each row open in its parent
        bi, ri = np.nonzero(np.vstack([open_[pick], open_[pick]]))
        see(np.where(ccoef[bi, ri] >= 0, CLO[bi], CHI[bi]))
        clow = np.maximum(clow, np.vstack([par.LOW, par.LOW]))  # the parent's bound holds on its halves
        if alpha_iters > 0:
            clow = _optimised(network, cbb, CLO, CHI, C, d, clow, thr, alpha_iters, st)
        cdepth = np.concatenate([par.depth, par.depth]) + 1
        box = box.take(~pick).join(_Open(CLO, CHI, clow, ccoef, cbb.influence, list(cbb.lower), list(cbb.upper),
                                         cdepth))
        st["peak_queue"] = max(st["peak_queue"], box.size)
        st["max_depth"] = max(st["max_depth"], int(cdepth.max()))
    proved = np.minimum(dropped, box.LOW.min(axis=0) if box.size else np.inf)
    proved = np.where(frozen, frozen_low, proved)
    proved = np.minimum(proved, best_v)
    closed = best_v - proved <= gap
    st.update(time_s=round(time.perf_counter() - t0, 4), bound_s=round(st["bound_s"], 4),
              alpha_s=round(st["alpha_s"], 4), reason=reason)
    return RowsResult(proved, best_v.copy(), best_x.copy(), closed, st)


def _halves(LO: np.ndarray, HI: np.ndarray, INF: np.ndarray, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of every box (lower halves first): split at the middle of the input whose
    influence on the relaxation gaps times its width is largest, among the inputs wider than ``fine``."""
    width = HI - LO
    score = INF * width + 1e-12 * width  # measured: better than the rows' coefficients here
    score = np.where(width > fine, score, np.where(width > 0, 1e-300 * width, 0.0))
    dim = np.argmax(score, axis=1)
    k = np.arange(LO.shape[0])
    mid = 0.5 * (LO[k, dim] + HI[k, dim])
    hi_a, lo_b = HI.copy(), LO.copy()
    hi_a[k, dim] = mid
    lo_b[k, dim] = mid
    return np.vstack([LO, lo_b]), np.vstack([hi_a, HI])


def _optimised(network: Network, cbb, CLO: np.ndarray, CHI: np.ndarray, C: np.ndarray, d: np.ndarray,
               clow: np.ndarray, thr: np.ndarray, iters: int, st: dict) -> np.ndarray:
    """``clow`` raised, for the children with a row at or below its threshold, by ``iters`` steps of
    optimised lower slopes over their own bounds (any slopes give a sound bound of the child)."""
    idx = np.flatnonzero((clow <= thr).any(axis=1))
    if not idx.size:
        return clow
    t = time.perf_counter()
    prob, sub = crown.boxes(network, [cbb.box(int(j)) for j in idx], CLO[idx], CHI[idx])
    opt = crown.optimise(prob, sub, C, d, None, prob.init_alpha(sub, C.shape[0]), None, iters=iters, lr=ALPHA_LR,
                         use_beta=False)
    clow = clow.copy()
    clow[idx] = np.maximum(clow[idx], opt.lower)
    st["alpha_s"] += time.perf_counter() - t
    return clow
