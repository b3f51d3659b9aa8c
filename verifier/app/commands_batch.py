"""The ``verifier batch`` and ``verifier check`` commands: many instances in parallel, a CI gate.

``register(main)`` adds both commands to the Click group of :mod:`verifier.app.cli`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import click

from ..errors import VerifierError
from ..results import UNKNOWN
from . import junit
from .certificates import certificates_folder, judge_certificate
from .dask_backend import import_dask
from .dispatch import run
from .pool import default_jobs
from .render import BOLD, GREEN, RED, YELLOW, Progress, paint, print_summary, vec
from .results_csv import ResultsFile, split_resumed
from .suite import FAILED, PASSED, Judgement, judge, load_expected, load_list, load_suite, with_expected
from .summary import summarize
from .tasks import BOUNDS, OPTION_FIELDS, SOLVERS, STRATEGIES, Outcome, Task


@dataclass(frozen=True)
class Hooks:
    """Extension points for a program that embeds the commands: ``verifier.cli.main(obj=Hooks(...))``.

    ``prepare`` gets the task list just before it runs and returns the tasks to run (e.g. with a
    ``runner`` set: the test suite makes chosen workers hang or crash that way)."""

    prepare: Callable[[list[Task]], list[Task]] | None = None


def _prepare(tasks: list[Task]) -> list[Task]:
    ctx = click.get_current_context(silent=True)
    hooks = ctx.find_object(Hooks) if ctx is not None else None
    return list(hooks.prepare(tasks)) if hooks is not None and hooks.prepare is not None else tasks


EXIT_OK, EXIT_WRONG, EXIT_USAGE, EXIT_UNKNOWN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (CI cancel, ``kill``) unwinds like Ctrl-C, so that workers are killed and rows kept."""
    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _execute(tasks: list[Task], preset: list[Outcome], jobs: int, scheduler: str | None,
             sink: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``tasks`` with progress; the outcomes (``preset`` ones first, then in completion order)."""
    progress = Progress(len(tasks) + len(preset), preset)
    finished: list[Outcome] = []

    def on_result(o: Outcome) -> None:
        if sink is not None:
            sink(o)
        finished.append(o)
        progress.update(o)

    try:
        run(tasks, jobs, on_result, scheduler, progress.tick)
    finally:
        progress.close()
    return list(preset) + finished


def _in_list_order(tasks: Sequence[Task], outcomes: Sequence[Outcome]) -> list[Outcome]:
    """``outcomes`` sorted as their tasks are listed (a Dask outcome has a copy of its task: match by value)."""
    slots: dict[Task, list[int]] = {}
    for i, t in enumerate(tasks):
        slots.setdefault(t, []).append(i)
    return sorted(outcomes, key=lambda o: slots[o.task].pop(0) if slots.get(o.task) else len(tasks))


def _check_scheduler(scheduler: str | None) -> None:
    """Fail at once (exit 2, with the install hint) if ``--scheduler`` is given without Dask."""
    if scheduler:
        import_dask()


def _check_writable(path: str, what: str) -> None:
    """Fail before a long run, not after it, if ``path`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise VerifierError(f"{path}: cannot write the {what}: folder {folder} does not exist or is not writable")


def load_batch_tasks(lists: Sequence[str], timeout: float | None, options: Mapping[str, object] | None = None,
                     expected: Sequence[str] = (), pattern: str | None = None) -> list[Task]:
    """The tasks of ``verifier batch LIST...``: ``timeout`` and ``options`` (verify options, None values
    ignored) override the lists' own, ``expected`` files add expected verdicts, ``pattern`` filters."""
    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for lst in lists:
        part = load_list(lst, timeout, None, options)
        bench = part[0].benchmark
        if bench in seen and len(lists) > 1:
            raise VerifierError(f"{lst}: benchmark name {bench!r} is also that of {seen[bench]}; "
                                "run the two lists separately")
        seen[bench] = lst
        if len(lists) > 1:  # keep the results' onnx / vnnlib columns unambiguous across lists
            part = [replace(t, onnx=t.onnx if Path(t.onnx).is_absolute() else f"{bench}/{t.onnx}",
                            vnnlib=t.vnnlib if Path(t.vnnlib).is_absolute() else f"{bench}/{t.vnnlib}")
                    for t in part]
        tasks.extend(part)
    if expected:
        table: dict = {}
        for e in expected:
            table.update(load_expected(e))
        tasks = with_expected(tasks, table)
    if pattern:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise click.BadParameter(f"not a regular expression: {exc}", param_hint="--filter") from None
        tasks = [t for t in tasks if rx.search(f"{t.onnx},{t.vnnlib}") or (t.name and rx.search(t.name))]
        if not tasks:
            raise VerifierError(f"--filter {pattern!r} matches no instance")
    return tasks


_scheduler_option = click.option(
    "--scheduler", metavar="ADDRESS|local", default=None,
    help="Run on Dask: 'local' starts a LocalCluster of --jobs single-threaded worker processes, or give a "
         "scheduler address (tcp://host:8786). Needs the 'dask' extra.")


def _verify_options(command):
    """The verify options of every instance: --solver, --strategy, --bounds, --instance-jobs, --seed.

    Each defaults to the list's own value (a suite may set them per suite or per check), else to
    the default of 'verifier verify'."""
    for option in reversed((
            click.option("--solver", type=click.Choice(SOLVERS), default=None,
                         help="MILP solver of every instance. [default: the suite's, else cbc]"),
            click.option("--strategy", type=click.Choice(STRATEGIES), default=None,
                         help="Strategy of every instance, as in 'verifier verify'. [default: the suite's, else auto]"),
            click.option("--bounds", "bounds", type=click.Choice(BOUNDS), default=None,
                         help="Neuron bounds of every instance, as in 'verifier verify'. "
                              "[default: the suite's, else symbolic]"),
            click.option("--instance-jobs", type=click.IntRange(min=1), default=None,
                         help="Processes inside each instance ('verifier verify --jobs'); not to be confused with "
                              "--jobs, the instances run side by side. [default: the suite's, else 1]"),
            click.option("--seed", type=click.IntRange(min=0), default=None,
                         help="Random seed of every instance (falsification). [default: the suite's, else 0]"))):
        command = option(command)
    return command


def _take_options(kwargs: dict) -> dict:
    """The verify options out of a command's keyword arguments (None = not given)."""
    return {k: kwargs.pop(k) for k in OPTION_FIELDS}
_jobs_option = click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                            help="Instances run at the same time (worker processes). [default: number of cores]")


@click.command("batch")
@click.argument("lists", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="LIST...")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per instance; replaces the timeout column of the csv (and a suite's timeouts). "
                   "[default: the list's own timeouts]")
@_jobs_option
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Results CSV, written row by row as instances finish (overwritten unless --resume).")
@click.option("--json", "as_json", is_flag=True, help="Print rows and summary as one JSON object, the last line.")
@click.option("--expected", multiple=True, type=click.Path(dir_okay=False),
              help="expected.csv (onnx,vnnlib,timeout_s,expected): contradictions make the exit code 1. "
                   "Repeatable.")
@click.option("--resume", is_flag=True, help="Keep the rows already in --out and run only the missing instances.")
@click.option("--filter", "pattern", metavar="REGEX", default=None,
              help="Only instances whose 'onnx,vnnlib' (or check name) matches REGEX.")
@_scheduler_option
@_verify_options
def batch(lists: tuple[str, ...], timeout: float | None, jobs: int | None, out: str | None, as_json: bool,
          expected: tuple[str, ...], resume: bool, pattern: str | None, scheduler: str | None, **kwargs) -> None:
    """Verify every instance of LIST, in parallel, each under its own time limit.

    LIST is a VNN-COMP instances.csv (onnx,vnnlib,timeout; paths relative to the csv) or a suite
    file (.toml, see 'verifier check'); several lists may be given. An instance that overruns its
    timeout (plus a small grace) is killed with its solver and reported unknown; a crashed worker
    gives unknown too; the batch goes on.

    \b
    Exit codes:
      0  no contradiction with --expected (unknown results are not failures)
      1  some result contradicts --expected (holds vs violated)
      2  bad input (malformed list, missing file, ...)
      130 interrupted (the rows written so far are kept: rerun with --resume)
    """
    if resume and not out:
        raise click.UsageError("--resume needs --out (the results file to continue)")
    _check_scheduler(scheduler)
    jobs = jobs or default_jobs()
    tasks = _prepare(load_batch_tasks(lists, timeout, _take_options(kwargs), expected, pattern))
    results = ResultsFile(out, resume) if out else None
    preset, todo = split_resumed(tasks, results.rows) if results else ([], list(tasks))
    if results and resume:
        listed = {(t.onnx, t.vnnlib) for t in tasks}
        extra = sum((r["onnx"], r["vnnlib"]) not in listed for r in results.rows)
        if extra:
            click.echo(f"note: {extra} row(s) of {out} are not in this list (kept, not counted)", err=True)
    t0 = time.monotonic()
    try:
        with _sigterm_as_interrupt():
            outcomes = _in_list_order(tasks, _execute(todo, preset, jobs, scheduler,
                                                      results.write if results else None))
    except KeyboardInterrupt:
        where = f"; the finished rows are in {out}: rerun with --resume to continue" if out else ""
        click.echo(f"interrupted{where}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if results:
            results.close()
    wall = time.monotonic() - t0
    summary = summarize(outcomes)
    click.echo(f"{len(outcomes)} instances ({len(preset)} resumed), wall time {wall:.1f} s, "
               f"{'dask ' + scheduler if scheduler else f'{jobs} jobs'}")
    print_summary(summary)
    wrong = [o for o in outcomes if o.wrong]
    if wrong:
        bar = paint("!" * 72, RED + BOLD, sys.stdout)
        click.echo(bar)
        click.echo(paint(f"!!! {len(wrong)} CONTRADICTION(S) with the expected results:", RED + BOLD, sys.stdout))
        for o in wrong:
            click.echo(f"!!!   {o.task.onnx} {o.task.vnnlib}: result {o.status.upper()}, expected "
                       f"{o.task.expected.upper() if o.task.expected else '?'}")
        click.echo(bar)
    if as_json:
        click.echo(json.dumps({"rows": [o.to_json() for o in outcomes], "summary": summary,
                               "contradictions": len(wrong), "wall_s": round(wall, 3), "out": out}))
    sys.exit(EXIT_WRONG if wrong else EXIT_OK)


def _junit_case(j: Judgement) -> junit.Case:
    o = j.outcome
    t = o.task
    facts = (f"model: {t.model_path}\nspec: {t.spec_path}\nrequired: {t.expected}\nresult: {o.status}\n"
             f"time: {o.time_s:.3f} s (limit {t.timeout:g} s)" + (f"\nreason: {o.reason}" if o.reason else ""))
    if t.certificate:
        facts += f"\ncertificate: {t.certificate}\n{j.message}"
    if j.state == PASSED:
        return junit.Case(t.label, o.time_s, junit.PASS, output=facts)
    if j.state == FAILED:
        details = facts
        if o.counterexample is not None:
            details += (f"\ncounterexample input: {o.counterexample['input']}\n"
                        f"onnxruntime output: {o.counterexample['output']}")
        if o.input_error:
            return junit.Case(t.label, o.time_s, junit.ERROR, j.message, details, "InputError")
        return junit.Case(t.label, o.time_s, junit.FAIL, j.message, details,
                          j.kind or ("WrongVerdict" if j.wrong else "UnknownVerdict"))
    return junit.Case(t.label, o.time_s, junit.SKIP, j.message, output=f"WARNING: verdict unknown, allowed by "
                                                                       f"--allow-unknown\n{facts}")


def _report_check(j: Judgement) -> None:
    o = j.outcome
    out = sys.stdout
    if j.state == PASSED:
        said = j.message if o.task.certificate else o.status
        click.echo(f"{paint('PASS', GREEN, out)}  {o.task.label}: {said} ({o.time_s:.2f} s)")
        return
    tag = paint("FAIL", RED + BOLD, out) if j.state == FAILED else paint("WARN", YELLOW, out)
    click.echo(f"{tag}  {o.task.label}: {j.message} ({o.time_s:.2f} s)")
    click.echo(f"      model {o.task.onnx}, spec {o.task.vnnlib}")
    if o.counterexample is not None:
        click.echo(f"      counterexample input : {vec(o.counterexample['input'])}")
        click.echo(f"      onnxruntime output   : {vec(o.counterexample['output'])}")


@click.command("check")
@click.argument("suite_file", metavar="SUITE.toml", type=click.Path(dir_okay=False))
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), default=None,
              help="Write a JUnit XML report (one testcase per check) for CI.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks and summary as one JSON object, the last line.")
@_jobs_option
@click.option("--allow-unknown", is_flag=True, help="An unknown verdict passes with a warning instead of failing.")
@_scheduler_option
@_verify_options
def check(suite_file: str, junit_path: str | None, as_json: bool, jobs: int | None, allow_unknown: bool,
          scheduler: str | None, **kwargs) -> None:
    """Safety gate for CI: every check of SUITE.toml must obtain its required verdict.

    \b
    A suite is a TOML file of checks (paths relative to the suite's folder):
      [[check]]
      name = "far intruder is clear"    # optional
      model = "../models/collision_advisory.onnx"
      spec = "collision_far_is_clear.toml"
      timeout = 60                      # optional (default: top-level timeout, else 300 s)
      expect = "holds"                  # optional: holds (default) or violated
      strategy = "milp"                 # optional, also solver, bounds, instance_jobs, seed
                                        # (top level: for every check; the options win)
      certificate = true                # optional (also top level): require a proof certificate,
                                        # written to REPORT.certificates/ beside --junit REPORT.xml

    \b
    Exit codes:
      0  every check obtained its verdict (unknown allowed only with --allow-unknown)
      1  some check obtained the opposite verdict (e.g. violated where holds is required), or the
         certificate checker rejected a check's certificate
      2  bad input: a malformed suite (the file and line are named), or a model or spec that the
         verifier rejects (that check fails, the others still run)
      3  no wrong verdict, but some check ended unknown (time-out, solver error, crash) or without
         the certificate it requires
    """
    _check_scheduler(scheduler)
    suite = load_suite(suite_file)
    if junit_path:
        _check_writable(junit_path, "JUnit report")
    certificates = None
    if suite.wants_certificates:
        certificates = certificates_folder(junit_path, suite_file)
        try:
            os.makedirs(certificates, exist_ok=True)
        except OSError as exc:
            raise VerifierError(f"{certificates}: cannot create the certificates folder: {exc.strerror}") from None
    tasks = _prepare(suite.tasks(options=_take_options(kwargs), certificates=certificates))
    t0 = time.monotonic()
    try:
        with _sigterm_as_interrupt():
            outcomes = _in_list_order(tasks, _execute(tasks, [], jobs or default_jobs(), scheduler))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    judgements = [judge_certificate(judge(o, allow_unknown)) for o in outcomes]
    for j in judgements:
        _report_check(j)
    n_wrong = sum(j.wrong for j in judgements)
    n_rejected = sum(j.rejected for j in judgements)
    n_failed = sum(j.state == FAILED for j in judgements)
    n_bad = sum(j.outcome.input_error for j in judgements)
    n_unknown = sum(j.outcome.status == UNKNOWN and not j.outcome.input_error for j in judgements)
    code = EXIT_WRONG if n_wrong or n_rejected else EXIT_USAGE if n_bad else EXIT_UNKNOWN if n_failed else EXIT_OK
    verdict = paint("FAILED", RED + BOLD, sys.stdout) if code else paint("PASSED", GREEN, sys.stdout)
    rejected = f", {n_rejected} certificate rejected" if n_rejected else ""
    click.echo(f"suite {suite.name}: {verdict}: {len(judgements)} checks, {len(judgements) - n_failed} passed, "
               f"{n_failed} failed ({n_wrong} wrong verdict, {n_bad} bad input, {n_unknown} unknown"
               f"{', allowed' if allow_unknown and n_unknown else ''}{rejected}), "
               f"wall time {time.monotonic() - t0:.1f} s")
    if certificates:
        click.echo(f"certificates in {certificates}")
    if junit_path:
        try:
            junit.write(junit_path, suite.name, [_junit_case(j) for j in judgements], suite_file)
        except OSError as exc:
            raise VerifierError(f"{junit_path}: cannot write the JUnit report: {exc.strerror}") from None
    if as_json:
        checks = [{**j.outcome.to_json(), "state": j.state, "wrong": j.wrong, "message": j.message,
                   "certificate": j.outcome.task.certificate, "certificate_rejected": j.rejected}
                  for j in judgements]
        click.echo(json.dumps({"suite": suite.name, "checks": checks, "passed": len(judgements) - n_failed,
                               "failed": n_failed, "wrong": n_wrong, "bad_input": n_bad, "unknown": n_unknown,
                               "certificates_rejected": n_rejected, "certificates": certificates,
                               "exit_code": code}))
    sys.exit(code)


def register(group: click.Group) -> None:
    """Add ``batch`` and ``check`` to the ``verifier`` command group."""
    group.add_command(batch)
    group.add_command(check)
