"""Safety properties ("specs"): which network outputs are unsafe, over which input boxes.

This module is the model only. Two file formats are read into it by ``verifier.io``:
VNN-LIB (``.vnnlib``, ``io/vnnlib.py``) and a small TOML format (``.toml``, ``io/toml_spec.py``);
``make_spec`` (``io/constraints.py``) builds the same thing from Python values. Those names stay
importable from here (``load_spec``, ``make_spec``, ``parse_vnnlib``, ``parse_toml``).

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
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import SpecError

__all__ = ["Case", "Constraints", "Spec"]

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
    #: per row, the spec's own row in exact rationals ``(ax {i: c}, ay {j: c}, rhs)`` where the float
    #: row above is only an enclosure of it (a coefficient or rhs that is not a float64 number), else
    #: None; ``holds_at`` decides with it. The search works on the float rows.
    exact: tuple | None = None

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
        """Whether every row holds at the single point ``(x, y)``, evaluated in exact rationals (the
        spec's own rows where the float ones only enclose them), no tolerance."""
        xs = _points(x, self.ax.shape[1], "x")
        ys = _points(y, self.ay.shape[1], "y")
        if xs.ndim != 1 or ys.ndim != 1:
            raise SpecError("holds_at() takes a single point; use margin() for batches")
        for r in range(self.n_rows):
            row = self.exact[r] if self.exact is not None else None
            if row is None:
                row = ({i: Fraction(float(self.ax[r, i])) for i in np.flatnonzero(self.ax[r])},
                       {j: Fraction(float(self.ay[r, j])) for j in np.flatnonzero(self.ay[r])},
                       Fraction(float(self.rhs[r])))
            used = [(c, xs[i]) for i, c in row[0].items()] + [(c, ys[j]) for j, c in row[1].items()]
            if all(np.isfinite(v) for _, v in used):
                lhs, rhs = sum(c * Fraction(float(v)) for c, v in used), row[2]
            else:  # an inf / nan the row uses: float64 decides (inf compares, nan never holds)
                lhs = sum(float(c) * float(v) for c, v in used)
                rhs = float(row[2]) if abs(row[2]) < 2 ** 1000 else math.copysign(math.inf, row[2])
            if not (lhs < rhs if self.strict[r] else lhs <= rhs):
                return False
        return True

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




#: names that moved to ``verifier.io`` and stay importable from here (resolved on first use, so
#: that the model does not import its readers)
_MOVED = {"make_spec": "constraints", "parse_vnnlib": "vnnlib", "parse_toml": "toml_spec",
          "load_spec": "spec_file", "SUPPORTED_EXTENSIONS": "spec_file"}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"verifier.io.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
