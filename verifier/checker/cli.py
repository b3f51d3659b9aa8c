"""``verifier check-proof MODEL SPEC CERTIFICATE`` (also ``python -m verifier.checker``).

Exit codes: 0 the certificate is valid, 1 it is not (the first failing node and why),
2 bad input (a file that cannot be read, an operator or spec form outside the checker's subset).
"""

from __future__ import annotations

import argparse
import json
import sys

from .check import check_certificate
from .model import BadInput

EXIT_VALID, EXIT_INVALID, EXIT_BAD_INPUT = 0, 1, 2


def run(model: str, spec: str, certificate: str, exact: bool = False, as_json: bool = False) -> int:
    import onnx  # noqa: F401  (imported before the timed check, as verify's own time excludes its imports)

    try:
        res = check_certificate(model, spec, certificate, mode="exact" if exact else "fast")
    except BadInput as exc:
        if as_json:
            print(json.dumps({"valid": False, "reason": str(exc), "bad_input": True}))
        else:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if as_json:
        print(json.dumps(res.as_dict()))
    elif res.valid:
        st = res.stats
        print(f"valid: the certificate proves {res.verdict} ({res.mode} arithmetic; {st.get('nodes', 0)} nodes, "
              f"{st.get('closed', 0)} closings checked in {st.get('check_s', 0)} s)")
    else:
        print(f"invalid: {res.reason}")
    return EXIT_VALID if res.valid else EXIT_INVALID


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m verifier.checker", description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("spec")
    p.add_argument("certificate")
    p.add_argument("--exact", action="store_true", help="exact rational arithmetic (slower; default: "
                   "float64 with rigorous error bounds)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    return run(a.model, a.spec, a.certificate, a.exact, a.json)
