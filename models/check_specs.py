"""Establish the verdict of every shipped property in ``specs/`` independently of the verifier.

Run from the repository root::

    python models/check_specs.py                 # every specs/*.toml and specs/*.vnnlib
    python models/check_specs.py specs/leaky_centre_is_class0.toml   # and its .vnnlib twin

For each property (a ``.toml`` file and its ``.vnnlib`` twin with the same stem) this script

1. parses both files with its own small parsers and checks that they state the same property;
2. runs the network in onnxruntime (float32) on the box corners, the box centres and
   ``--samples`` uniform random points of every input box, and computes the *margin*
   ``max over unsafe blocks of min over their constraints of (rhs - lhs)``: the point is a
   counterexample iff the margin is >= 0 (> 0 for strict constraints);
3. if a sampled point is a counterexample, the verdict is **violated**: the deepest one (largest
   margin) is rounded to 4 decimals when that keeps it strictly inside the box (fixed inputs
   unchanged), and replayed through the ONNX file itself (its own input shape) with zero
   tolerance before it is reported;
4. otherwise it tries a sound proof by bound propagation over sub-boxes, refined by bisection
   where the bounds are too loose (``spec_bounds.py``: an own ONNX loader for chains and DAGs
   with Gemm / MatMul / Conv, Relu / LeakyRelu / Clip, MaxPool and the Add of two tensors).
   Bounds are computed in float64 from the float32 weights: interval arithmetic, tightened by
   linear back-substitution (CROWN-style: each activation replaced by linear lower / upper
   bounds, each max-pool window by ``y >= x_i*`` below and its largest upper bound above, the
   affine nodes -- a convolution as its dense matrix -- and sums substituted exactly, the
   result minimised over the sub-box); the output layer is folded into each constraint.
   Inputs whose lower and upper bounds are equal are never split. A sub-box is safe when every
   unsafe block has a constraint whose lower bound exceeds its right-hand side by ``TAU``
   (which covers float32 rounding in onnxruntime and float64 rounding here). If every sub-box
   is safe the verdict is **holds**, else **unknown**. A self-test checks the bound code
   against sampled points on every network before it is used.

Each spec file names its network and expected verdict in comments (``# network: ...``,
``# expected: holds``) and, for violated ones, a recorded counterexample
(``# counterexample: x = [...]``; ``;`` instead of ``#`` in VNN-LIB), which is replayed too.
The exit status is 0 iff every established verdict and recorded counterexample matches.
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from spec_bounds import Graph, forward, input_sensitivity, linear_lower_bounds, load_graph, self_test

ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = ROOT / "specs"
TAU = 1e-3  # proof margin (output units) that absorbs float32 rounding of the real network
MAX_PROOF_BOXES = 3_000_000  # sub-boxes bounded before a proof attempt gives up
MIN_SPLIT_WIDTH = 1e-4  # a sub-box this thin in every input that is still unproven -> give up
MAX_CORNER_DIMS = 12  # free inputs up to which every corner of a box is sampled

# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


class OnnxRunner:
    """Runs an ONNX file in onnxruntime on many points at once (float32, batch dim relaxed)."""

    def __init__(self, path: Path) -> None:
        model = onnx.load(str(path))
        for vi in (model.graph.input[0], model.graph.output[0]):
            vi.type.tensor_type.shape.dim[0].dim_param = "N"
        self.input_name = model.graph.input[0].name
        self.shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # one core; no spinning thread pool
        self.batched = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.single = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs (float64 copies of the float32 results) for float32 inputs ``x`` of shape (N, n)."""
        out = []
        for start in range(0, len(x), 65536):
            chunk = x[start:start + 65536].astype(np.float32).reshape(-1, *self.shape)
            out.append(self.batched.run(None, {self.input_name: chunk})[0].reshape(len(chunk), -1))
        return np.concatenate(out).astype(np.float64)

    def run_file(self, x: np.ndarray) -> np.ndarray:
        """The outputs of the unmodified file (input shape ``[1, ...]``) for one float32 point."""
        x32 = x.astype(np.float32).reshape(1, *self.shape)
        return self.single.run(None, {self.input_name: x32})[0].reshape(-1).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constraint:
    """``cy . y + cx . x  <=  rhs`` (``strict``: ``<``). Every comparison is normalised to this."""

    cy: tuple[float, ...]
    cx: tuple[float, ...]
    rhs: float
    strict: bool

    def key(self) -> tuple:
        """A rounded, hashable form used to compare properties read from two formats."""
        return (tuple(round(v, 9) for v in self.cy), tuple(round(v, 9) for v in self.cx),
                round(self.rhs, 9), self.strict)


@dataclass
class Property:
    """Input boxes (their union is the input set) and the unsafe region (OR of ANDs)."""

    boxes: list[tuple[np.ndarray, np.ndarray]]
    blocks: list[list[Constraint]]
    network: str | None = None
    expected: str | None = None
    counterexample: np.ndarray | None = None

    def key(self) -> tuple:
        """Canonical form: sorted boxes and sorted sets of constraints."""
        boxes = tuple(sorted((tuple(np.round(lo, 9)), tuple(np.round(hi, 9))) for lo, hi in self.boxes))
        blocks = tuple(sorted(tuple(sorted(c.key() for c in blk)) for blk in self.blocks))
        return boxes, blocks


def make_constraint(lhs: dict, rhs: dict, op: str, n_in: int, n_out: int) -> Constraint:
    """Normalise ``lhs op rhs`` (linear forms as ``{var or 1: coeff}``) to ``a.y + e.x <= c``."""
    if op not in ("<=", "<", ">=", ">"):
        raise ValueError(f"unknown comparison {op!r}")
    diff = dict(lhs)
    for k, v in rhs.items():
        diff[k] = diff.get(k, 0.0) - v
    if op in (">=", ">"):
        diff = {k: -v for k, v in diff.items()}
    cy, cx = [0.0] * n_out, [0.0] * n_in
    for k, v in diff.items():
        if k == 1:
            continue
        kind, idx = k[0], int(k[1:])
        target = cy if kind == "y" else cx
        if idx >= len(target):
            raise ValueError(f"variable {k} out of range")
        target[idx] += v
    return Constraint(tuple(cy), tuple(cx), -diff.get(1, 0.0), op in ("<", ">"))


_TERM = re.compile(r"\s*([+-]?)\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*\*?\s*)?([xy]\d+)?")


def parse_linear(text: str) -> dict:
    """Parse ``"y0 - 2*y2 + 0.5"`` into ``{"y0": 1, "y2": -2, 1: 0.5}``."""
    out: dict = {}
    pos, text = 0, text.strip()
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or m.end() == pos or not (m.group(2) or m.group(3)):
            raise ValueError(f"cannot parse linear expression {text!r} at {pos}")
        sign = -1.0 if m.group(1) == "-" else 1.0
        coef = float(m.group(2)) if m.group(2) else 1.0
        var = m.group(3) or 1
        out[var] = out.get(var, 0.0) + sign * coef
        pos = m.end()
    return out


def read_comment_meta(text: str, marker: str) -> dict:
    """``network``, ``expected`` and ``counterexample`` from ``# key: value`` style comment lines."""
    meta: dict = {}
    for line in text.splitlines():
        s = line.strip()
        if not s.startswith(marker):
            continue
        m = re.match(r"(network|expected|counterexample):\s*(.*)$", s.lstrip(marker).strip())
        if not m:
            continue
        key, value = m.groups()
        if key == "counterexample":
            nums = value.split("=", 1)[1] if "=" in value else value
            meta[key] = np.array([float(v) for v in nums.strip(" []").split(",")])
        else:
            meta[key] = value.strip()
    return meta


def parse_toml(path: Path, n_in: int, n_out: int) -> Property:
    """Read the native TOML property format (``[input]`` or ``[[input.boxes]]``, ``[[unsafe]]``)."""
    text = path.read_text()
    doc = tomllib.loads(text)
    inp = doc["input"]
    raw_boxes = inp.get("boxes", [inp])
    boxes = [(np.array(b["lower"], float), np.array(b["upper"], float)) for b in raw_boxes]
    blocks = []
    for blk in doc["unsafe"]:
        cons = []
        for c in blk["all"]:
            m = re.match(r"^(.*?)(<=|>=|<|>)(.*)$", c)
            if not m:
                raise ValueError(f"{path}: cannot parse constraint {c!r}")
            cons.append(make_constraint(parse_linear(m.group(1)), parse_linear(m.group(3)),
                                        m.group(2), n_in, n_out))
        blocks.append(cons)
    meta = read_comment_meta(text, "#")
    return Property(boxes, blocks, meta.get("network"), meta.get("expected"), meta.get("counterexample"))


def sexp_tokens(text: str) -> list:
    """Parse VNN-LIB text (``;`` comments) into nested lists of atoms."""
    tokens = re.findall(r"\(|\)|[^\s()]+", re.sub(r";[^\n]*", "", text))
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise ValueError("unbalanced parentheses")
    return stack[0]


def parse_vnnlib(path: Path, n_in: int, n_out: int) -> Property:
    """Read the VNN-LIB subset used in ``specs/`` (and by VNN-COMP): bounds on ``X_i`` (optionally a
    top-level ``or`` of ``and`` blocks = union of boxes) and constraints between ``Y_j`` and
    constants (conjunction of asserts, optionally one ``or`` of ``and`` blocks)."""
    text = path.read_text()

    def atom(a: str) -> dict:
        m = re.fullmatch(r"([XY])_(\d+)", a)
        return {f"{m.group(1).lower()}{m.group(2)}": 1.0} if m else {1: float(a)}

    def conj(expr: list) -> list[Constraint]:
        if expr[0] == "and":
            return [c for e in expr[1:] for c in conj(e)]
        op, a, b = expr
        return [make_constraint(atom(a), atom(b), op, n_in, n_out)]

    def is_input(c: Constraint) -> bool:
        return not any(c.cy) and sum(1 for v in c.cx if v) == 1

    base_in: list[Constraint] = []
    base_out: list[Constraint] = []
    in_alts: list[list[Constraint]] | None = None
    out_alts: list[list[Constraint]] | None = None
    for form in sexp_tokens(text):
        if form[0] != "assert":
            continue
        body = form[1]
        if body[0] == "or":
            alts = [conj(e) for e in body[1:]]
            if all(is_input(c) for alt in alts for c in alt):
                in_alts = alts
            else:
                out_alts = alts
        else:
            for c in conj(body):
                (base_in if is_input(c) else base_out).append(c)

    def to_box(cons: list[Constraint]) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.full(n_in, -np.inf), np.full(n_in, np.inf)
        for c in cons:
            i = next(k for k, v in enumerate(c.cx) if v)
            bound = c.rhs / c.cx[i]
            if c.cx[i] > 0:
                hi[i] = min(hi[i], bound)
            else:
                lo[i] = max(lo[i], bound)
        return lo, hi

    boxes = [to_box(base_in + alt) for alt in (in_alts or [[]])]
    blocks = [base_out + alt for alt in (out_alts or [[]])]
    meta = read_comment_meta(text, ";")
    return Property(boxes, blocks, meta.get("network"), meta.get("expected"), meta.get("counterexample"))


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def unsafe_margin(prop: Property, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the margin (max over blocks of min over constraints of ``rhs - lhs``) and
    whether the point lies in the unsafe region exactly (``<=``: slack >= 0, ``<``: slack > 0)."""
    margin = np.full(len(x), -np.inf)
    unsafe = np.zeros(len(x), dtype=bool)
    for blk in prop.blocks:
        blk_margin = np.full(len(x), np.inf)
        blk_ok = np.ones(len(x), dtype=bool)
        for c in blk:
            slack = c.rhs - (y @ np.array(c.cy) + x @ np.array(c.cx))
            blk_margin = np.minimum(blk_margin, slack)
            blk_ok &= slack > 0 if c.strict else slack >= 0
        margin = np.maximum(margin, blk_margin)
        unsafe |= blk_ok
    return margin, unsafe


def float32_inside(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Cast to float32, nudging values that rounding pushed outside ``[lo, hi]`` back in."""
    x32 = x.astype(np.float32)
    x32 = np.where(x32.astype(np.float64) > hi, np.nextafter(x32, np.float32(-np.inf)), x32)
    x32 = np.where(x32.astype(np.float64) < lo, np.nextafter(x32, np.float32(np.inf)), x32)
    return x32


def sample_points(prop: Property, n: int, rng: np.random.Generator) -> np.ndarray:
    """Corners, centre and ``n`` uniform points of every input box, as float32 inside the box.

    Corners vary the free inputs only (``lower < upper``); with more than ``MAX_CORNER_DIMS`` free
    inputs, ``2**MAX_CORNER_DIMS`` random corners are taken instead of all of them."""
    pts = []
    for lo, hi in prop.boxes:
        free = np.flatnonzero(hi > lo)
        if len(free) <= MAX_CORNER_DIMS:
            bits = np.array(list(itertools.product((0, 1), repeat=len(free))), dtype=bool)
        else:
            bits = rng.random((2**MAX_CORNER_DIMS, len(free))) < 0.5
        corners = np.tile(lo, (len(bits), 1))
        corners[:, free] = np.where(bits, hi[free], lo[free])
        rand = lo + (hi - lo) * rng.random((n, len(lo)))
        pts.append(float32_inside(np.vstack([corners, (lo + hi) / 2, rand]), lo, hi))
    return np.vstack(pts)


def find_counterexample(prop: Property, runner: OnnxRunner, x: np.ndarray) -> np.ndarray | None:
    """Best sampled counterexample (deepest margin), rounded to 4 decimals if that keeps it valid."""
    y = runner(x)
    margin, unsafe = unsafe_margin(prop, x.astype(np.float64), y)
    if not unsafe.any():
        return None
    best = x[np.argmax(np.where(unsafe, margin, -np.inf))].astype(np.float64)
    rounded = np.round(best, 4)
    strictly_inside = any(np.all(((rounded > lo) & (rounded < hi)) | ((lo == hi) & (rounded == lo)))
                          for lo, hi in prop.boxes)
    for candidate in ([rounded] if strictly_inside else []) + [best]:
        if replay(prop, runner, candidate)[0]:
            return candidate
    return None


def replay(prop: Property, runner: OnnxRunner, x: np.ndarray) -> tuple[bool, float, np.ndarray]:
    """Run the ONNX file itself on float32(x); is it in a box and in the unsafe region exactly?"""
    x32 = x.astype(np.float32)
    x64 = x32.astype(np.float64)
    in_box = any(np.all(x64 >= lo) and np.all(x64 <= hi) for lo, hi in prop.boxes)
    y = runner.run_file(x32)
    margin, unsafe = unsafe_margin(prop, x64[None, :], y[None, :])
    return bool(in_box and unsafe[0]), float(margin[0]), y


def constraint_lower_bounds(prop: Property, graph: Graph, lo: np.ndarray,
                            hi: np.ndarray) -> list[np.ndarray]:
    """For each unsafe block, (boxes, constraints) lower bounds of ``a.y + e.x - rhs`` over each box
    (:func:`spec_bounds.linear_lower_bounds`: the output and input terms are back-substituted together)."""
    out = []
    for blk in prop.blocks:
        cy = np.array([c.cy for c in blk])
        cx = np.array([c.cx for c in blk])
        rhs = np.array([c.rhs for c in blk])
        out.append(linear_lower_bounds(graph, cy, cx, -rhs, lo, hi))
    return out


def bound_proof(prop: Property, graph: Graph) -> tuple[bool, int, int, float]:
    """Try to prove that no point of the input boxes reaches the unsafe region.

    A sub-box is safe when, for every unsafe block, some constraint ``a.y + e.x <= c`` has a
    lower bound above ``c + TAU`` on it (:func:`constraint_lower_bounds`). Sub-boxes that are not
    proved safe are bisected along the input with the largest ``width * sum |W1[:, i]|`` (inputs
    fixed by the property, ``lower == upper``, are never split),
    breadth first. Returns (proved, number of sub-boxes proved safe = leaves of the split
    tree, number of sub-boxes bounded, certified margin = the smallest proved lower bound of
    ``a.y + e.x - c`` over the safe sub-boxes, which is > ``TAU``).
    """
    first_w = input_sensitivity(graph)
    lo = np.array([b[0] for b in prop.boxes])
    hi = np.array([b[1] for b in prop.boxes])
    leaves = bounded = 0
    certified = np.inf
    while len(lo):
        bounded += len(lo)
        if bounded > MAX_PROOF_BOXES:
            return False, leaves, bounded, certified
        margin = np.full(len(lo), np.inf)
        for start in range(0, len(lo), 4096):
            part = slice(start, start + 4096)
            for lower in constraint_lower_bounds(prop, graph, lo[part], hi[part]):
                margin[part] = np.minimum(margin[part], lower.max(axis=1))
        safe = margin > TAU
        certified = min(certified, float(margin[safe].min(initial=np.inf)))
        leaves += int(safe.sum())
        lo, hi = lo[~safe], hi[~safe]
        if not len(lo):
            break
        width = hi - lo
        if np.any(width.max(axis=1) < MIN_SPLIT_WIDTH):
            return False, leaves, bounded, certified
        dim = np.argmax(width * first_w, axis=1)
        rows_idx = np.arange(len(lo))
        mid = (lo[rows_idx, dim] + hi[rows_idx, dim]) / 2
        lo2, hi2 = lo.copy(), hi.copy()
        hi[rows_idx, dim] = mid
        lo2[rows_idx, dim] = mid
        lo, hi = np.vstack([lo, lo2]), np.vstack([hi, hi2])
    return True, leaves, bounded, certified


@dataclass
class Outcome:
    """What was established for one property."""

    verdict: str
    how: str
    counterexample: np.ndarray | None = None
    outputs: np.ndarray | None = None


def check_property(prop: Property, onnx_path: Path, samples: int, seed: int) -> Outcome:
    """Sampling for counterexamples, then a bound-propagation proof (see the module docstring)."""
    runner = OnnxRunner(onnx_path)
    rng = np.random.default_rng(seed)
    x = sample_points(prop, samples, rng)
    cex = find_counterexample(prop, runner, x)
    if cex is not None:
        _, margin, y = replay(prop, runner, cex)
        return Outcome("violated", f"counterexample found by sampling {len(x)} points, replayed in "
                                   f"onnxruntime (unsafe margin {margin:.4f})", cex, y)
    margin, _ = unsafe_margin(prop, x.astype(np.float64), runner(x))
    min_safety = float(-margin.max())
    proved, leaves, bounded, certified = bound_proof(prop, load_graph(onnx_path))
    if proved:
        return Outcome("holds", f"bound-propagation proof over {leaves} sub-boxes ({bounded} bounded), "
                                f"certified margin {certified:.4f}; min sampled safety margin "
                                f"{min_safety:.4f} over {len(x)} points")
    return Outcome("unknown", f"no counterexample in {len(x)} samples (min safety margin "
                              f"{min_safety:.4f}); bound-propagation proof gave up after {bounded} sub-boxes")


def check_network_loader(onnx_path: Path, rng: np.random.Generator) -> float:
    """Max |own float64 forward pass - onnxruntime| on random points (sanity check of the loader)."""
    graph = load_graph(onnx_path)
    x = rng.uniform(-1, 1, size=(1000, graph.n_inputs)).astype(np.float32)
    return float(np.max(np.abs(forward(graph, x.astype(np.float64)) - OnnxRunner(onnx_path)(x))))


def main(argv: list[str] | None = None) -> int:
    """Check the given spec files (default: all of ``specs/``); print one line per file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path, help="spec files (default: specs/*)")
    parser.add_argument("--samples", type=int, default=200_000, help="random points per input box")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = args.specs or [f for f in sorted(SPECS_DIR.glob("*.toml")) + sorted(SPECS_DIR.glob("*.vnnlib"))
                           if is_property_file(f)]
    stems = sorted({f.with_suffix("") for f in files})
    failures = 0
    rng = np.random.default_rng(args.seed)
    for onnx_file in sorted((ROOT / "models").glob("*.onnx")):
        err = check_network_loader(onnx_file, rng)
        if err > 1e-4:
            print(f"PROBLEM: {onnx_file.name}: own loader differs from onnxruntime by {err:g}")
            failures += 1
        self_test(load_graph(onnx_file), rng)
    for stem in stems:
        t0 = time.perf_counter()
        parsed: dict[str, Property] = {}
        onnx_path = None
        for suffix in (".toml", ".vnnlib"):
            f = stem.with_suffix(suffix)
            if not f.exists():
                continue
            meta = read_comment_meta(f.read_text(), "#" if suffix == ".toml" else ";")
            onnx_path = ROOT / meta["network"]
            n_in, n_out = network_dims(onnx_path)
            reader = parse_toml if suffix == ".toml" else parse_vnnlib
            parsed[suffix] = reader(f, n_in, n_out)
        problems = []
        props = list(parsed.values())
        if len(props) == 2 and props[0].key() != props[1].key():
            problems.append(".toml and .vnnlib state different properties")
        if len({p.network for p in props}) > 1 or len({p.expected for p in props}) > 1:
            problems.append(".toml and .vnnlib disagree on network / expected verdict")
        prop = props[0]
        outcome = check_property(prop, onnx_path, args.samples, args.seed)
        if outcome.verdict != prop.expected:
            problems.append(f"expected {prop.expected}, established {outcome.verdict}")
        for suffix, p in parsed.items():
            if p.counterexample is not None:
                ok = replay(p, OnnxRunner(onnx_path), p.counterexample)[0]
                if not ok:
                    problems.append(f"recorded counterexample in {suffix} does not replay")
            elif p.expected == "violated":
                problems.append(f"no recorded counterexample in {suffix}")
        for suffix in parsed:
            name = stem.with_suffix(suffix)
            if name.is_absolute() and name.is_relative_to(ROOT):
                name = name.relative_to(ROOT)
            print(f"{name}: {outcome.verdict.upper()} ({prop.network}) - {outcome.how}")
        if outcome.counterexample is not None:
            cex = ", ".join(f"{v:.9g}" for v in outcome.counterexample)
            out = ", ".join(f"{v:.6g}" for v in outcome.outputs)
            print(f"    counterexample x = [{cex}] -> y = [{out}]")
        print(f"    ({time.perf_counter() - t0:.1f} s)")
        for msg in problems:
            print(f"    PROBLEM: {msg}")
        failures += bool(problems)
    print(f"{len(stems)} properties checked, {failures} with problems")
    return 1 if failures else 0


def is_property_file(path: Path) -> bool:
    """True for VNN-LIB files and TOML files with an ``[[unsafe]]`` table (not e.g. suite files)."""
    if path.suffix != ".toml":
        return True
    return "unsafe" in tomllib.loads(path.read_text())


def network_dims(onnx_path: Path) -> tuple[int, int]:
    """(number of inputs, number of outputs) of a network, from its weights."""
    graph = load_graph(onnx_path)
    return graph.n_inputs, graph.n_outputs


if __name__ == "__main__":
    sys.exit(main())
