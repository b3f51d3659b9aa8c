"""Repeated optimisation of linear objectives over one (MI)LP: the engine of LP / MILP bounds.

The model is held in-process by HiGHS (``highspy``, a core dependency, so this holds on every
install) and only the objective changes between solves (warm-started).

Soundness of LP bounds does not rest on the LP solver's accuracy: from any row duals ``y`` with
the right signs, weak duality gives a valid bound
``min c.x >= y.b + sum_j min(r_j l_j, r_j u_j)`` with ``r = c - A^T y`` (every variable is boxed),
which is evaluated in float64 and padded. MILPs (``mip_minimize``) are solved to a stated
optimality tolerance (``MILP_ABS_GAP``, ``MILP_REL_GAP``, see ``milp_gap_tolerance``) and give the
solver's proved (dual) bound and its incumbent, unpadded: the caller pads (``milp_pad``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...layer_bounds import pad
from ..model import MILP
from .base import TOLERANCES, quiet_stdout

#: extra outward padding for bounds that rest on a MILP solver's tolerances: its feasibility
#: tolerance relaxes the big-M rows, and its node LPs are not certified by duality
MILP_PAD_REL = 1e-6
MILP_PAD_ABS = 1e-6

#: HiGHS's MIP optimality tolerance for bound queries (``mip_abs_gap`` / ``mip_rel_gap``; HiGHS's
#: defaults are 1e-6 / 1e-4). HiGHS stops as soon as incumbent and proved bound are within
#: ``max(abs, rel * |incumbent|)``, and it prunes subtrees whose LP bound is within that distance of
#: the incumbent, so the dual bound it reports is itself only proved to within that tolerance.
MILP_ABS_GAP = 1e-6
MILP_REL_GAP = 1e-9


def milp_gap_tolerance(scale: float | np.ndarray) -> float | np.ndarray:
    """The stated MILP optimality tolerance for objective values of magnitude ``scale``
    (at least HiGHS's ``max(mip_abs_gap, mip_rel_gap * |v|)``)."""
    return MILP_ABS_GAP + MILP_REL_GAP * np.abs(scale)


def milp_pad(scale: float | np.ndarray) -> float | np.ndarray:
    """Outward padding of a MILP's proved bound of magnitude ``scale``: the optimality tolerance
    (the proved bound may be off by that much) plus the solver-feasibility pad."""
    return milp_gap_tolerance(scale) + MILP_PAD_ABS + MILP_PAD_REL * np.abs(scale)


def highs_available() -> bool:
    """True on every install (``highspy`` is a core dependency); kept for the callers that ask."""
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class MipResult:
    """One MILP minimisation, unpadded: ``bound`` is the solver's proved (dual) lower bound of the
    minimum (None if it proved none), ``incumbent`` the objective of its best feasible point (None
    if it found none), ``optimal`` whether it ended with status optimal (not on a time limit)."""

    bound: float | None
    incumbent: float | None
    optimal: bool

    @property
    def closed(self) -> bool:
        """Optimal, and incumbent and proved bound agree within the stated tolerance."""
        if not self.optimal or self.bound is None or self.incumbent is None:
            return False
        scale = max(abs(self.bound), abs(self.incumbent))
        return abs(self.incumbent - self.bound) <= milp_gap_tolerance(scale)


class LinearProgram:
    """``milp`` (binaries relaxed unless ``integer``) held by HiGHS, ready for many objectives."""

    def __init__(self, milp: MILP, integer: bool = False) -> None:
        self.milp = milp
        self.integer = integer
        self._h = self._build_highs()

    def _build_highs(self):
        import highspy

        m = self.milp
        with quiet_stdout():
            h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        # LPs: tight, their bounds rest on the duality certificate whatever the solver's accuracy.
        # MILPs: the solvers' default feasibility tolerance (``solvers.base.TOLERANCES``): HiGHS at
        # 1e-9 with presolve "proved" feasible MILPs of nets with neuron bounds ~1e7 infeasible, and
        # its MILP dual bounds then cut off real outputs (tests/soundness/test_review_dag.py)
        tol = TOLERANCES["primal"] if self.integer else 1e-9
        h.setOptionValue("mip_feasibility_tolerance", tol)
        h.setOptionValue("primal_feasibility_tolerance", tol)
        if self.integer:
            # "optimal" must mean optimal to the tolerance this module states, not to HiGHS's defaults
            h.setOptionValue("mip_abs_gap", MILP_ABS_GAP)
            h.setOptionValue("mip_rel_gap", MILP_REL_GAP)
        else:
            h.setOptionValue("presolve", "off")  # small LPs solved once each: presolve costs more than it saves
        lp = highspy.HighsLp()
        lp.num_col_ = m.n_vars
        lp.num_row_ = m.n_constraints
        lp.col_cost_ = np.zeros(m.n_vars)
        lp.col_lower_ = m.lb.astype(np.float64)
        lp.col_upper_ = m.ub.astype(np.float64)
        lp.row_lower_ = np.where(m.is_eq, m.rhs, -highspy.kHighsInf)
        lp.row_upper_ = m.rhs.astype(np.float64)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = m.indptr.astype(np.int32)
        lp.a_matrix_.index_ = m.indices.astype(np.int32)
        lp.a_matrix_.value_ = m.data.astype(np.float64)
        if self.integer:
            lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                               for i in m.is_int]
        h.passModel(lp)
        self._prev_cols = np.zeros(0, dtype=np.int32)
        return h

    def minimize(self, idx: np.ndarray, coef: np.ndarray, time_limit: float | None = None
                 ) -> tuple[float | None, bool]:
        """A sound lower bound of ``coef . v[idx]`` over the program (None if none was obtained),
        and whether it is the optimum (to the LP's certificate, or for a MILP to ``milp_pad``)."""
        if self.integer:
            res = self.mip_minimize(idx, coef, time_limit)
            if res.bound is None:
                return None, False
            return res.bound - float(milp_pad(res.bound)), res.closed
        return self._lp_min(np.asarray(idx, dtype=np.int32), np.asarray(coef, dtype=np.float64), time_limit)

    def last_infeasible(self) -> bool:
        """Whether HiGHS reported the last solve infeasible."""
        import highspy

        return self._h.getModelStatus() == highspy.HighsModelStatus.kInfeasible

    def last_point(self) -> np.ndarray | None:
        """The primal values of the last solve (all variables), if HiGHS has them."""
        sol = np.asarray(self._h.getSolution().col_value, dtype=np.float64)
        return sol if sol.size == self.milp.n_vars else None

    def maximize(self, idx, coef, time_limit: float | None = None) -> tuple[float | None, bool]:
        val, exact = self.minimize(idx, -np.asarray(coef, dtype=np.float64), time_limit)
        return (None if val is None else -val), exact

    def _run(self, idx, coef, time_limit):
        import highspy

        h = self._h
        if self._prev_cols.size:
            h.changeColsCost(self._prev_cols.size, self._prev_cols, np.zeros(self._prev_cols.size))
        h.changeColsCost(idx.size, idx, coef)
        self._prev_cols = idx
        h.setOptionValue("time_limit", float(time_limit) if time_limit is not None else highspy.kHighsInf)
        h.run()
        return h.getModelStatus()

    # ---------------------------------------------------------------------------------- MILPs
    def mip_minimize(self, idx, coef, time_limit: float | None = None) -> MipResult:
        """Minimise ``coef . v[idx]`` with the binaries kept: the solver's proved bound and its
        incumbent, both unpadded (the caller pads by ``milp_pad``)."""
        import highspy

        if not self.integer:
            raise ValueError("mip_minimize needs a LinearProgram built with integer=True")
        idx, coef = np.asarray(idx, dtype=np.int32), np.asarray(coef, dtype=np.float64)
        status = self._run(idx, coef, time_limit)
        if status == highspy.HighsModelStatus.kInfeasible:
            return MipResult(None, None, False)
        info = self._h.getInfo()
        inc = float(info.objective_function_value) if info.primal_solution_status == 2 else float("nan")
        optimal = status == highspy.HighsModelStatus.kOptimal
        if self.milp.n_binaries == 0:
            # no integer variable: HiGHS solves an LP and reports no MIP dual bound (0); the
            # proved bound is the weak-duality bound from the LP's row duals
            if not optimal:
                return MipResult(None, inc if np.isfinite(inc) else None, False)
            y = np.asarray(self._h.getSolution().row_dual, dtype=np.float64)
            return MipResult(self._dual_bound(idx, coef, y), inc if np.isfinite(inc) else None, True)
        bound = float(info.mip_dual_bound)
        if np.isfinite(bound) and np.isfinite(inc) and bound > inc + milp_gap_tolerance(inc):
            bound = float("nan")  # a proved bound above a feasible point is no proof: distrust it
        return MipResult(bound if np.isfinite(bound) else None, inc if np.isfinite(inc) else None, optimal)

    # ------------------------------------------------------------------------------------ LPs
    def _lp_min(self, idx, coef, time_limit):
        import highspy

        status = self._run(idx, coef, time_limit)
        if status != highspy.HighsModelStatus.kOptimal:
            return None, False
        y = np.asarray(self._h.getSolution().row_dual, dtype=np.float64)
        return self._dual_bound(idx, coef, y), True

    def _dual_bound(self, idx, coef, y):
        """Weak-duality lower bound of ``min c.v`` from row duals ``y`` (signs repaired)."""
        m = self.milp
        y = np.where(m.is_eq, y, np.minimum(y, 0.0))  # '<=' rows need y <= 0 in a minimisation
        c = np.zeros(m.n_vars)
        np.add.at(c, idx, coef)
        rows = np.repeat(np.arange(m.n_constraints), np.diff(m.indptr))
        aty = np.zeros(m.n_vars)
        np.add.at(aty, m.indices, m.data * y[rows])
        r = c - aty
        terms = np.where(r > 0, r * m.lb, r * m.ub)
        val = float(y @ m.rhs + terms.sum())
        mag = float(np.abs(y) @ np.abs(m.rhs) + np.abs(terms).sum())
        lo, _ = pad(np.array([val]), np.array([val]), mag)
        return float(lo[0])
