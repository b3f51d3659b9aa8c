"""Exact bound queries (``method="exact"`` of ``search.query``): per row of ``C @ y + d`` a sound
lower and upper bound over the input box, an input reaching each end (a *witness*, replayed by the
oracle: onnxruntime for an ONNX model) and ``exact`` where both ends are closed to ``gap``.

How: each end is one branch-and-bound minimisation (``neuron_split.minimise``; the maximum is the
minimum of ``-C[r] @ y - d[r]``) started from the root bounds (symbolic, LP-tightened when the
network is small enough for that to pay, see ``lp_pays``) and from the best points of a cheap
gradient search (``falsify.search``), so the engine's threshold (best value minus gap) prunes from
its first batch. Branching: the input box for networks with few inputs (``INPUT_BRANCHING_MAX``,
as ``verify``'s input splitting), neuron phases otherwise. The time is split fairly among the
``2 * rows`` minimisations (what one leaves unused goes to the rest); one that runs out still gives
its sound bound, and is not exact.

Networks the optimising bounds do not support (``crown.supports``: max pooling, ...), and networks
with many inputs whose root bounds leave at most ``neuron_split.MILP_MAX_UNSTABLE`` unstable
neurons (as in ``verify``), go to the MILP extrema (``tighten.milp_extrema``) instead, with
witnesses from the gradient search only.

Witness values are those the oracle computes at the witness input (cast into the box in the
model's input type, ``replay.cast_into_box``): the network really reaches them. ``exact[r]`` is
``value_lower - lower <= gap`` and ``upper - value_upper <= gap`` (absolute, the float32 rounding
pad included in the bounds): the true extrema of the float network lie within ``gap`` of both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..bounds import LayerBounds, crown, linear_bounds, symbolic_bounds
from ..budget import Deadline
from ..io.replay import cast_into_box, make_oracle
from ..network import Network
from ..spec import Constraints
from . import falsify
from .branch_bound import Settings

#: networks with at most this many inputs branch on the input box (as ``verify.Options.input_split_max_inputs``)
INPUT_BRANCHING_MAX = 12
#: neuron branching: LP-tighten the root bounds when the network has at most this many neurons with
#: an activation (``lp_pays``; the LP takes 0.6 s on ACAS Xu's 300)
LP_MAX_NEURONS = 1000
#: seed of the witness search (fixed: the same query gives the same witnesses)
SEED = 0


@dataclass
class End:
    """One end of one row: the proved bound, the witness input and its replayed value."""

    bound: float
    value: float | None  # None: no witness (a box without a representable input in the model's type)
    point: np.ndarray | None
    stats: dict = field(default_factory=dict)


@dataclass
class ExactResult:
    lower: np.ndarray
    upper: np.ndarray
    exact: np.ndarray
    witness_lower: np.ndarray  # (rows, n_inputs); nan rows where there is no witness
    witness_upper: np.ndarray
    value_lower: np.ndarray  # replayed values (nan: no witness)
    value_upper: np.ndarray
    layers: LayerBounds
    engine: str
    oracle: str
    stats: list[dict]


def lp_pays(network: Network) -> bool:
    """LP-tighten the root bounds before branching? Not with input branching: every child there
    re-bounds all layers over its own box (``crown.refine``), and on ACAS Xu (prop 3 / 4 boxes of
    1_1 and 2_5, all outputs) the LP's 0.6 s did not pay (1_1 prop 4: 9.2 s with, 3.0 s without;
    the others within noise). With neuron branching the root bounds are what every sub-problem
    keeps, so they get the LP when the network is small enough (``LP_MAX_NEURONS``)."""
    return network.n_inputs > INPUT_BRANCHING_MAX and network.n_neurons <= LP_MAX_NEURONS


def default_settings(network: Network) -> Settings:
    """Engine settings of a query: input branching for few inputs, neuron branching otherwise."""
    if network.n_inputs <= INPUT_BRANCHING_MAX:
        return Settings(branching="input", iters=2)
    return Settings(branching="neuron")


def _branch_and_bound_pays(network: Network, bounds: LayerBounds) -> bool:
    """Few inputs: input branching. Many inputs and at most ``MILP_MAX_UNSTABLE`` unstable neurons:
    the MILP (as ``verify`` does; neuron branching leaves sub-problems with every unstable neuron
    split and no bound closing them, which need an LP the engine does not solve yet)."""
    from .neuron_split import MILP_MAX_UNSTABLE

    return network.n_inputs <= INPUT_BRANCHING_MAX or bounds.n_unstable(network) > MILP_MAX_UNSTABLE


def _row_bounds(network: Network, layer_bounds, lower, upper, C) -> tuple[np.ndarray, np.ndarray]:
    """The tightest row bounds back-substitution gives over any of ``layer_bounds`` (it is not
    monotone in them: so the result nests in methods ``symbolic`` and ``lp``)."""
    los, his = zip(*(linear_bounds(network, b, lower, upper, C) for b in layer_bounds))
    return np.max(los, axis=0), np.min(his, axis=0)


def root_bounds(network: Network, lower, upper, deadline: Deadline, lp: bool | None,
                sym: LayerBounds | None = None) -> LayerBounds:
    """Symbolic bounds, LP-tightened (``lp`` None: when ``lp_pays``) within a third of the time."""
    b = sym if sym is not None else symbolic_bounds(network, lower, upper)
    if lp is None:
        lp = lp_pays(network)
    if lp and not deadline.expired():
        from .tighten import lp_bounds

        b = lp_bounds(network, lower, upper, start=b, deadline=deadline.child(1 / 3))
    return b


def witness_starts(network: Network, lower, upper, c: np.ndarray, deadline: Deadline, rng) -> np.ndarray:
    """The best few inputs for ``min c @ y`` of sampling and projected-gradient descent."""
    cons = Constraints(np.zeros((1, lower.size)), c[None, :], np.zeros(1), np.zeros(1, bool))
    pts = falsify.search(network, cons, lower, upper, rng, n_random=256, restarts=4, steps=30,
                         deadline=deadline.child(0.05))
    return pts[:8]


def replay(oracle, x: np.ndarray | None, lower, upper, c: np.ndarray, d: float) -> tuple[float | None, np.ndarray | None]:
    """The oracle's value of ``c @ y + d`` at ``x`` cast into the box (None: no such input)."""
    if x is None:
        return None, None
    xc = cast_into_box(x, lower, upper, oracle.dtype)
    if xc is None:
        return None, None
    return float(c @ np.asarray(oracle.run(xc), float).ravel() + d), xc


def _best_start(network: Network, starts: np.ndarray, c: np.ndarray) -> np.ndarray:
    return starts[int(np.argmin(network.forward(starts) @ c))]


def one_end(network: Network, bounds: LayerBounds, lower, upper, c, d, gap, deadline, oracle, settings,
            starts, floor: float) -> End:
    """``min c @ y + d``: the proved bound (never below ``floor``, a bound already known) and witness."""
    from .neuron_split import minimise

    t = time.perf_counter()
    if settings is None:  # no engine (unsupported network): the caller's bound, the best start as witness
        value, point = replay(oracle, _best_start(network, starts, c), lower, upper, c, d)
        bound = floor if value is None else min(floor, value)
        return End(bound, value, point, {"time_s": round(time.perf_counter() - t, 4)})
    m = minimise(network, bounds, lower, upper, c, d, gap, deadline, oracle, settings, starts)
    value, point = replay(oracle, m.point, lower, upper, c, d)
    bound = max(m.lower, floor)
    if value is not None:
        bound = min(bound, value)  # a value onnxruntime computes is never below a sound bound; keep them ordered
    st = {**m.stats.as_dict(), "time_s": round(time.perf_counter() - t, 4), "reason": m.reason}
    return End(bound, value, point, st)


def exact_bounds(network: Network, lower, upper, C: np.ndarray, d: np.ndarray, gap: float, deadline: Deadline,
                 settings: Settings | None = None, lp: bool | None = None,
                 progress: Callable[[str], None] | None = None) -> ExactResult:
    """Min and max of every row of ``C @ y + d`` over the box to ``gap`` (see the module docstring)."""
    t0 = time.perf_counter()
    oracle = make_oracle(network)
    supported = crown.supports(network)
    sym = symbolic_bounds(network, lower, upper)
    bounds = root_bounds(network, lower, upper, deadline, lp if supported else False, sym)
    lo0, hi0 = _row_bounds(network, (sym, bounds), lower, upper, C)
    engine = "milp"
    shared = supported and shared_pays(network, settings)
    if supported and settings is None and not _branch_and_bound_pays(network, bounds):
        supported = False
    if supported:
        settings = settings or default_settings(network)
        engine = f"branch and bound ({settings.branching} branching)"
    else:
        from .tighten import lp_bounds, milp_extrema

        bounds = lp_bounds(network, lower, upper, start=bounds, deadline=deadline.child(0.5))
        lo0, hi0 = _row_bounds(network, (sym, bounds), lower, upper, C)
        lo0, hi0, _ = milp_extrema(network, lower, upper, C, bounds, deadline.child(0.9), start=(lo0, hi0))
        settings = None
    rng = np.random.default_rng(SEED)
    n = C.shape[0]
    if shared:
        ends = shared_ends(network, lower, upper, C, d, gap, deadline, oracle, lo0, hi0, rng)
        if progress is not None:
            closed = sum(_closed(e, j % 2 == 0, gap) for j, e in enumerate(ends))
            progress(f"exact bounds: {2 * n} ends (one shared box tree), {closed} closed, "
                     f"{time.perf_counter() - t0:.1f} s")
        return _collect(ends, n, lower.size, gap, bounds, "branch and bound (input branching, one box tree for all ends)", oracle.name)
    ends: list[End] = []
    for k in range(2 * n):
        r, sign = k // 2, (1.0 if k % 2 == 0 else -1.0)
        sub = Deadline.after(deadline.share(2 * n - k))
        c, dd = sign * C[r], sign * d[r]
        starts = witness_starts(network, lower, upper, c, sub, rng)
        floor = lo0[r] + d[r] if sign > 0 else -(hi0[r] + d[r])
        end = one_end(network, bounds, lower, upper, c, dd, gap, sub, oracle, settings, starts, floor)
        if sign < 0:
            end = replace(end, bound=-end.bound, value=None if end.value is None else -end.value)
        ends.append(end)
        if progress is not None:
            closed = sum(_closed(e, j % 2 == 0, gap) for j, e in enumerate(ends))
            progress(f"exact bounds: {k + 1}/{2 * n} ends done ({'min' if sign > 0 else 'max'} of row {r}), "
                     f"{closed} closed, {time.perf_counter() - t0:.1f} s")
    return _collect(ends, n, lower.size, gap, bounds, engine, oracle.name)


def shared_pays(network: Network, settings: Settings | None) -> bool:
    """One box tree for all ends (``shared_ends.minimise_rows``): the default for networks with
    few inputs that the batched bounds support (a chain of dense ReLU layers); an explicit
    ``settings`` asks for the per-end engine."""
    from ..bounds import batch as batched

    return settings is None and network.n_inputs <= INPUT_BRANCHING_MAX and batched.supports(network)


def shared_ends(network: Network, lower, upper, C, d, gap, deadline: Deadline, oracle, lo0, hi0, rng) -> list[End]:
    """All ``2 * rows`` ends in one input-bisection tree (``shared_ends``): row ``2r`` minimises
    ``C[r] @ y``, row ``2r + 1`` minimises ``-C[r] @ y``; each end's bound is kept at least its
    root bound, its witness replayed."""
    from .shared_ends import minimise_rows

    n = C.shape[0]
    rows = np.empty((2 * n, C.shape[1]))
    rows[0::2], rows[1::2] = C, -C
    offs = np.empty(2 * n)
    offs[0::2], offs[1::2] = d, -d
    starts = np.vstack([witness_starts(network, lower, upper, rows[k], Deadline.after(deadline.share(2 * n - k)), rng)
                        for k in range(2 * n)])
    res = minimise_rows(network, lower, upper, rows, offs, gap, deadline, starts)
    ends = []
    for k in range(2 * n):
        r, sign = k // 2, (1.0 if k % 2 == 0 else -1.0)
        value, point = replay(oracle, res.point[k], lower, upper, rows[k], offs[k])
        floor = lo0[r] + d[r] if sign > 0 else -(hi0[r] + d[r])
        bound = max(float(res.lower[k]), floor)
        if value is not None:
            bound = min(bound, value)
        # the tree's counters once per query (with the first end); the others count nothing of their own
        st = dict(res.stats) if k == 0 else {"explored": 0, "reason": res.stats.get("reason"), "shared": True}
        end = End(bound, value, point, st)
        if sign < 0:
            end = replace(end, bound=-end.bound, value=None if end.value is None else -end.value)
        ends.append(end)
    return ends


def _closed(e: End, is_min: bool, gap: float) -> bool:
    return e.value is not None and ((e.value - e.bound) if is_min else (e.bound - e.value)) <= gap


def _collect(ends: list[End], n: int, n_in: int, gap: float, bounds, engine: str, oracle: str) -> ExactResult:
    lo_e, hi_e = ends[0::2], ends[1::2]

    def pts(es):
        return np.array([e.point if e.point is not None else np.full(n_in, np.nan) for e in es]).reshape(n, n_in)

    def vals(es):
        return np.array([np.nan if e.value is None else e.value for e in es], float)

    exact = np.array([_closed(a, True, gap) and _closed(b, False, gap) for a, b in zip(lo_e, hi_e)], bool)
    stats = [{"lower": a.stats, "upper": b.stats} for a, b in zip(lo_e, hi_e)]
    return ExactResult(np.array([e.bound for e in lo_e]), np.array([e.bound for e in hi_e]), exact,
                       pts(lo_e), pts(hi_e), vals(lo_e), vals(hi_e), bounds, engine, oracle, stats)
