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
from dataclasses import dataclass, field

import numpy as np

from ..bounds import LayerBounds, crown
from ..budget import Deadline
from ..io.replay import Counterexample, confirm
from ..network import Network
from ..spec import Case, Constraints
from . import falsify
from .branch_bound import Engine, Settings, Stats


@dataclass
class SplitOutcome:
    """``kind``: proved | counterexample | open | timeout (as ``search.disjunct.DisjunctKind``)."""

    kind: str
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


def prove_disjunct(network: Network, bounds: LayerBounds, case: Case, cons: Constraints, oracle,
                   deadline: Deadline, case_index: int = 0, settings: Settings | None = None,
                   progress=None) -> SplitOutcome:
    """Prove ``cons`` empty over ``case``'s box by neuron splitting, or find a replayed counterexample."""
    settings = settings or Settings()
    prob = crown.Problem(network, bounds, case.lower, case.upper)
    eng = Engine(prob, cons.ay, cons.ax, -cons.rhs, cons.strict, settings)
    pool = _PointPool()
    found: list[Counterexample] = []
    batches = [0]

    def on_points(X: np.ndarray) -> bool:
        t = time.perf_counter()
        try:
            X = np.clip(np.atleast_2d(X), case.lower, case.upper)
            g = falsify.margins(network, cons, X)
            pool.add(X, g)
            fm = falsify.float_margins(network, cons, X)
            for i in np.argsort(fm)[:3]:
                if fm[i] > 0:
                    break
                cex = confirm(oracle, case, X[i], case_index)
                if cex is not None:
                    found.append(cex)
                    return True
            batches[0] += 1
            if batches[0] % settings.attack_every == 0 and pool.X is not None and not deadline.expired():
                return _attack(network, case, cons, oracle, pool, deadline, case_index, found)
            return False
        finally:
            eng.stats.attack_s += time.perf_counter() - t

    status, low, reason = eng.run(deadline, lambda: 0.0, on_points, progress)
    if found:
        return SplitOutcome("counterexample", found[0], None, eng.stats, low)
    if status == "proved":
        return SplitOutcome("proved", None, None, eng.stats, low)
    kind = "timeout" if reason and reason.startswith("timeout") else "open"
    return SplitOutcome(kind, None, reason, eng.stats, low)


def _attack(network, case, cons, oracle, pool: _PointPool, deadline, case_index, found) -> bool:
    X, _ = falsify.pgd(network, cons, case.lower, case.upper, pool.X, steps=20, step_frac=0.05, deadline=deadline)
    fm = falsify.float_margins(network, cons, X)
    for i in np.argsort(fm)[:3]:
        if fm[i] > 0:
            break
        cex = confirm(oracle, case, X[i], case_index)
        if cex is not None:
            found.append(cex)
            return True
    pool.add(X, falsify.margins(network, cons, X))
    return False


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

    status, low, reason = eng.run(deadline, lambda: best["v"] - gap, on_points)
    low = min(low, best["v"])  # a proved bound never exceeds a value the network takes
    value, replayed = best["v"], False
    if oracle is not None:
        y = np.asarray(oracle.run(best["x"].astype(oracle.dtype)), float).ravel()
        value, replayed = float(c[0] @ y + d), True
    low = min(low, value)
    return Minimum(float(low), float(value), best["x"], bool(value - low <= gap and status != "open"), replayed,
                   eng.stats, reason)


#: a case whose bounds leave at most this many unstable neurons goes to the MILP instead (CBC closes
#: such MILPs in well under a second; branch and bound would split the same neurons one by one)
MILP_MAX_UNSTABLE = 40


@dataclass
class CaseOutcome:
    """What neuron splitting settled of one case's disjuncts."""

    proved: int = 0
    counterexample: Counterexample | None = None
    open_reasons: list[str] = field(default_factory=list)
    timed_out: bool = False
    to_milp: list[int] = field(default_factory=list)  # disjuncts left to the MILP
    time_s: float = 0.0
    stats: list[Stats] = field(default_factory=list)

    def stats_dict(self, previous: dict | None = None) -> dict:
        """The branch-and-bound counters summed over the disjuncts (and ``previous`` cases)."""
        out = dict(previous or {})
        for st in self.stats:
            for k, v in st.as_dict().items():
                out[k] = max(out.get(k, 0), v) if k in ("max_depth", "peak_queue") else round(out.get(k, 0) + v, 4)
        return out


def prove_case(network: Network, bounds: LayerBounds, case: Case, todo: list[int], oracle, deadline: Deadline,
               case_index: int = 0, progress=None, settings: Settings | None = None) -> CaseOutcome:
    """Neuron splitting on the disjuncts ``todo`` of ``case``, each with a fair share of the time left."""
    t0 = time.perf_counter()
    out = CaseOutcome()
    if bounds.n_unstable(network) <= MILP_MAX_UNSTABLE:
        out.to_milp = list(todo)
        return out
    for k, di in enumerate(todo):
        if deadline.expired():
            out.timed_out = True
            out.open_reasons.append("timeout during neuron-splitting branch and bound")
            break
        sub = Deadline.after(deadline.share(len(todo) - k))
        report = None if progress is None else _reporter(progress, di, k, len(todo), t0)
        res = prove_disjunct(network, bounds, case, case.unsafe[di], oracle, sub, case_index, settings, report)
        out.stats.append(res.stats)
        if res.kind == "proved":
            out.proved += 1
        elif res.kind == "counterexample":
            out.counterexample = res.counterexample
            break
        else:
            out.timed_out |= res.kind == "timeout"
            out.open_reasons.append(f"{res.reason} (best bound {res.lower:.4g})")
    out.time_s = time.perf_counter() - t0
    return out


def _reporter(sink, di: int, k: int, n: int, t0: float):
    def report(st: Stats, n_open: int, low: float) -> None:
        sink(f"neuron splitting, disjunct {k + 1}/{n} (#{di}): {st.explored} sub-problems, {n_open} open, "
             f"bound {low:.4g}, depth {st.max_depth}, {time.perf_counter() - t0:.1f} s")
    return report
