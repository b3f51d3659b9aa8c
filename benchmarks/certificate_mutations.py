"""Mutation test of the certificate checker on real certificates.

For a sample of instances with a known *holds* answer, make the certificate (``verify
--certificate``), then apply every kind of mutation of ``tests/helpers/mutations.py`` a few times
(changed multipliers, slopes and split points, dropped subtrees and closings, swapped children,
shrunk or moved boxes, changed spec rows and file hashes), plus a changed model file (one weight
perturbed, the hash updated so that only the proof can fail) and a changed spec file (a threshold
moved towards the unsafe side, hash updated), and count how many the checker rejects. A mutant that
is still accepted must still be a correct certificate: it is checked again in exact arithmetic and
its claim (the property, on the possibly changed model and spec) is re-verified by ``verify``.

    python benchmarks/certificate_mutations.py ../shared/benchmarks/vnncomp2021/acasxu --limit 5
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import mutations
from verifier.checker import check_certificate


def _read(path: Path) -> dict:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _perturbed_model(src: Path, dst: Path, rng: np.random.Generator) -> None:
    """One weight of the model multiplied by 1.5 (or set to 1 when it is 0)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    inits = [t for t in m.graph.initializer if t.data_type == 1 and np.prod(t.dims) > 1]
    t = inits[int(rng.integers(len(inits)))]
    a = numpy_helper.to_array(t).copy()
    i = int(rng.integers(a.size))
    a.flat[i] = a.flat[i] * 1.5 if a.flat[i] != 0 else 1.0
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    onnx.save(m, str(dst))


def _moved_spec(src: Path, dst: Path) -> bool:
    """The first output threshold ``(<= Y_i c)`` / ``(>= Y_i c)`` moved by 10 towards the unsafe side
    (the unsafe region grows: the property may no longer hold)."""
    text = src.read_text()
    m = re.search(r"\((<=|>=) (Y_\d+) ([-+0-9.eE]+)\)", text)
    if not m:
        return False
    c = float(m.group(3)) + (10.0 if m.group(1) == "<=" else -10.0)
    dst.write_text(text[:m.start()] + f"({m.group(1)} {m.group(2)} {c!r})" + text[m.end():])
    return True


def _verify(model: Path, spec: Path, timeout: float) -> str:
    r = subprocess.run([sys.executable, "cli.py", "verify", str(model), str(spec), "--timeout", str(timeout),
                        "--json", "--quiet"], capture_output=True, text=True, cwd=ROOT, check=False)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])["result"]
    except (ValueError, IndexError, KeyError):
        return "crash"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("benchmark", type=Path)
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--per-kind", type=int, default=2)
    ap.add_argument("--filter", default="")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with open(args.benchmark / "expected.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) > 3 and r[3] == "holds" and re.search(args.filter, ",".join(r[:2]))]
    rows = [rows[i] for i in sorted(rng.choice(len(rows), min(args.limit, len(rows)), replace=False))]
    tmp = Path(tempfile.mkdtemp(prefix="mutants_"))
    tally: Counter = Counter()
    per_kind: dict[str, Counter] = {}
    problems = []
    for onnx_name, spec_name, *_ in rows:
        model, spec = args.benchmark / onnx_name, args.benchmark / spec_name
        cert = tmp / "c.json.gz"
        subprocess.run([sys.executable, "cli.py", "verify", str(model), str(spec), "--timeout", str(args.timeout),
                        "--certificate", str(cert), "--quiet"], capture_output=True, cwd=ROOT, check=False)
        if not cert.exists():
            print(f"{onnx_name} {spec_name}: no certificate, skipped")
            continue
        doc = _read(cert)
        trials = []
        for kind in mutations.KINDS:
            for _ in range(args.per_kind):
                m = mutations.mutate(doc, kind, rng)
                if m is not None:
                    trials.append((kind, m, model, spec))
        # a changed model / spec file, hashes updated: only the proof itself can fail
        pm, ps = tmp / "perturbed.onnx", tmp / "moved.vnnlib"
        _perturbed_model(model, pm, rng)
        m = json.loads(json.dumps(doc))
        m["model"]["sha256"] = _sha(pm)
        trials.append(("changed model file", m, pm, spec))
        if _moved_spec(spec, ps):
            m = json.loads(json.dumps(doc))
            m["spec"]["sha256"] = _sha(ps)
            trials.append(("changed spec file", m, model, ps))
        for kind, m, mod, sp in trials:
            path = tmp / "m.json"
            path.write_text(json.dumps(m))
            res = check_certificate(str(mod), str(sp), str(path), "fast")
            c = per_kind.setdefault(kind, Counter())
            c["tried"] += 1
            tally["tried"] += 1
            if not res.valid:
                c["rejected"] += 1
                tally["rejected"] += 1
                continue
            c["still valid"] += 1
            tally["still valid"] += 1
            exact = check_certificate(str(mod), str(sp), str(path), "exact").valid
            claim = _verify(mod, sp, args.timeout) if (mod, sp) != (model, spec) else "holds (expected.csv)"
            ok = exact and claim.startswith("holds")
            tally["still valid, confirmed"] += ok
            if not ok:
                problems.append({"instance": f"{onnx_name} {spec_name}", "kind": kind, "exact": exact, "claim": claim})
        pm.unlink(missing_ok=True)
        print(f"{onnx_name} {spec_name}: {len(trials)} mutants", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'mutation':<30} {'tried':>6} {'rejected':>9} {'still valid':>12}")
    for kind, c in per_kind.items():
        print(f"{kind:<30} {c['tried']:>6} {c['rejected']:>9} {c['still valid']:>12}")
    summary = {**tally, "problems": problems}
    print(json.dumps(summary))
    if args.json_out:
        args.json_out.write_text(json.dumps({"summary": summary, "per_kind": per_kind}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
