"""Compare the bound methods on real networks: output-bound width, unstable neurons, time.

    python benchmarks/bounds.py [--shared ../shared/benchmarks/vnncomp2021] [--networks 3] [--milp-timeout 20]

Boxes: ACAS Xu over its full (normalised) input domain and over the property 3 box, and an
MNIST-FC network over the eps = 0.03 ball of property 0. For every method the table gives the
mean output-bound width relative to interval arithmetic, the number of unstable neurons left
(those need a binary in the MILP), and the time. ``milp`` is given a time budget per box.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from verifier import load_model, load_spec
from verifier.query import METHODS, output_bounds

# the normalised ACAS Xu input domain (the range of the networks' training data)
ACAS_FULL = (np.array([-0.3284228772, -0.5, -0.5, -0.5, -0.5]), np.array([0.6798577687, 0.5, 0.5, 0.5, 0.5]))


def rows_for(name: str, net, lower, upper, milp_timeout: float, methods) -> list[dict]:
    out = []
    ref = None
    for m in methods:
        b = output_bounds(net, lower, upper, method=m, timeout=milp_timeout if m in ("lp", "milp") else None)
        width = float(np.mean(b.upper - b.lower))
        ref = ref if ref is not None else width
        out.append({"box": name, "method": m, "width": width, "ratio": width / ref,
                    "unstable": b.layers.n_unstable(net) if b.layers is not None else None,
                    "exact": int(np.sum(b.exact)), "time_s": b.time_s})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "benchmarks" / "vnncomp2021")
    ap.add_argument("--networks", type=int, default=3, help="ACAS Xu networks to use (default 3)")
    ap.add_argument("--milp-timeout", type=float, default=20.0, help="budget for lp / milp per box (s)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of methods")
    args = ap.parse_args()
    methods = args.methods.split(",")
    if not args.shared.is_dir():
        print(f"shared benchmarks not found at {args.shared}", file=sys.stderr)
        return 2
    acas = args.shared / "acasxu"
    p3 = load_spec(acas / "prop_3.vnnlib").cases[0]
    rows = []
    for i in range(1, args.networks + 1):
        path = acas / f"ACASXU_run2a_1_{i}_batch_2000.onnx"
        net = load_model(path)
        rows += rows_for(f"acas 1_{i} full", net, *ACAS_FULL, args.milp_timeout, methods)
        rows += rows_for(f"acas 1_{i} prop3", net, p3.lower, p3.upper, args.milp_timeout, methods)
    mn = args.shared / "mnistfc"
    box = load_spec(mn / "prop_0_0.03.vnnlib").cases[0]
    for name in ("mnist-net_256x2", "mnist-net_256x6"):
        net = load_model(mn / f"{name}.onnx")
        rows += rows_for(f"{name} eps0.03", net, box.lower, box.upper, args.milp_timeout,
                         [m for m in methods if m != "milp"])

    print(f"{'box':<24} {'method':<9} {'mean width':>12} {'vs interval':>12} {'unstable':>9} {'exact':>6} {'time_s':>8}")
    for r in rows:
        print(f"{r['box']:<24} {r['method']:<9} {r['width']:>12.5g} {r['ratio']:>12.5f} {r['unstable']!s:>9} "
              f"{r['exact']:>6} {r['time_s']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
