"""The exact check of one sub-box of input splitting: its MILP, each unsafe disjunct decided by
``disjunct.decide_disjunct`` (a proof, a replayed counterexample, or why it stays open)."""

from __future__ import annotations

import time

import numpy as np

from ..bounds import LayerBounds, margin_tau
from ..budget import Deadline
from ..io.replay import Counterexample, OnnxOracle
from ..milp.encoding import encode
from ..network import Network
from ..spec import Case, Constraints
from .box_settings import BabSettings, BabStats
from .disjunct import COUNTEREXAMPLE, OPEN, PROVED, TIMEOUT, decide_disjunct


def milp_box(network: Network, case: Case, disjuncts: list[Constraints], oracle: OnnxOracle, lo: np.ndarray,
             hi: np.ndarray, b: LayerBounds, settings: BabSettings, deadline: Deadline | float | None,
             stats: BabStats, case_index: int = 0) -> Counterexample | str | None:
    """Exact check of one sub-box (with its bounds ``b``): None if proved, a counterexample, or
    the reason it stays open. Each disjunct is decided by ``disjunct.decide_disjunct``."""

    t = time.perf_counter()
    deadline = Deadline.coerce(deadline)
    milp = encode(network, b, lo, hi)
    tau = margin_tau(b, settings.margin_abs, settings.margin_rel)
    stats.milp_binaries_max = max(stats.milp_binaries_max, milp.n_binaries)
    reason = None
    try:
        for cons in disjuncts:
            out = decide_disjunct(network, case, cons, milp, tau, settings.solver, deadline, oracle,
                                  np.random.default_rng(settings.seed), settings.attack, case_index, box=(lo, hi))
            if out.kind == PROVED:
                continue
            if out.kind == COUNTEREXAMPLE:
                return out.counterexample
            if out.kind == TIMEOUT:
                return "timeout during branch and bound (MILP on a sub-box)"
            if out.kind != OPEN:
                return out.reason
            reason = out.reason
        return reason
    finally:
        stats.milp_s += time.perf_counter() - t
