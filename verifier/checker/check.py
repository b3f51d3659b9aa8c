"""Check a certificate against a model and a spec file (format: docs/certificate.md).

Reads all three itself, matches the certificate's cases and disjuncts to the checker's own
reading of the spec, and walks every proof tree: the leaves of a tree cover its root box and its
phase splits are exhaustive by construction (each split has the two sides of one threshold), so
what remains is to recompute, at every node that closes a disjunct, the bound that closes it.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import bounds as B
from . import model as M
from . import spec as S
from .model import BadInput

FORMAT, VERSION = "relu-verifier-certificate", 1


class Invalid(Exception):
    """The certificate does not prove what it claims (exit code 1)."""


@dataclass
class Result:
    valid: bool
    reason: str | None
    verdict: str | None = None
    mode: str = "fast"
    stats: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"valid": self.valid, "reason": self.reason, "verdict": self.verdict, "mode": self.mode,
                "stats": self.stats}


def read_certificate(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        doc = json.loads(raw)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"{path}: not a readable certificate ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BadInput(f"{path}: not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise BadInput(f"{path}: certificate version {doc.get('version')!r}, this checker reads version {VERSION}")
    return doc


def check_certificate(model_path: str, spec_path: str, cert_path: str, mode: str = "fast") -> Result:
    """Valid or not, with the first reason it is not. ``BadInput`` when a file cannot be read."""
    t0 = time.perf_counter()
    doc = read_certificate(cert_path)
    stats: dict = {"nodes": 0, "closed": 0, "leaves": 0}
    verdict = doc.get("verdict")
    if verdict == "violated":  # a replay in onnxruntime: any model onnxruntime runs will do
        try:
            _check_counterexample(doc, model_path, spec_path)
        except Invalid as exc:
            return Result(False, str(exc), verdict, mode, stats)
        return Result(True, None, verdict, mode, stats)
    model = M.load(model_path)
    cases = S.load(spec_path, model.n_inputs)
    reason = None
    try:
        _check_files(doc, model.sha256, spec_path)
        if sorted(doc.get("operators", [])) != model.operators:
            raise Invalid(f"the certificate declares operators {doc.get('operators')}, the model has {model.operators}")
        if verdict != "holds":
            raise Invalid(f"verdict {verdict!r} (a certificate is for holds or violated)")
        net = B.Net(model, exact=(mode == "exact"))
        for ci, case in enumerate(cases):
            _check_case(net, ci, case, doc.get("cases", []), stats)
    except Invalid as exc:
        reason = str(exc)
    except B.CannotBound as exc:
        reason = f"not checkable: {exc}"
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, ZeroDivisionError) as exc:
        reason = f"malformed certificate: {type(exc).__name__}: {exc}"  # wrong types, non-finite numbers
    stats["check_s"] = round(time.perf_counter() - t0, 4)
    return Result(reason is None, reason, verdict, mode, stats)


def _check_files(doc: dict, model_sha: str, spec_path: str) -> None:
    if not isinstance(doc.get("model"), dict) or doc["model"].get("sha256") != model_sha:
        raise Invalid("the model file's SHA-256 differs from the certificate's: it was made for another model")
    if not isinstance(doc.get("spec"), dict) or doc["spec"].get("sha256") != M.sha256_file(spec_path):
        raise Invalid("the spec file's SHA-256 differs from the certificate's: it was made for another spec")
    fm = doc.get("float_model", {})
    if fm.get("dtype") != "float32":
        raise Invalid(f"float model {fm!r}: this checker models float32 evaluation only")


def _check_counterexample(doc: dict, model_path: str, spec_path: str) -> None:
    """Replay the counterexample in onnxruntime (float32 input, one run) and test the exact spec."""
    import onnxruntime as ort

    _check_files(doc, M.sha256_file(model_path), spec_path)
    cex = doc.get("counterexample") or {}
    if not isinstance(cex, dict):
        raise Invalid("the counterexample must be an object")
    try:
        sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise BadInput(f"{model_path}: onnxruntime cannot load it ({exc})") from exc
    inp = sess.get_inputs()[0]
    if len(sess.get_inputs()) != 1 or inp.type != "tensor(float)":
        raise BadInput(f"{model_path}: the replay needs one float32 input")
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    n_in = int(np.prod(shape))
    cases = S.load(spec_path, n_in)
    x = np.asarray(cex.get("x", []), dtype=np.float64).ravel()
    if x.size != n_in or not np.all(np.isfinite(x)):
        raise Invalid(f"the counterexample has {x.size} finite inputs, the model {n_in}")
    x32 = x.astype(np.float32)
    if not np.array_equal(x32.astype(np.float64), x):
        raise Invalid("the counterexample's inputs are not float32 values")
    y = np.asarray(sess.run(None, {inp.name: x32.reshape(shape)})[0], dtype=np.float64).ravel()
    xs, ys = [Fraction(float(v)) for v in x], [Fraction(float(v)) for v in y]
    inside = [c for c in cases if _inside(c, xs)]
    if not inside:
        raise Invalid("the counterexample lies outside every input box of the spec (its exact bounds)")
    for case in inside:
        if any(all(_holds(r, xs, ys) for r in conj) for conj in case.disjuncts):
            return
    raise Invalid(f"onnxruntime gives y = {y.tolist()} at the counterexample: no unsafe disjunct holds there")


def _inside(case: S.Case, xs: list[Fraction]) -> bool:
    for i, (v, lo, hi) in enumerate(zip(xs, case.exact_lower, case.exact_upper)):
        if v < lo or v > hi or (v == lo and (i, "lo") in case.strict) or (v == hi and (i, "hi") in case.strict):
            return False
    return True


def _holds(r: S.Row, xs: list[Fraction], ys: list[Fraction]) -> bool:
    v = sum(c * xs[i] for i, c in r.ax.items()) + sum(c * ys[i] for i, c in r.ay.items())
    return v < r.rhs if r.strict else v <= r.rhs


# ---------------------------------------------------------------- matching

def _row_matches(cert: dict, row: S.Row) -> bool:
    try:
        ax = {int(i): float(v) for i, v in cert["ax"]}
        ay = {int(i): float(v) for i, v in cert["ay"]}
        rhs, strict = float(cert["rhs"]), bool(cert["strict"])
    except (KeyError, TypeError, ValueError):
        return False
    want_ax = {i: float(v) for i, v in row.ax.items()}
    want_ay = {i: float(v) for i, v in row.ay.items()}
    same = ({k: v for k, v in ax.items() if v != 0} == want_ax and {k: v for k, v in ay.items() if v != 0} == want_ay)
    # the rhs may differ by the verifier's float64 folding of constants: harmless, since the
    # evidence is evaluated on the checker's own (exact) row
    close = abs(rhs - float(row.rhs)) <= 1e-12 * max(1.0, abs(rhs))
    return same and close and (row.strict or not strict)


def _implied_bound(cert: dict, lo: np.ndarray, hi: np.ndarray, strict: set) -> S.Row | None:
    """A certificate row ``c x_i <= r`` that every point of the box satisfies (the checker read
    this input bound into the box): the row itself, exactly, else None."""
    try:
        ax = [(int(i), Fraction(float(v))) for i, v in cert["ax"] if float(v) != 0]
        ay = [v for _, v in cert["ay"] if float(v) != 0]
        rhs = Fraction(float(cert["rhs"]))
    except (KeyError, TypeError, ValueError):
        return None
    if len(ax) != 1 or ay or not 0 <= ax[0][0] < lo.size:
        return None
    i, c = ax[0]
    side = "hi" if c > 0 else "lo"
    worst = c * Fraction(float(hi[i] if c > 0 else lo[i]))
    if worst < rhs or (worst == rhs and (not cert.get("strict") or (i, side) in strict)):
        return S.Row({i: c}, {}, rhs, bool(cert.get("strict")))
    return None


def _match_disjunct(cert_rows: list, rows: list[S.Row], box) -> list | None:
    """``box``: (lower, upper, strict bounds) of the checker's case."""
    # per certificate row: the checker's equal row of the disjunct, or the row itself when the
    # checker's box implies it (None: a row matches neither)
    out = []
    for cr in cert_rows:
        hit = next((r for r in rows if _row_matches(cr, r)), None)
        if hit is None and isinstance(cr, dict):
            hit = _implied_bound(cr, *box)
        if hit is None:
            return None
        out.append(hit)
    return out


def _trivially_empty(rows: list[S.Row]) -> bool:
    """A row without variables that no point satisfies (``0 <= rhs`` false)."""
    return any(not r.ax and not r.ay and (r.rhs <= 0 if r.strict else r.rhs < 0) for r in rows)


def _check_case(net: B.Net, ci: int, case: S.Case, cert_cases: list, stats: dict) -> None:
    lo, hi = np.array(case.lower), np.array(case.upper)
    todo = [j for j, rows in enumerate(case.disjuncts) if not _trivially_empty(rows)]
    if not todo:
        return
    reasons = []
    for cc in cert_cases:  # a certificate case whose box contains ours and proves every disjunct
        if not isinstance(cc, dict):
            raise Invalid(f"case {ci}: a certificate case must be an object")
        try:
            clo = np.asarray(cc["lower"], dtype=np.float64)
            chi = np.asarray(cc["upper"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise Invalid(f"case {ci}: malformed certificate case ({exc})") from None
        if clo.shape != lo.shape or chi.shape != hi.shape or np.any(clo > lo) or np.any(chi < hi):
            continue
        if not (np.all(np.isfinite(clo)) and np.all(np.isfinite(chi))):
            raise Invalid(f"case {ci}: the certificate's box is not finite")
        cert_disj = cc.get("disjuncts", [])
        maps = {}  # certificate disjunct -> (checker disjunct, row map)
        for cj, crows in enumerate(cert_disj):
            for j in todo:
                rmap = _match_disjunct(crows, case.disjuncts[j], (lo, hi, case.strict))
                if rmap is not None and j not in {m[0] for m in maps.values()}:
                    maps[cj] = (j, rmap)
                    break
        covered = set()
        for tree in cc.get("trees", []):
            targets = [int(t) for t in tree.get("disjuncts", [])]
            usable = [t for t in targets if t in maps]
            if not usable:
                continue
            _check_tree(net, ci, (clo, chi), tree.get("root"), {t: maps[t] for t in usable}, case, stats)
            covered |= {maps[t][0] for t in usable}
        missing = [j for j in todo if j not in covered]
        if not missing:
            return
        reasons.append(f"case {ci}: disjunct {missing[0]} of the spec is not proved by the certificate "
                       "(no matching disjunct, or no tree proves it)")
    if reasons:
        raise Invalid(reasons[0])
    raise Invalid(f"case {ci} (box {_short(case.lower)} .. {_short(case.upper)}): the certificate has no case whose "
                  "box contains it")


def _short(v: list) -> str:
    return str(v) if len(v) <= 6 else f"[{v[0]}, {v[1]}, {v[2]}, ... ({len(v)} inputs)]"


# ---------------------------------------------------------------- trees

def _decode(arr, n: int, what: str) -> np.ndarray:
    try:
        v = np.frombuffer(base64.b64decode(arr["f64"]), dtype="<f8").astype(np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise Invalid(f"{what}: not a base64 float64 array ({exc})") from None
    if v.size != n or not np.all(np.isfinite(v)):
        raise Invalid(f"{what}: {v.size} values, the layer has {n} neurons (all finite)")
    return v


def _check_tree(net: B.Net, ci: int, box, root, targets: dict, case: S.Case, stats: dict) -> None:
    """Every root-to-leaf path of the tree closes every target disjunct."""
    stack = [(root, box[0].copy(), box[1].copy(), (), None, frozenset(targets), "root")]
    while stack:
        node, lo, hi, splits, bnds, open_, path = stack.pop()
        if not isinstance(node, dict):
            raise Invalid(f"case {ci}, {path}: a node must be an object")
        stats["nodes"] += 1
        if np.any(lo > hi):
            continue  # an input split outside the box: the region is empty
        if not isinstance(node.get("close") or {}, dict):
            raise Invalid(f"case {ci}, {path}: 'close' must be an object")
        clamps = _clamps(net, splits)
        if bnds is None or node.get("bounds"):
            bnds = B.node_bounds(net, lo, hi, clamps)
        empty = any(np.any(lb > ub) for lb, ub in zip(bnds[0], bnds[1]))
        for key, ev in (node.get("close") or {}).items():
            try:
                t = int(key)
            except ValueError:
                raise Invalid(f"case {ci}, {path}: close key {key!r} is not a disjunct index") from None
            if t not in open_:
                continue
            if not empty:
                _check_evidence(net, ci, path, t, ev, targets[t], case, (lo, hi), bnds, splits)
            stats["closed"] += 1
            open_ = open_ - {t}
        if empty or not open_:
            continue
        split = node.get("split")
        kids = node.get("children")
        if split is None:
            stats["leaves"] += 1
            raise Invalid(f"case {ci}, {path}: a leaf leaves disjunct(s) {sorted(open_)} of the tree open")
        if not isinstance(kids, list) or len(kids) != 2:
            raise Invalid(f"case {ci}, {path}: a split needs exactly two children")
        if not isinstance(split, dict):
            raise Invalid(f"case {ci}, {path}: 'split' must be an object")
        at = split.get("at")
        if not isinstance(at, (int, float)) or isinstance(at, bool) or not np.isfinite(float(at)):
            raise Invalid(f"case {ci}, {path}: split threshold {at!r} is not a finite number")
        at = float(at)
        if "input" in split:
            i = split["input"]
            if not isinstance(i, int) or not 0 <= i < lo.size:
                raise Invalid(f"case {ci}, {path}: input split on {i!r}, the model has {lo.size} inputs")
            hi0 = hi.copy()
            hi0[i] = min(hi[i], at)
            lo1 = lo.copy()
            lo1[i] = max(lo[i], at)
            stack.append((kids[1], lo1, hi, splits, bnds, open_, f"{path}/x{i}>={at!r}"))
            stack.append((kids[0], lo, hi0, splits, bnds, open_, f"{path}/x{i}<={at!r}"))
        elif "neuron" in split:
            try:
                a, i = (int(v) for v in split["neuron"])
            except (TypeError, ValueError):
                raise Invalid(f"case {ci}, {path}: neuron split {split['neuron']!r} is not [layer, neuron]") from None
            if not 0 <= a < len(net.act_layer) or not 0 <= i < net.layers[net.act_layer[a]].bias.size:
                raise Invalid(f"case {ci}, {path}: neuron [{a}, {i}] does not exist")
            for side in (1, 0):
                sub = splits + ((a, i, side, at),)
                stack.append((kids[side], lo, hi, sub, _clamped(bnds, net.act_layer[a], i, side, at), open_,
                              f"{path}/n{a}.{i}{'>=' if side else '<='}{at!r}"))
        else:
            raise Invalid(f"case {ci}, {path}: a split is on an input or a neuron")


def _clamps(net: B.Net, splits: tuple) -> dict[int, list]:
    out: dict[int, list] = {}
    for a, i, side, at in splits:
        out.setdefault(net.act_layer[a], []).append((i, side, at))
    return out


def _clamped(bnds, k: int, i: int, side: int, at: float):
    """The parent's bounds with neuron ``(k, i)`` restricted to one side of ``at``."""
    los, his, errs = list(bnds[0]), list(bnds[1]), bnds[2]
    if side:
        los[k] = los[k].copy()
        los[k][i] = max(los[k][i], at)
    else:
        his[k] = his[k].copy()
        his[k][i] = min(his[k][i], at)
    return los, his, errs


def _check_evidence(net: B.Net, ci: int, path: str, t: int, ev, target, case: S.Case, box, bnds, splits) -> None:
    where = f"case {ci}, {path}, disjunct {t}"
    if not isinstance(ev, dict):
        raise Invalid(f"{where}: evidence must be an object")
    if ev.get("empty"):
        raise Invalid(f"{where}: claims an empty region, but the bounds there do not cross")
    _, rmap = target
    n_out, n_in = net.model.n_outputs, net.model.n_inputs
    cy, cx, const = [Fraction(0)] * n_out, [Fraction(0)] * n_in, Fraction(0)
    try:
        lam = [(int(r), float(v)) for r, v in ev.get("lam", [])]
    except (TypeError, ValueError):
        raise Invalid(f"{where}: lam must be [[row, value], ...]") from None
    for r, v in lam:
        if not 0 <= r < len(rmap) or not (np.isfinite(v) and v >= 0):
            raise Invalid(f"{where}: multiplier {v!r} on row {r}: rows 0..{len(rmap) - 1}, values finite and >= 0")
        row, f = rmap[r], Fraction(v)
        for i, c in row.ay.items():
            if i >= n_out:
                raise Invalid(f"{where}: the spec's row uses Y_{i}, the model has {n_out} outputs")
            cy[i] += f * c
        for i, c in row.ax.items():
            cx[i] += f * c
        const -= f * row.rhs
    alphas, betas = {}, {}
    for key, arr in (ev.get("alpha") or {}).items():
        a = _layer_index(net, key, where)
        k = net.act_layer[a]
        v = _decode(arr, net.layers[k].bias.size, f"{where}: alpha of layer {a}")
        lo_b, hi_b = bnds[0][k], bnds[1][k]
        used = (lo_b < 0) & (hi_b > 0)
        if np.any(used & ((v < net.layers[k].slope) | (v > 1.0))):
            raise Invalid(f"{where}: alpha of layer {a} outside [negative slope, 1] at an unstable neuron")
        alphas[k] = v
    sign = {(a, i): (1 if side else -1, at) for a, i, side, at in splits}
    for key, pairs in (ev.get("beta") or {}).items():
        a = _layer_index(net, key, where)
        k = net.act_layer[a]
        vec = np.zeros(net.layers[k].bias.size)
        for i, v in pairs:
            s_at = sign.get((a, int(i)))
            if s_at is None or s_at[1] != 0.0 or not (np.isfinite(v) and v >= 0):
                raise Invalid(f"{where}: beta {v!r} on neuron [{a}, {i}]: only >= 0 on neurons split at 0 on the path")
            vec[int(i)] += s_at[0] * float(v)
        betas[k] = vec
    ok, low = B.objective_lower(net, box, bnds, cy, cx, const, alphas, betas)
    if not ok:
        raise Invalid(f"{where}: the bound of the combined rows is {low:.6g}, not > 0")


def _layer_index(net: B.Net, key, where: str) -> int:
    try:
        a = int(key)
    except ValueError:
        raise Invalid(f"{where}: activation layer {key!r} is not an index") from None
    if not 0 <= a < len(net.act_layer):
        raise Invalid(f"{where}: activation layer {a} does not exist")
    return a
