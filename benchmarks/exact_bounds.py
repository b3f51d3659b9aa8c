"""Exact bound queries on ACAS Xu: the min and max of every output over each property box.

    OMP_NUM_THREADS=1 python benchmarks/exact_bounds.py [--shared DIR] [--networks 1_1,1_2 | --count 10]
        [--props 3,4] [--gap 1e-3] [--timeout 60] [--settings '{"iters": 2}'] [--lp auto|on|off]
        [--json results.json]

For every network and property box: ``output_bounds(method="exact")`` (all 5 outputs, both ends),
its time, how many outputs are exact (both ends within the gap), the mean width of the proved
bounds and the mean gap left. Then totals, and the README case: output 0 of network 1_1 over the
prop 3 box, whose true maximum lies between 0.1616 and 0.1706 (method milp returned 0.433).
The table goes to stdout, everything (per output: bounds, witness values) to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verifier import load_model, load_spec
from verifier.query import output_bounds
from verifier.search.branch_bound import Settings

ALL_NETWORKS = [f"{a}_{b}" for a in range(1, 6) for b in range(1, 10)]


def run_box(net, case, args, settings) -> dict:
    lp = {"auto": None, "on": True, "off": False}[args.lp]
    b = output_bounds(net, case.lower, case.upper, method="exact", timeout=args.timeout, gap=args.gap,
                      settings=settings, lp=lp)
    gaps = np.maximum(b.value_lower - b.lower, b.upper - b.value_upper)
    return {"time_s": round(b.time_s, 3), "exact": int(b.exact.sum()), "outputs": int(b.exact.size),
            "mean_width": float(np.mean(b.upper - b.lower)), "max_gap": float(np.nanmax(gaps)),
            "engine": b.engine, "lower": b.lower.tolist(), "upper": b.upper.tolist(),
            "value_lower": b.value_lower.tolist(), "value_upper": b.value_upper.tolist(),
            "explored": int(sum(s[e].get("explored", 0) for s in b.stats for e in ("lower", "upper")))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "benchmarks" / "vnncomp2021")
    ap.add_argument("--networks", default=None, help="comma-separated, e.g. 1_1,2_3 (default: --count of them)")
    ap.add_argument("--count", type=int, default=45, help="the first COUNT networks (default all 45)")
    ap.add_argument("--props", default="3,4")
    ap.add_argument("--gap", type=float, default=1e-3)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per box (all outputs, both ends)")
    ap.add_argument("--settings", default=None, help="branch_bound.Settings fields as JSON (default: the query's)")
    ap.add_argument("--lp", choices=["auto", "on", "off"], default="auto", help="LP-tighten the root bounds")
    ap.add_argument("--json", type=Path, default=None, help="write all results here")
    args = ap.parse_args()
    acas = args.shared / "acasxu"
    if not acas.is_dir():
        print(f"ACAS Xu benchmarks not found at {acas}", file=sys.stderr)
        return 2
    names = args.networks.split(",") if args.networks else ALL_NETWORKS[:args.count]
    settings = None if args.settings is None else Settings(**json.loads(args.settings))
    rows, t0 = [], time.perf_counter()
    print(f"{'network':<8} {'prop':>4} {'time_s':>8} {'exact':>6} {'mean width':>11} {'max gap':>9} {'explored':>9}")
    for name in names:
        net = load_model(acas / f"ACASXU_run2a_{name}_batch_2000.onnx")
        for p in args.props.split(","):
            case = load_spec(acas / f"prop_{p}.vnnlib").bind(net.n_inputs, net.n_outputs).cases[0]
            r = {"network": name, "prop": int(p), **run_box(net, case, args, settings)}
            rows.append(r)
            print(f"{name:<8} {p:>4} {r['time_s']:>8.2f} {r['exact']:>3}/{r['outputs']} {r['mean_width']:>11.5f} "
                  f"{r['max_gap']:>9.2e} {r['explored']:>9}", flush=True)
    times = [r["time_s"] for r in rows]
    total = {"boxes": len(rows), "mean_time_s": float(np.mean(times)), "max_time_s": float(np.max(times)),
             "exact_outputs": sum(r["exact"] for r in rows), "outputs": sum(r["outputs"] for r in rows),
             "boxes_all_exact": sum(r["exact"] == r["outputs"] for r in rows),
             "wall_s": round(time.perf_counter() - t0, 2)}
    print(f"total: {total['boxes']} boxes, mean {total['mean_time_s']:.2f} s per box (max {total['max_time_s']:.2f}), "
          f"{total['exact_outputs']}/{total['outputs']} outputs exact, {total['boxes_all_exact']} boxes all exact")
    readme = next((r for r in rows if r["network"] == "1_1" and r["prop"] == 3), None)
    if readme is not None:
        print(f"README case (1_1, prop 3, output 0): max in [{readme['value_upper'][0]:.6f}, {readme['upper'][0]:.6f}] "
              "(known: between 0.1616 and 0.1706; milp gave 0.433)")
    if args.json is not None:
        args.json.write_text(json.dumps({"settings": args.settings, "gap": args.gap, "timeout": args.timeout,
                                         "lp": args.lp, "boxes": rows, "total": total}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
