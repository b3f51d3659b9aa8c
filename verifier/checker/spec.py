"""The checker's own reading of a property (VNN-LIB or TOML subset), in exact rationals.

A spec is a list of cases ``(lower, upper, disjuncts)``: an input box and the unsafe region over
it, a disjunction of conjunctions of rows ``ax . x + ay . y <= rhs`` (``<`` when strict). The box
bounds are the float64 numbers nearest to the spec's decimals: every float32 input inside the
decimal box lies inside that float64 box (a float32 is a float64, and rounding to nearest cannot
step over one), so a proof over it covers every input onnxruntime can be given.

VNN-LIB: ``declare-const``, ``assert`` of ``and`` / ``or`` trees of ``<= >= < >`` between linear
terms (``+ - *`` with constants) in ``X_i`` / ``Y_j``. A conjunction's single-variable input bounds
form its box, its other atoms its rows; conjunctions with the same box are one case.
TOML: ``[input] lower / upper`` or ``boxes = [{lower, upper}, ...]`` and ``[[unsafe]] all = [...]``
with infix constraints in ``x<i>`` / ``y<j>`` (chains like ``0 <= y0 <= 1`` allowed), whose numbers,
like TOML's own, are binary64 values (VNN-LIB numbers are exact decimals).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product

from .model import BadInput


@dataclass
class Row:
    ax: dict[int, Fraction]
    ay: dict[int, Fraction]
    rhs: Fraction
    strict: bool


@dataclass
class Case:
    lower: list[float]  # the float64 box (see the module docstring)
    upper: list[float]
    disjuncts: list[list[Row]]
    exact_lower: list[Fraction]  # the spec's own (decimal) box: counterexamples must lie in it
    exact_upper: list[Fraction]
    strict: set = field(default_factory=set)  # (input, "lo" | "hi") bounds that are strict (< or >)


def load(path: str, n_inputs: int) -> list[Case]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the spec ({exc})") from exc
    try:
        blocks = _toml(text, path, n_inputs) if path.endswith(".toml") else _vnnlib(text, path)
        return _cases(blocks, n_inputs, path)
    except (OverflowError, ZeroDivisionError) as exc:
        raise BadInput(f"{path}: a number beyond the float64 range ({exc})") from None


# an atom: (coefficients {("x"|"y", index): Fraction}, constant, op) meaning  lin  op  0
Atom = tuple[dict, Fraction, str]


def _cases(blocks: list[tuple[list[tuple], list[Atom]]], n_in: int, path: str) -> list[Case]:
    """``blocks``: (box atoms, other atoms) per conjunction; grouped by box, in order of appearance."""
    cases: dict[tuple, Case] = {}
    for box_atoms, rows in blocks:
        lo, hi = [None] * n_in, [None] * n_in
        strict = set()  # (i, side) whose bound is strict: only counterexamples care
        for i, side, value, is_strict in box_atoms:
            if i >= n_in:
                raise BadInput(f"{path}: X_{i} is beyond the model's {n_in} inputs")
            cur = lo[i] if side == "lo" else hi[i]
            tighter = cur is None or (value > cur if side == "lo" else value < cur)
            if tighter:
                strict.discard((i, side))
            if tighter or value == cur:
                if side == "lo":
                    lo[i] = value
                else:
                    hi[i] = value
                if is_strict:
                    strict.add((i, side))
        if any(v is None for v in lo + hi):
            missing = next(i for i in range(n_in) if lo[i] is None or hi[i] is None)
            raise BadInput(f"{path}: input X_{missing} has no lower or upper bound")
        if any(a > b for a, b in zip(lo, hi)):
            continue  # an empty box: nothing to prove there
        try:
            finite = all(math.isfinite(float(v)) for v in lo + hi)
        except OverflowError:
            finite = False
        if not finite:
            raise BadInput(f"{path}: an input bound is beyond the float64 range")
        for lin, _, _ in rows:
            bad = [i for (kind, i) in lin if kind == "x" and i >= n_in]
            if bad:
                raise BadInput(f"{path}: X_{bad[0]} is beyond the model's {n_in} inputs")
        key = tuple((v.numerator, v.denominator) for v in lo + hi)  # (hashing Fractions is slow)
        if key not in cases:
            flo = [_inward(v, False, (i, "lo") in strict) for i, v in enumerate(lo)]
            fhi = [_inward(v, True, (i, "hi") in strict) for i, v in enumerate(hi)]
            if any(a > b for a, b in zip(flo, fhi)):
                continue  # no float64 point in the box
            cases[key] = Case(flo, fhi, [], lo, hi, set(strict))
        case = cases[key]
        case.disjuncts.append([_row(a) for a in rows])
    return list(cases.values())


def _inward(v: Fraction, upper: bool, strict: bool) -> float:
    """The largest float64 ``<= v`` (``< v`` when strict), or for a lower bound the smallest ``>=``."""
    f = float(v)
    if upper and (Fraction(f) > v or (strict and Fraction(f) == v)):
        return math.nextafter(f, -math.inf)
    if not upper and (Fraction(f) < v or (strict and Fraction(f) == v)):
        return math.nextafter(f, math.inf)
    return f


def _row(atom: Atom) -> Row:
    lin, const, op = atom  # lin + const  op  0
    sign = 1 if op in ("<=", "<") else -1
    ax = {i: sign * c for (k, i), c in lin.items() if k == "x" and c != 0}
    ay = {i: sign * c for (k, i), c in lin.items() if k == "y" and c != 0}
    rhs, strict = -sign * const, op in ("<", ">")
    coefs = (*ax.values(), *ay.values())
    if len(coefs) > 1 and not all(map(_is_f64, coefs)):  # as the verifier: times the odd part of the
        D = 1  # denominators when that makes every coefficient a float64 number
        for c in coefs:
            D = math.lcm(D, c.denominator >> ((c.denominator & -c.denominator).bit_length() - 1))
        if D < 2 ** 53 and all(abs(c * D) < 2 ** 1000 and _is_f64(c * D) for c in coefs):
            ax, ay, rhs = {i: c * D for i, c in ax.items()}, {i: c * D for i, c in ay.items()}, rhs * D
    if len(ax) + len(ay) == 1 and not all(map(_is_f64, (*ax.values(), *ay.values(), rhs))):
        ((i, c),) = (ax or ay).items()  # the same bound on float64 values (as the verifier reads it)
        try:
            f = _inward(rhs / c, c > 0, strict)
        except OverflowError:
            f = math.inf
        if math.isfinite(f):
            one = {i: Fraction(1 if c > 0 else -1)}
            return Row(one if ax else {}, {} if ax else one, Fraction(f) * (1 if c > 0 else -1), False)
    return Row(ax, ay, rhs, strict)


def _is_f64(v: Fraction) -> bool:
    return abs(v) < 2 ** 1024 and Fraction(float(v)) == v


def _split(atoms: list[Atom], memo: dict | None = None) -> tuple[list[tuple], list[Atom]]:
    """Single-variable input bounds (the box) and the rest (rows); ``memo``: atom id -> its part, for
    the atoms that the disjunctive normal form repeats in every conjunction."""
    box, rows = [], []
    for atom in atoms:
        part = memo.get(id(atom)) if memo is not None else None
        if part is None:
            part = _part(*atom)
            if memo is not None:
                memo[id(atom)] = part
        (box if part[0] else rows).append(part[1])
    return box, rows


def _part(lin: dict, const: Fraction, op: str) -> tuple[bool, tuple]:
    nz = {k: c for k, c in lin.items() if c != 0}
    if len(nz) == 1 and next(iter(nz))[0] == "x":
        (_, i), c = next(iter(nz.items()))
        upper = (op in ("<=", "<")) == (c > 0)  # c x + const op 0
        return True, (i, "hi" if upper else "lo", -const / c, op in ("<", ">"))
    return False, (nz, const, op)


# ---------------------------------------------------------------- VNN-LIB

def _vnnlib(text: str, path: str) -> list[tuple[list, list]]:
    text = re.sub(r";[^\n]*", " ", text)
    tokens = re.findall(r"\(|\)|[^\s()]+", text)
    pos = 0

    def sexp():
        nonlocal pos
        if pos >= len(tokens):
            raise BadInput(f"{path}: unexpected end of file")
        tok = tokens[pos]
        pos += 1
        if tok == ")":
            raise BadInput(f"{path}: unexpected ')'")
        if tok != "(":
            return tok
        out = []
        while pos < len(tokens) and tokens[pos] != ")":
            out.append(sexp())
        if pos >= len(tokens):
            raise BadInput(f"{path}: missing ')'")
        pos += 1
        return out

    formulas = []
    while pos < len(tokens):
        e = sexp()
        if not isinstance(e, list) or not e:
            raise BadInput(f"{path}: expected a command, found {e!r}")
        if e[0] == "assert":
            formulas.append(e[1])
        elif e[0] != "declare-const":
            raise BadInput(f"{path}: command {e[0]!r} is not supported (declare-const, assert)")
    dnf = _dnf(["and", *formulas], path)
    memo: dict = {}
    return [_split(conj, memo) for conj in dnf]


def _dnf(f, path: str) -> list[list[Atom]]:
    if not isinstance(f, list) or not f:
        raise BadInput(f"{path}: expected a formula, found {f!r}")
    head = f[0]
    if head == "and":
        parts = [_dnf(g, path) for g in f[1:]]
        return [[atom for part in combo for atom in part] for combo in product(*parts)]
    if head == "or":
        return [conj for g in f[1:] for conj in _dnf(g, path)]
    if head in ("<=", ">=", "<", ">", "=") and len(f) == 3:
        lin1, c1 = _term(f[1], path)
        lin2, c2 = _term(f[2], path)
        lin, c = _combine(lin1, lin2, -1), c1 - c2
        return [[(lin, c, "<="), (lin, c, ">=")]] if head == "=" else [[(lin, c, head)]]
    raise BadInput(f"{path}: formula {head!r} is not supported (and, or, <=, >=, <, >)")


def _combine(a: dict, b: dict, sign: int) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + sign * v
    return out


def _term(t, path: str) -> tuple[dict, Fraction]:
    if isinstance(t, str):
        m = re.fullmatch(r"([XY])_(\d+)", t)
        if m:
            return {("x" if m.group(1) == "X" else "y", int(m.group(2))): Fraction(1)}, Fraction(0)
        try:
            return {}, Fraction(t)
        except ValueError:
            raise BadInput(f"{path}: unknown term {t!r}") from None
    op, args = t[0], [_term(a, path) for a in t[1:]]
    if op == "+":
        lin, c = {}, Fraction(0)
        for la, ca in args:
            lin, c = _combine(lin, la, 1), c + ca
        return lin, c
    if op == "-" and len(args) == 1:
        return {k: -v for k, v in args[0][0].items()}, -args[0][1]
    if op == "-" and len(args) >= 2:
        lin, c = args[0]
        for la, ca in args[1:]:
            lin, c = _combine(lin, la, -1), c - ca
        return lin, c
    if op in ("*", "/") and len(args) >= 2:
        lin, c = args[0]
        for lb, cb in args[1:]:
            if lb and (lin or op == "/") or (op == "/" and cb == 0):
                raise BadInput(f"{path}: nonlinear product or division by zero in {t!r}")
            k, (lin, c0) = (cb, (lin, c)) if not lb else (c, (lb, cb))
            k = 1 / k if op == "/" else k
            lin, c = {key: v * k for key, v in lin.items()}, c0 * k
        return lin, c
    raise BadInput(f"{path}: term {op!r} is not supported (+, -, * by a constant)")


# ---------------------------------------------------------------- TOML

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([xy])(\d+)|(<=|>=|==|<|>|=|[-+*/()]))")


def _toml(text: str, path: str, n_in: int) -> list[tuple[list, list]]:
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: {exc}") from exc
    inp = doc.get("input", {})
    unsafe = doc.get("unsafe", [])
    if not isinstance(inp, dict) or not isinstance(unsafe, list) or not all(isinstance(b, dict) for b in unsafe):
        raise BadInput(f"{path}: expected an [input] table and [[unsafe]] blocks")
    boxes = inp.get("boxes") or [{"lower": inp.get("lower"), "upper": inp.get("upper")}]
    box_atoms = []
    for b in boxes:
        lo, hi = b.get("lower"), b.get("upper")
        if not isinstance(lo, list) or not isinstance(hi, list) or len(lo) != len(hi):
            raise BadInput(f"{path}: [input] needs lists lower and upper of equal length")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in lo + hi):
            raise BadInput(f"{path}: input bounds must be finite numbers")
        # TOML numbers are binary64 values: exactly those (not the decimals that print them)
        box_atoms.append([(i, "lo", Fraction(float(v)), False) for i, v in enumerate(lo)]
                         + [(i, "hi", Fraction(float(v)), False) for i, v in enumerate(hi)])
    blocks = []
    for block in unsafe:
        atoms = [a for s in block.get("all", []) for a in _infix(str(s), path)]
        for box in box_atoms:
            extra_box, rows = _split(atoms)
            blocks.append((box + extra_box, rows))
    if not blocks:
        raise BadInput(f"{path}: no [[unsafe]] blocks")
    return blocks


def _infix(s: str, path: str) -> list[Atom]:
    toks, pos = [], 0
    while pos < len(s.rstrip()):
        m = _TOKEN.match(s, pos)
        if not m:
            raise BadInput(f"{path}: cannot read constraint {s!r} at column {pos + 1}")
        toks.append(m.group(1) or (m.group(2) + m.group(3) if m.group(2) else m.group(4)))
        pos = m.end()
    toks.append("$")
    i = 0

    def expr():
        nonlocal i
        lin, c = term()
        while toks[i] in ("+", "-"):
            sign = 1 if toks[i] == "+" else -1
            i += 1
            l2, c2 = term()
            lin, c = _combine(lin, l2, sign), c + sign * c2
        return lin, c

    def term():
        nonlocal i
        lin, c = unary()
        while toks[i] in ("*", "/"):
            op = toks[i]
            i += 1
            l2, c2 = unary()
            if op == "/":
                if l2 or c2 == 0:
                    raise BadInput(f"{path}: {s!r}: divide by a nonzero constant only")
                lin, c = {k: v / c2 for k, v in lin.items()}, c / c2
            elif lin and l2:
                raise BadInput(f"{path}: {s!r}: nonlinear product")
            else:
                k, (lin, c0) = (c2, (lin, c)) if not l2 else (c, (l2, c2))
                lin, c = {key: v * k for key, v in lin.items()}, c0 * k
        return lin, c

    def unary():
        nonlocal i
        if toks[i] in ("+", "-"):
            sign = 1 if toks[i] == "+" else -1
            i += 1
            lin, c = unary()
            return {k: sign * v for k, v in lin.items()}, sign * c
        tok = toks[i]
        i += 1
        if tok == "(":
            out = expr()
            if toks[i] != ")":
                raise BadInput(f"{path}: {s!r}: missing ')'")
            i += 1
            return out
        if tok[0] in "xy":
            return {(tok[0], int(tok[1:])): Fraction(1)}, Fraction(0)
        try:  # a number means its binary64 value (as TOML's own numbers and Python's float do)
            return {}, Fraction(float(tok))
        except (ValueError, OverflowError):
            raise BadInput(f"{path}: {s!r}: unexpected {tok!r} (numbers must be finite binary64)") from None

    atoms = []
    left = expr()
    while toks[i] in ("<=", ">=", "<", ">", "==", "="):
        op = toks[i]
        i += 1
        right = expr()
        lin, c = _combine(left[0], right[0], -1), left[1] - right[1]
        atoms += [(lin, c, "<="), (lin, c, ">=")] if op in ("==", "=") else [(lin, c, op)]
        left = right
    if toks[i] != "$" or not atoms:
        raise BadInput(f"{path}: {s!r}: expected comparisons of linear expressions")
    return atoms
