"""The settings and the counters of input splitting (``search.input_split``), in their own module so
that its parts (``search.box_milp``) can take them without importing the search."""

from __future__ import annotations

from dataclasses import dataclass

from ..milp.solvers import Solver
from .disjunct import MARGIN_ABS, MARGIN_REL, SUBBOX_ATTACK, AttackSettings


@dataclass
class BabSettings:
    milp_unstable: int = 8  # hand a box to the MILP when at most this many neurons are unstable
    #: bound a box by LP (HiGHS in-process) when at most this many are unstable (ACAS Xu: 40 measured
    #: better than 120: a wider box rarely closes by LP, and the LP costs several bound passes); only on
    #: networks without optimised slopes (``box_slopes.alpha_on``): where they run they replace the LP (ACAS Xu,
    #: 180 instances at 60 s side by side with another run: 139.6 s with the LP, 113.9 s with slopes
    #: and no LP; 3_3 prop 2 40.0 -> 22.8 s, 4_2 prop 2 25.4 -> 14.9 s; slopes and LP both: 62.5 s and
    #: 34.8 s, the LP still tried on every box the slopes leave open)
    lp_unstable: int = 40
    split_rule: str = "gap"  # "gap": inputs that drive the relaxation gaps; "coef": the bound's slope
    max_depth: int = 60  # ... or when it is this deep
    solver: str | Solver = "cbc"  # a name or a ``milp.solvers.Solver`` object (picklable for --jobs)
    margin_abs: float = MARGIN_ABS
    margin_rel: float = MARGIN_REL
    seed: int = 0  # of the nearby attack around a solver point that does not replay (``Options.seed``)
    attack: AttackSettings = SUBBOX_ATTACK
    lp_check: bool = True  # try the LP relaxation on boxes with few unstable neurons (HiGHS only)
    #: > 0: a box the bounds leave open tries this many gradient steps on the lower slopes alpha of
    #: its back-substitution (``bounds.crown``; the boxes of a batch together) before it is split or
    #: sent to the MILP, for the disjuncts whose best row misses by at most ``alpha_gap`` of its bound
    #: range (the others rarely close; 0.25 measured best of 0.1 / 0.25 / 0.5 on hard ACAS Xu
    #: instances; 6 steps of 0.3 beat 10 of 0.1 there)
    alpha_iters: int = 6
    alpha_gap: float = 0.25
    alpha_lr: float = 0.3  # Adam step of those slopes (measured on ACAS Xu boxes: 0.3 closes a third more than 0.1)
    #: False: a box that would go to the MILP (few unstable neurons, too deep, nothing to split) ends the
    #: search as unknown instead; boxes with few unstable neurons are split further (bounds-only proofs)
    exact_leaves: bool = True
    #: > 1: bound this many sub-boxes per step with one set of numpy calls (``bounds.batch``; chains of
    #: dense ReLU layers only; a recorded tree's boxes do not start from their parent's bounds)
    batch: int = 32


@dataclass
class BabStats:
    explored: int = 0
    proved_by_bounds: int = 0
    proved_by_lp: int = 0
    proved_by_milp: int = 0
    undecided: int = 0
    max_depth: int = 0
    bounds_s: float = 0.0
    milp_s: float = 0.0
    attack_s: float = 0.0
    lp_s: float = 0.0
    milp_binaries_max: int = 0
    proved_by_alpha: int = 0  # boxes closed by optimised lower slopes (``alpha_iters``)
    alpha_s: float = 0.0
    lp_calls: int = 0  # LP checks tried (``proved_by_lp`` counts the boxes they closed)
    batches: int = 0  # calls of the batched bounds (``explored / batches``: boxes per call)

    def merge(self, other: BabStats) -> None:
        for k, v in other.__dict__.items():
            if k in ("max_depth", "milp_binaries_max"):
                setattr(self, k, max(getattr(self, k), v))
            else:
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
