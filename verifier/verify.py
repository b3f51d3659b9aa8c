"""The verification pipeline: model + spec -> falsification -> bounds -> MILP -> checked result.

``verify`` answers *holds* only when every unsafe disjunct of every input box is proved empty,
either by sound bounds or by the solver's infeasibility verdict on the region enlarged by a
margin ``tau``; it answers *violated* only with an input that the replay oracle confirms
(onnxruntime on the ONNX model; for a network built in memory, its own float32 forward pass);
everything else (time-out, solver error, a solver point that does not replay) is *unknown* with the reason.

Each input box is handled over its free inputs: inputs with ``lower == upper`` are folded into the
network's biases first (``search.fixed_inputs``; their float rounding stays counted) and put back
into a counterexample before it is reported. Every phase watches one ``Deadline``, loading included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from . import budget
from .bounds import LayerBounds, box_bounds, margin_tau, rounding_errors
from .budget import Deadline, Expired
from .certifying import Certifier
from .errors import VerifierError
from .io.onnx import compare_with_onnxruntime, load_model
from .io.replay import (
    ONNXRUNTIME,
    Counterexample,
    NetworkOracle,
    OnnxOracle,
    float_model,
    make_oracle,
    model_bytes_of,
)
from .io.spec_file import load_spec
from .milp.encoding import MILP, encode
from .milp.solvers import Solver, get_solver, solver_name
from .network import Network
from .options import Options
from .result import HOLDS, UNKNOWN, VIOLATED, DisjunctOutcomes, Result, RunStats
from .search.disjunct import (
    CASE_ATTACK,
    COUNTEREXAMPLE,
    OPEN,
    PROVED,
    TIMEOUT,
    DisjunctOutcome,
    attack_near,
    decide_disjunct,
    disjunct_problem,
    refuted_by_bounds,
)
from .search.fixed_inputs import FixedInputs
from .search.input_split import BabOutcome, BabSettings, BabStats, BabStatus, input_split
from .search.lp_stage import lp_check, optimised_root_bounds, tighten_for_milp
from .search.side_by_side import solve_side_by_side
from .spec import Case, Constraints, Spec

#: neuron splitting starts from LP-tightened bounds only below this many unstable neurons
NEURON_SPLIT_LP_MAX_UNSTABLE = 300


@dataclass
class _Run:
    network: Network
    spec: Spec
    options: Options
    t0: float
    oracle: OnnxOracle | NetworkOracle
    rng: np.random.Generator
    solver: Solver
    deadline: Deadline
    stats: RunStats = field(default_factory=RunStats)
    #: for one case whose fixed inputs are folded: what was folded and the run over the whole input
    fixed: FixedInputs | None = None
    parent: _Run | None = None
    #: case index -> (run, case) over that case's free inputs (``_case_view``: the last case only)
    views: dict = field(default_factory=dict)
    #: case index -> the fixed inputs folded for it
    folded: dict = field(default_factory=dict)
    #: the proof certificate being built (``Options.certificate``)
    certifier: Certifier | None = None

    def out_of_time(self) -> bool:
        return self.deadline.expired()


def verify(model: Network | str | os.PathLike, spec: Spec | str | os.PathLike, timeout: float | None = None,
           solver: str | None = None, options: Options | None = None) -> Result:
    """Check ``spec`` on ``model`` (objects or file paths). ``timeout`` bounds the whole call.

    ``timeout`` and ``solver``, when given, override the corresponding fields of ``options``.
    Counterexamples are replayed in onnxruntime when the network came from an ONNX model (from the
    model bytes the loader kept: the file may be gone since), and in the network's own float32
    forward pass when it was built in memory; ``stats.oracle`` says which. With
    ``Options.certificate`` a proof certificate is written (``certifying``; ``stats.certificate``).
    """
    t_call = budget.clock()
    opts = options or Options()
    if timeout is not None:
        opts = replace(opts, timeout=timeout)
    if solver is not None:
        opts = replace(opts, solver=solver)
    solver_obj = get_solver(opts.solver)
    t0 = t_call if opts.started is None else min(opts.started, t_call)
    deadline = Deadline(None if opts.timeout is None else t0 + opts.timeout, opts.timeout)
    certifier = Certifier.open(opts.certificate, model, spec) if opts.certificate else None
    try:
        run = _start(model, spec, opts, t0, solver_obj, deadline)
    except Expired as exc:  # loading took the whole budget
        result = Result(UNKNOWN, None, f"timeout after {opts.timeout:g} s (during {exc.phase})",
                        budget.clock() - t0, RunStats(timed_out=True, load_s=round(budget.clock() - t0, 4)))
        if certifier is not None:
            certifier.finish(result, None)
        return result
    if certifier is not None:
        certifier.bind(run.network)
        run.certifier = certifier
    try:
        result = _verify(run)
    except Expired as exc:
        result = _timeout(run, exc.phase)
    _full_counterexample(run, result)
    if certifier is not None:
        certifier.finish(result, run.spec)
    result.time_s = budget.clock() - t0
    result.stats.replay_calls = run.oracle.calls
    if run.oracle.name == ONNXRUNTIME:
        result.stats.onnxruntime_calls = run.oracle.calls
    result.stats.float_model = float_model(run.oracle.name)
    return result


def _start(model, spec, opts: Options, t0: float, solver_obj: Solver, deadline: Deadline) -> _Run:
    """Load the model and the spec (within the deadline: ``Expired`` otherwise) and set up the run."""
    network = model if isinstance(model, Network) else load_model(model)
    deadline.check("loading the model")
    oracle = _oracle_for(network)
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    spec = spec.bind(network.n_inputs, network.n_outputs)
    run = _Run(network, spec, opts, t0, oracle, np.random.default_rng(opts.seed), solver_obj, deadline)
    if oracle.name == ONNXRUNTIME:
        # the loader compared itself with onnxruntime at load; again inside the boxes of this spec
        compare_with_onnxruntime(network, run.oracle, [p for c in spec.cases
                                                       for p in (0.5 * (c.lower + c.upper),
                                                                 run.rng.uniform(c.lower, c.upper))])
    st = run.stats
    st.oracle, st.solver, st.cases = oracle.name, solver_name(opts.solver), len(spec.cases)
    st.disjuncts, st.load_s = sum(len(c.unsafe) for c in spec.cases), round(budget.clock() - t0, 4)
    deadline.check("loading the model")
    return run


def _case_view(run: _Run, ci: int, case: Case) -> tuple[_Run, Case]:
    """The run and the case over the free inputs of case ``ci`` (the inputs its box leaves free):
    the fixed ones folded into the network (``search.fixed_inputs``). Without fixed inputs: ``run``
    and ``case`` themselves. Only the last case's view is kept (each holds a reduced first layer;
    a spec may have many boxes); what was fixed is remembered per case for the counterexample."""
    if ci not in run.views:
        run.views.clear()
        fixed = FixedInputs.of_box(case.lower, case.upper, run.oracle.dtype) if run.options.fold_fixed_inputs else None
        if fixed is None:
            run.views[ci] = (run, case)
        else:
            view = replace(run, network=fixed.network(run.network), oracle=fixed.oracle(run.oracle), fixed=fixed,
                           parent=run)
            run.views[ci] = (view, fixed.case(case))
            run.folded[ci] = fixed
            if run.stats.fixed_inputs is None:
                run.stats.fixed_inputs = {}
            run.stats.fixed_inputs[ci] = int(fixed.fixed.size)
    return run.views[ci]


def _full_counterexample(run: _Run, result: Result) -> None:
    """A counterexample found over a case's free inputs, with the fixed inputs put back (the replay
    already ran on the full input: ``ReducedCase``); checked once more on the full case."""
    cex = result.counterexample
    if cex is None or cex.case_index not in run.folded:
        return
    x = run.folded[cex.case_index].expand(cex.input)
    if not run.spec.cases[cex.case_index].violated_at(x, cex.output):  # cannot happen: the replay judged x
        raise AssertionError("a counterexample over the free inputs does not violate the full case")
    result.counterexample = Counterexample(x, cex.output, cex.case_index)


def _oracle_for(network: Network) -> OnnxOracle | NetworkOracle:
    """onnxruntime for a network from an ONNX model (its kept bytes, else its file), else the
    network's float32 forward pass."""
    if model_bytes_of(network) is None and network.source is not None and not os.path.isfile(network.source):
        raise VerifierError(f"{network.source}: the network's ONNX file is gone and its model bytes were not kept; "
                            "counterexamples of an ONNX model are replayed in onnxruntime: load the network with "
                            "verifier.load_model(path)")
    try:
        return make_oracle(network)
    except ValueError as exc:
        raise VerifierError(str(exc)) from None


def _verify(run: _Run) -> Result:
    """1. per case: bounds rule out what they can, then a cheap attack on every disjunct left (on
    all cases before any proof search, so that an easy counterexample in a later case is found
    first); 2. per case: the proof search (input splitting or one MILP per disjunct) on the rest."""
    tally = run.stats.disjunct_outcomes = DisjunctOutcomes()
    screened = []
    t_attack = 0.0
    for ci, full_case in enumerate(run.spec.cases):
        if run.out_of_time():
            return _timeout(run, "bounds")
        crun, case = _case_view(run, ci, full_case)
        bnds, tau, todo = _screen_case(crun, case, tally)
        if run.options.falsify and todo:
            t = time.perf_counter()
            for di in todo:
                if run.out_of_time():
                    return _timeout(run, "falsification")
                cex = _attack(crun, ci, case, case.unsafe[di], bounds=bnds)
                if cex is not None:
                    run.stats.add_time("falsify_s", t_attack + time.perf_counter() - t)
                    run.stats.found_by = "falsification"
                    return Result(VIOLATED, cex, None, stats=run.stats)
            t_attack += time.perf_counter() - t
            if run.out_of_time():
                run.stats.add_time("falsify_s", t_attack)
                return _timeout(run, "falsification")
        screened.append((ci, bnds, tau, todo))
    if run.options.falsify:
        run.stats.add_time("falsify_s", t_attack)
    for ci, bnds, tau, todo in screened:
        certifying = run.certifier is not None and run.certifier.active
        if not todo and not certifying:
            continue
        if run.out_of_time():
            return _timeout(run, "bounds")
        crun, case = _case_view(run, ci, run.spec.cases[ci])
        outcome = _certify_case(crun, ci, case, bnds, todo, tally) if certifying else False
        if not outcome and todo:
            outcome = _prove_case(crun, ci, case, bnds, tau, todo, tally)
        if isinstance(outcome, Result):
            return outcome
    run.stats.proof_from_bounds_only = not (tally.proved_by_milp or tally.proved_by_lp or tally.proved_by_split
                                            or tally.undecided)
    if tally.reason:
        return Result(UNKNOWN, None, tally.reason, stats=run.stats)
    return Result(HOLDS, None, None, stats=run.stats)


def _timeout(run: _Run, phase: str) -> Result:
    run.stats.timed_out = True
    return Result(UNKNOWN, None, f"timeout after {run.options.timeout:g} s (during {phase})", stats=run.stats)


def _attack(run: _Run, ci: int, case: Case, cons: Constraints, start: np.ndarray | None = None,
            max_checks: int = 3, bounds: LayerBounds | None = None) -> Counterexample | None:
    """Search for a violating input of one disjunct and replay the best candidates in onnxruntime."""
    attack = CASE_ATTACK if max_checks == CASE_ATTACK.max_checks else replace(CASE_ATTACK, max_checks=max_checks)
    return attack_near(run.network, case, cons, run.oracle, case.lower, case.upper, run.rng, attack, start=start,
                       deadline=run.deadline, case_index=ci, bounds=bounds)


def margin_for(bounds: LayerBounds, options: Options) -> float:
    """The enlargement ``tau`` of the unsafe region: solver tolerances scale with the big-M values."""
    return margin_tau(bounds, options.margin_abs, options.margin_rel)


def _screen_case(run: _Run, case: Case, tally: DisjunctOutcomes) -> tuple[LayerBounds, float, list[int]]:
    """The case's bounds, its MILP margin and the disjuncts the bounds do not rule out."""
    t = time.perf_counter()
    ib, bnds = box_bounds(run.network, case.lower, case.upper, run.options.bounds, run.deadline)
    run.stats.append("unstable_interval", ib.n_unstable(run.network))
    run.stats.append("unstable_used", bnds.n_unstable(run.network))
    run.stats.bounds_method = bnds.method
    tau = margin_for(bnds, run.options)
    run.stats.margin_tau = tau
    _record_float_error(run, bnds, case)
    todo = []
    for di, cons in enumerate(case.unsafe):
        run.deadline.check("bounds")
        if refuted_by_bounds(run.network, bnds, case.lower, case.upper, cons):
            tally.count("proved_by_bounds")
        else:
            todo.append(di)
    run.stats.add_time("bounds_s", time.perf_counter() - t)
    return bnds, tau, todo


def _prove_case(run: _Run, ci: int, case: Case, bnds: LayerBounds, tau: float, todo: list[int],
                tally: DisjunctOutcomes) -> Result | None:
    """The proof search over the disjuncts ``todo`` of one case (the bounds left them open)."""
    strategy = run.options.choose_strategy(run.network)
    run.stats.strategy = strategy
    if strategy == "input-split":
        return _input_split_case(run, ci, case, todo, tally)

    if strategy == "neuron-split":
        # the root of branch and bound optimises its own relaxation (alpha); the intermediate
        # layers' bounds get theirs first (optimised_layers), then LP tightening only where it is
        # cheap (a few hundred unstable neurons), and no separate LP check
        bnds = optimised_root_bounds(run.network, case, bnds, run.deadline, run.stats)
        if bnds.n_unstable(run.network) <= NEURON_SPLIT_LP_MAX_UNSTABLE:
            bnds = tighten_for_milp(run.network, case, bnds, run.options.bounds, run.deadline, run.stats, 1 / 6)
        todo = _neuron_split_case(run, ci, case, bnds, todo, tally)
        if not isinstance(todo, list) or not todo:
            return todo or None
    else:
        bnds = tighten_for_milp(run.network, case, bnds, run.options.bounds, run.deadline, run.stats)
    todo = lp_check(run.network, case, bnds, todo, tally, run.deadline, run.stats)
    if todo is None:
        return _timeout(run, "LP checks")
    if not todo:
        return None
    run.deadline.check("LP checks")
    t = time.perf_counter()
    milp = encode(run.network, bnds, case.lower, case.upper)
    run.deadline.check("MILP encoding")
    run.stats.add_time("encode_s", time.perf_counter() - t)

    def problem(di: int) -> MILP:  # built when solved: each copy holds the whole MILP
        return disjunct_problem(run.network, milp, case.unsafe[di], tau)

    def decide(di: int, prob: MILP, time_limit=None, solved=None) -> DisjunctOutcome:
        return decide_disjunct(run.network, case, case.unsafe[di], milp, tau, run.solver, run.deadline,
                               run.oracle, run.rng, CASE_ATTACK, ci, time_limit=time_limit, problem=prob,
                               solved=solved)

    if run.options.jobs > 1 and len(todo) > 1 and getattr(run.solver, "cancellable", True):
        return _milps_side_by_side(run, todo, problem, decide, tally)
    for k, di in enumerate(todo):
        if run.out_of_time():
            return _timeout(run, "MILP")
        # a fair share of what is left: a hard disjunct must not starve the others (a later one
        # may hold the counterexample)
        prob = problem(di)
        run.stats.note_milp(prob.size())
        found = _book(run, prob, decide(di, prob, time_limit=run.deadline.share(len(todo) - k)), tally)
        if found is not None:
            return found
    return None


def _book(run: _Run, problem: MILP, out: DisjunctOutcome, tally: DisjunctOutcomes) -> Result | None:
    """Book one disjunct's decision: a violated Result (confirmed point), or None."""
    run.stats.add_time("solve_s", out.solve.time_s)
    run.stats.solved_by = out.solve.solver
    if out.kind == PROVED:
        tally.count("proved_by_milp")
        return None
    if out.kind == COUNTEREXAMPLE:
        run.stats.found_by = "milp"
        return Result(VIOLATED, out.counterexample, None, stats=run.stats)
    if out.kind == TIMEOUT:
        run.stats.timed_out = True
        limit = "the time limit was" if run.options.timeout is None else f"{run.options.timeout:g} s were"
        tally.count("undecided", f"timeout: {limit} not enough to close the MILPs (up to {problem.n_binaries} binaries)")
        return None
    assert out.kind == OPEN or out.reason is not None
    tally.count("undecided", out.reason or "undecided")
    return None


def _neuron_split_case(run: _Run, ci: int, case: Case, bnds: LayerBounds, todo: list[int],
                       tally: DisjunctOutcomes) -> Result | list[int]:
    """Neuron-splitting branch and bound on the disjuncts ``todo``; returns those it leaves to the
    MILP (small ones: ``neuron_split.wants_milp``), or a violated / timeout Result."""
    from .search.neuron_split import prove_case, write_trace

    if run.options.jobs > 1 and len(todo) > 1:
        from .search.parallel import run_disjuncts

        rem, base = run.deadline.remaining(), run.parent or run
        out = run_disjuncts(base.network, base.oracle, bnds, case, todo, run.options.jobs,
                            None if rem is None else time.time() + rem, ci, fixed=run.fixed)
        run.stats.parallel_jobs = min(run.options.jobs, len(todo))
    else:
        out = prove_case(run.network, bnds, case, todo, run.oracle, run.deadline, ci, run.options.progress)
    if run.options.trace:
        write_trace(run.options.trace, ci, out)
    run.stats.add_time("neuron_split_s", out.time_s)
    run.stats.bab = out.stats_dict(run.stats.bab)
    tally.proved_by_split += out.proved
    if out.counterexample is not None:
        run.stats.found_by = "branch and bound"
        return Result(VIOLATED, out.counterexample, None, stats=run.stats)
    for reason in out.open_reasons:
        tally.count("undecided", reason)
    if out.timed_out:
        run.stats.timed_out = True
    return out.to_milp


def _milps_side_by_side(run: _Run, todo: list[int], problem: Callable[[int], MILP],
                        decide: Callable[..., DisjunctOutcome], tally: DisjunctOutcomes) -> Result | None:
    """``--jobs N`` on the MILP path (``search.side_by_side``): outcomes booked here as they finish."""
    jobs = min(run.options.jobs, len(todo))
    run.stats.milps_side_by_side = jobs

    def book(di: int, prob: MILP, out) -> Result | None:
        run.stats.note_milp(prob.size())
        return _book(run, prob, decide(di, prob, solved=out), tally)

    found, unsolved = solve_side_by_side(todo, jobs, problem, run.solver, run.deadline, book)
    if found is not None:
        return found
    return _timeout(run, "MILP") if unsolved else None


def _certify_case(run: _Run, ci: int, case: Case, bnds: LayerBounds, todo: list[int],
                  tally: DisjunctOutcomes) -> Result | bool:
    """The certifying search of one case (``certifying``): True if it proved the case, a violated
    Result, or False (no certificate: the normal strategy decides the case)."""
    strategy = "input-split" if run.options.choose_strategy(run.network) == "input-split" else "neuron-split"
    got = run.certifier.prove(run.network, ci, case, todo, bnds, run.oracle, run.deadline, strategy,
                              None if run.fixed is None else run.fixed.free, _bab_settings(run), run.options.progress)
    if isinstance(got, Counterexample):
        run.stats.found_by = "certifying search"
        return Result(VIOLATED, got, None, stats=run.stats)
    if got and todo:
        run.stats.strategy = strategy
        key = "proved_by_bounds" if strategy == "input-split" else "proved_by_split"
        setattr(tally, key, getattr(tally, key) + len(todo))
    return got


def _bab_settings(run: _Run) -> BabSettings:
    return BabSettings(solver=run.solver, margin_abs=run.options.margin_abs, margin_rel=run.options.margin_rel,
                       seed=run.options.seed)


def _input_split_case(run: _Run, ci: int, case: Case, todo: list[int], tally: DisjunctOutcomes) -> Result | None:
    settings = _bab_settings(run)
    deadline = run.deadline
    disjuncts = [case.unsafe[i] for i in todo]
    progress = None
    if run.options.progress is not None:
        sink = run.options.progress

        def progress(st: BabStats, n_open: int) -> None:
            sink(f"branch and bound: {st.explored} sub-boxes explored, {n_open} open, "
                 f"{st.proved_by_bounds} proved by bounds, {st.proved_by_milp} by MILP, depth {st.max_depth}, "
                 f"{time.perf_counter() - run.t0:.1f} s")
    jobs = max(1, run.options.jobs)
    out = input_split(run.network, case, disjuncts, run.oracle, settings, deadline, ci,
                      max_boxes=run.options.parallel_after if jobs > 1 else None, progress=progress)
    if out.status == BabStatus.OPEN:
        from .search.parallel import run_boxes

        if progress is not None:
            progress(out.stats, len(out.open_boxes))
        rem = deadline.remaining()
        wall_deadline = None if rem is None else time.time() + rem  # worker processes: wall clock
        base = run.parent or run  # workers get the whole network and its oracle, and fold the fixed inputs
        par = run_boxes(base.network, base.oracle, case, disjuncts, out.open_boxes, jobs, settings, wall_deadline, ci,
                        fixed=run.fixed)
        par.stats.merge(out.stats)
        if out.reason and par.status == BabStatus.HOLDS:  # boxes the in-process phase left undecided
            par = BabOutcome(BabStatus.UNKNOWN, None, out.reason, par.stats)
        out = par
        run.stats.parallel_jobs = jobs
    if run.stats.bab is None:
        run.stats.bab = BabStats().as_dict()
    bab = run.stats.bab
    for k, v in out.stats.as_dict().items():
        bab[k] = max(bab[k], v) if k in ("max_depth", "milp_binaries_max") else round(bab[k] + v, 4)
    if out.status == BabStatus.VIOLATED:
        run.stats.found_by = "branch and bound"
        return Result(VIOLATED, out.counterexample, None, stats=run.stats)
    if out.status == BabStatus.HOLDS:
        key = "proved_by_milp" if out.stats.proved_by_milp else ("proved_by_lp" if out.stats.proved_by_lp
                                                                 else "proved_by_bounds")
        setattr(tally, key, getattr(tally, key) + len(todo))
        return None
    tally.undecided += len(todo)
    if out.reason and out.reason.startswith("timeout"):
        run.stats.timed_out = True
        return Result(UNKNOWN, None, f"{out.reason} (limit {run.options.timeout:g} s)", stats=run.stats)
    tally.open_reasons.append(out.reason or "branch and bound left sub-boxes undecided")
    return None


def _record_float_error(run: _Run, bounds: LayerBounds, case: Case) -> None:
    """The float rounding bounds used on this box: the largest per-neuron ``e_k`` and output error."""
    errs = rounding_errors(run.network, bounds, case.lower, case.upper)
    hidden = max((float(np.max(e)) for e in errs[:-1] if e.size), default=0.0)
    run.stats.raise_to("float_error_max_hidden", hidden)
    run.stats.raise_to("float_error_max_output", float(np.max(errs[-1])))
