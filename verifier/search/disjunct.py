"""The decision on one unsafe disjunct over one box: the only place where a solver's status becomes
a proof, a counterexample or an open question.

``decide_disjunct`` builds the disjunct's rows on the box's MILP with the right-hand side enlarged
by the margin ``tau`` (so that solver tolerances cannot hide a real violation), solves it, and
reads the outcome:

- ``infeasible`` (the solver's explicit proof; numerically doubtful claims were already turned into
  errors by the back-end, ``milp.solvers.cbc.numerical_doubt``) -> **proved**;
- a solver point -> replayed in onnxruntime; if it does not violate the exact property, a nearby
  attack (sampling + PGD around it, with the caller's seeded ``rng`` and ``AttackSettings``) is
  tried; a replayed violation -> **counterexample**, otherwise **open** with the reason (the
  property may hold by less than ``tau``);
- ``timeout`` -> **timeout**; anything else (error, cancelled) -> **error**. Neither is ever a proof.

Both the one-MILP-per-disjunct path (``verify``) and branch and bound's MILP leaves
(``search.input_split.milp_box``) decide through here. The margin defaults live here too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from ..bounds import LayerBounds, linear_bounds
from ..budget import Deadline
from ..io.replay import Counterexample, OnnxOracle, confirm
from ..milp.encoding import output_rows
from ..milp.model import MILP
from ..milp.solvers import SolveOutcome, Solver, get_solver
from ..network import Network
from ..spec import Case, Constraints
from . import conjunct, falsify

#: the margin ``tau = MARGIN_ABS + MARGIN_REL * (largest |neuron bound|)`` (``bounds.margin_tau``)
MARGIN_ABS = 1e-5
MARGIN_REL = 1e-8

class DisjunctKind(StrEnum):
    """How one disjunct was settled by ``decide_disjunct``."""

    PROVED = "proved"
    COUNTEREXAMPLE = "counterexample"
    OPEN = "open"
    TIMEOUT = "timeout"
    ERROR = "error"


PROVED, COUNTEREXAMPLE, OPEN = DisjunctKind.PROVED, DisjunctKind.COUNTEREXAMPLE, DisjunctKind.OPEN
TIMEOUT, ERROR = DisjunctKind.TIMEOUT, DisjunctKind.ERROR


@dataclass(frozen=True)
class AttackSettings:
    """The nearby attack tried when a solver point does not replay (``falsify.search``)."""

    n_random: int = 512
    restarts: int = 8
    steps: int = 100
    max_checks: int = 3  # candidates replayed in onnxruntime


#: on a whole input box (one MILP per disjunct)
CASE_ATTACK = AttackSettings()
#: on a branch-and-bound leaf: small boxes, many of them
SUBBOX_ATTACK = AttackSettings(n_random=64, restarts=4)


@dataclass(frozen=True)
class DisjunctOutcome:
    """``kind``: proved | counterexample | open | timeout | error. ``reason`` says why it is not
    proved (open, timeout, error); ``solve`` is the solver's raw outcome (stats)."""

    kind: DisjunctKind
    counterexample: Counterexample | None = None
    reason: str | None = None
    solve: SolveOutcome | None = None
    time_s: float = 0.0

    @property
    def proved(self) -> bool:
        return self.kind == PROVED


def refuted_by_bounds(network: Network, bounds: LayerBounds, lower: np.ndarray, upper: np.ndarray,
                      cons: Constraints) -> bool:
    """True if some row of the conjunction cannot hold anywhere in the box, for any float
    evaluation (the bounds include the float rounding): the disjunct is proved without a solver."""
    if cons.rhs.size == 0:
        return False
    lo, _ = linear_bounds(network, bounds, lower, upper, cons.ay, None, cons.ax)
    return bool(np.any(lo > cons.rhs))


def disjunct_problem(network: Network, milp: MILP, cons: Constraints, tau: float) -> MILP:
    """The box's MILP with the disjunct's rows, each right-hand side enlarged by ``tau``."""
    return milp.with_rows(output_rows(network, milp, cons.ax, cons.ay, cons.rhs + tau))


def attack_near(network: Network, case: Case, cons: Constraints, oracle: OnnxOracle, lower: np.ndarray,
                upper: np.ndarray, rng: np.random.Generator, attack: AttackSettings = CASE_ATTACK,
                start: np.ndarray | None = None, deadline: Deadline | float | None = None,
                case_index: int = 0, bounds: LayerBounds | None = None) -> Counterexample | None:
    """Search ``[lower, upper]`` for an input violating ``cons`` (from ``start`` too) and replay the
    best candidates in onnxruntime against ``case``'s disjuncts restricted to that box.

    A conjunction of several rows is attacked on its summed violation (``conjunct.search``, which
    also starts from the vertices ``bounds`` of the box point at); a single row by
    ``falsify.search``."""
    if cons.n_rows > 1:
        cands = conjunct.search(network, cons, lower, upper, rng, n_random=attack.n_random,
                                restarts=attack.restarts, steps=attack.steps, extra_starts=start, bounds=bounds,
                                deadline=deadline)
    else:
        cands = falsify.search(network, cons, lower, upper, rng, n_random=attack.n_random, restarts=attack.restarts,
                               steps=attack.steps, extra_starts=start, deadline=deadline)
    # a sub-box keeps the case's kind (a ReducedCase judges replays on the full input)
    box = case if (lower is case.lower and upper is case.upper) else replace(case, lower=lower, upper=upper)
    for i in falsify.replay_order(network, cons, cands, attack.max_checks):
        cex = confirm(oracle, box, cands[i], case_index)
        if cex is not None:
            return cex
    return None


def decide_disjunct(network: Network, case: Case, cons: Constraints, milp: MILP, tau: float,
                    solver: str | Solver, deadline: Deadline | float | None, oracle: OnnxOracle,
                    rng: np.random.Generator, attack: AttackSettings = CASE_ATTACK, case_index: int = 0,
                    box: tuple[np.ndarray, np.ndarray] | None = None, time_limit: float | None = None,
                    cancel=None, problem: MILP | None = None, solved: SolveOutcome | None = None
                    ) -> DisjunctOutcome:
    """Decide ``cons`` on ``milp`` (the encoding of ``box``, default the case's box).

    ``time_limit``: the solver's share (default: all that ``deadline`` leaves); the attack runs
    until ``deadline``. ``problem`` / ``solved``: the disjunct's MILP and its outcome when the
    caller already solved it (MILPs solved side by side in threads); they are judged the same way.
    """
    t0 = time.perf_counter()
    deadline = Deadline.coerce(deadline)
    if problem is None:
        problem = disjunct_problem(network, milp, cons, tau)
    out = solved
    if out is None:
        limit = deadline.remaining() if time_limit is None else time_limit
        out = get_solver(solver).solve(problem, limit, cancel=cancel)

    def done(kind: DisjunctKind, cex: Counterexample | None = None, reason: str | None = None) -> DisjunctOutcome:
        return DisjunctOutcome(kind, cex, reason, out, time.perf_counter() - t0)

    if out.status == "infeasible":
        return done(PROVED)
    if out.status in ("feasible", "optimal") and out.values is not None:
        x = out.values[problem.input_vars]
        lower, upper = (case.lower, case.upper) if box is None else box
        cex = confirm(oracle, case, x, case_index) or attack_near(
            network, case, cons, oracle, lower, upper, rng, attack, start=x, deadline=deadline,
            case_index=case_index)
        if cex is not None:
            return done(COUNTEREXAMPLE, cex)
        return done(OPEN, reason=("the solver found a point in the unsafe region enlarged by the margin "
                                  f"tau={tau:.2g}, but it does not violate the exact property when replayed "
                                  f"({getattr(oracle, 'name', 'onnxruntime')}) "
                                  "and no nearby input does (property may hold by less than tau)"))
    if out.status == "timeout":
        return done(TIMEOUT, reason=f"timeout: {out.message or 'the solver reached its time limit'}")
    return done(ERROR, reason=f"solver error: {out.message or out.status}")
