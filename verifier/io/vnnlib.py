"""The VNN-LIB reader (the SMT-LIB subset of VNN-COMP) into a ``Spec``."""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from fractions import Fraction
from itertools import pairwise

import numpy as np

from ..errors import SpecError
from ..spec import MAX_DISJUNCTS, MAX_NESTING, Case, Constraints, Spec
from .constraints import (
    _Atom,
    _atoms_of,
    _conjunction,
    _Lin,
    _Var,
)
from .exact_numbers import exact_number

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


def _term_box(term, n_inputs: int):
    """A DNF term's input box (tightest bounds, with the position of the atom that set each) and its
    remaining constraint rows (atoms that are not bounds, and bounds that must also stay as rows)."""
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
    return lower, upper, lower_at, upper_at, rows


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
                return out.times(-1.0, Fraction(-1))
            for arg in args[1:]:
                out = out.plus(self.expr(arg), -1.0)
            return out
        if op == "*":
            out = self.expr(args[0])
            for arg in args[1:]:
                factor = self.expr(arg)
                if factor.is_const:
                    out = out.times(factor.const, factor.exact_const)
                elif out.is_const:
                    out = factor.times(out.const, out.exact_const)
                else:
                    raise self.error("nonlinear product: at most one factor of '*' may contain "
                                     "variables", node.items[0].pos)
            return out
        if op == "/":
            out = self.expr(args[0])
            for arg in args[1:]:
                divisor = self.expr(arg)
                if not divisor.is_const or divisor.const == 0.0 or divisor.exact_const == 0:
                    raise self.error("'/' must divide by a nonzero constant", arg.pos)
                xk = divisor.exact_const
                out = out.times(1.0 / divisor.const, None if not xk else 1 / xk)
            return out
        raise self.error(f"unsupported operator {op!r} in an expression: expected +, -, * or /",
                         node.items[0].pos)

    def symbol(self, node: _Sym) -> _Lin:
        text = node.text
        if _NUMBER.fullmatch(text):
            value = float(text)
            if not math.isfinite(value):
                raise self.error(f"number {text} is out of the float64 range", node.pos)
            try:
                return _Lin(None, value, ({}, exact_number(text)))
            except ValueError as exc:
                raise self.error(str(exc), node.pos) from None
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
            lower, upper, lower_at, upper_at, rows = _term_box(term, n_inputs)
            bad = next((i for i in range(n_inputs) if lower[i] > upper[i]), None)
            if bad is not None:
                pos = max(lower_at[bad], upper_at[bad])
                why = (f"X_{bad} has lower bound {lower[bad]!r} > upper bound {upper[bad]!r} (bounds are "
                       "rounded inward to float64 numbers: no float64 lies between them)")
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


