"""The bound stages before a proof search: tightening the bounds before a big MILP (LP) or before
neuron splitting (optimised slopes, then LP), and refuting whole disjuncts with the LP relaxation
before any MILP is built."""

from __future__ import annotations

import time

from ..bounds import LayerBounds
from ..budget import Deadline
from ..network import Network
from ..result import DisjunctOutcomes, RunStats
from ..spec import Case
from .box_lp import lp_refutes

#: the whole-box LP check of each disjunct is skipped above this many unstable neurons (too slow)
LP_CHECK_MAX_UNSTABLE = 600


def lp_check(network: Network, case: Case, bnds: LayerBounds, todo: list[int], tally: DisjunctOutcomes,
             deadline: Deadline, stats: RunStats) -> list[int] | None:
    """Drop the disjuncts whose worst row the LP relaxation proves positive (None: out of time)."""
    from ..milp.solvers.highs import highs_available

    if not highs_available() or bnds.n_unstable(network) > LP_CHECK_MAX_UNSTABLE:
        return todo
    t = time.perf_counter()
    still = []
    for k, di in enumerate(todo):
        if deadline.expired():
            return None
        share = deadline.share(3 * (len(todo) - k))  # leave most of the time to the MILPs
        if lp_refutes(network, bnds, case.lower, case.upper, case.unsafe[di], share):
            tally.count("proved_by_lp")
        else:
            still.append(di)
    stats.add_time("lp_check_s", time.perf_counter() - t)
    return still


def optimised_root_bounds(network: Network, case: Case, bnds: LayerBounds, deadline: Deadline, stats: RunStats,
                          fraction: float = 1 / 6) -> LayerBounds:
    """The intermediate layers' bounds with optimised lower slopes (``bounds.optimised_layers``),
    within ``fraction`` of the remaining time: fewer unstable neurons, and every sub-problem of the
    branch and bound starts from narrower chords."""
    from ..bounds.optimised_layers import optimised_bounds

    if bnds.n_unstable(network) == 0 or deadline.expired():
        return bnds
    t = time.perf_counter()
    tight = optimised_bounds(network, bnds, case.lower, case.upper, deadline=deadline.child(fraction))
    stats.add_time("alpha_bounds_s", time.perf_counter() - t)
    stats.append("unstable_after_alpha", tight.n_unstable(network))
    return tight


def tighten_for_milp(network: Network, case: Case, bnds: LayerBounds, bounds_method: str, deadline: Deadline,
                     stats: RunStats, fraction: float = 1 / 3) -> LayerBounds:
    """LP tightening before a big MILP: each neuron it stabilises removes a binary.

    It pays when HiGHS is there (in-process, warm-started LPs); with CBC only (one process per LP)
    it is limited to small networks. It gets at most ``fraction`` of the remaining time.
    """
    from ..milp.solvers.highs import highs_available
    from .tighten import lp_bounds

    n_unstable = bnds.n_unstable(network)
    if n_unstable == 0 or bounds_method != "symbolic" or (not highs_available() and n_unstable > 60):
        return bnds
    if deadline.expired():
        return bnds
    t = time.perf_counter()
    tight = lp_bounds(network, case.lower, case.upper, start=bnds, deadline=deadline.child(fraction))
    stats.add_time("lp_tightening_s", time.perf_counter() - t)
    stats.append("unstable_after_lp", tight.n_unstable(network))
    stats.bounds_method = "lp"
    return tight
