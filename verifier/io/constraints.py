"""Linear-constraint text: the atoms shared by the spec formats and the constraint-string parser
(``"y0 - 2*y2 >= 0.5"``, used by TOML specs, ``make_spec`` and ``verifier bounds --query``)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import SpecError
from ..spec import MAX_NESTING, Case, Constraints, Spec
from .exact_numbers import exact_input_bound, inward, odd_denominator

# ---------------------------------------------------------------------------------------------
# Linear expressions and atoms (shared by both formats)
# ---------------------------------------------------------------------------------------------

_Var = tuple[str, int]  # ("x", i) for an input, ("y", j) for an output


_FROM_FLOATS = object()


class _Lin:
    """A linear expression ``sum(coef[v] * v) + const`` (immutable by convention).

    ``exact``: the same expression in exact rationals, from the spec's own decimals, as
    ``(coefficients, constant)``; None when unknown. It decides input-box bounds exactly.
    """

    __slots__ = ("coef", "const", "exact")

    def __init__(self, coef: dict[_Var, float] | None = None, const: float = 0.0,
                 exact: Any = _FROM_FLOATS) -> None:
        self.coef = coef or {}
        self.const = const
        if exact is _FROM_FLOATS:
            exact = ({v: Fraction(c) for v, c in self.coef.items()}, Fraction(const))
        self.exact = exact

    @property
    def is_const(self) -> bool:
        if self.exact is not None:  # exactly: a coefficient of 1e-400 is not zero
            return all(c == 0 for c in self.exact[0].values())
        return all(c == 0.0 for c in self.coef.values())

    @property
    def exact_const(self) -> Fraction | None:
        """The exact constant when the expression is exactly a constant, else None."""
        if self.exact is None or any(self.exact[0].values()):
            return None
        return self.exact[1]

    def plus(self, other: _Lin, sign: float = 1.0) -> _Lin:
        coef = dict(self.coef)
        for v, c in other.coef.items():
            coef[v] = coef.get(v, 0.0) + sign * c
        exact = None
        if self.exact is not None and other.exact is not None:
            s, xc = Fraction(sign), dict(self.exact[0])
            for v, c in other.exact[0].items():
                xc[v] = xc.get(v, 0) + s * c
            exact = (xc, self.exact[1] + s * other.exact[1])
        return _Lin(coef, self.const + sign * other.const, exact)

    def times(self, k: float, exact_k: Fraction | None) -> _Lin:
        """``k`` times the expression; ``exact_k``: the factor's exact value (None: unknown)."""
        exact = None
        if self.exact is not None and exact_k is not None:
            exact = ({v: c * exact_k for v, c in self.exact[0].items()}, self.exact[1] * exact_k)
        return _Lin({v: c * k for v, c in self.coef.items()}, self.const * k, exact)


class _Atom:
    """One normalised constraint ``sum(coef[v] * v) <= rhs`` (``<`` when strict).

    ``bound`` is set when the atom involves exactly one input and nothing else:
    ``(index, is_upper, value, keep_row)``. ``value`` is rounded outwards when the division
    by the coefficient is inexact, so the box always contains every point satisfying the
    atom; ``keep_row`` says the atom must also stay a constraint row (strict, or inexact) so
    that the exact semantics are kept.
    """

    __slots__ = ("bound", "coef", "exact", "label", "pos", "rhs", "strict")

    def __init__(self, coef: dict[_Var, float], rhs: float, strict: bool, pos: int = -1,
                 label: str = "", exact: tuple | None = None) -> None:
        if exact is not None:  # the float values from the exact ones (no float64 folding)
            exact = ({v: c for v, c in exact[0].items() if c != 0}, exact[1])
            try:
                coef, rhs = {v: float(c) for v, c in exact[0].items()}, float(exact[1])
            except OverflowError:
                exact = None
        self.exact = exact
        self.coef = coef
        self.rhs = rhs
        self.strict = strict
        self.pos = pos
        self.label = label
        self.bound = exact_input_bound(strict, exact) or _single_input_bound(coef, rhs, strict)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.rhs) and all(math.isfinite(c) for c in self.coef.values())

    def constant_truth(self) -> bool:
        """For an atom without variables: whether ``0 <= rhs`` (``0 < rhs``) holds."""
        rhs = self.rhs if self.exact is None else self.exact[1]
        return 0 < rhs if self.strict else 0 <= rhs

    def row(self, warnings: list[str], describe: Callable[[_Atom], str]) -> tuple[dict, float, bool, tuple | None]:
        """The float64 row ``(coef, rhs, strict, exact)`` of the atom (``exact``: the atom's own row
        where the float one only encloses it, else None). With the exact values: one variable gives
        the equivalent bound on float64 values (``3 v <= 0.1`` becomes ``v <= floor64(0.1 / 3)``: no
        enclosure needed); several keep their coefficients (warned when one is not a float64 number)
        and round the rhs outward."""
        if self.exact is None:
            return self.coef, self.rhs, self.strict, None
        xc, xr = self.exact
        exact_coef = all(Fraction(self.coef[v]) == c for v, c in xc.items())
        if exact_coef and Fraction(self.rhs) == xr:  # float64 numbers: the row as it is
            return self.coef, self.rhs, self.strict, None
        if len(xc) == 1:
            (v, c), = xc.items()
            f = inward(xr / c, c > 0, self.strict)
            if f is not None:
                return {v: 1.0 if c > 0 else -1.0}, f if c > 0 else -f, False, None
        coef = dict(self.coef)
        if not exact_coef:  # 0.1 y0 - 0.3 y1: times the odd part of the denominators, 0.5 y0 - 1.5 y1
            D = odd_denominator(xc.values())
            scaled = {v: c * D for v, c in xc.items()}
            if D < 2 ** 53 and all(abs(c) < 2 ** 1000 and Fraction(float(c)) == c for c in scaled.values()):
                xc, xr, coef = scaled, xr * D, {v: float(c) for v, c in scaled.items()}
            else:
                warnings.append(f"{describe(self)}: a coefficient is not a float64 number; the search uses "
                                "the nearest float64 (counterexamples are checked against the exact row)")
        try:
            rhs = float(xr)
        except OverflowError:
            return self.coef, self.rhs, self.strict, None
        rhs = rhs if Fraction(rhs) >= xr else math.nextafter(rhs, math.inf)
        exact = all(Fraction(coef[v]) == c for v, c in xc.items()) and Fraction(rhs) == xr
        return coef, rhs, self.strict, None if exact else (xc, xr)


def _single_input_bound(coef: dict[_Var, float], rhs: float,
                        strict: bool) -> tuple[int, bool, float, bool] | None:
    """The box bound implied by ``c * x_i <= rhs``, or None if the atom is not of that form."""
    if len(coef) != 1:
        return None
    ((kind, index), c), = coef.items()
    if kind != "x" or c == 0.0:  # (a coefficient below the float64 range: a row, decided exactly)
        return None
    is_upper = c > 0.0
    value = rhs / c
    # Dividing by a power of two is exact unless it under/overflows; check by multiplying back.
    exact = math.frexp(abs(c))[0] == 0.5 and value * c == rhs
    if not exact:
        value = math.nextafter(value, math.inf if is_upper else -math.inf)
    return index, is_upper, value + 0.0, strict or not exact


def _atoms_of(left: _Lin, op: str, right: _Lin, pos: int = -1, label: str = "") -> list[_Atom]:
    """Normalise ``left op right`` into atoms ``lin <= rhs``: constants move to the right."""
    if op in ("<=", "<"):
        diffs = [(left.plus(right, -1.0), op == "<")]
    elif op in (">=", ">"):
        diffs = [(right.plus(left, -1.0), op == ">")]
    else:  # equality: two non-strict inequalities
        diffs = [(left.plus(right, -1.0), False), (right.plus(left, -1.0), False)]
    atoms = []
    for lin, strict in diffs:
        coef = {v: c for v, c in lin.coef.items() if c != 0.0}
        exact = None if lin.exact is None else (lin.exact[0], -lin.exact[1])
        atoms.append(_Atom(coef, -lin.const + 0.0, strict, pos, label, exact))
    return atoms


def _conjunction(atoms: Sequence[_Atom], n_inputs: int, n_outputs: int, label: str,
                 warnings: list[str], describe: Callable[[_Atom], str]) -> Constraints | None:
    """Stack atoms into a :class:`Constraints`; None if a variable-free atom is always false.

    Variable-free atoms that always hold are dropped (with a warning), so that no all-zero
    row reaches a solver.
    """
    rows: list[_Atom] = []
    for atom in atoms:
        if atom.coef:
            rows.append(atom)
        elif atom.constant_truth():
            warnings.append(f"{describe(atom)}: the constraint has no variables and always "
                            "holds; ignored")
        else:
            warnings.append(f"{label} can never hold ({describe(atom)}: the constraint has no "
                            "variables and is always false); dropped")
            return None
    k = len(rows)
    ax = np.zeros((k, n_inputs))
    ay = np.zeros((k, n_outputs))
    rhs = np.empty(k)
    strict = np.empty(k, dtype=bool)
    exact: list = []
    for r, atom in enumerate(rows):
        coef, rhs[r], strict[r], ex = atom.row(warnings, describe)
        for (kind, index), c in coef.items():
            (ax if kind == "x" else ay)[r, index] = c
        exact.append(None if ex is None else ({i: c for (kd, i), c in ex[0].items() if kd == "x"},
                                              {i: c for (kd, i), c in ex[0].items() if kd == "y"}, ex[1]))
    if k == 0:
        warnings.append(f"{label} has no output constraint: every input in its box counts as "
                        "unsafe")
    return Constraints(ax, ay, rhs, strict, tuple(exact) if any(e is not None for e in exact) else None)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of character offset ``pos`` (slow path, for errors only)."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


# ---------------------------------------------------------------------------------------------
# Constraint strings (TOML and make_spec): "y0 - 2*y2 >= 0.5"
# ---------------------------------------------------------------------------------------------

_CONSTRAINT_TOKEN = re.compile(r"""
    \s*(?:
        (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
      | (?P<op><=|>=|==|<|>|=|[-+*/()])
    )""", re.VERBOSE)
_CONSTRAINT_VAR = re.compile(r"([xy])(0|[1-9][0-9]*)")
_CONSTRAINT_COMPARISONS = ("<=", ">=", "<", ">", "==", "=")


class _LocalError(Exception):
    """A fault inside one constraint string, at character ``offset`` of it."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class _ConstraintParser:
    """Recursive descent over ``expr (cmp expr)+`` with ``+ - * /`` and parentheses."""

    def __init__(self, text: str, n_inputs: int) -> None:
        self.text = text
        self.n_inputs = n_inputs
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, offset)
        pos = 0
        while pos < len(text):
            m = _CONSTRAINT_TOKEN.match(text, pos)
            if m is None:
                if text[pos:].strip() == "":
                    break
                bad = pos + len(text[pos:]) - len(text[pos:].lstrip())
                raise _LocalError(f"unexpected character {text[bad]!r}", bad)
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.tokens.append(("end", "", len(text)))
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    @staticmethod
    def show(tok: tuple[str, str, int]) -> str:
        return "the end of the constraint" if tok[0] == "end" else repr(tok[1])

    def parse(self) -> list[_Atom]:
        left = self.expr()
        if self.peek()[1] not in _CONSTRAINT_COMPARISONS or self.peek()[0] != "op":
            tok = self.peek()
            raise _LocalError(f"expected a comparison (<=, >=, <, >) or an operator, found "
                              f"{self.show(tok)}", tok[2])
        atoms: list[_Atom] = []
        while self.peek()[0] == "op" and self.peek()[1] in _CONSTRAINT_COMPARISONS:
            op = self.take()[1]
            right = self.expr()
            atoms.extend(_atoms_of(left, "=" if op == "==" else op, right, label=self.text))
            left = right
        tok = self.peek()
        if tok[0] != "end":
            raise _LocalError(f"expected an operator or the end of the constraint, found "
                              f"{self.show(tok)}", tok[2])
        for atom in atoms:
            if not atom.finite:
                raise _LocalError("a coefficient or constant overflows float64", 0)
        return atoms

    def expr(self) -> _Lin:
        out = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            sign = 1.0 if self.take()[1] == "+" else -1.0
            out = out.plus(self.term(), sign)
        return out

    def term(self) -> _Lin:
        out = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op_tok = self.take()
            factor = self.unary()
            if op_tok[1] == "/":
                if not factor.is_const or factor.const == 0.0 or factor.exact_const == 0:
                    raise _LocalError("'/' must divide by a nonzero constant", op_tok[2])
                xk = factor.exact_const
                out = out.times(1.0 / factor.const, None if not xk else 1 / xk)
            elif factor.is_const:
                out = out.times(factor.const, factor.exact_const)
            elif out.is_const:
                out = factor.times(out.const, out.exact_const)
            else:
                raise _LocalError("nonlinear product: at most one side of '*' may contain "
                                  "variables", op_tok[2])
        return out

    def unary(self) -> _Lin:
        kind, text, _ = self.peek()
        if kind == "op" and text in ("+", "-"):
            self.take()
            inner = self.unary()
            return inner if text == "+" else inner.times(-1.0, Fraction(-1))
        return self.primary()

    def primary(self) -> _Lin:
        tok = self.take()
        kind, text, offset = tok
        if kind == "num":
            value = float(text)
            if not math.isfinite(value):
                raise _LocalError(f"number {text} is out of the float64 range", offset)
            return _Lin(None, value, ({}, Fraction(value)))  # the binary64 number, as TOML's own
        if kind == "name":
            m = _CONSTRAINT_VAR.fullmatch(text)
            if m is None:
                raise _LocalError(f"unknown name {text!r}: expected y<j> (output j) or x<i> "
                                  "(input i)", offset)
            index = int(m.group(2))
            if m.group(1) == "x" and index >= self.n_inputs:
                raise _LocalError(f"{text} is out of range: the input box has {self.n_inputs} "
                                  f"components (x0..x{self.n_inputs - 1})", offset)
            return _Lin({(m.group(1), index): 1.0})
        if kind == "op" and text == "(":
            if self.depth >= MAX_NESTING:
                raise _LocalError(f"parentheses nested deeper than {MAX_NESTING}", offset)
            self.depth += 1
            inner = self.expr()
            self.depth -= 1
            close = self.take()
            if close[1] != ")":
                raise _LocalError(f"expected ')', found {self.show(close)}", close[2])
            return inner
        raise _LocalError(f"expected a number, a variable or '(', found {self.show(tok)}", offset)


def _parse_constraint(text: str, n_inputs: int) -> list[_Atom]:
    """Atoms of one constraint string such as ``"y0 - 2*y2 >= 0.5"`` (or ``0 <= y0 <= 1``)."""
    return _ConstraintParser(text, n_inputs).parse()


def _box_problem(lower: np.ndarray, upper: np.ndarray) -> tuple[str, str] | None:
    """``(key, message)`` for what is wrong with a box, or None if it is a valid box."""
    if lower.shape != upper.shape:
        return "upper", f"lower has {lower.size} values but upper has {upper.size}"
    if lower.size == 0:
        return "lower", "lower and upper are empty: the spec needs at least one input"
    for key, arr in (("lower", lower), ("upper", upper)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            i = int(bad[0])
            return key, (f"{key}[{i}] is {float(arr[i])}: every input needs finite bounds "
                         "(an unbounded input cannot be verified)")
    bad = np.flatnonzero(lower > upper)
    if bad.size:
        i = int(bad[0])
        return "lower", (f"lower[{i}] = {float(lower[i])!r} is greater than upper[{i}] = "
                         f"{float(upper[i])!r}")
    return None


def _spec_from_blocks(boxes: list[tuple[np.ndarray, np.ndarray]], blocks: list[list[_Atom]],
                      labels: list[str], description: str, source: str | None,
                      fail: Callable[[str], SpecError]) -> Spec:
    """One case per box, each with the disjunction of all (satisfiable) blocks."""
    n_inputs = boxes[0][0].shape[0]
    width = 1 + max((index for atoms in blocks for atom in atoms
                     for kind, index in atom.coef if kind == "y"), default=-1)
    warnings: list[str] = []
    unsafe: list[Constraints] = []
    for atoms, label in zip(blocks, labels):
        c = _conjunction(atoms, n_inputs, width, label, warnings,
                         lambda a: f"constraint {a.label!r}")
        if c is not None:
            unsafe.append(c)
    if not unsafe:
        raise fail("the unsafe region is empty: every unsafe block contains a constraint that "
                   "is always false")
    cases = tuple(Case(lo, hi, tuple(unsafe)) for lo, hi in boxes)
    return Spec(n_inputs, None, cases, source, description, tuple(dict.fromkeys(warnings)))


# ---------------------------------------------------------------------------------------------
# Python API and files
# ---------------------------------------------------------------------------------------------


def _as_boxes(value: Any, what: str) -> list[np.ndarray]:
    """One array per box from an array-like (one box) or a list of array-likes (several)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError(f"{what} must be a list of numbers or a list of such lists (one per "
                        "box) of equal length") from None
    if arr.ndim == 1:
        return [arr]
    if arr.ndim == 2 and arr.shape[0] > 0:
        return list(arr)
    raise SpecError(f"{what} must be a list of numbers or a list of such lists, got shape "
                    f"{arr.shape}")


def linear_expression(text: str, n_inputs: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The expression ``text`` (``"y0 - y1 / 3 + 1"``, constraint-string syntax) as ``(ax, ay, const)``:
    its coefficients on the inputs and outputs and its constant, each the float64 nearest to the
    exact value (no row normalisation: this is a quantity, not a condition)."""
    try:
        atoms = _parse_constraint(f"({text}) <= 0", n_inputs)
    except _LocalError as exc:
        raise SpecError(f"{text!r}: {exc.message}") from None
    [atom] = atoms
    ax, ay = np.zeros(n_inputs), np.zeros(n_outputs)
    for (kind, i), c in atom.coef.items():
        if kind == "y" and i >= n_outputs:
            raise SpecError(f"{text!r}: y{i} is out of range: the model has {n_outputs} outputs")
        (ax if kind == "x" else ay)[i] = c
    return ax, ay, -atom.rhs


def make_spec(lower: Any, upper: Any, unsafe: Any, description: str = "") -> Spec:
    """Build a Spec from Python values.

    ``lower``/``upper`` are array-likes (one box) or lists of array-likes (several boxes);
    ``unsafe`` is a list of conjunctions, each a list of constraint strings in the TOML
    syntax (``[["y0 <= y1", "y0 - 2*y2 >= 0.5"], ["y3 >= 1"]]``) or a single string for a
    one-constraint disjunct.
    """
    lowers = _as_boxes(lower, "lower")
    uppers = _as_boxes(upper, "upper")
    if len(lowers) != len(uppers):
        raise SpecError(f"lower gives {len(lowers)} boxes but upper gives {len(uppers)}")
    boxes = []
    for k, (lo, hi) in enumerate(zip(lowers, uppers)):
        problem = _box_problem(lo, hi)
        if problem is not None:
            raise SpecError(f"box {k}: {problem[1]}" if len(lowers) > 1 else problem[1])
        if lo.shape != lowers[0].shape:
            raise SpecError(f"box {k} has {lo.size} inputs but box 0 has {lowers[0].size}")
        boxes.append((lo, hi))
    if not isinstance(description, str):
        raise SpecError("description must be a string")
    if isinstance(unsafe, str):
        unsafe = [[unsafe]]
    if not isinstance(unsafe, (list, tuple)) or not unsafe:
        raise SpecError("unsafe must be a non-empty list of conjunctions (lists of constraint "
                        "strings)")
    blocks: list[list[_Atom]] = []
    labels: list[str] = []
    for k, conj in enumerate(unsafe):
        conj = [conj] if isinstance(conj, str) else conj
        if (not isinstance(conj, (list, tuple)) or not conj
                or not all(isinstance(s, str) for s in conj)):
            raise SpecError(f"unsafe[{k}] must be a constraint string or a non-empty list of "
                            f"them, got {conj!r}")
        atoms: list[_Atom] = []
        for j, s in enumerate(conj):
            try:
                atoms.extend(_parse_constraint(s, lowers[0].size))
            except _LocalError as exc:
                raise SpecError(f"unsafe[{k}][{j}] {s!r}: {exc.message} (at character "
                                f"{exc.offset + 1})") from None
        blocks.append(atoms)
        labels.append(f"unsafe[{k}]")
    return _spec_from_blocks(boxes, blocks, labels, description, None, SpecError)


