"""Run a VNN-COMP benchmark's instances.csv and compare with its expected.csv.

A thin layer over ``verifier batch`` (verifier.app): the same instance lists, worker isolation
(each instance in a worker process with a hard time limit, BLAS pinned to one thread), expected-
answer comparison and summary. The time column is the in-worker verify time (model loading
included, worker start-up excluded); the JSON report also has the parent-side time of each
instance (``wall_s``) and its worker's start-up time (``worker_startup_s``).

    python benchmarks/run_instances.py ../shared/benchmarks/vnncomp2021/acasxu --timeout 60 \
        --filter 'prop_[34]' --jobs 1 --json-out benchmarks/results/acas34.json

Prints one line per instance and a summary table: solved (holds / violated), unknown, wrong,
median and total time, MILP sizes, the largest peak memory of an instance (worker and solver
processes, sampled every 0.2 s); and one row per network when a benchmark has several.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verifier.app.commands_batch import load_batch_tasks
from verifier.app.dispatch import run
from verifier.app.summary import milp_size, summarize
from verifier.app.tasks import BOUNDS, SOLVERS, STRATEGIES, Outcome
from verifier.errors import VerifierError


def verify_options(text: str) -> dict:
    """The verify options of ``--verify-args`` (the flags of 'verifier verify' that a batch task carries)."""
    ap = argparse.ArgumentParser(prog="--verify-args", add_help=False, exit_on_error=False)
    ap.add_argument("--strategy", choices=STRATEGIES)
    ap.add_argument("--bounds", choices=BOUNDS)
    ap.add_argument("--solver", choices=SOLVERS)
    ap.add_argument("--jobs", "-j", dest="instance_jobs", type=int)
    ap.add_argument("--seed", type=int)
    try:
        ns, rest = ap.parse_known_args(shlex.split(text))
    except argparse.ArgumentError as exc:
        raise SystemExit(f"error: --verify-args: {exc}") from None
    if rest:
        raise SystemExit(f"error: --verify-args: not a per-instance option of a batch: {' '.join(rest)} "
                         "(known: --strategy, --bounds, --solver, --jobs, --seed)")
    return vars(ns)


def row(o: Outcome) -> dict:
    m = milp_size(o)
    return {**o.to_json(), "wrong": o.wrong, "binaries": m.get("binaries"), "variables": m.get("variables"),
            "constraints": m.get("constraints")}


def print_table(rows: list[dict], first: str = "benchmark") -> None:
    print(f"{first:<28} {'n':>4} {'solved':>6} {'holds':>6} {'viol':>5} {'unk':>5} {'wrong':>6} {'median_s':>9} "
          f"{'total_s':>9} {'med_bin':>8} {'max_bin':>8} {'max_MiB':>8}")
    for s in rows:
        print(f"{s['benchmark']:<28} {s['instances']:>4} {s['solved']:>6} {s['holds']:>6} {s['violated']:>5} "
              f"{s['unknown']:>5} {s['wrong']:>6} {s['median_s']:>9} {s['total_s']:>9} "
              f"{s['median_binaries']!s:>8} {s['max_binaries']!s:>8} {s.get('max_rss_mb')!s:>8}")


def show(o: Outcome) -> None:
    flag = "  WRONG" if o.wrong else ""
    print(f"{o.task.onnx:<36} {o.task.vnnlib:<22} {o.status:<9} exp={o.task.expected or 'unknown':<9} "
          f"{o.time_s:7.2f}s bin={milp_size(o).get('binaries')} rss={o.peak_rss_mb}MiB{flag}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path, help="benchmark folders with instances.csv")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per instance (default 60)")
    ap.add_argument("--filter", default=None, help="regex on 'onnx,vnnlib' to select instances")
    ap.add_argument("--limit", type=int, default=None, help="run at most this many instances per folder")
    ap.add_argument("--known-only", action="store_true",
                    help="only instances whose expected answer is holds or violated (the targets' denominator)")
    ap.add_argument("--jobs", type=int, default=1, help="instances run side by side (default 1)")
    ap.add_argument("--json-out", type=Path, default=None, help="write rows and summary as JSON here")
    ap.add_argument("--verify-args", default="", help="verify options of every instance, e.g. "
                    "'--strategy milp --bounds interval' (the plain big-M baseline); --jobs here is per instance")
    args = ap.parse_args()
    options = verify_options(args.verify_args)

    report = {}
    all_summaries = []
    for folder in args.folders:
        expected = [str(folder / "expected.csv")] if (folder / "expected.csv").exists() else []
        try:
            tasks = load_batch_tasks([str(folder / "instances.csv")], args.timeout, options, expected, args.filter)
        except VerifierError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.known_only:
            tasks = [t for t in tasks if t.expected in ("holds", "violated")]
        if args.limit:
            tasks = tasks[: args.limit]
        print(f"== {folder.name}: {len(tasks)} instances, timeout {args.timeout:g} s, jobs {args.jobs}", flush=True)
        done: list[Outcome] = []
        run(tasks, max(1, args.jobs), lambda o, done=done: (done.append(o), show(o)))
        order = {t: i for i, t in enumerate(tasks)}
        done.sort(key=lambda o: order.get(o.task, len(tasks)))
        summary = summarize(done)[0] if done else {}
        networks = {o.task.onnx for o in done}
        per_net = [r for r in summarize(done, key=lambda o: o.task.onnx) if r["benchmark"] != "total"] \
            if len(networks) > 1 else []
        report[folder.name] = {"summary": summary, "networks": per_net, "rows": [row(o) for o in done]}
        if summary:
            all_summaries.append({**summary, "benchmark": folder.name})

    print()
    print_table(all_summaries)
    for name, rep in report.items():
        if rep["networks"]:
            print()
            print_table(rep["networks"], f"{name}: network")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=1))
    return 1 if any(rep["summary"] and rep["summary"]["wrong"] for rep in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
