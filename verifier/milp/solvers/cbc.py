"""Solve a ``MILP`` with CBC (bundled with the ``pulp`` wheel) or HiGHS (``highspy``, a core
dependency) through PuLP.

The outcome is one of ``infeasible`` / ``feasible`` / ``optimal`` / ``timeout`` / ``error``; only a
solver's explicit infeasibility status may ever be turned into a proof by the caller.
Tolerances are set explicitly (``TOLERANCES``) because the caller's soundness margin depends on them.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np

from ...errors import SolverError
from ..model import MILP
from .base import SOLVERS, TOLERANCES, SolveOutcome, quiet_stdout

#: largest magnitude (coefficient, right-hand side, variable bound) at which an infeasibility claim
#: is trusted. Measured (tests/soundness/test_review_dag.py): on 5855 feasible disjunct MILPs of
#: small ReLU / max / DAG nets, CBC at primal tolerance 1e-7 (preprocessing and heuristics off)
#: claimed 4 infeasible, all with magnitudes of 1.7e7 or more (HiGHS's MILP bounds broke there
#: too); the VNN-COMP ACAS Xu and MNIST MILPs stay below 1e3
MAX_MAGNITUDE = 1e6
#: ``warnings.catch_warnings`` is not thread-safe (it swaps the process's filters): every block that
#: uses it here holds this lock; model building is Python-bound anyway
_PULP_LOCK = threading.Lock()


def numerical_doubt(milp: MILP) -> str | None:
    """Why an infeasibility verdict on ``milp`` cannot be trusted, or None: numbers so large that the
    solvers' absolute feasibility tolerances and PuLP's 12-13 significant digits lose the model."""
    for what, arr in (("a coefficient", milp.data), ("a right-hand side", milp.rhs),
                      ("a variable bound", np.concatenate([milp.lb, milp.ub]))):
        big = float(np.max(np.abs(arr), initial=0.0))
        if not big <= MAX_MAGNITUDE:
            return f"{what} of magnitude {big:.3g} exceeds {MAX_MAGNITUDE:g}"
    return None


def solver_available(name: str) -> bool:
    import pulp

    if name == "cbc":
        with _quiet_pulp_deprecation():
            return bool(pulp.PULP_CBC_CMD(msg=False).available())
    if name == "highs":
        try:
            return bool(pulp.HiGHS(msg=False).available())
        except Exception:  # noqa: BLE001
            return False
    return False


def check_solver(name: str) -> None:
    """Raise ``SolverError`` with a hint if ``name`` cannot be used here."""
    if name not in SOLVERS:
        raise SolverError(f"unknown solver {name!r}; choose one of: {', '.join(SOLVERS)}")
    if not solver_available(name):
        hint = "highspy, a dependency of this package, could not be imported: reinstall it" if name == "highs" \
            else "the CBC binary bundled with pulp>=3.3,<4 was not found"
        raise SolverError(f"solver {name!r} is not available ({hint})")


#: PuLP 3.x warns that its bundled CBC goes away in PuLP 4; we pin <4 on purpose
_CBC_DEPRECATION = ".*PULP_CBC_CMD is deprecated.*"


@contextlib.contextmanager
def _quiet_pulp_deprecation():
    """Silence PuLP's CBC deprecation notice for the block only (the process's warning filters are
    restored after). ``warnings.catch_warnings`` swaps process-wide state, so the block holds
    ``_PULP_LOCK``: do not nest it in :func:`to_pulp`."""
    import warnings

    with _PULP_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CBC_DEPRECATION, category=DeprecationWarning)
        yield


def _make_solver(name: str, time_limit: float | None, mip: bool, preprocess: bool = True, heuristics: bool = True):
    import pulp

    tl = None if time_limit is None else max(1.0, float(time_limit))
    if name == "cbc":
        options = [f"integerTolerance {TOLERANCES['integer']}", f"primalTolerance {TOLERANCES['primal']}"]
        if not preprocess:
            options.append("preprocess off")
        if not heuristics:
            options.append("heuristics off")
        with _quiet_pulp_deprecation():
            return pulp.PULP_CBC_CMD(msg=False, timeLimit=tl, mip=mip, threads=1, timeMode="elapsed",
                                     options=options)
    return pulp.HiGHS(msg=False, timeLimit=tl, mip=mip, threads=1,
                      mip_feasibility_tolerance=max(TOLERANCES["integer"], TOLERANCES["primal"]),  # rows too
                      primal_feasibility_tolerance=TOLERANCES["primal"])


def _run_cbc(prob, time_limit: float | None, mip: bool, preprocess: bool, cancel=None, heuristics: bool = True) -> str:
    """Solve ``prob`` with the CBC binary bundled with PuLP, killing it at the deadline.

    PuLP writes the model (MPS) and reads CBC's solution file, exactly as ``PULP_CBC_CMD`` does;
    the process is started here, in its own process group, because CBC does not look at its
    ``-sec`` limit during preprocessing and PuLP waits for it without a time-out. Returns ``done``,
    ``killed`` (past the deadline) or ``cancelled`` (``cancel``, a ``threading.Event``, was set).
    """
    import os
    import signal
    import subprocess
    import tempfile

    import pulp

    solver = _make_solver("cbc", time_limit, mip=mip, preprocess=preprocess, heuristics=heuristics)
    with tempfile.TemporaryDirectory(prefix="verifier-cbc-") as tmp:
        mps, sol = os.path.join(tmp, "model.mps"), os.path.join(tmp, "model.sol")
        vs, var_names, con_names, _ = prob.writeMPS(mps, rename=1)
        cmd = [solver.path, mps]
        if prob.sense == pulp.LpMaximize:
            cmd.append("-max")
        if time_limit is not None:
            cmd += ["-sec", f"{max(1.0, float(time_limit)):.3f}"]
        for opt in solver.options + solver.getOptions():
            cmd += ["-" + opt.split()[0], *opt.split()[1:]]
        cmd += ["-solve" if mip else "-initialSolve", "-printingOptions", "all", "-solution", sol]
        if cancel is not None and cancel.is_set():
            return "cancelled"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        # CBC's own limit is whole seconds at least; the kill keeps the caller's deadline
        hard = None if time_limit is None else float(time_limit) + min(5.0, 0.1 * float(time_limit)) + 0.3
        end = None if hard is None else time.perf_counter() + hard
        try:
            while True:
                left = None if end is None else end - time.perf_counter()
                poll = left if cancel is None else (0.05 if left is None else min(0.05, left))
                try:
                    proc.wait(timeout=None if poll is None else max(poll, 0.0))
                    break
                except subprocess.TimeoutExpired:
                    stop = "cancelled" if cancel is not None and cancel.is_set() else None
                    if stop is None and end is not None and time.perf_counter() >= end:
                        stop = "killed"
                    if stop is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        return stop
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        if proc.returncode != 0 or not os.path.exists(sol):
            raise RuntimeError(f"cbc exited with code {proc.returncode} and no solution file")
        status, values, _dj, _pi, _slack, sol_status = solver.readsol_MPS(sol, prob, vs, var_names, con_names)
    prob.assignVarsVals(values)
    prob.assignStatus(status, sol_status)
    return "done"


def to_pulp(milp: MILP, name: str = "verify", relax: bool = False):
    """Build the PuLP problem (variables ``v0..``) from the CSR rows."""
    import warnings

    with _PULP_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # PuLP 4 API notices; we pin PuLP 3
        return _to_pulp(milp, name, relax)


def _to_pulp(milp: MILP, name: str, relax: bool):
    import pulp

    prob = pulp.LpProblem(name, pulp.LpMinimize)
    cats = np.where(milp.is_int & (not relax), "Integer", "Continuous")
    xs = [pulp.LpVariable(f"v{i}", lowBound=float(milp.lb[i]), upBound=float(milp.ub[i]), cat=str(cats[i]))
          for i in range(milp.n_vars)]
    indptr, indices, data = milp.indptr, milp.indices, milp.data
    for r in range(milp.n_constraints):
        s, e = indptr[r], indptr[r + 1]
        expr = pulp.LpAffineExpression([(xs[j], float(c)) for j, c in zip(indices[s:e], data[s:e])])
        if milp.is_eq[r]:
            prob += pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"c{r}", float(milp.rhs[r]))
        else:
            prob += pulp.LpConstraint(expr, pulp.LpConstraintLE, f"c{r}", float(milp.rhs[r]))
    if milp.objective:
        prob += pulp.LpAffineExpression([(xs[j], float(c)) for j, c in milp.objective.items()])
    else:
        prob += pulp.LpAffineExpression([(xs[0], 0.0)]) if xs else 0
    return prob, xs


def solve(milp: MILP, time_limit: float | None = None, solver: str = "cbc", relax: bool = False,
          maximize: bool = False, cancel=None) -> SolveOutcome:
    """Solve ``milp`` (feasibility if it has no objective) within ``time_limit`` seconds.

    ``cancel`` (a ``threading.Event``; CBC only) stops the solve early when set, with status
    ``cancelled``: solves running side by side stop when one of them found a counterexample.
    """
    import pulp

    t0 = time.perf_counter()
    if time_limit is not None and time_limit <= 0.05:
        return SolveOutcome("timeout", None, solver, 0.0, "no time left for the solver")
    if cancel is not None and cancel.is_set():
        return SolveOutcome("cancelled", None, solver, 0.0, "cancelled")
    prob, xs = to_pulp(milp, relax=relax)
    if maximize:
        prob.sense = pulp.LpMaximize
    # CBC's MIP preprocessing has been seen here to claim infeasibility of feasible models (with
    # fixed variables), and such reports exist upstream too: a wrong 'infeasible' would be a wrong
    # proof, so it stays off. HiGHS keeps its presolve.
    preprocess = solver != "cbc"
    # CBC's primal heuristics hunt for good incumbents of an objective; on a feasibility MILP over
    # a network they mostly cost time (measured on MNIST 256x2 / 256x4 disjunct MILPs: 2.5x and
    # 1.5x faster without them, counterexamples included: the tree search finds those too)
    heuristics = bool(milp.objective)
    try:
        if solver == "cbc":
            how = _run_cbc(prob, time_limit, mip=not relax, preprocess=preprocess, cancel=cancel,
                           heuristics=heuristics)
            if how == "cancelled":
                return SolveOutcome("cancelled", None, solver, time.perf_counter() - t0, "cancelled")
            if how == "killed":
                return SolveOutcome("timeout", None, solver, time.perf_counter() - t0,
                                    f"cbc did not stop within its time limit ({time_limit:.1f} s) and was killed")
        else:
            with quiet_stdout():
                prob.solve(_make_solver(solver, time_limit, mip=not relax, preprocess=preprocess))
    except Exception as exc:  # noqa: BLE001 - solver crash, missing binary, unreadable solution file
        return SolveOutcome("error", None, solver, time.perf_counter() - t0, f"{solver} failed: {exc}")
    elapsed = time.perf_counter() - t0
    status, sol = prob.status, prob.sol_status
    if status == pulp.LpStatusInfeasible and sol in (pulp.LpSolutionInfeasible, pulp.LpSolutionNoSolutionFound):
        doubt = numerical_doubt(milp)
        if doubt is not None:  # an infeasibility claim on such numbers is no proof
            return SolveOutcome("error", None, solver, elapsed, f"the solver's infeasibility claim is numerically "
                                f"doubtful ({doubt})")
        return SolveOutcome("infeasible", None, solver, elapsed, "solver proved infeasibility")
    if sol in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        # a variable in no row gets no value from PuLP: any value in its bounds will do
        values = np.array([v.varValue if v.varValue is not None else np.nan for v in xs], dtype=np.float64)
        unset = np.isnan(values)
        values[unset] = np.clip(0.0, milp.lb[unset], milp.ub[unset])
        kind = "optimal" if sol == pulp.LpSolutionOptimal else "feasible"
        obj = pulp.value(prob.objective) if milp.objective else None
        return SolveOutcome(kind, values, solver, elapsed, pulp.LpStatus[status], obj)
    if time_limit is not None and elapsed >= 0.95 * max(1.0, time_limit):
        return SolveOutcome("timeout", None, solver, elapsed, f"{solver} reached its time limit ({time_limit:.1f} s)")
    return SolveOutcome("error", None, solver, elapsed,
                        f"{solver} ended undecided (status {pulp.LpStatus.get(status, status)})")
