"""Safety properties ("specs"): which network outputs are unsafe, over which input boxes.

Two file formats are read into one model:

* VNN-LIB (``.vnnlib``), the SMT-LIB subset used by VNN-COMP (:func:`parse_vnnlib`);
* a small TOML format (``.toml``) for hand-written properties (:func:`parse_toml`);

and :func:`make_spec` builds the same thing from Python values.

A :class:`Spec` is a tuple of :class:`Case` s. A case is an input box ``[lower, upper]``
together with an *unsafe* output region: a disjunction of :class:`Constraints`, each a
conjunction of linear inequalities ``ax @ x + ay @ y <= rhs`` (``<`` for strict rows). The
property is *violated* when some ``x`` in a case's box, together with the network output
``y`` at ``x``, satisfies some disjunct of that case.

Bad input never raises anything but :class:`~verifier.errors.SpecError`, located as
``path:line:column`` where the fault has a place in the text.
"""

from __future__ import annotations

import math
import re
import tomllib
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from verifier.errors import SpecError

__all__ = [
    "Case",
    "Constraints",
    "Spec",
    "load_spec",
    "make_spec",
    "parse_toml",
    "parse_vnnlib",
]

SUPPORTED_EXTENSIONS = (".vnnlib", ".toml")

# A VNN-LIB formula is put in disjunctive normal form; this caps the number of disjuncts so
# that a pathological AND of ORs fails fast instead of exhausting memory.
MAX_DISJUNCTS = 100_000
# Deeper nesting than this is rejected (it also keeps the recursive descent far from
# Python's recursion limit).
MAX_NESTING = 200


# ---------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------


def _frozen_array(value: Any, dtype: type, ndim: int, what: str) -> np.ndarray:
    """A read-only copy of ``value`` with the given dtype and number of dimensions."""
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what} is not an array of numbers: {exc}") from None
    if arr.ndim != ndim:
        raise SpecError(f"{what} must have {ndim} dimension(s), got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


def _points(value: Any, width: int, what: str) -> np.ndarray:
    """``value`` as a float64 array whose last axis has ``width`` entries."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what} is not an array of numbers: {exc}") from None
    if arr.ndim == 0 or arr.shape[-1] != width:
        raise SpecError(f"{what} must have {width} entries on its last axis, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Constraints:
    """A conjunction of linear constraints  ax @ x + ay @ y  <= rhs  (row i is '<' when strict[i])."""

    ax: np.ndarray  # (k, n_inputs)
    ay: np.ndarray  # (k, n_outputs)
    rhs: np.ndarray  # (k,)
    strict: np.ndarray  # (k,) bool

    def __post_init__(self) -> None:
        ax = _frozen_array(self.ax, np.float64, 2, "Constraints.ax")
        ay = _frozen_array(self.ay, np.float64, 2, "Constraints.ay")
        rhs = _frozen_array(self.rhs, np.float64, 1, "Constraints.rhs")
        strict = _frozen_array(self.strict, np.bool_, 1, "Constraints.strict")
        k = rhs.shape[0]
        if ax.shape[0] != k or ay.shape[0] != k or strict.shape[0] != k:
            raise SpecError(f"Constraints rows disagree: ax {ax.shape}, ay {ay.shape}, "
                            f"rhs {rhs.shape}, strict {strict.shape}")
        for name, arr in (("ax", ax), ("ay", ay), ("rhs", rhs), ("strict", strict)):
            object.__setattr__(self, name, arr)

    @property
    def n_rows(self) -> int:
        return int(self.rhs.shape[0])

    def margin(self, x: Any, y: Any) -> np.ndarray:
        """Per-row ``ax@x + ay@y - rhs`` (``<= 0`` means the row holds, ``< 0`` for strict rows).

        Vectorised: ``x`` of shape ``(b, n_inputs)`` and ``y`` of shape ``(b, n_outputs)`` give
        shape ``(b, k)``.
        """
        xs = _points(x, self.ax.shape[1], "x")
        ys = _points(y, self.ay.shape[1], "y")
        return xs @ self.ax.T + ys @ self.ay.T - self.rhs

    def worst_margin(self, x: Any, y: Any) -> np.ndarray:
        """The largest row margin per point (``<= 0``: every row holds, up to strictness).

        A conjunction without rows holds everywhere: its worst margin is ``-inf``. Shape ``(b,)``
        for a batch, a 0-d array for a single point.
        """
        m = self.margin(x, y)
        if m.shape[-1] == 0:
            return np.full(m.shape[:-1], -np.inf)
        return m.max(axis=-1)

    def holds_at(self, x: Any, y: Any) -> bool:
        """Whether every row holds at the single point ``(x, y)``: exact float64, no tolerance."""
        m = self.margin(x, y)
        if m.ndim != 1:
            raise SpecError("holds_at() takes a single point; use margin() for batches")
        return bool(np.all(np.where(self.strict, m < 0.0, m <= 0.0)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Constraints):
            return NotImplemented
        return all(np.array_equal(a, b) for a, b in ((self.ax, other.ax), (self.ay, other.ay),
                                                     (self.rhs, other.rhs),
                                                     (self.strict, other.strict)))

    __hash__ = None  # type: ignore[assignment]  # holds arrays: equality only


@dataclass(frozen=True, eq=False)
class Case:
    """One input box and the unsafe output region to check over it (OR of conjunctions)."""

    lower: np.ndarray  # (n_inputs,)
    upper: np.ndarray  # (n_inputs,)
    unsafe: tuple[Constraints, ...]  # disjunction

    def __post_init__(self) -> None:
        lower = _frozen_array(self.lower, np.float64, 1, "Case.lower")
        upper = _frozen_array(self.upper, np.float64, 1, "Case.upper")
        unsafe = tuple(self.unsafe)
        if lower.shape != upper.shape:
            raise SpecError(f"Case.lower {lower.shape} and Case.upper {upper.shape} differ")
        if not all(isinstance(c, Constraints) for c in unsafe):
            raise SpecError("Case.unsafe must be a sequence of Constraints")
        if any(c.ax.shape[1] != lower.shape[0] for c in unsafe):
            raise SpecError(f"Case.unsafe has a disjunct whose ax width is not {lower.shape[0]}")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "unsafe", unsafe)

    def contains(self, x: Any) -> bool:
        """Whether ``x`` lies in the box (bounds included)."""
        xs = _points(x, self.lower.shape[0], "x")
        return bool(np.all(self.lower <= xs) and np.all(xs <= self.upper))

    def violated_at(self, x: Any, y: Any) -> bool:
        """``x`` is in the box and ``(x, y)`` satisfies some unsafe disjunct."""
        return self.contains(x) and any(c.holds_at(x, y) for c in self.unsafe)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Case):
            return NotImplemented
        return (np.array_equal(self.lower, other.lower)
                and np.array_equal(self.upper, other.upper) and self.unsafe == other.unsafe)

    __hash__ = None  # type: ignore[assignment]


def _pad_outputs(c: Constraints, n_outputs: int) -> Constraints:
    """``c`` with ``ay`` widened by zero columns (or stripped of unused ones) to ``n_outputs``."""
    width = c.ay.shape[1]
    if width == n_outputs:
        return c
    if width > n_outputs:
        ay = c.ay[:, :n_outputs]
    else:
        ay = np.hstack([c.ay, np.zeros((c.ay.shape[0], n_outputs - width))])
    return Constraints(c.ax, ay, c.rhs, c.strict)


@dataclass(frozen=True)
class Spec:
    """A property: violated when any of its cases is.

    When ``n_outputs`` is None the ``ay`` matrices are only as wide as the highest output
    index used; :meth:`bind` widens them to the network's output count.
    """

    n_inputs: int
    n_outputs: int | None  # None when the spec does not declare it (TOML, make_spec)
    cases: tuple[Case, ...]
    source: str | None = None  # file path if loaded from a file
    description: str = ""
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cases", tuple(self.cases))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        for case in self.cases:
            if case.lower.shape[0] != self.n_inputs:
                raise SpecError(f"a case has {case.lower.shape[0]} inputs, not {self.n_inputs}",
                                self.source)
            if self.n_outputs is not None and any(c.ay.shape[1] != self.n_outputs
                                                  for c in case.unsafe):
                raise SpecError(f"a case has constraints not over {self.n_outputs} outputs",
                                self.source)

    def max_output_index(self) -> int:
        """The largest output index with a nonzero coefficient anywhere (-1 if none)."""
        used = [int(np.flatnonzero(c.ay.any(axis=0))[-1])
                for case in self.cases for c in case.unsafe if c.ay.any()]
        return max(used, default=-1)

    def bind(self, n_inputs: int, n_outputs: int) -> Spec:
        """Check the spec against a network's sizes; return it with ``ay`` padded to ``n_outputs``.

        Raises :class:`SpecError` (naming ``source``) when the sizes do not fit.
        """
        if n_inputs != self.n_inputs:
            raise SpecError(f"the spec has {self.n_inputs} inputs but the network has {n_inputs}",
                            self.source)
        if self.n_outputs is not None and n_outputs != self.n_outputs:
            raise SpecError(f"the spec declares {self.n_outputs} outputs but the network has "
                            f"{n_outputs}", self.source)
        used = self.max_output_index()
        if used >= n_outputs:
            raise SpecError(f"the spec uses output {used} (y{used}) but the network has only "
                            f"{n_outputs} outputs", self.source)
        cases = tuple(Case(c.lower, c.upper, tuple(_pad_outputs(d, n_outputs) for d in c.unsafe))
                      for c in self.cases)
        return replace(self, n_outputs=n_outputs, cases=cases)

    def violated_at(self, x: Any, y: Any) -> bool:
        """Whether some case is violated at input ``x`` with output ``y``."""
        return any(case.violated_at(x, y) for case in self.cases)


# ---------------------------------------------------------------------------------------------
# Linear expressions and atoms (shared by both formats)
# ---------------------------------------------------------------------------------------------

_Var = tuple[str, int]  # ("x", i) for an input, ("y", j) for an output


class _Lin:
    """A linear expression ``sum(coef[v] * v) + const`` (immutable by convention)."""

    __slots__ = ("coef", "const")

    def __init__(self, coef: dict[_Var, float] | None = None, const: float = 0.0) -> None:
        self.coef = coef or {}
        self.const = const

    @property
    def is_const(self) -> bool:
        return all(c == 0.0 for c in self.coef.values())

    def plus(self, other: _Lin, sign: float = 1.0) -> _Lin:
        coef = dict(self.coef)
        for v, c in other.coef.items():
            coef[v] = coef.get(v, 0.0) + sign * c
        return _Lin(coef, self.const + sign * other.const)

    def times(self, k: float) -> _Lin:
        return _Lin({v: c * k for v, c in self.coef.items()}, self.const * k)


class _Atom:
    """One normalised constraint ``sum(coef[v] * v) <= rhs`` (``<`` when strict).

    ``bound`` is set when the atom involves exactly one input and nothing else:
    ``(index, is_upper, value, keep_row)``. ``value`` is rounded outwards when the division
    by the coefficient is inexact, so the box always contains every point satisfying the
    atom; ``keep_row`` says the atom must also stay a constraint row (strict, or inexact) so
    that the exact semantics are kept.
    """

    __slots__ = ("bound", "coef", "label", "pos", "rhs", "strict")

    def __init__(self, coef: dict[_Var, float], rhs: float, strict: bool, pos: int = -1,
                 label: str = "") -> None:
        self.coef = coef
        self.rhs = rhs
        self.strict = strict
        self.pos = pos
        self.label = label
        self.bound = _single_input_bound(coef, rhs, strict)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.rhs) and all(math.isfinite(c) for c in self.coef.values())

    def constant_truth(self) -> bool:
        """For an atom without variables: whether ``0 <= rhs`` (``0 < rhs``) holds."""
        return 0.0 < self.rhs if self.strict else 0.0 <= self.rhs


def _single_input_bound(coef: dict[_Var, float], rhs: float,
                        strict: bool) -> tuple[int, bool, float, bool] | None:
    """The box bound implied by ``c * x_i <= rhs``, or None if the atom is not of that form."""
    if len(coef) != 1:
        return None
    ((kind, index), c), = coef.items()
    if kind != "x":
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
        atoms.append(_Atom(coef, -lin.const + 0.0, strict, pos, label))
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
    for r, atom in enumerate(rows):
        for (kind, index), c in atom.coef.items():
            (ax if kind == "x" else ay)[r, index] = c
        rhs[r] = atom.rhs
        strict[r] = atom.strict
    if k == 0:
        warnings.append(f"{label} has no output constraint: every input in its box counts as "
                        "unsafe")
    return Constraints(ax, ay, rhs, strict)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of character offset ``pos`` (slow path, for errors only)."""
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


# ---------------------------------------------------------------------------------------------
# VNN-LIB
# ---------------------------------------------------------------------------------------------

_VNN_TOKEN = re.compile(r"[()]|;[^\n]*|[^\s();]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_VNN_VAR = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_COMPARISONS = ("<=", ">=", "<", ">", "=")
# Harmless SMT-LIB commands some generators emit; they carry no meaning for the property.
_IGNORED_COMMANDS = frozenset({"check-sat", "get-model", "exit", "set-logic", "set-info",
                               "set-option"})


class _Sym:
    __slots__ = ("pos", "text")

    def __init__(self, pos: int, text: str) -> None:
        self.pos = pos
        self.text = text


class _List:
    __slots__ = ("items", "pos")

    def __init__(self, pos: int) -> None:
        self.pos = pos
        self.items: list[_Sym | _List] = []


_Terms = list[list[_Atom]]  # a formula in DNF: OR of ANDs of atoms


class _VnnlibParser:
    """Reads VNN-LIB text into a :class:`Spec` (see :func:`parse_vnnlib`)."""

    def __init__(self, text: str, source: str | None) -> None:
        self.text = text
        self.source = source
        self.names: dict[str, _Var] = {}
        self.declared: dict[str, dict[int, int]] = {"X": {}, "Y": {}}  # index -> position
        self.warnings: list[str] = []
        self.description = ""
        self._newlines: list[int] | None = None

    # -- locations ------------------------------------------------------------------------

    def line_col(self, pos: int) -> tuple[int, int]:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        n = bisect_left(self._newlines, pos)
        start = self._newlines[n - 1] + 1 if n else 0
        return n + 1, pos - start + 1

    def error(self, message: str, pos: int | None = None) -> SpecError:
        if pos is None or pos < 0:
            return SpecError(message, self.source)
        return SpecError(message, self.source, *self.line_col(pos))

    def describe(self, atom: _Atom) -> str:
        return f"line {self.line_col(atom.pos)[0]}"

    # -- s-expressions --------------------------------------------------------------------

    def read(self) -> list[_Sym | _List]:
        """Tokenise and nest the text; comments are dropped (the first one is the description)."""
        top: list[_Sym | _List] = []
        stack: list[_List] = []
        seen_token = False
        for m in _VNN_TOKEN.finditer(self.text):
            tok = m.group()
            if tok[0] == ";":
                if not seen_token and not self.description:
                    self.description = tok.lstrip(";").strip()
                continue
            seen_token = True
            if tok == "(":
                if len(stack) >= MAX_NESTING:
                    raise self.error(f"nesting deeper than {MAX_NESTING} levels", m.start())
                node = _List(m.start())
                (stack[-1].items if stack else top).append(node)
                stack.append(node)
            elif tok == ")":
                if not stack:
                    raise self.error("unmatched ')'", m.start())
                stack.pop()
            elif stack:
                stack[-1].items.append(_Sym(m.start(), tok))
            else:
                raise self.error(f"unexpected {tok!r} outside parentheses", m.start())
        if stack:
            raise self.error("'(' is never closed (missing ')')", stack[0].pos)
        return top

    def head(self, node: _Sym | _List, expected: str) -> tuple[str, list[_Sym | _List]]:
        """Split ``(op arg ...)`` into ``op`` and the arguments."""
        if isinstance(node, _Sym):
            raise self.error(f"expected {expected}, found {node.text!r}", node.pos)
        if not node.items or not isinstance(node.items[0], _Sym):
            raise self.error(f"expected {expected}, found a list without an operator name",
                             node.pos)
        return node.items[0].text, node.items[1:]

    # -- commands -------------------------------------------------------------------------

    def run(self) -> Spec:
        terms: _Terms = [[]]
        asserts = 0
        for cmd in self.read():
            name, args = self.head(cmd, "a command such as (declare-const ...) or (assert ...)")
            if name == "declare-const":
                self.declare(cmd, args)
            elif name == "assert":
                if len(args) != 1:
                    raise self.error(f"assert takes exactly one formula, got {len(args)}",
                                     cmd.pos)
                terms = self.conjoin(terms, self.formula(args[0]), cmd.pos)
                asserts += 1
            elif name not in _IGNORED_COMMANDS:
                raise self.error(f"unsupported command {name!r}: expected declare-const or "
                                 "assert", cmd.pos)
        n_inputs = self.check_declared("X", "input")
        n_outputs = self.check_declared("Y", "output")
        if not asserts:
            raise self.error("no (assert ...) found: the spec defines no input box")
        return self.build(terms, n_inputs, n_outputs)

    def declare(self, cmd: _List, args: list[_Sym | _List]) -> None:
        if len(args) != 2 or not all(isinstance(a, _Sym) for a in args):
            raise self.error("expected (declare-const NAME Real)", cmd.pos)
        name, sort = args
        assert isinstance(name, _Sym) and isinstance(sort, _Sym)
        m = _VNN_VAR.fullmatch(name.text)
        if m is None:
            raise self.error(f"cannot declare {name.text!r}: variables must be named X_<i> "
                             "(inputs) or Y_<j> (outputs)", name.pos)
        if sort.text != "Real":
            raise self.error(f"{name.text} has sort {sort.text!r}: only Real is supported",
                             sort.pos)
        if name.text in self.names:
            raise self.error(f"{name.text} is declared twice", name.pos)
        kind, index = m.group(1), int(m.group(2))
        self.names[name.text] = (kind.lower(), index)
        self.declared[kind][index] = name.pos

    def check_declared(self, kind: str, what: str) -> int:
        """Number of declared ``kind`` variables; they must be exactly ``0..n-1``."""
        decls = self.declared[kind]
        n = len(decls)
        if n == 0:
            raise self.error(f"no {what} variables declared: expected (declare-const {kind}_0 "
                             "Real) and so on")
        for index, pos in sorted(decls.items()):
            if index >= n:
                missing = min(set(range(n)) - decls.keys())
                raise self.error(f"{kind}_{index} is declared but {kind}_{missing} is not: "
                                 f"{what} indices must be 0..{n - 1} without gaps", pos)
        return n

    # -- formulas -------------------------------------------------------------------------

    def conjoin(self, acc: _Terms, terms: _Terms, pos: int) -> _Terms:
        """DNF of ``acc AND terms``; a single-term side is appended in place (no blow-up)."""
        if len(terms) == 1:
            for t in acc:
                t.extend(terms[0])
            return acc
        if len(acc) * len(terms) > MAX_DISJUNCTS:
            raise self.error(f"the formula expands to more than {MAX_DISJUNCTS} disjuncts", pos)
        return [t + u for t in acc for u in terms]

    def formula(self, node: _Sym | _List) -> _Terms:
        op, args = self.head(node, "a formula such as (<= X_0 1), (and ...) or (or ...)")
        if op in ("and", "or") and not args:
            raise self.error(f"{op!r} needs at least one argument", node.pos)
        if op in _COMPARISONS and len(args) < 2:
            raise self.error(f"{op!r} needs two or more arguments, got {len(args)}", node.pos)
        if op == "and":
            acc: _Terms = [[]]
            for arg in args:
                acc = self.conjoin(acc, self.formula(arg), node.pos)
            return acc
        if op == "or":
            out: _Terms = []
            for arg in args:
                out.extend(self.formula(arg))
                if len(out) > MAX_DISJUNCTS:
                    raise self.error(f"the formula expands to more than {MAX_DISJUNCTS} "
                                     "disjuncts", node.pos)
            return out
        if op in _COMPARISONS:
            exprs = [self.expr(arg) for arg in args]
            atoms: list[_Atom] = []
            for left, right in pairwise(exprs):  # chains: (<= a b c) is a<=b and b<=c
                atoms.extend(_atoms_of(left, op, right, node.pos))
            for atom in atoms:
                if not atom.finite:
                    raise self.error("a coefficient or constant overflows float64", node.pos)
            return [atoms]
        raise self.error(f"unsupported operator {op!r} in a formula: expected and, or, <=, >=, "
                         "<, > or =", node.items[0].pos)

    def expr(self, node: _Sym | _List) -> _Lin:
        if isinstance(node, _Sym):
            return self.symbol(node)
        op, args = self.head(node, "an expression")
        if op in ("+", "-", "*", "/") and not args:
            raise self.error(f"{op!r} needs at least one argument", node.pos)
        if op == "+":
            out = self.expr(args[0])
            for arg in args[1:]:
                out = out.plus(self.expr(arg))
            return out
        if op == "-":
            out = self.expr(args[0])
            if len(args) == 1:
                return out.times(-1.0)
            for arg in args[1:]:
                out = out.plus(self.expr(arg), -1.0)
            return out
        if op == "*":
            out = self.expr(args[0])
            for arg in args[1:]:
                factor = self.expr(arg)
                if factor.is_const:
                    out = out.times(factor.const)
                elif out.is_const:
                    out = factor.times(out.const)
                else:
                    raise self.error("nonlinear product: at most one factor of '*' may contain "
                                     "variables", node.items[0].pos)
            return out
        if op == "/":
            out = self.expr(args[0])
            for arg in args[1:]:
                divisor = self.expr(arg)
                if not divisor.is_const or divisor.const == 0.0:
                    raise self.error("'/' must divide by a nonzero constant", arg.pos)
                out = out.times(1.0 / divisor.const)
            return out
        raise self.error(f"unsupported operator {op!r} in an expression: expected +, -, * or /",
                         node.items[0].pos)

    def symbol(self, node: _Sym) -> _Lin:
        text = node.text
        if _NUMBER.fullmatch(text):
            value = float(text)
            if not math.isfinite(value):
                raise self.error(f"number {text} is out of the float64 range", node.pos)
            return _Lin(None, value)
        var = self.names.get(text)
        if var is not None:
            return _Lin({var: 1.0})
        if _VNN_VAR.fullmatch(text):
            raise self.error(f"undeclared variable {text}: add (declare-const {text} Real) "
                             "before its first use", node.pos)
        raise self.error(f"unknown symbol {text!r}: expected a number or a declared variable",
                         node.pos)

    # -- terms to cases -------------------------------------------------------------------

    def build(self, terms: _Terms, n_inputs: int, n_outputs: int) -> Spec:
        """Split each DNF term into its input box and constraint rows; group equal boxes."""
        groups: dict[bytes, tuple[np.ndarray, np.ndarray, list[Constraints]]] = {}
        empty_error: SpecError | None = None
        false_pos: int | None = None
        n = len(terms)
        for t, term in enumerate(terms, 1):
            label = f"disjunct {t} of {n}" if n > 1 else "the property"
            lower = [-math.inf] * n_inputs
            upper = [math.inf] * n_inputs
            lower_at = [-1] * n_inputs
            upper_at = [-1] * n_inputs
            rows: list[_Atom] = []
            for atom in term:
                b = atom.bound
                if b is None:
                    rows.append(atom)
                    continue
                index, is_upper, value, keep_row = b
                if is_upper:
                    if value < upper[index]:
                        upper[index], upper_at[index] = value, atom.pos
                elif value > lower[index]:
                    lower[index], lower_at[index] = value, atom.pos
                if keep_row:
                    rows.append(atom)
            bad = next((i for i in range(n_inputs) if lower[i] > upper[i]), None)
            if bad is not None:
                pos = max(lower_at[bad], upper_at[bad])
                why = f"X_{bad} has lower bound {lower[bad]!r} > upper bound {upper[bad]!r}"
                self.warnings.append(f"{label} is dropped: its input box is empty: {why} "
                                     f"(line {self.line_col(pos)[0]})")
                if empty_error is None:
                    empty_error = self.error(f"the input region is empty: {why}", pos)
                continue
            constraints = _conjunction(rows, n_inputs, n_outputs, label, self.warnings,
                                       self.describe)
            if constraints is None:
                if false_pos is None:
                    false_pos = next(a.pos for a in rows if not a.coef and not a.constant_truth())
                continue
            for i in range(n_inputs):
                for value, side in ((lower[i], "lower"), (upper[i], "upper")):
                    if math.isinf(value):
                        where = f" in {label}" if n > 1 else ""
                        raise self.error(f"X_{i} has no {side} bound{where}: every input needs "
                                         "finite bounds to be verified", self.declared["X"][i])
            lo = np.array(lower) + 0.0
            hi = np.array(upper) + 0.0
            key = lo.tobytes() + hi.tobytes()
            if key not in groups:
                groups[key] = (lo, hi, [])
            groups[key][2].append(constraints)
        if not groups:
            if empty_error is not None:
                raise empty_error
            raise self.error("the unsafe region is empty: every disjunct contains a constraint "
                             "without variables that is always false", false_pos)
        cases = tuple(Case(lo, hi, tuple(cs)) for lo, hi, cs in groups.values())
        return Spec(n_inputs, n_outputs, cases, self.source, self.description,
                    tuple(dict.fromkeys(self.warnings)))


def parse_vnnlib(text: str, source: str | None = None) -> Spec:
    """Parse VNN-LIB text (the VNN-COMP property format) into a :class:`Spec`.

    The conjunction of all asserts is put in disjunctive normal form. In each disjunct, atoms
    on a single input variable (``(<= X_0 0.5)``, ``(>= 2 X_1)``, ``(<= (* 2 X_0) 1)``) form
    the input box; every other atom becomes a constraint row. Disjuncts with equal boxes
    share one :class:`Case`. ``=`` is read as two non-strict inequalities. Strict bounds and
    bounds with inexact coefficients (e.g. ``(<= (* 3 X_0) 1)``) give a box enclosing them,
    rounded outwards, and also stay as rows so that the exact condition is kept. Besides the
    VNN-COMP subset, ``/`` by a constant, chained comparisons and n-ary ``-`` are accepted,
    and ``check-sat``/``get-model``/``exit``/``set-*`` commands are ignored. A leading comment
    becomes the description.
    """
    if not isinstance(text, str):
        raise SpecError(f"VNN-LIB text must be a str, got {type(text).__name__}", source)
    return _VnnlibParser(text, source).run()


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
                if not factor.is_const or factor.const == 0.0:
                    raise _LocalError("'/' must divide by a nonzero constant", op_tok[2])
                out = out.times(1.0 / factor.const)
            elif factor.is_const:
                out = out.times(factor.const)
            elif out.is_const:
                out = factor.times(out.const)
            else:
                raise _LocalError("nonlinear product: at most one side of '*' may contain "
                                  "variables", op_tok[2])
        return out

    def unary(self) -> _Lin:
        kind, text, _ = self.peek()
        if kind == "op" and text in ("+", "-"):
            self.take()
            inner = self.unary()
            return inner if text == "+" else inner.times(-1.0)
        return self.primary()

    def primary(self) -> _Lin:
        tok = self.take()
        kind, text, offset = tok
        if kind == "num":
            value = float(text)
            if not math.isfinite(value):
                raise _LocalError(f"number {text} is out of the float64 range", offset)
            return _Lin(None, value)
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
# TOML
# ---------------------------------------------------------------------------------------------

_TOP_KEYS = ("description", "input", "unsafe")
_INPUT_KEYS = ("lower", "upper", "boxes")
_BOX_KEYS = ("lower", "upper")
_UNSAFE_KEYS = ("all",)
_TOML_LOCATION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


class _TomlParser:
    """Checks the parsed TOML document and locates faults in the raw text."""

    def __init__(self, text: str, source: str | None) -> None:
        self.text = text
        self.source = source

    # -- locations ------------------------------------------------------------------------

    def header_pos(self, name: str, nth: int = 0) -> int | None:
        """Offset of the ``nth`` ``[name]`` / ``[[name]]`` header, or None if there is none."""
        pattern = re.compile(rf"^[ \t]*\[\[?[ \t]*{re.escape(name)}[ \t]*\]\]?", re.MULTILINE)
        for k, m in enumerate(pattern.finditer(self.text)):
            if k == nth:
                return m.start()
        return None

    def line_of(self, pos: int | None) -> int | None:
        return None if pos is None else _line_col(self.text, pos)[0]

    def key_line(self, key: str, start: int | None = None) -> int | None:
        """Line of the first ``key =`` (or ``[key`` header) at or after offset ``start``."""
        pattern = re.compile(rf"(?:^[ \t]*\[*[ \t]*|[{{,][ \t]*)(?:\w+\.)*{re.escape(key)}\b",
                             re.MULTILINE)
        m = pattern.search(self.text, start or 0) or pattern.search(self.text)
        return None if m is None else _line_col(self.text, m.end())[0]

    def error(self, message: str, line: int | None = None, column: int | None = None) -> SpecError:
        return SpecError(message, self.source, line, column)

    def key_error(self, message: str, key: str, start: int | None = None) -> SpecError:
        return self.error(message, self.key_line(key, start))

    # -- document -------------------------------------------------------------------------

    def run(self) -> Spec:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise self.toml_error(str(exc)) from None
        self.check_keys(data, _TOP_KEYS, "the top level", None)
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.key_error("description must be a string", "description")
        boxes = self.boxes(data.get("input"))
        blocks, labels = self.unsafe(data.get("unsafe"), boxes[0][0].shape[0])
        return _spec_from_blocks(boxes, blocks, labels, description, self.source,
                                 lambda msg: self.error(msg, self.key_line("unsafe")))

    def toml_error(self, message: str) -> SpecError:
        m = _TOML_LOCATION.search(message)
        if m is None:
            return self.error(f"invalid TOML: {message}")
        text = message[:m.start()]
        if m.group(1) is None:  # end of document
            lines = self.text.split("\n")
            return self.error(f"invalid TOML: {text} (at the end of the file)", len(lines),
                              len(lines[-1]) + 1)
        return self.error(f"invalid TOML: {text}", int(m.group(1)), int(m.group(2)))

    def check_keys(self, table: dict[str, Any], allowed: tuple[str, ...], where: str,
                   start: int | None) -> None:
        for key in table:
            if key not in allowed:
                raise self.key_error(f"unknown key {key!r} in {where}; allowed keys: "
                                     f"{', '.join(allowed)}", key, start)

    def boxes(self, table: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        if table is None:
            raise self.error("missing [input] table: give lower and upper bounds of the inputs")
        start = self.header_pos("input")
        if not isinstance(table, dict):
            raise self.key_error("input must be a table ([input]) with lower and upper", "input")
        self.check_keys(table, _INPUT_KEYS, "[input]", start)
        if "boxes" in table:
            if "lower" in table or "upper" in table:
                raise self.key_error("[input] has both lower/upper and boxes: use one of them",
                                     "boxes", start)
            raw = table["boxes"]
            if not isinstance(raw, list) or not raw or not all(isinstance(b, dict) for b in raw):
                raise self.key_error("input.boxes must be one or more [[input.boxes]] tables, "
                                     "each with lower and upper", "boxes", start)
            boxes = []
            for k, box in enumerate(raw):
                box_start = self.header_pos("input.boxes", k)
                where = f"[[input.boxes]] number {k + 1}"
                self.check_keys(box, _BOX_KEYS, where, box_start)
                boxes.append(self.box(box, where, box_start))
                if boxes[-1][0].shape != boxes[0][0].shape:
                    raise self.key_error(f"{where} has {boxes[-1][0].size} inputs but the first "
                                         f"box has {boxes[0][0].size}", "lower", box_start)
            return boxes
        return [self.box(table, "[input]", start)]

    def box(self, table: dict[str, Any], where: str,
            start: int | None) -> tuple[np.ndarray, np.ndarray]:
        arrays = []
        for key in ("lower", "upper"):
            if key not in table:
                raise self.error(f"{where} has no {key}: expected {key} = [numbers, ...]",
                                 self.line_of(start))
            arrays.append(self.numbers(table[key], f"{where} {key}", key, start))
        lower, upper = arrays
        problem = _box_problem(lower, upper)
        if problem is not None:
            key, message = problem
            raise self.key_error(f"{where}: {message}", key, start)
        return lower, upper

    def numbers(self, value: Any, what: str, key: str, start: int | None) -> np.ndarray:
        if not isinstance(value, list):
            raise self.key_error(f"{what} must be a list of numbers, got "
                                 f"{type(value).__name__}", key, start)
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.key_error(f"{what}[{i}] must be a number, got {v!r}", key, start)
        try:
            return np.array([float(v) for v in value], dtype=np.float64)
        except OverflowError:
            raise self.key_error(f"{what} has an integer too large for float64", key,
                                 start) from None

    def unsafe(self, raw: Any, n_inputs: int) -> tuple[list[list[_Atom]], list[str]]:
        if raw is None:
            raise self.error("no [[unsafe]] block: the spec must say which outputs are unsafe, "
                             'e.g. [[unsafe]] all = ["y0 >= y1"]')
        if not isinstance(raw, list) or not raw or not all(isinstance(b, dict) for b in raw):
            raise self.key_error("unsafe must be an array of tables: write [[unsafe]] blocks, "
                                 "each with all = [constraints]", "unsafe")
        blocks: list[list[_Atom]] = []
        labels: list[str] = []
        for k, block in enumerate(raw):
            start = self.header_pos("unsafe", k)
            label = f"[[unsafe]] block {k + 1}"
            self.check_keys(block, _UNSAFE_KEYS, label, start)
            strings = block.get("all")
            if strings is None:
                raise self.error(f"{label} has no 'all' list of constraints",
                                 self.line_of(start))
            if not isinstance(strings, list) or not strings:
                raise self.key_error(f"{label}: 'all' must be a non-empty list of constraint "
                                     "strings", "all", start)
            atoms: list[_Atom] = []
            for s in strings:
                if not isinstance(s, str):
                    raise self.key_error(f"{label}: 'all' must hold strings, got {s!r}", "all",
                                         start)
                try:
                    atoms.extend(_parse_constraint(s, n_inputs))
                except _LocalError as exc:
                    line, column = self.string_location(s, start, exc.offset)
                    raise self.error(f"in {label}, constraint {s!r}: {exc.message} (at character "
                                     f"{exc.offset + 1} of the constraint)", line, column) from None
            blocks.append(atoms)
            labels.append(label)
        return blocks, labels

    def string_location(self, s: str, start: int | None,
                        offset: int) -> tuple[int | None, int | None]:
        """File line and column of character ``offset`` of string ``s``.

        The string is searched as a quoted literal from ``start`` (its block's header), then
        from the top, then unquoted; without a match only the block's line is known.
        """
        for begin in dict.fromkeys((start or 0, 0)):
            found = [p + 1 for q in "\"'" if (p := self.text.find(q + s + q, begin)) >= 0]
            if found:
                return _line_col(self.text, min(found) + offset)
        p = self.text.find(s, start or 0) if s else -1
        if p < 0 and s:
            p = self.text.find(s)
        if p < 0:
            return self.line_of(start), None
        return _line_col(self.text, p + offset)


def parse_toml(text: str, source: str | None = None) -> Spec:
    """Parse the TOML property format into a Spec::

        description = "..."                      # optional
        [input]                                  # or several [[input.boxes]] with lower/upper
        lower = [0.0, -1.0]
        upper = [1.0,  1.0]
        [[unsafe]]                               # the unsafe region is the OR of the blocks
        all = ["y0 <= y1", "y0 - 2*y2 >= 0.5"]   # each block is the AND of its constraints

    Constraints are linear in ``y<j>`` (outputs) and ``x<i>`` (inputs) with numbers, ``+``,
    ``-``, ``*`` and ``/`` by constants, parentheses, and ``<=``, ``>=``, ``<``, ``>``, ``==``
    (two inequalities), chainable as in ``0 <= y0 <= 1``. Every box is paired with every
    block, one :class:`Case` per box. ``n_outputs`` is left undeclared (None); see
    :meth:`Spec.bind`. Unknown keys are errors.
    """
    if not isinstance(text, str):
        raise SpecError(f"TOML text must be a str, got {type(text).__name__}", source)
    return _TomlParser(text, source).run()


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


def load_spec(path: str | PathLike[str]) -> Spec:
    """Read a spec file, choosing the format by extension (``.vnnlib`` or ``.toml``)."""
    try:
        p = Path(path)
    except TypeError:
        raise SpecError(f"spec path must be a string or path, got {type(path).__name__}") from None
    source = str(path)
    ext = p.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise SpecError(f"unsupported spec file extension {p.suffix or '(none)'!r}: expected "
                        ".vnnlib (VNN-LIB) or .toml", source)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError("no such file", source) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})",
                        source) from None
    except OSError as exc:
        raise SpecError(f"cannot read the file: {exc.strerror or exc}", source) from None
    return parse_vnnlib(text, source) if ext == ".vnnlib" else parse_toml(text, source)
