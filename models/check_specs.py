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
   margin) is rounded to 4 decimals when that keeps it strictly inside the box, and replayed
   through the ONNX file itself (input ``[1, n]``) with zero tolerance before it is reported;
4. otherwise it tries a sound proof by bound propagation over sub-boxes, refined by bisection
   where the bounds are too loose. Bounds are computed in float64 from the float32 weights:
   interval arithmetic, tightened by linear back-substitution (CROWN-style: each activation
   replaced by linear lower / upper bounds, the affine layers substituted exactly, the result
   minimised over the sub-box); the output layer is folded into each constraint. A sub-box is
   safe when every unsafe block has a constraint whose lower bound exceeds its right-hand
   side by ``TAU`` (which covers float32 rounding in onnxruntime and float64 rounding here). If every sub-box is safe the
   verdict is **holds**, else **unknown**. A self-test checks the bound code against sampled
   points on every network before it is used.

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
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = ROOT / "specs"
TAU = 1e-3  # proof margin (output units) that absorbs float32 rounding of the real network
MAX_PROOF_BOXES = 3_000_000  # sub-boxes bounded before a proof attempt gives up
MIN_SPLIT_WIDTH = 1e-4  # a sub-box this thin in every input that is still unproven -> give up

# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """``x -> act(W x + b)``; ``act`` is ``("relu",)``, ``("leaky", alpha)``, ``("clip", lo, hi)`` or None."""

    weight: np.ndarray  # (n_out, n_in), float64 copy of the float32 weights
    bias: np.ndarray
    act: tuple | None


def load_layers(path: Path) -> list[Layer]:
    """Read a feed-forward ONNX graph made of Gemm / MatMul+Add and Relu / LeakyRelu / Clip nodes.

    This is a deliberately small loader for the graphs that ``build_models.py`` writes; it is
    independent of the verifier's loader so that the two can be compared.
    """
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    layers: list[Layer] = []
    w: np.ndarray | None = None
    b: np.ndarray | None = None
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm":
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                raise ValueError(f"{path}: unsupported Gemm attributes {attrs}")
            mat = inits[node.input[1]]
            w = mat if attrs.get("transB", 0) else mat.T
            b = inits[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0])
        elif node.op_type == "MatMul":
            w = inits[node.input[1]].T
            b = np.zeros(w.shape[0])
        elif node.op_type == "Add":
            b = b + inits[node.input[1]]
        elif node.op_type in ("Relu", "LeakyRelu", "Clip"):
            if node.op_type == "Relu":
                act: tuple = ("relu",)
            elif node.op_type == "LeakyRelu":
                act = ("leaky", float(attrs.get("alpha", 0.01)))
            else:
                lo = float(inits[node.input[1]]) if len(node.input) > 1 and node.input[1] else -np.inf
                hi = float(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] else np.inf
                act = ("clip", lo, hi)
            layers.append(Layer(w, b, act))
            w = b = None
        else:
            raise ValueError(f"{path}: unsupported operator {node.op_type}")
    layers.append(Layer(w, b, None))
    return layers


def apply_act(act: tuple, z: np.ndarray) -> np.ndarray:
    """Apply a (monotone, non-decreasing) activation elementwise."""
    if act[0] == "relu":
        return np.maximum(z, 0.0)
    if act[0] == "leaky":
        return np.where(z >= 0.0, z, act[1] * z)
    return np.clip(z, act[1], act[2])


class OnnxRunner:
    """Runs an ONNX file in onnxruntime on many points at once (float32, batch dim relaxed)."""

    def __init__(self, path: Path) -> None:
        model = onnx.load(str(path))
        for vi in (model.graph.input[0], model.graph.output[0]):
            vi.type.tensor_type.shape.dim[0].dim_param = "N"
        self.input_name = model.graph.input[0].name
        self.batched = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self.single = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs (float64 copies of the float32 results) for float32 inputs ``x`` of shape (N, n)."""
        out = []
        for start in range(0, len(x), 65536):
            chunk = x[start:start + 65536].astype(np.float32)
            out.append(self.batched.run(None, {self.input_name: chunk})[0])
        return np.concatenate(out).astype(np.float64)

    def run_file(self, x: np.ndarray) -> np.ndarray:
        """The outputs of the unmodified file (input shape [1, n]) for one float32 point."""
        return self.single.run(None, {self.input_name: x.astype(np.float32)[None, :]})[0][0].astype(np.float64)


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
    """Corners, centre and ``n`` uniform points of every input box, as float32 inside the box."""
    pts = []
    for lo, hi in prop.boxes:
        corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))
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
    strictly_inside = any(np.all(rounded > lo) and np.all(rounded < hi) for lo, hi in prop.boxes)
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


def relax(act: tuple, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Linear bounds ``al*p + bl <= act(p) <= au*p + bu`` valid for every ``p`` in ``[lo, hi]``.

    - ReLU / LeakyReLU(a), 0 <= a < 1, with ``lo < 0 < hi``: upper bound = the chord through
      ``(lo, act(lo))`` and ``(hi, act(hi))`` (the function is convex); lower bound =
      ``p`` if ``hi >= -lo`` else ``a*p`` (both are below ``max(p, a*p)``). Stable neurons are
      exact.
    - Clip(c0, c1): exact where ``[lo, hi]`` lies in one linear piece; otherwise the constant
      bounds ``act(lo) <= act(p) <= act(hi)`` (the function is non-decreasing).
    """
    zero = np.zeros_like(lo)
    if act[0] in ("relu", "leaky"):
        a = 0.0 if act[0] == "relu" else act[1]
        unstable = (lo < 0) & (hi > 0)
        width = np.where(unstable, hi - lo, 1.0)
        chord = np.where(unstable, (hi - a * lo) / width, 0.0)
        au = np.where(hi <= 0, a, np.where(lo >= 0, 1.0, chord))
        bu = np.where(unstable, a * lo - chord * lo, 0.0)
        al = np.where(hi <= 0, a, np.where(lo >= 0, 1.0, np.where(hi >= -lo, 1.0, a)))
        return al, zero, au, bu
    c0, c1 = act[1], act[2]
    linear = (lo >= c0) & (hi <= c1)
    const_lo, const_hi = np.clip(lo, c0, c1), np.clip(hi, c0, c1)
    slope = np.where(linear, 1.0, 0.0)
    return slope, np.where(linear, 0.0, const_lo), slope, np.where(linear, 0.0, const_hi)


def backsubstitute(coef: np.ndarray, const: np.ndarray, layers: list[Layer], k: int,
                   pre: list[tuple[np.ndarray, np.ndarray]], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Lower bound of ``coef . z_k + const`` over the input boxes, for each box and row.

    ``z_k`` is the input of layer ``k`` (``z_0`` is the network input); ``coef`` has shape
    (boxes, rows, n_k). Going back through hidden layers ``k-1 .. 0``, each activation is
    replaced by its lower linear bound where the coefficient is >= 0 and by its upper one where
    it is < 0 (:func:`relax`, with the pre-activation bounds ``pre``); the affine layer is then
    substituted exactly. At the input the linear form is minimised over the box.
    """
    for j in range(k - 1, -1, -1):
        al, bl, au, bu = relax(layers[j].act, *pre[j])
        pos = coef >= 0
        slope = np.where(pos, al[:, None, :], au[:, None, :])
        offset = np.where(pos, bl[:, None, :], bu[:, None, :])
        const = const + np.sum(coef * offset, axis=-1)
        coef = coef * slope
        const = const + coef @ layers[j].bias
        coef = coef @ layers[j].weight
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    return const + np.einsum("kmn,kn->km", coef, centre) - np.einsum("kmn,kn->km", np.abs(coef), radius)


def preactivation_bounds(layers: list[Layer], lo: np.ndarray, hi: np.ndarray) -> list[tuple]:
    """Bounds of every hidden layer's pre-activation for a batch of input boxes.

    Interval arithmetic (centre/radius form), intersected from the second hidden layer on with
    the bounds of :func:`backsubstitute` (both are sound, so their intersection is).
    """
    pre: list[tuple[np.ndarray, np.ndarray]] = []
    zl, zu = lo, hi
    for k, layer in enumerate(layers[:-1]):
        zc, zr = (zl + zu) / 2, (zu - zl) / 2
        pc, pr = zc @ layer.weight.T + layer.bias, zr @ np.abs(layer.weight).T
        pl, pu = pc - pr, pc + pr
        if k > 0:
            w = np.broadcast_to(layer.weight, (len(lo), *layer.weight.shape))
            b = np.broadcast_to(layer.bias, (len(lo), len(layer.bias)))
            pl = np.maximum(pl, backsubstitute(w, b, layers, k, pre, lo, hi))
            pu = np.minimum(pu, -backsubstitute(-w, -b, layers, k, pre, lo, hi))
        pre.append((pl, pu))
        zl, zu = apply_act(layer.act, pl), apply_act(layer.act, pu)
    return pre


def constraint_lower_bounds(prop: Property, layers: list[Layer], lo: np.ndarray,
                            hi: np.ndarray) -> list[np.ndarray]:
    """For each unsafe block, (boxes, constraints) lower bounds of ``a.y + e.x - rhs``.

    The output layer is folded into each constraint (``a.y = (a W) z + a.b``), and the result
    is bounded by :func:`backsubstitute`; the input term ``e.x`` is added at the input.
    """
    pre = preactivation_bounds(layers, lo, hi)
    last = layers[-1]
    n = len(lo)
    out = []
    for blk in prop.blocks:
        cy = np.array([c.cy for c in blk])
        cx = np.array([c.cx for c in blk])
        rhs = np.array([c.rhs for c in blk])
        coef = np.broadcast_to(cy @ last.weight, (n, *(cy @ last.weight).shape))
        const = np.broadcast_to(cy @ last.bias - rhs, (n, len(blk)))
        lower = backsubstitute(coef, const, layers, len(layers) - 1, pre, lo, hi)
        centre, radius = (lo + hi) / 2, (hi - lo) / 2
        lower = lower + centre @ cx.T - radius @ np.abs(cx).T
        out.append(lower)
    return out


def bound_proof(prop: Property, layers: list[Layer]) -> tuple[bool, int, int]:
    """Try to prove that no point of the input boxes reaches the unsafe region.

    A sub-box is safe when, for every unsafe block, some constraint ``a.y + e.x <= c`` has a
    lower bound above ``c + TAU`` on it (:func:`constraint_lower_bounds`). Sub-boxes that are not
    proved safe are bisected along the input with the largest ``width * sum |W1[:, i]|``,
    breadth first. Returns (proved, number of sub-boxes proved safe = leaves of the split
    tree, number of sub-boxes bounded).
    """
    first_w = np.abs(layers[0].weight).sum(axis=0)
    lo = np.array([b[0] for b in prop.boxes])
    hi = np.array([b[1] for b in prop.boxes])
    leaves = bounded = 0
    while len(lo):
        bounded += len(lo)
        if bounded > MAX_PROOF_BOXES:
            return False, leaves, bounded
        safe = np.ones(len(lo), dtype=bool)
        for start in range(0, len(lo), 4096):
            part = slice(start, start + 4096)
            for lower in constraint_lower_bounds(prop, layers, lo[part], hi[part]):
                safe[part] &= np.any(lower > TAU, axis=1)
        leaves += int(safe.sum())
        lo, hi = lo[~safe], hi[~safe]
        if not len(lo):
            break
        width = hi - lo
        if np.any(width.max(axis=1) < MIN_SPLIT_WIDTH):
            return False, leaves, bounded
        dim = np.argmax(width * first_w, axis=1)
        rows_idx = np.arange(len(lo))
        mid = (lo[rows_idx, dim] + hi[rows_idx, dim]) / 2
        lo2, hi2 = lo.copy(), hi.copy()
        hi[rows_idx, dim] = mid
        lo2[rows_idx, dim] = mid
        lo, hi = np.vstack([lo, lo2]), np.vstack([hi, hi2])
    return True, leaves, bounded


def self_test_bounds(layers: list[Layer], rng: np.random.Generator, n_boxes: int = 64) -> None:
    """Sanity check of the bound code: random sub-boxes, random points in them, random linear
    objectives; every sampled objective value must lie above its computed lower bound."""
    n_in, n_out = layers[0].weight.shape[1], layers[-1].weight.shape[0]
    centre = rng.uniform(-1, 1, size=(n_boxes, n_in))
    radius = rng.uniform(0.01, 0.5, size=(n_boxes, n_in))
    lo, hi = centre - radius, centre + radius
    cy = rng.normal(size=(3, n_out))
    prop = Property([], [[Constraint(tuple(row), (0.0,) * n_in, 0.0, False) for row in cy]])
    lower = constraint_lower_bounds(prop, layers, lo, hi)[0]
    x = lo[:, None, :] + (hi - lo)[:, None, :] * rng.random((n_boxes, 256, n_in))
    z = x
    for layer in layers:
        z = z @ layer.weight.T + layer.bias
        if layer.act:
            z = apply_act(layer.act, z)
    values = z @ cy.T  # (boxes, points, objectives)
    if np.any(values < lower[:, None, :] - 1e-9):
        raise AssertionError("bound self-test failed: a sampled value is below its lower bound")


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
    proved, leaves, bounded = bound_proof(prop, load_layers(onnx_path))
    if proved:
        return Outcome("holds", f"bound-propagation proof over {leaves} sub-boxes ({bounded} bounded); "
                                f"min sampled safety margin {min_safety:.4f} over {len(x)} points")
    return Outcome("unknown", f"no counterexample in {len(x)} samples (min safety margin "
                              f"{min_safety:.4f}); bound-propagation proof gave up after {bounded} sub-boxes")


def check_network_loader(onnx_path: Path, rng: np.random.Generator) -> float:
    """Max |numpy forward of :func:`load_layers` - onnxruntime| on random points (sanity check)."""
    layers = load_layers(onnx_path)
    x = rng.uniform(-1, 1, size=(1000, layers[0].weight.shape[1])).astype(np.float32)
    z = x.astype(np.float64)
    for layer in layers:
        z = z @ layer.weight.T + layer.bias
        if layer.act:
            z = apply_act(layer.act, z)
    return float(np.max(np.abs(z - OnnxRunner(onnx_path)(x))))


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
        self_test_bounds(load_layers(onnx_file), rng)
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
    layers = load_layers(onnx_path)
    return layers[0].weight.shape[1], layers[-1].weight.shape[0]


if __name__ == "__main__":
    sys.exit(main())
