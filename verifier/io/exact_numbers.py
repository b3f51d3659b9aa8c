"""Spec numbers in exact rationals: reading a decimal token exactly, the float64 bound equivalent to
a rational bound on float64 values, and the odd part of denominators (decimal coefficients times
it become dyadic)."""

from __future__ import annotations

import math
import re
from fractions import Fraction

#: the longest number token read exactly (a bound on the work of one exact value)
MAX_NUMBER_CHARS = 4000


def exact_number(text: str) -> Fraction:
    """The exact value of a decimal token; ValueError for a token too long to read exactly."""
    m = re.search(r"[eE]([+-]?\d+)$", text)
    if len(text) > MAX_NUMBER_CHARS or (m and abs(int(m.group(1))) > 100_000):
        raise ValueError(f"number {text[:20]}... has more than {MAX_NUMBER_CHARS} characters or an exponent "
                         "beyond 100000: not supported")
    return Fraction(text)


def odd_denominator(values) -> int:
    """The least common multiple of the odd parts of the values' denominators: times it, decimal
    coefficients such as 0.1 and 0.3 become dyadic (float64 numbers when short enough)."""
    D = 1
    for v in values:
        q = Fraction(v).denominator
        D = math.lcm(D, q >> ((q & -q).bit_length() - 1))
    return D


def inward(value: Fraction, upper: bool, strict: bool) -> float | None:
    """The float64 bound equivalent to ``v <= value`` (``upper``) or ``v >= value`` (``<`` / ``>`` when
    ``strict``) for float64 ``v``: the largest (smallest) float64 satisfying it. None on overflow."""
    try:
        f = float(value)
    except OverflowError:
        return None
    if upper and (Fraction(f) > value or (strict and Fraction(f) == value)):
        f = math.nextafter(f, -math.inf)
    elif not upper and (Fraction(f) < value or (strict and Fraction(f) == value)):
        f = math.nextafter(f, math.inf)
    return f + 0.0 if math.isfinite(f) else None


def exact_input_bound(strict: bool, exact: tuple | None) -> tuple[int, bool, float, bool] | None:
    """The box bound of ``c * x_i <= rhs`` (``<``) known exactly (``exact``: its coefficients and
    rhs as rationals), rounded *inward* to float64: a float64 (so any float32 or float16) input lies
    in the box exactly when it satisfies the spec's own decimal condition, so no row is kept and no
    counterexample can fall between a decimal and its float64 neighbour."""
    if exact is None or len(exact[0]) != 1:
        return None
    ((kind, index), c), = exact[0].items()
    if kind != "x":
        return None
    f = inward(exact[1] / c, c > 0, strict)
    return None if f is None else (index, c > 0, f, False)
