"""Neuron-splitting branch and bound for one unsafe disjunct (``prove_disjunct``) and for one
linear objective (``minimise``): the two questions ``search.branch_bound.Engine`` answers.

``prove_disjunct`` stops at the sign of the margin: every sub-problem closed is a proof; an input
where the bounds are lowest (and, every few batches, a gradient attack from the most promising of
them) that onnxruntime confirms is a counterexample; the time running out leaves it open.

``minimise`` keeps a proved lower bound and the best input seen; it stops when they are within
``gap``. The best input is replayed (onnxruntime for a model from a file) and its replayed value
is what is reported as the upper end: an input that really reaches it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from ..bounds import LayerBounds, crown
from ..budget import Deadline
from ..io.replay import Counterexample, cast_into_box, confirm
from ..network import Network
from ..spec import Case, Constraints
from . import falsify
from .branch_bound import Engine, Settings, Stats
from .disjunct import (
    COUNTEREXAMPLE,
    MARGIN_ABS,
    MARGIN_REL,
    OPEN,
    PROVED,
    SUBBOX_ATTACK,
    TIMEOUT,
    DisjunctKind,
    decide_disjunct,
)


@dataclass
class SplitOutcome:
    """``kind``: proved | counterexample | open | timeout (``search.disjunct.DisjunctKind``)."""

    kind: DisjunctKind
    counterexample: Counterexample | None = None
    reason: str | None = None
    stats: Stats = field(default_factory=Stats)
    lower: float = -np.inf


class _PointPool:
    """The most promising inputs seen (lowest real margin), for the periodic gradient attack."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.X: np.ndarray | None = None
        self.g: np.ndarray | None = None

    def add(self, X: np.ndarray, g: np.ndarray) -> None:
        if self.X is not None:
            X, g = np.vstack([self.X, X]), np.concatenate([self.g, g])
        order = np.argsort(g)[:self.size]
        self.X, self.g = X[order], g[order]


class DisjunctSearch:
    """Neuron splitting on one unsafe disjunct: ``start`` it with a deadline, ``resume`` it with a
    later one while it is open (``done`` false): its queue of sub-problems is kept in between.
    ``exact_leaves=False``: a sub-problem with nothing left to split ends the search open instead of
    going to the exact (MILP) check (certifying searches: every leaf closed by its bound)."""

    def __init__(self, network: Network, bounds: LayerBounds, case: Case, cons: Constraints, oracle,
                 case_index: int = 0, settings: Settings | None = None, progress=None,
                 exact_leaves: bool = True) -> None:
        self.network, self.case, self.cons, self.oracle, self.case_index = network, case, cons, oracle, case_index
        self.exact_leaves = exact_leaves
        self.settings = settings or Settings()
        self.prob = crown.Problem(network, bounds, case.lower, case.upper)
        self.engine = Engine(self.prob, cons.ay, cons.ax, -cons.rhs, cons.strict, self.settings)
        self.pool = _PointPool()
        self.found: list[Counterexample] = []
        self.batches = 0
        self.progress = progress
        self.deadline = Deadline.never()
        self.started = False

    @property
    def done(self) -> bool:
        return self.started and self.engine.final

    def run(self, deadline: Deadline) -> SplitOutcome:
        """Start (or resume) the search until ``deadline``."""
        self.deadline = deadline
        if self.started:
            return self._outcome(*self.engine.resume(deadline))
        self.started = True
        leaf = self._leaf if self.exact_leaves else None
        return self._outcome(*self.engine.run(deadline, lambda: 0.0, self._on_points, self.progress, leaf))

    def _outcome(self, status: str, low: float, reason: str | None) -> SplitOutcome:
        st = self.engine.stats
        if self.found:
            return SplitOutcome(COUNTEREXAMPLE, self.found[0], None, st, low)
        if status == "proved":
            return SplitOutcome(PROVED, None, None, st, low)
        return SplitOutcome(TIMEOUT if (reason or "").startswith("timeout") else OPEN, None, reason, st, low)

    def _on_points(self, X: np.ndarray) -> bool:
        t = time.perf_counter()
        net, case, cons = self.network, self.case, self.cons
        try:
            X = np.clip(np.atleast_2d(X), case.lower, case.upper)
            self.pool.add(X, falsify.margins(net, cons, X))
            if self._replay_best(X):
                return True
            self.batches += 1
            if self.batches % self.settings.attack_every == 0 and not self.deadline.expired():
                X, _ = falsify.pgd(net, cons, case.lower, case.upper, self.pool.X, steps=20, step_frac=0.05,
                                   deadline=self.deadline)
                if self._replay_best(X):
                    return True
                self.pool.add(X, falsify.margins(net, cons, X))
            return False
        finally:
            self.engine.stats.attack_s += time.perf_counter() - t

    def _replay_best(self, X: np.ndarray, max_checks: int = 3) -> bool:
        """Replay the (at most ``max_checks``) points of ``X`` where a float evaluation may reach the
        unsafe region, most promising first; True (and the counterexample kept) on a confirmed one."""
        fm = falsify.float_margins(self.network, self.cons, X)
        for i in np.argsort(fm)[:max_checks]:
            if fm[i] > 0:
                break
            cex = confirm(self.oracle, self.case, X[i], self.case_index)
            if cex is not None:
                self.found.append(cex)
                return True
        return False

    def _leaf(self, sub: crown.Batch) -> tuple[str, float]:
        out = _leaf_milp(self.network, self.prob, sub, self.case, self.cons, self.oracle, self.deadline,
                         self.case_index)
        if out.kind == "counterexample":
            self.found.append(out.counterexample)
            return "stop", -np.inf
        return ("closed", 0.0) if out.kind == "proved" else (f"open: {out.reason}", -np.inf)


def prove_disjunct(network: Network, bounds: LayerBounds, case: Case, cons: Constraints, oracle,
                   deadline: Deadline, case_index: int = 0, settings: Settings | None = None,
                   progress=None) -> SplitOutcome:
    """Prove ``cons`` empty over ``case``'s box by neuron splitting, or find a replayed counterexample."""
    return DisjunctSearch(network, bounds, case, cons, oracle, case_index, settings, progress).run(deadline)


def leaf_bounds(prob: crown.Problem, sub: crown.Batch) -> LayerBounds:
    """The pre-activation bounds of one sub-problem (a batch of one) as ``LayerBounds``: its own
    for the activation layers, the root's for the output layer; the root's rounding bounds."""
    root = prob.bounds
    lows = [sub.lower[j][0] if j in sub.lower else root.lower[j] for j in range(len(root.lower))]
    ups = [sub.upper[j][0] if j in sub.upper else root.upper[j] for j in range(len(root.upper))]
    return LayerBounds(tuple(lows), tuple(ups), "branch and bound leaf", errors=prob.errors)


def _leaf_encoding(network: Network, prob: crown.Problem, sub: crown.Batch):
    """One sub-problem's MILP (an LP when every neuron is split) over its own box, with its bounds
    as constraints widened by the MILP margin ``tau``: ``(milp, tau)``."""
    from ..layer_bounds import margin_tau
    from ..milp.encoding import encode

    bnds = leaf_bounds(prob, sub)
    tau = margin_tau(bnds, MARGIN_ABS, MARGIN_REL)
    return encode(network, bnds, sub.lo[0], sub.hi[0], enforce_bounds=tau), tau


def _leaf_milp(network, prob, sub, case, cons, oracle, deadline, case_index):
    """Decide ``cons`` on one sub-problem exactly: its MILP solved by HiGHS in-process, judged by
    ``decide_disjunct`` (the attack after a solver point searches the sub-problem's box)."""
    milp, tau = _leaf_encoding(network, prob, sub)
    return decide_disjunct(network, case, cons, milp, tau, "highs", deadline, oracle, np.random.default_rng(0),
                           SUBBOX_ATTACK, case_index, box=(sub.lo[0], sub.hi[0]))


def _leaf_minimum(network, prob, sub, c: np.ndarray, d: float, deadline: Deadline
                  ) -> tuple[float | None, np.ndarray | None]:
    """A sound lower bound of ``c @ y + d`` on one sub-problem from its MILP (HiGHS' rigorous dual
    bound), the output layer's rounding included; ``inf`` for an empty one; None if HiGHS gave none;
    and the solver's optimal input (a candidate for the best point, judged by the forward pass)."""
    from ..milp.encoding import output_rows
    from ..milp.solvers.highs import LinearProgram

    milp, _ = _leaf_encoding(network, prob, sub)
    (idx, val, rhs), = output_rows(network, milp, np.zeros((1, network.n_inputs)), c[None, :], np.zeros(1),
                                   widen=False)
    lp = LinearProgram(milp, integer=True)
    low, _ = lp.minimize(idx, val, deadline.remaining())
    if low is None:
        # infeasible even with the sub-problem's bounds widened by the margin: no evaluation
        # reaches it (the same trust in the solver's infeasibility as a disjunct's MILP proof)
        return (np.inf if lp.last_infeasible() else None), None
    sol = lp.last_point()
    point = None if sol is None else sol[milp.input_vars]
    return float(low - rhs + d - np.abs(c) @ milp.output_error), point


@dataclass
class Minimum:
    """A proved lower bound of ``min r`` over the box, the best input found and its value
    (``replayed``: the value computed by the replay oracle at that input, else the float64 one)."""

    lower: float
    value: float
    point: np.ndarray
    exact: bool
    replayed: bool
    stats: Stats
    reason: str | None = None


def minimise(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray, c: np.ndarray,
             d: float, gap: float, deadline: Deadline, oracle=None, settings: Settings | None = None,
             starts: np.ndarray | None = None) -> Minimum:
    """``min c @ f(x) + d`` over the box to within ``gap`` (absolute), or what is known when time runs out."""
    settings = settings or Settings()
    prob = crown.Problem(network, bounds, lower, upper)
    c = np.asarray(c, float).reshape(1, -1)
    eng = Engine(prob, c, None, np.array([d], float), None, settings)
    best = {"v": np.inf, "x": 0.5 * (prob.lower + prob.upper)}

    def see(X: np.ndarray) -> None:
        X = np.clip(np.atleast_2d(X), prob.lower, prob.upper)
        v = network.forward(X) @ c[0] + d
        i = int(np.argmin(v))
        if v[i] < best["v"]:
            best["v"], best["x"] = float(v[i]), X[i].copy()

    see(np.vstack([best["x"][None], prob.lower[None], prob.upper[None]] + ([] if starts is None else [starts])))

    def on_points(X: np.ndarray) -> bool:
        see(X)
        return False

    def leaf(sub: crown.Batch) -> tuple[str, float]:
        low, point = _leaf_minimum(network, prob, sub, c[0], d, deadline)
        if point is not None:
            see(point)
        return ("closed", low) if low is not None else ("open: the exact check of a sub-problem gave no bound", -np.inf)

    status, low, reason = eng.run(deadline, lambda: best["v"] - 0.5 * gap, on_points, None, leaf)
    low = min(low, best["v"])  # a proved bound never exceeds a value the network takes
    value, replayed, point = best["v"], False, best["x"]
    # the replay runs on the point cast into the box in the model's input type (a float32 cast of
    # a corner may leave the box): no such point, no replay
    xc = None if oracle is None else cast_into_box(best["x"], prob.lower, prob.upper, oracle.dtype)
    if xc is not None:
        y = np.asarray(oracle.run(xc), float).ravel()
        value, replayed, point = float(c[0] @ y + d), True, np.asarray(xc, float)
    low = min(low, value)
    return Minimum(float(low), float(value), point, bool(value - low <= gap and status != "open"), replayed,
                   eng.stats, reason)


#: a case whose bounds leave at most this many unstable neurons goes to the MILP instead (CBC closes
#: such MILPs in seconds; branch and bound would split the same neurons one by one)
MILP_MAX_UNSTABLE = 60


@dataclass
class CaseOutcome:
    """What neuron splitting settled of one case's disjuncts."""

    proved: int = 0
    counterexample: Counterexample | None = None
    open_reasons: list[str] = field(default_factory=list)
    timed_out: bool = False
    to_milp: list[int] = field(default_factory=list)  # disjuncts left to the MILP
    time_s: float = 0.0
    stats: dict[int, Stats] = field(default_factory=dict)  # per disjunct searched
    #: per disjunct searched with ``Settings.record_leaves``: the closed sub-problems (``Engine.leaves``)
    leaves: dict[int, list[dict]] = field(default_factory=dict)
    #: why the disjuncts in ``to_milp`` could not go on (a search ended open: memory, an undecided leaf)
    to_milp_reasons: dict[int, str] = field(default_factory=dict)

    def stats_dict(self, previous: dict | None = None) -> dict:
        """The branch-and-bound counters summed over the disjuncts (and ``previous`` cases)."""
        out = dict(previous or {})
        for st in self.stats.values():
            for k, v in st.as_dict().items():
                out[k] = max(out.get(k, 0), v) if k in ("max_depth", "peak_queue") else round(out.get(k, 0) + v, 4)
        return out


#: the share of the time that the first round gives the disjuncts (each the same); the open ones
#: share what is left in later rounds, so that the easy ones finish early and the hard ones get the rest
FIRST_ROUND = 0.3


def prove_case(network: Network, bounds: LayerBounds, case: Case, todo: list[int], oracle, deadline: Deadline,
               case_index: int = 0, progress=None, settings: Settings | None = None,
               certify: bool = False) -> CaseOutcome:
    """Neuron splitting on the disjuncts ``todo`` of ``case``, in rounds: first each gets an equal
    slice of ``FIRST_ROUND`` of the time, then the still-open ones resume with equal shares of the rest.

    ``certify``: a search whose proof a certificate can record: the leaves are kept
    (``CaseOutcome.leaves``), no disjunct goes to the MILP for having few unstable neurons and no
    sub-problem goes to the exact check (a disjunct that would need one ends open, in ``to_milp``)."""
    t0 = time.perf_counter()
    out = CaseOutcome()
    if not certify and bounds.n_unstable(network) <= MILP_MAX_UNSTABLE:
        out.to_milp = list(todo)
        return out
    # the queues of all the case's searches together stay under the memory limit
    settings = settings or Settings()
    settings = replace(settings, max_memory_mb=settings.max_memory_mb / len(todo),
                       record_leaves=settings.record_leaves or certify)
    searches = {di: DisjunctSearch(network, bounds, case, case.unsafe[di], oracle, case_index, settings,
                                   None if progress is None else _reporter(progress, di, k, len(todo), t0),
                                   exact_leaves=not certify)
                for k, di in enumerate(todo)}
    pending = list(todo)
    last: dict[int, SplitOutcome] = {}
    first = True
    while pending and not deadline.expired():
        order = list(pending)
        for k, di in enumerate(order):
            rem = deadline.remaining()
            share = None if rem is None else rem / (len(order) - k) * (FIRST_ROUND if first else 1.0)
            res = last[di] = searches[di].run(Deadline.after(share))
            if res.kind == "counterexample":
                out.counterexample = res.counterexample
                out.stats = {di: s.engine.stats for di, s in searches.items() if s.started}
                out.time_s = time.perf_counter() - t0
                return out
            if res.kind == "proved":
                out.proved += 1
            if searches[di].done:
                pending.remove(di)
                if res.kind == "open":  # the search cannot go on (memory, an undecided leaf): the MILP may
                    out.to_milp.append(di)
                    out.to_milp_reasons[di] = res.reason or "the search cannot go on"
        first = False
    for di in pending:
        res = last.get(di)
        out.timed_out = True
        out.open_reasons.append("timeout during neuron-splitting branch and bound" if res is None else
                                f"{res.reason} (best bound {res.lower:.4g})")
    out.stats = {di: s.engine.stats for di, s in searches.items() if s.started}
    if settings.record_leaves:
        out.leaves = {di: s.engine.leaves for di, s in searches.items() if s.started}
    out.time_s = time.perf_counter() - t0
    return out


def write_trace(path: str, case_index: int, outcome: CaseOutcome) -> None:
    """Append the best bound over time of every disjunct searched to the JSON-lines file ``path``:
    one object per branching step, ``{"case", "disjunct", "t", "bound", "open"}`` (``t`` in seconds
    since that disjunct's search started; ``bound``: the smallest bound of an open sub-problem, which
    must rise above 0 for a proof)."""
    import json

    with open(path, "a", encoding="utf-8") as f:
        for di, st in outcome.stats.items():
            f.writelines(json.dumps({"case": case_index, "disjunct": di, "t": t,
                                    "bound": None if not np.isfinite(low) else low, "open": n_open}) + "\n" for t, low, n_open in st.trace)


def _reporter(sink, di: int, k: int, n: int, t0: float):
    def report(st: Stats, n_open: int, low: float) -> None:
        sink(f"neuron splitting, disjunct {k + 1}/{n} (#{di}): {st.explored} sub-problems, {n_open} open, "
             f"bound {low:.4g}, depth {st.max_depth}, {time.perf_counter() - t0:.1f} s")
    return report
