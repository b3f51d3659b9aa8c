"""The ``verifier`` command line: a thin Click layer over the package's Python API.

``main`` is the Click group (console script ``verifier = "verifier.cli:main"``, re-exported by
:mod:`verifier.cli`); ``verify``, ``info`` and ``bounds`` are defined here, ``batch`` and ``check``
in :mod:`verifier.app.commands_batch`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

from ..errors import VerifierError
from ..results import EXIT_USAGE
from .render import StatusLine, certificate_line, info_summary, print_info, print_result
from .tasks import STRATEGIES

EXIT_HELP = """\b
Exit codes:
  0  holds     (the property is proved)
  1  violated  (a counterexample confirmed by onnxruntime was found)
  2  usage error or bad input (missing file, unsupported model, malformed spec,
     dimension mismatch, unavailable solver)
  3  unknown   (time-out, solver error, or no decision; the reason is printed)
  4  internal error (a bug: please report it with the files that trigger it)
"""

EXIT_INTERNAL = 4


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns package errors into one clear line and exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VerifierError as exc:
            _fail(str(exc))
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:  # the reader of our output went away (``| head``): stop quietly, as Unix tools do
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:  # noqa: BLE001 - a bug, not bad input: still no traceback for the user
            _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL)


class _SolverName(click.ParamType):
    """A solver name: the built-in ones or one registered in this process (checked when parsed)."""

    name = "solver"

    def convert(self, value, param, ctx):
        from ..milp.solvers import solver_names

        if value not in solver_names():
            self.fail(f"{value!r} is not a solver; choose one of: {', '.join(solver_names())}", param, ctx)
        return value


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
@click.version_option(package_name="relu-verifier", prog_name="verifier")
def main() -> None:
    """Sound verification of ReLU / LeakyReLU / Clip networks (ONNX) against linear safety properties.

    Answers holds (proved), violated (with a counterexample replayed in onnxruntime) or unknown
    (with the reason).
    """


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds for the whole run, loading included; past it the answer is unknown.")
@click.option("--solver", type=_SolverName(), default="cbc", show_default=True,
              help="MILP solver: cbc (CBC bundled with PuLP) or highs (HiGHS, highspy); or a name given "
                   "with verifier.milp.solvers.register_solver by a program that calls this CLI.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line of stdout.")
@click.option("--vnncomp-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the VNN-COMP result file (sat + witness / unsat / unknown / timeout).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the verdict (and counterexample); no progress.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes for the sub-problems of this instance.")
@click.option("--strategy", type=click.Choice(list(STRATEGIES)), default="auto", show_default=True,
              help="auto: input splitting for networks with at most 12 inputs, else neuron splitting "
                   "(ReLU / LeakyReLU networks; cases with few unstable neurons go to the MILP), else one MILP "
                   "per unsafe disjunct (Clip, max pooling).")
@click.option("--bounds", "bounds_method", type=click.Choice(["symbolic", "interval"]), default="symbolic",
              show_default=True, help="Neuron bounds for the MILP path (interval = the plain big-M baseline).")
@click.option("--trace", "trace", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Append the best bound over time of each disjunct searched by neuron splitting to this "
                   "JSON-lines file (one object per branching step: case, disjunct, t, bound, open).")
@click.option("--certificate", "certificate", type=click.Path(dir_okay=False), default=None,
              help="Write a proof certificate to this file (gzip when it ends in .gz): the proof of a holds, the "
                   "counterexample of a violated; none for unknown. Check it with 'verifier check-proof'.")
def verify(model: str, spec: str, timeout: float | None, solver: str, as_json: bool, vnncomp_out: str | None,
           quiet: bool, jobs: int, strategy: str, bounds_method: str, trace: str | None,
           certificate: str | None) -> None:
    """Check that SPEC holds for MODEL.

    MODEL is an ONNX file. SPEC is a property file: .vnnlib (VNN-COMP) or .toml (native format);
    it gives the input box(es) and the unsafe output region.

    With --certificate the proof is searched so that an independent checker can recompute it
    (bounds only: input splitting without LP / MILP leaves, or neuron splitting without exact
    leaf checks); when that search cannot finish, the usual search decides and no certificate is
    written (the reason is printed on stderr).
    """
    from ..verify import Options
    from ..verify import verify as run_verify

    status = StatusLine() if (sys.stderr.isatty() and not quiet) else None
    options = Options(timeout=timeout, solver=solver, jobs=jobs, progress=status, strategy=strategy,
                      bounds=bounds_method, trace=trace, certificate=certificate)
    try:
        result = run_verify(model, spec, options=options)
    finally:
        if status is not None:
            status.clear()
    if vnncomp_out:
        try:
            Path(vnncomp_out).write_text(result.vnncomp_text())
        except OSError as exc:
            _fail(f"{vnncomp_out}: cannot write the result file: {exc.strerror}")
    if certificate:
        click.echo(certificate_line(result.stats.certificate), err=True)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        print_result(result, model, spec, quiet)
    sys.exit(result.exit_code)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def info(model: str, as_json: bool) -> None:
    """Describe MODEL: shapes, layers (the tensors each reads, shapes, activation, ONNX operators),
    parameters and neurons."""
    from ..onnx_loader import load_model

    t = time.perf_counter()
    net = load_model(model)
    summary = info_summary(net, model, time.perf_counter() - t)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_info(summary)


def _parse_vector(text: str, what: str) -> np.ndarray:
    try:
        vals = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"{what} must be numbers separated by commas or spaces, got {text!r}") from None
    if not vals:
        raise click.BadParameter(f"{what} is empty")
    return np.array(vals)


def _query_rows(queries: tuple[str, ...], n_inputs: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows ``C``, offsets ``d`` and labels for ``--query`` expressions like ``y0 - y1``."""
    from ..errors import SpecError
    from ..io.constraints import linear_expression

    if not queries:
        return np.eye(n_outputs), np.zeros(n_outputs), [f"y{j}" for j in range(n_outputs)]
    rows, offs = [], []
    for q in queries:
        try:
            ax, ay, const = linear_expression(q, n_inputs, n_outputs)
        except SpecError as exc:
            raise SpecError(f"--query {exc.message}") from None
        if np.any(ax != 0):
            raise SpecError(f"--query {q!r}: a query may only use outputs y0..y{n_outputs - 1}")
        rows.append(ay)
        offs.append(const)
    return np.array(rows), np.array(offs), list(queries)


BOUNDS_EXIT_HELP = """\b
Exit codes:
  0  bounds computed (method exact: every row closed to the gap)
  2  usage error or bad input (missing file, unsupported model, malformed box or query)
  3  method exact only: some row's gap was not closed in time (its bounds are still sound)
  4  internal error (a bug: please report it with the files that trigger it)
"""


@main.command(epilog=BOUNDS_EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--lower", default=None, help="Input lower bounds, e.g. '0,0,-1' (instead of SPEC).")
@click.option("--upper", default=None, help="Input upper bounds, e.g. '1,1,1' (instead of SPEC).")
@click.option("--method", type=click.Choice(["interval", "symbolic", "lp", "milp", "exact"]), default="symbolic",
              show_default=True, help="Bound method; each up to milp is at least as tight as the one before it. "
                                      "exact: branch and bound to --gap, with a witness input for each end.")
@click.option("--gap", type=click.FloatRange(min=0), default=1e-3, show_default=True,
              help="method exact: the absolute gap between each proved bound and its witness's value.")
@click.option("--query", "queries", multiple=True,
              help="A linear function of the outputs to bound instead of each output, e.g. 'y0 - y1' "
                   "(repeatable).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Time budget in seconds for lp / milp / exact, per box (bounds stay sound; rows not "
                   "closed in time are marked not exact).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line of stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line on stderr.")
def bounds(model: str, spec: str | None, lower: str | None, upper: str | None, method: str, gap: float,
           queries: tuple[str, ...], timeout: float | None, as_json: bool, quiet: bool) -> None:
    """Sound bounds on MODEL's outputs over an input box.

    The box is the input box of SPEC (a .toml or .vnnlib property; one table per box when it has
    several), or is given with --lower and --upper. With --method milp the bounds are HiGHS's
    proved bounds, padded; column 'exact' marks the rows where they are the extrema to within
    3e-6 + 1e-6 |bound| (optimality tolerance 1e-6 + 1e-9 |bound|, see README). With --method
    exact each end is closed by branch and bound to within --gap of a witness input whose value
    onnxruntime computes (columns 'min found' / 'max found'); see docs/bounds.md.
    """
    from ..onnx_loader import load_model
    from ..query import linear_query
    from .render import print_bounds

    net = load_model(model)
    boxes = _boxes(net, model, spec, lower, upper)
    C, d, labels = _query_rows(queries, net.n_inputs, net.n_outputs)
    status = StatusLine() if (method == "exact" and sys.stderr.isatty() and not quiet) else None
    results, all_exact = [], True
    for bi, (lo, hi) in enumerate(boxes):
        progress = None if status is None else (lambda text, bi=bi: status(f"box {bi}: {text}"))
        try:
            b = linear_query(net, lo, hi, C, d, method=method, timeout=timeout, gap=gap, progress=progress)
        finally:
            if status is not None:
                status.clear()
        all_exact &= bool(b.exact.all())
        results.append({"box": bi, **b.to_json(), "names": labels,
                        "unstable_neurons": b.layers.n_unstable(net) if b.layers is not None else None})
        if not as_json:
            print_bounds(bi, b, labels, results[-1]["unstable_neurons"])
    if as_json:
        click.echo(json.dumps({"model": model, "method": method, "boxes": results}))
    sys.exit(0 if method != "exact" or all_exact else 3)


def _boxes(net, model: str, spec: str | None, lower: str | None, upper: str | None) -> list:
    """The input boxes of ``bounds``: SPEC's, or the one given by --lower / --upper."""
    from ..spec import load_spec

    if spec is not None and (lower is not None or upper is not None):
        raise click.UsageError("give either SPEC or --lower/--upper, not both")
    if spec is not None:
        return [(c.lower, c.upper) for c in load_spec(spec).bind(net.n_inputs, net.n_outputs).cases]
    if lower is not None and upper is not None:
        lo, hi = _parse_vector(lower, "--lower"), _parse_vector(upper, "--upper")
        if lo.size != net.n_inputs or hi.size != net.n_inputs:
            raise click.UsageError(f"--lower/--upper have {lo.size}/{hi.size} values; {model} has {net.n_inputs} inputs")
        return [(lo, hi)]
    raise click.UsageError("give a SPEC file or both --lower and --upper")


from .commands_batch import register as _register_batch
from .commands_proof import register as _register_proof

_register_batch(main)
_register_proof(main)

if __name__ == "__main__":  # pragma: no cover
    main()
