"""Hand-made certificates for the checker's tests (independent of ``verify --certificate``)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx

from verifier.bounds import linear_bounds, symbolic_bounds
from verifier.io.certificate import rows


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def document(model_path, spec_path, cases: list[dict], verdict: str = "holds", **extra) -> dict:
    ops = sorted({n.op_type for n in onnx.load(str(model_path)).graph.node})
    return {"format": "relu-verifier-certificate", "version": 1, "verdict": verdict,
            "model": {"file": Path(model_path).name, "sha256": sha(model_path)},
            "spec": {"file": Path(spec_path).name, "sha256": sha(spec_path)},
            "onnxruntime": "test", "float_model": {"dtype": "float32"}, "operators": ops,
            "relaxation": "crown-1", "cases": cases, **extra}


def save(doc: dict, path) -> Path:
    data = json.dumps(doc).encode()
    Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)
    return Path(path)


def bisection_tree(network, lo, hi, disjuncts: dict, depth: int = 0, max_depth: int = 30) -> dict:
    """Input bisection until the prover's symbolic bounds close every disjunct (row evidence)."""
    b = symbolic_bounds(network, lo, hi)
    close = {}
    for j, c in disjuncts.items():
        low, _ = linear_bounds(network, b, lo, hi, c.ay, None, c.ax)
        slack = low - c.rhs
        if np.any(slack > 0):
            close[str(j)] = {"lam": [[int(np.argmax(slack)), 1.0]]}
    rest = {j: c for j, c in disjuncts.items() if str(j) not in close}
    node = {"bounds": bool(close), "close": close}
    if rest:
        if depth >= max_depth:
            raise RuntimeError("bisection did not close the disjuncts")
        d = int(np.argmax(hi - lo))
        mid = 0.5 * (lo[d] + hi[d])
        h0, l1 = hi.copy(), lo.copy()
        h0[d] = l1[d] = mid
        node["split"] = {"input": d, "at": float(mid)}
        node["children"] = [bisection_tree(network, lo, h0, rest, depth + 1, max_depth),
                            bisection_tree(network, l1, hi, rest, depth + 1, max_depth)]
    return node


def bisection_certificate(model_path, spec_path, network, spec) -> dict:
    cases = []
    for case in spec.cases:
        tree = bisection_tree(network, case.lower.copy(), case.upper.copy(), dict(enumerate(case.unsafe)))
        cases.append({"lower": case.lower.tolist(), "upper": case.upper.tolist(),
                      "disjuncts": [rows(c) for c in case.unsafe],
                      "trees": [{"disjuncts": list(range(len(case.unsafe))), "root": tree}]})
    return document(model_path, spec_path, cases)
