"""Branch and bound over input boxes (input splitting), for networks with few inputs.

Every sub-box is bounded with symbolic back-substitution; an unsafe disjunct is dropped from a
sub-box as soon as one of its rows is proved unsatisfiable there. What survives is attacked at the
point that minimises the bound (a vertex of the box) and at the centre, then tried with a few
steps of optimised lower slopes (ReLU / LeakyReLU networks; the LP on boxes with few unstable
neurons otherwise), and then either split in two along the input whose coefficient in the bound
times the box width is largest (the input that moves the bound most), or, when few neurons are
left unstable or the box is deep, handed to the MILP. A counterexample (replayed in onnxruntime) anywhere ends the search; an undecided leaf makes
the answer unknown, never holds.

With ``BabSettings(lp_check=False, exact_leaves=False)`` every sub-box is closed by the symbolic
bounds alone (a box that would need the MILP ends the search instead: unknown), so that an optional
``BoxRecorder`` (``search.box_tree``) can write the tree down as a proof certificate: every visited
box, the rows that closed which disjuncts there, and every split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

import numpy as np

from ..bounds import LayerBounds, linear_bounds, symbolic_bounds
from ..bounds import batch as batched
from ..budget import Deadline, Expired
from ..io.replay import Counterexample, OnnxOracle, confirm
from ..milp.solvers.highs import highs_available
from ..network import Network
from ..spec import Case, Constraints
from . import falsify
from .box_lp import lp_refutes
from .box_milp import milp_box
from .box_settings import BabSettings, BabStats
from .box_slopes import alpha_on, alpha_proofs

Box = tuple[np.ndarray, np.ndarray, int]  # (lower, upper, depth)


class BoxStep(NamedTuple):
    """What bounding one sub-box gave (no counterexample): the disjuncts still alive (positions in
    the search's list), the number of unstable neurons, the input to split (None: none), the box's
    bounds and, per disjunct the bounds proved empty there, the row whose lower bound did it, and
    (``slopes``) for those proved with optimised lower slopes, that row's slopes per layer."""

    alive: list[int]
    unstable: int
    split_dim: int | None
    bounds: LayerBounds
    proved: dict[int, int]
    slopes: dict[int, dict[int, np.ndarray]] | None = None


class BoxRecorder(Protocol):
    """Receives the search tree of ``input_split`` (a proof certificate's evidence, ``search.box_tree``):
    every box bounded (``visit``, with the disjuncts its bounds proved, by which row, and the lower
    slopes that did it when they were optimised) and every split of a box into its ``low``
    (``x_dim <= at``) and ``high`` (``x_dim >= at``) halves."""

    def visit(self, box: Box, proved: dict[int, int], slopes: dict[int, dict[int, np.ndarray]] | None) -> None: ...

    def split(self, box: Box, dim: int, at: float, low: Box, high: Box) -> None: ...


class BabStatus(StrEnum):
    """A branch-and-bound search's status: a verdict, or ``open`` (its box budget is spent and
    ``open_boxes`` hold the rest, for worker processes to go on with)."""

    HOLDS = "holds"
    VIOLATED = "violated"
    UNKNOWN = "unknown"
    OPEN = "open"


@dataclass
class BabOutcome:
    status: BabStatus
    counterexample: Counterexample | None = None
    reason: str | None = None
    stats: BabStats = field(default_factory=BabStats)
    open_boxes: list[Box] = field(default_factory=list)


def input_split(network: Network, case: Case, disjuncts: list[Constraints], oracle: OnnxOracle,
                settings: BabSettings, deadline: Deadline | float | None, case_index: int = 0,
                boxes: list[Box] | None = None, max_boxes: int | None = None,
                progress: Callable[[BabStats, int], None] | None = None,
                recorder: BoxRecorder | None = None) -> BabOutcome:
    """Prove or refute ``case`` restricted to ``disjuncts`` by splitting its input box.

    ``boxes`` replaces the root box when given (parallel workers). With ``max_boxes``, the search
    stops after that many sub-boxes and returns the still-open ones (status ``open``) so that the
    caller can hand them to worker processes. ``progress(stats, n_open)`` is called now and then.
    ``deadline``: a ``Deadline`` or an absolute ``time.perf_counter`` time. ``recorder`` gets the
    search tree; it needs bounds-only proofs (``lp_check`` and ``exact_leaves`` off).
    """
    if recorder is not None and (settings.lp_check or settings.exact_leaves):
        raise ValueError("a recorded search tree needs bounds-only proofs: BabSettings(lp_check=False, "
                         "exact_leaves=False)")
    deadline = Deadline.coerce(deadline)
    stats = BabStats()
    use_lp = settings.lp_check and highs_available()
    stack = list(boxes) if boxes is not None else [(case.lower.copy(), case.upper.copy(), 0)]
    known: list[LayerBounds | None] = [None] * len(stack)  # per stack entry: its parent's bounds (batched path)
    reasons: list[str] = []
    last_report = time.perf_counter()
    batch = settings.batch if settings.batch > 1 and batched.supports(network) else 1
    reuse = recorder is None  # a recorded tree's boxes keep their own bounds: the checker recomputes those
    pending: list[tuple[Box, BoxStep]] = []  # bounded, not yet acted on (in the order popped)
    while stack or pending:
        now = time.perf_counter()
        if deadline.expired():
            return BabOutcome(BabStatus.UNKNOWN, None, "timeout during branch and bound "
                              f"({len(stack) + len(pending)} sub-boxes open)", stats)
        if max_boxes is not None and stats.explored >= max_boxes and not pending:
            # sub-boxes already left undecided travel with the open ones: they must never be lost
            return BabOutcome(BabStatus.OPEN, None, "; ".join(dict.fromkeys(reasons)) or None, stats, stack)
        if progress is not None and now - last_report > 0.5:
            progress(stats, len(stack))
            last_report = now
        if not pending:
            n = batch if max_boxes is None else max(1, min(batch, max_boxes - stats.explored))
            popped = [stack.pop() for _ in range(min(n, len(stack)))]
            hints = [known.pop() for _ in popped]
            out = _bound_popped(network, case, disjuncts, oracle, popped, hints if reuse else None, stats,
                                settings, case_index, use_lp, deadline, len(stack))
            if isinstance(out, BabOutcome):
                return out
            pending = out  # the deepest box (popped first) is acted on last: its children are next on the stack
        box, step = pending.pop()
        depth = box[2]
        stats.explored += 1
        stats.max_depth = max(stats.max_depth, depth)
        if recorder is not None:
            recorder.visit(box, step.proved, step.slopes)
        alive, unstable, split_dim, box_bounds = step.alive, step.unstable, step.split_dim, step.bounds
        if not alive:
            continue  # bound_box counted the proof (symbolic bounds or LP)
        if not settings.exact_leaves and (depth >= settings.max_depth or split_dim is None):
            why = f"depth limit {settings.max_depth} reached" if split_dim is not None else "a point box"
            return BabOutcome(BabStatus.UNKNOWN, None, f"bounds alone do not close a sub-box ({why}) and exact "
                              "checks are off", stats)
        if settings.exact_leaves and (unstable <= settings.milp_unstable or depth >= settings.max_depth
                                      or split_dim is None):
            end = _exact_leaf(network, case, [disjuncts[i] for i in alive], oracle, box, box_bounds, settings,
                              deadline, stats, case_index, reasons)
            if end is not None:
                return end
            continue
        low, high, mid = _bisect(box, split_dim)
        if recorder is not None:
            recorder.split(box, split_dim, float(mid), low, high)
        stack.append(high)
        stack.append(low)
        known += [box_bounds, box_bounds] if batch > 1 else [None, None]
    if reasons or stats.undecided:
        return BabOutcome(BabStatus.UNKNOWN, None, "; ".join(dict.fromkeys(reasons)) or "undecided sub-boxes", stats)
    return BabOutcome(BabStatus.HOLDS, None, None, stats)


def _bound_popped(network: Network, case: Case, disjuncts: list[Constraints], oracle: OnnxOracle, popped: list[Box],
                  hints: list[LayerBounds | None] | None, stats: BabStats, settings: BabSettings, case_index: int,
                  use_lp: bool, deadline: Deadline, n_left: int) -> list[tuple[Box, BoxStep]] | BabOutcome:
    """Bound the popped boxes: several at once (``bound_boxes``, from their parents' bounds ``hints``
    when given), or one (``bound_box``). Returns the boxes with their steps, or the search's end: a
    counterexample, or the time running out (``n_left`` boxes on the stack and these stay open)."""
    try:
        if len(popped) > 1:
            steps = bound_boxes(network, case, disjuncts, oracle, popped, stats, settings, case_index, use_lp,
                                deadline, hints)
        else:
            lo, hi, _ = popped[0]
            steps = [bound_box(network, case, disjuncts, oracle, lo, hi, stats, settings, case_index, use_lp,
                               deadline)]
    except Expired:  # the sub-boxes' bounds were cut short: they stay open
        return BabOutcome(BabStatus.UNKNOWN, None, "timeout during branch and bound "
                          f"({n_left + len(popped)} sub-boxes open)", stats)
    for step in steps:
        if isinstance(step, Counterexample):
            return BabOutcome(BabStatus.VIOLATED, step, None, stats)
    return list(zip(popped, steps))


def _exact_leaf(network: Network, case: Case, disjuncts: list[Constraints], oracle: OnnxOracle, box: Box,
                box_bounds: LayerBounds, settings: BabSettings, deadline: Deadline, stats: BabStats,
                case_index: int, reasons: list[str]) -> BabOutcome | None:
    """Decide the disjuncts still alive on one box by its MILP: the search's end (a counterexample, a
    timeout), or None to go on (proved, or undecided: its reason joins ``reasons``)."""
    lo, hi, _ = box
    res = milp_box(network, case, disjuncts, oracle, lo, hi, box_bounds, settings, deadline, stats, case_index)
    if isinstance(res, Counterexample):
        return BabOutcome(BabStatus.VIOLATED, res, None, stats)
    if res is None:
        stats.proved_by_milp += 1
        return None
    stats.undecided += 1
    reasons.append(res)
    return BabOutcome(BabStatus.UNKNOWN, None, res, stats) if res.startswith("timeout") else None


def _bisect(box: Box, dim: int) -> tuple[Box, Box, float]:
    """The lower and upper halves of ``box`` along input ``dim``, one level deeper, and the cut."""
    lo, hi, depth = box
    mid = 0.5 * (lo[dim] + hi[dim])
    hi1, lo2 = hi.copy(), lo.copy()
    hi1[dim] = mid
    lo2[dim] = mid
    return (lo, hi1, depth + 1), (lo2, hi, depth + 1), float(mid)


def bound_box(network: Network, case: Case, disjuncts: list[Constraints], oracle: OnnxOracle, lo: np.ndarray,
              hi: np.ndarray, stats: BabStats, settings: BabSettings, case_index: int = 0, lp_check: bool = False,
              deadline: Deadline | float | None = None) -> Counterexample | BoxStep:
    """Bound one sub-box: a counterexample, or what is left of it (``BoxStep``). The bounds include
    the float rounding of the network (``floatmodel``)."""
    t = time.perf_counter()
    deadline = Deadline.coerce(deadline)
    b = symbolic_bounds(network, lo, hi, deadline=deadline)  # Expired past the deadline
    rows = {i: linear_bounds(network, b, lo, hi, cons.ay, None, cons.ax, return_coef=True)
            for i, cons in enumerate(disjuncts) if cons.rhs.size}
    tri = _triage(case, disjuncts, b, lo, hi, rows, settings)
    stats.bounds_s += time.perf_counter() - t
    if not tri.alive:
        stats.proved_by_bounds += 1
        return BoxStep([], 0, None, b, tri.proved)
    t = time.perf_counter()
    cex = _attack_points(network, case, [disjuncts[i] for i in tri.alive], oracle,
                         np.vstack(tri.cands + [0.5 * (lo + hi)]), case_index)
    stats.attack_s += time.perf_counter() - t
    if cex is not None:
        return cex
    return _close(network, disjuncts, b, lo, hi, tri, b.n_unstable(network), stats, settings, lp_check, deadline)


def bound_boxes(network: Network, case: Case, disjuncts: list[Constraints], oracle: OnnxOracle, boxes: list[Box],
                stats: BabStats, settings: BabSettings, case_index: int = 0, lp_check: bool = False,
                deadline: Deadline | float | None = None, known: list[LayerBounds | None] | None = None
                ) -> list[Counterexample | BoxStep]:
    """``bound_box`` of several sub-boxes (a chain of dense ReLU layers, ``bounds.batch.supports``):
    their bounds and rows in one set of numpy calls (``bounds.batch``, the one-box bounds up to
    float64 rounding; with parent hints sound but not always tighter: the default lower slopes are
    not monotone in the bounds, review R17-1), the attack points of all of them in one forward
    pass; optimised slopes and the LP box by box. One step per box, in order, or up to the first
    counterexample. ``known``: per box, sound bounds of a box containing it (its parent's) or None;
    they tighten its interval bounds."""
    t = time.perf_counter()
    deadline = Deadline.coerce(deadline)
    LO = np.array([bx[0] for bx in boxes], dtype=np.float64)
    HI = np.array([bx[1] for bx in boxes], dtype=np.float64)
    start = None
    if known is not None and any(k is not None for k in known):
        inf = [np.full(layer.n_out, np.inf) for layer in network.layers]
        start = ([np.array([-f if k is None else k.lower[j] for k in known]) for j, f in enumerate(inf)],
                 [np.array([f if k is None else k.upper[j] for k in known]) for j, f in enumerate(inf)])
    stats.batches += 1
    bb = batched.batch_bounds(network, LO, HI, deadline=deadline, start=start)  # Expired past the deadline
    rows_all = {i: batched.batch_linear_bounds(network, bb, LO, HI, cons.ay, cons.ax)
                for i, cons in enumerate(disjuncts) if cons.rhs.size}
    tris, bs = [], []
    for j in range(len(boxes)):
        b = bb.box(j)
        bs.append(b)
        tris.append(_triage(case, disjuncts, b, LO[j], HI[j], {i: (r[0][j], r[1][j], r[2][j])
                                                              for i, r in rows_all.items()}, settings))
    stats.bounds_s += time.perf_counter() - t
    t = time.perf_counter()
    open_ = [j for j, tri in enumerate(tris) if tri.alive]
    first_cex = None  # (box position, counterexample)
    if open_:
        pts = [np.vstack(tris[j].cands + [0.5 * (LO[j] + HI[j])]) for j in open_]
        owner = np.concatenate([np.full(p.shape[0], j) for j, p in zip(open_, pts)])
        X = np.vstack(pts)
        forward = network.float_deviation(X)
        margins = np.array([falsify.float_margins(network, cons, X, forward) for cons in disjuncts])
        for j in open_:
            mine = owner == j
            near_pts = np.min(margins[tris[j].alive][:, mine], axis=0) <= 0
            for x in X[mine][near_pts]:
                cex = confirm(oracle, case, x, case_index)
                if cex is not None:
                    first_cex = (j, cex)
                    break
            if first_cex is not None:
                break
    stats.attack_s += time.perf_counter() - t
    n_unstable = bb.n_unstable(network)
    upto = len(boxes) if first_cex is None else first_cex[0]
    pre = alpha_proofs(network, disjuncts, bs[:upto], LO, HI, tris[:upto], n_unstable, settings, stats)
    out: list[Counterexample | BoxStep] = []
    for j, tri in enumerate(tris):
        if first_cex is not None and j == first_cex[0]:
            out.append(first_cex[1])
            return out
        if not tri.alive:
            stats.proved_by_bounds += 1
            out.append(BoxStep([], 0, None, bs[j], tri.proved))
            continue
        out.append(_close(network, disjuncts, bs[j], LO[j], HI[j], tri, int(n_unstable[j]), stats, settings, lp_check,
                          deadline, pre.get(j, {})))
    return out


class _Triage(NamedTuple):
    """What a box's bounds say: the disjuncts alive, those proved (-> row), how far each alive one
    misses (relative to its range), the split input and the attack points (one per alive disjunct)."""

    alive: list[int]
    proved: dict[int, int]
    near: dict[int, float]
    best_dim: int | None
    cands: list[np.ndarray]
    row_bounds: dict[int, tuple[np.ndarray, np.ndarray]]


def _triage(case: Case, disjuncts: list[Constraints], b: LayerBounds, lo: np.ndarray, hi: np.ndarray,
            rows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]], settings: BabSettings) -> _Triage:
    """Sort the disjuncts of a box by its row bounds ``rows`` (disjunct -> (lower, upper, input
    coefficients of the lower bounds))."""
    alive = []
    best_dim, best_score = None, -np.inf
    cands = []
    proved: dict[int, int] = {}  # disjunct -> the row whose bound proves it empty here
    near: dict[int, float] = {}  # disjunct left open -> how far its best row misses, relative to its range
    for i, cons in enumerate(disjuncts):
        if cons.rhs.size == 0:
            alive.append(i)
            continue
        low, up, coef = rows[i]
        slack = low - cons.rhs
        if np.any(slack > 0):
            proved[i] = int(np.argmax(slack))
            continue
        alive.append(i)
        r = int(np.argmax(slack))  # the row closest to being proved: split to push it over
        near[i] = float(-slack[r] / max(up[r] - low[r], 1e-300))
        score = _split_score(b, coef[r], lo, hi, settings.split_rule)
        # an input already split very finely cannot keep winning just because the bound ignores
        # the others: that would drive the search deep without shrinking the box
        fine = (hi - lo) <= (case.upper - case.lower) * 2.0 ** -12
        if not fine.all():
            score = np.where(fine, 0.0, score)
        if score.max() > best_score:
            best_score = score.max()
            best_dim = int(np.argmax(score)) if score.max() > 0 else None
        cands.append(np.where(coef[r] >= 0, lo, hi))  # the box vertex minimising the bound's line
    return _Triage(alive, proved, near, best_dim, cands, {i: r[:2] for i, r in rows.items()})


def _close(network: Network, disjuncts: list[Constraints], b: LayerBounds, lo: np.ndarray, hi: np.ndarray,
           tri: _Triage, n_unstable: int, stats: BabStats, settings: BabSettings, lp_check: bool,
           deadline: Deadline, alpha: dict[int, tuple[int, dict[int, np.ndarray]] | None] | None = None) -> BoxStep:
    """Try the open disjuncts of a box (no counterexample at its attack points) with optimised
    slopes (``alpha``: their outcomes when already computed, ``box_slopes.alpha_proofs``) and the LP; what is left and the input to split."""
    alive, proved, best_dim = list(tri.alive), dict(tri.proved), tri.best_dim
    slopes: dict[int, dict[int, np.ndarray]] = {}
    if alpha is None:
        alpha = alpha_proofs(network, disjuncts, [b], lo[None], hi[None], [tri], np.array([n_unstable]), settings,
                              stats).get(0, {})
    if alpha:
        for i, got in alpha.items():
            if got is not None:
                proved[i], slopes[i] = got
                alive.remove(i)
        if not alive:
            stats.proved_by_alpha += 1
            return BoxStep([], 0, None, b, proved, slopes)
    if lp_check and 0 < n_unstable <= settings.lp_unstable and not alpha_on(network, settings):
        t = time.perf_counter()
        still = []
        for i in alive:
            rem = deadline.remaining()
            rem = None if rem is None else max(0.01, rem)
            stats.lp_calls += 1
            if not lp_refutes(network, b, lo, hi, disjuncts[i], rem, tri.row_bounds.get(i)):
                still.append(i)
        stats.lp_s += time.perf_counter() - t
        if not still:
            stats.proved_by_lp += 1
            return BoxStep([], 0, None, b, proved, slopes)
        alive = still
    if best_dim is None and np.any(hi > lo):
        best_dim = int(np.argmax(hi - lo))
    return BoxStep(alive, n_unstable, best_dim, b, proved, slopes)


def _attack_points(network: Network, case: Case, live: list[Constraints], oracle: OnnxOracle, pts: np.ndarray,
                   case_index: int) -> Counterexample | None:
    """Replay the points where a float evaluation may reach some live disjunct: onnxruntime decides."""
    forward = network.float_deviation(pts)  # once for every live disjunct
    near_pts = np.min([falsify.float_margins(network, cons, pts, forward) for cons in live], axis=0) <= 0
    for x in pts[near_pts]:
        cex = confirm(oracle, case, x, case_index)
        if cex is not None:
            return cex
    return None


def _split_score(b, coef: np.ndarray, lo: np.ndarray, hi: np.ndarray, rule: str) -> np.ndarray:
    """How much splitting each input is expected to tighten the bound."""
    width = hi - lo
    if rule == "gap" and b.influence is not None and np.any(b.influence > 0):
        return b.influence * width
    return np.abs(coef) * width
