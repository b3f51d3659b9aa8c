"""Run a VNN-COMP benchmark's instances.csv and compare with its expected.csv.

Each instance runs as its own process (``python -m verifier.cli verify ... --json``), so the time
reported is whole-process time, loading included, and a hung solver cannot stall the run.

    python benchmarks/run_instances.py ../shared/benchmarks/vnncomp2021/acasxu --timeout 60 \
        --filter 'prop_[34]' --jobs 1 --json-out benchmarks/results/acas34.json

Prints one line per instance and a summary table: solved (holds / violated), unknown, wrong,
median and total time, MILP sizes.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def read_instances(folder: Path) -> list[dict]:
    expected = {}
    exp_file = folder / "expected.csv"
    if exp_file.exists():
        with exp_file.open() as f:
            for row in csv.DictReader(f):
                expected[(row["onnx"], row["vnnlib"])] = row["expected"]
    out = []
    with (folder / "instances.csv").open() as f:
        for row in csv.reader(f):
            if not row or row[0].startswith("#") or row[0] == "onnx":
                continue
            onnx, vnnlib = row[0].strip(), row[1].strip()
            out.append({"onnx": onnx, "vnnlib": vnnlib, "expected": expected.get((onnx, vnnlib), "unknown")})
    return out


def run_one(folder: Path, inst: dict, timeout: float, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "verifier.cli", "verify", str(folder / inst["onnx"]), str(folder / inst["vnnlib"]),
           "--json", "--timeout", str(timeout), *extra]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30, cwd=ROOT, check=False)
        wall = time.perf_counter() - t0
        lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
        data = json.loads(lines[-1]) if lines else {"result": "unknown", "reason": proc.stderr.strip()[-300:]}
    except subprocess.TimeoutExpired:
        wall = time.perf_counter() - t0
        data = {"result": "unknown", "reason": "process killed after timeout + 30 s"}
    result = data.get("result", "unknown")
    exp = inst["expected"]
    wrong = result in ("holds", "violated") and exp in ("holds", "violated") and result != exp
    milp = (data.get("stats") or {}).get("milp") or {}
    return {**inst, "result": result, "wall_s": round(wall, 3), "wrong": wrong, "reason": data.get("reason"),
            "binaries": milp.get("binaries"), "variables": milp.get("variables"),
            "constraints": milp.get("constraints"), "stats": data.get("stats")}


def summarise(rows: list[dict]) -> dict:
    times = [r["wall_s"] for r in rows]
    solved = [r for r in rows if r["result"] in ("holds", "violated") and not r["wrong"]]
    bins = [r["binaries"] for r in rows if r["binaries"] is not None]
    return {
        "instances": len(rows),
        "holds": sum(r["result"] == "holds" and not r["wrong"] for r in rows),
        "violated": sum(r["result"] == "violated" and not r["wrong"] for r in rows),
        "unknown": sum(r["result"] == "unknown" for r in rows),
        "wrong": sum(r["wrong"] for r in rows),
        "solved": len(solved),
        "median_s": round(statistics.median(times), 3) if times else 0.0,
        "total_s": round(sum(times), 2),
        "median_binaries": statistics.median(bins) if bins else None,
        "max_binaries": max(bins) if bins else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="benchmark folders with instances.csv")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per instance (default 60)")
    ap.add_argument("--filter", default=None, help="regex on 'onnx,vnnlib' to select instances")
    ap.add_argument("--limit", type=int, default=None, help="run at most this many instances per folder")
    ap.add_argument("--jobs", type=int, default=1, help="instances run side by side (default 1)")
    ap.add_argument("--json-out", type=Path, default=None, help="write rows and summary as JSON here")
    ap.add_argument("--verify-args", default="", help="extra arguments for 'verifier verify', e.g. "
                    "'--strategy milp --bounds interval' (the plain big-M baseline)")
    args = ap.parse_args()

    report = {}
    for folder in args.folders:
        insts = read_instances(folder)
        if args.filter:
            insts = [i for i in insts if re.search(args.filter, f"{i['onnx']},{i['vnnlib']}")]
        if args.limit:
            insts = insts[: args.limit]
        print(f"== {folder.name}: {len(insts)} instances, timeout {args.timeout:g} s, jobs {args.jobs}", flush=True)
        rows = []
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futs = [pool.submit(run_one, folder, i, args.timeout, args.verify_args.split()) for i in insts]
            for fut in futs:
                r = fut.result()
                rows.append(r)
                flag = "  WRONG" if r["wrong"] else ""
                print(f"{r['onnx']:<36} {r['vnnlib']:<22} {r['result']:<9} exp={r['expected']:<9} "
                      f"{r['wall_s']:7.2f}s bin={r['binaries']}{flag}", flush=True)
        report[folder.name] = {"summary": summarise(rows), "rows": rows}

    print()
    print(f"{'benchmark':<12} {'n':>4} {'holds':>6} {'viol':>5} {'unk':>5} {'wrong':>6} {'median_s':>9} "
          f"{'total_s':>9} {'med_bin':>8} {'max_bin':>8}")
    for name, rep in report.items():
        s = rep["summary"]
        print(f"{name:<12} {s['instances']:>4} {s['holds']:>6} {s['violated']:>5} {s['unknown']:>5} {s['wrong']:>6} "
              f"{s['median_s']:>9} {s['total_s']:>9} {s['median_binaries']!s:>8} {s['max_binaries']!s:>8}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=1))
    return 1 if any(rep["summary"]["wrong"] for rep in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
