"""Certificates on a benchmark: what they cost to make, their size, and what checking them costs.

Per instance (of a VNN-COMP instances.csv, filtered by the expected answer): ``verify`` without and
with ``--certificate`` (in-process verify time, as its JSON reports it), the certificate's size
(gzip), and ``check-proof`` in the fast and, optionally, the exact arithmetic (the checker's own
time). Each run is a separate process, one at a time (or ``--workers N`` side by side).

    python benchmarks/certificates.py ../shared/benchmarks/vnncomp2021/acasxu --expected holds \
        --timeout 60 --exact --json-out benchmarks/results/certificates_acas.json

Prints one line per instance and the totals: verify time without / with the certificate (the
overhead), how many certificates were written and accepted, sizes, and checking times.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def _run(cmd: list[str], timeout: float) -> tuple[dict | None, float, int | None]:
    t = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t, None
    return _last_json(r.stdout), time.perf_counter() - t, r.returncode


def instance(bench: Path, onnx: str, spec: str, args, tmp: Path) -> dict:
    model, prop = str(bench / onnx), str(bench / spec)
    cert = tmp / f"{Path(onnx).stem}__{Path(spec).stem}.json.gz"
    base = [sys.executable, "cli.py", "verify", model, prop, "--timeout", str(args.timeout), "--json", "--quiet"]
    row: dict = {"onnx": onnx, "vnnlib": spec}
    if not args.skip_baseline:
        out, _, _ = _run(base, args.timeout + 30)
        row["verify_s"] = out.get("time_s") if out else None
        row["result"] = out.get("result") if out else "crash"
    out, _, _ = _run(base + ["--certificate", str(cert)], args.timeout + 30)
    row["cert_result"] = out.get("result") if out else "crash"
    row["cert_verify_s"] = out.get("time_s") if out else None
    info = (out or {}).get("stats", {}).get("certificate", {}) or {}
    row["written"] = bool(cert.exists() and info.get("written", cert.exists()))
    row["reason"] = info.get("reason")
    row["bytes_gz"] = cert.stat().st_size if cert.exists() else None
    row["nodes"] = info.get("nodes")
    if row["written"]:
        chk = [sys.executable, "-m", "verifier.checker", model, prop, str(cert), "--json"]
        out, wall, code = _run(chk, args.check_timeout)
        row["fast_valid"] = bool(out and out.get("valid"))
        row["fast_s"] = (out or {}).get("stats", {}).get("check_s", round(wall, 3))
        row["fast_reason"] = (out or {}).get("reason") if code is not None else "timeout"
        if args.exact:
            out, wall, code = _run(chk + ["--exact"], args.exact_timeout)
            row["exact_valid"] = bool(out and out.get("valid")) if code is not None else None
            row["exact_s"] = (out or {}).get("stats", {}).get("check_s", round(wall, 3)) if code is not None else None
        if not args.keep:
            cert.unlink()
    return row


def _fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("benchmark", type=Path, help="directory with instances.csv / expected.csv")
    ap.add_argument("--expected", default="holds", help="only instances with this expected answer ('' = all)")
    ap.add_argument("--filter", default="", help="regular expression on 'onnx,vnnlib'")
    ap.add_argument("--limit", type=int, default=0, help="at most this many instances (0 = all)")
    ap.add_argument("--timeout", type=float, default=60.0, help="verify time limit per instance")
    ap.add_argument("--check-timeout", type=float, default=600.0)
    ap.add_argument("--exact", action="store_true", help="also check in exact arithmetic")
    ap.add_argument("--exact-timeout", type=float, default=1200.0)
    ap.add_argument("--skip-baseline", action="store_true", help="do not run verify without a certificate")
    ap.add_argument("--workers", type=int, default=1, help="instances side by side (timings get noisier)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the certificates in this directory")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    exp = args.benchmark / "expected.csv"
    with open(exp if exp.exists() else args.benchmark / "instances.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if r and r[0] != "onnx"]
    todo = [(r[0], r[1]) for r in rows
            if (not args.expected or (len(r) > 3 and r[3] == args.expected)) and re.search(args.filter, f"{r[0]},{r[1]}")]
    if args.limit:
        todo = todo[:args.limit]
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="certs_"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"{'instance':<48} {'verify_s':>8} {'cert_s':>8} {'KiB.gz':>8} {'nodes':>7} {'fast_s':>7} {'ok':>3} "
          f"{'exact_s':>8} {'ok':>3}", flush=True)
    results = []
    with ThreadPoolExecutor(args.workers) as pool:
        for r in pool.map(lambda t: instance(args.benchmark, t[0], t[1], args, tmp), todo):
            results.append(r)
            name = f"{Path(r['onnx']).stem[:30]} {Path(r['vnnlib']).stem}"
            kib = None if r["bytes_gz"] is None else r["bytes_gz"] / 1024
            print(f"{name:<48} {_fmt(r.get('verify_s'), '8.2f')} {_fmt(r['cert_verify_s'], '8.2f')} {_fmt(kib, '8.1f')} "
                  f"{_fmt(r['nodes'], '7d')} {_fmt(r.get('fast_s'), '7.2f')} {_fmt(r.get('fast_valid'), '')[:3]:>3} "
                  f"{_fmt(r.get('exact_s'), '8.2f')} {_fmt(r.get('exact_valid'), '')[:3]:>3}"
                  + ("" if r["written"] else f"  no certificate: {r.get('reason') or r['cert_result']}"), flush=True)
    total = {k: round(sum(r.get(k) or 0 for r in results), 2) for k in ("verify_s", "cert_verify_s", "fast_s", "exact_s")}
    written = [r for r in results if r["written"]]
    summary = {"instances": len(results), "certificates": len(written),
               "fast_valid": sum(bool(r.get("fast_valid")) for r in written),
               "exact_valid": sum(bool(r.get("exact_valid")) for r in written) if args.exact else None,
               "max_kib_gz": round(max((r["bytes_gz"] for r in written), default=0) / 1024, 1),
               "median_kib_gz": round(sorted(r["bytes_gz"] for r in written)[len(written) // 2] / 1024, 1) if written else None,
               **{f"total_{k}": v for k, v in total.items()}}
    if total["verify_s"]:
        summary["certificate_overhead"] = round(total["cert_verify_s"] / total["verify_s"] - 1.0, 3)
    print(json.dumps(summary))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"summary": summary, "instances": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
