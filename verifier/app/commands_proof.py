"""``verifier check-proof``: the independent certificate checker (``verifier.checker``) on the CLI."""

from __future__ import annotations

import sys

import click

CHECK_EXIT_HELP = """\b
Exit codes (the checker's own):
  0  valid     (the certificate proves its verdict for this model and spec)
  1  invalid   (the first failing node and why are printed)
  2  bad input (a file cannot be read, or uses an operator / spec form outside the
     checker's subset)
"""


@click.command("check-proof", epilog=CHECK_EXIT_HELP)
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("certificate", type=click.Path(dir_okay=False))
@click.option("--exact", is_flag=True, help="Exact rational arithmetic (slower). Default: float64 with "
              "rigorous error bounds, just as sound.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def check_proof(model: str, spec: str, certificate: str, exact: bool, as_json: bool) -> None:
    """Re-verify CERTIFICATE (written by "verify --certificate") for MODEL and SPEC, trusting no solver.

    The checker reads the ONNX file and the spec itself, applies its own float32 error model and
    recomputes every bound of the proof tree; for a violated certificate it replays the
    counterexample in onnxruntime. It shares no code with the verifier.
    """
    from ..checker.cli import run

    sys.exit(run(model, spec, certificate, exact=exact, as_json=as_json))


def register(group: click.Group) -> None:
    group.add_command(check_proof)
