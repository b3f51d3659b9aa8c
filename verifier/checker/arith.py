"""The two arithmetics of the checker: exact dyadic rationals, and float64 with rigorous error slack.

Both implement the same small set of steps of a back-substitution (``Lin``): a linear form
``L @ v + c`` over the variables ``v`` of one layer, which is a *lower bound* of the objective on
the region. ``affine`` rewrites it over the layer's inputs, ``act`` over the pre-activations
(through relaxation lines), ``minimum`` bounds it over the input box.

- ``Exact``: every number is a dyadic rational ``M * 2**e`` (numpy object arrays of Python ints
  sharing one exponent); float32 weights, float64 bounds and lines are dyadic, so nothing rounds.
- ``Fast``: float64 numpy; every rounded operation adds its worst-case error (standard model,
  ``gamma_n``, underflow included) to a slack ``s``, and the bound is ``c - s``.

Only non-negative *upper bounds* (float rounding of the network ``e``, slacks) are computed in
float64 in both modes, with ``up``: a sum of ``n < 2**20`` non-negative float64 terms is within
``n 2**-53`` of the true sum, far inside the factor ``1 + 2**-30``.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

U64 = 2.0 ** -53
TINY = 2.0 ** -1000  # covers underflow in any of the float64 sums below


def up(v):
    """An upper bound of the true value of a non-negative float64 sum computed as ``v``."""
    return np.asarray(v, dtype=np.float64) * (1.0 + 2.0 ** -30) + TINY


def g64(n: int) -> float:
    """``gamma_n`` of float64, rounded up."""
    return float(up(n * U64 / (1.0 - n * U64)))


def down(v):
    """The float64 just below ``v`` (a value computed once with one rounding)."""
    return np.nextafter(v, -np.inf)


class Fast:
    """float64 linear forms with slack: the form's true lower bound is ``value - slack``."""

    exact = False

    def __init__(self, L: np.ndarray, c: np.ndarray, s: np.ndarray | None = None) -> None:
        self.L, self.c = L, c
        self.s = np.zeros(c.shape) if s is None else s

    def _add_c(self, t: np.ndarray, err: np.ndarray) -> None:
        self.c = self.c + t
        self.s = self.s + up(err + U64 * np.abs(self.c))

    def affine(self, W: np.ndarray, b: np.ndarray, e: np.ndarray, zmag: np.ndarray) -> None:
        """``L x = L (W z + b + d)``, ``|d| <= e``, ``|z| <= zmag``: over ``z``."""
        n = W.shape[0]  # the length of the sums in L @ W and L @ b
        aL = np.abs(self.L)
        F = self.L @ W
        err = g64(n) * (aL @ (np.abs(W) @ zmag))  # F differs from L W by at most this, times |z|
        self._add_c(self.L @ b, err + g64(n) * (aL @ np.abs(b)) + aL @ e)
        self.L = F

    def act(self, lo_s, lo_t, up_s, up_t, xmag: np.ndarray, beta: np.ndarray | None = None) -> None:
        """Through an activation: positive coefficients take the lower line, negative ones the upper."""
        pos = self.L >= 0
        S = np.where(pos, lo_s, up_s)
        T = np.where(pos, lo_t, up_t)
        LT = self.L * T
        G = self.L * S
        err = g64(self.L.shape[1] + 1) * np.abs(LT).sum(axis=1) + U64 * (np.abs(G) @ xmag)
        if beta is not None:
            G = G - beta
            err = err + U64 * (np.abs(G) @ xmag)
        self._add_c(LT.sum(axis=1), err * 2.0)
        self.L = G

    def add_input(self, C: np.ndarray, mag: np.ndarray) -> None:
        """Add ``C @ input`` to the form (``|input| <= mag``)."""
        self.L = self.L + C
        self.s = self.s + up(U64 * (np.abs(self.L) @ mag))

    def minimum(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Rigorous lower bound of every row over the box (float64, rounded down)."""
        v = np.where(self.L >= 0, self.L * lo, self.L * hi).sum(axis=1)
        mag = np.abs(self.L) @ np.maximum(np.abs(lo), np.abs(hi))
        total = self.c + v
        slack = self.s + up(g64(self.L.shape[1] + 2) * (mag + np.abs(self.c)) + U64 * np.abs(total))
        return down(total - up(slack))


class Dy:
    """Dyadic rationals ``M * 2**e``: ``M`` an object array of Python ints, one exponent."""

    __slots__ = ("M", "e")

    def __init__(self, M: np.ndarray, e: int) -> None:
        self.M, self.e = M, int(e)

    @staticmethod
    def of(a) -> Dy:
        """Exactly the float64 values of ``a``."""
        a = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError("non-finite number in exact arithmetic")
        m, ex = np.frexp(a)
        mi = (m * 2.0 ** 53).astype(np.int64)
        ex = ex.astype(np.int64) - 53
        nz = mi != 0
        E = int(ex[nz].min()) if nz.any() else 0
        shift = np.where(nz, ex - E, 0).astype(object)
        return Dy(np.left_shift(mi.astype(object), shift), E)

    def at(self, e: int) -> np.ndarray:
        """``M`` rescaled to exponent ``e <= self.e``."""
        return self.M if e == self.e else self.M * (1 << (self.e - e))

    def __add__(self, o: Dy) -> Dy:
        e = min(self.e, o.e)
        return Dy(self.at(e) + o.at(e), e)

    def __sub__(self, o: Dy) -> Dy:
        e = min(self.e, o.e)
        return Dy(self.at(e) - o.at(e), e)

    def __mul__(self, o: Dy) -> Dy:
        return Dy(self.M * o.M, self.e + o.e)

    def __matmul__(self, o: Dy) -> Dy:
        return Dy(self.M @ o.M, self.e + o.e)

    @staticmethod
    def of_fractions(values) -> Dy:
        """Exactly these dyadic rationals (denominators powers of two)."""
        vals = [Fraction(v) for v in values]
        k = [v.denominator.bit_length() - 1 for v in vals]
        if any(v.denominator != 1 << kk for v, kk in zip(vals, k)):
            raise ValueError("not a dyadic rational")
        top = max(k, default=0)
        return Dy(np.array([v.numerator << (top - kk) for v, kk in zip(vals, k)], dtype=object), -top)

    def fractions(self) -> list[Fraction]:
        scale = Fraction(2) ** self.e
        return [Fraction(int(v)) * scale for v in np.ravel(self.M)]


def where(mask: np.ndarray, a: Dy, b: Dy) -> Dy:
    e = min(a.e, b.e)
    return Dy(np.where(mask, a.at(e), b.at(e)), e)


def floor64(values: list[Fraction]) -> np.ndarray:
    """The largest float64 at or below each value."""
    out = np.array([float(v) for v in values])
    for i, v in enumerate(values):
        if Fraction(float(out[i])) > v:
            out[i] = np.nextafter(out[i], -np.inf)
    return out


class Exact:
    """Exact linear forms: ``L`` and ``c`` dyadic, nothing rounds."""

    exact = True

    def __init__(self, L, c: np.ndarray, s: np.ndarray | None = None) -> None:
        self.L = L if isinstance(L, Dy) else Dy.of(L)
        self.c = Dy.of(c)
        if s is not None and np.any(s):
            self.c = self.c - Dy.of(up(s))

    def add_input(self, C: Dy, mag: np.ndarray) -> None:
        self.L = self.L + C

    def affine(self, W: Dy, b: Dy, e: np.ndarray, zmag: np.ndarray) -> None:
        E = Dy.of(e)
        err = Dy(np.abs(self.L.M) @ E.M, self.L.e + E.e)  # the float network's rounding d, at its worst
        self.c = self.c + self.L @ b - err
        self._rounded(self.L @ W, zmag)

    def _rounded(self, L: Dy, zmag: np.ndarray) -> None:
        """Keep ``L`` rounded to float64 (so that its integers stay short), and subtract what that
        rounding can change: ``|L - fl(L)| <= 2**-53 |fl(L)|`` (int to float rounds to nearest),
        times the variables' magnitude. Every sum and product stays exact."""
        Lf = np.ldexp(L.M.astype(np.float64), L.e)
        self.c = self.c - Dy.of(up(U64 * (np.abs(Lf) @ zmag)))
        self.L = Dy.of(Lf)

    def act(self, lo_s, lo_t, up_s, up_t, xmag: np.ndarray, beta: np.ndarray | None = None) -> None:
        pos = self.L.M >= 0
        shape = self.L.M.shape
        S = where(pos, Dy.of(np.broadcast_to(lo_s, shape)), Dy.of(np.broadcast_to(up_s, shape)))
        T = where(pos, Dy.of(np.broadcast_to(lo_t, shape)), Dy.of(np.broadcast_to(up_t, shape)))
        LT = self.L * T
        self.c = self.c + Dy(LT.M.sum(axis=1), LT.e)
        self.L = self.L * S
        if beta is not None:
            self.L = self.L - Dy.of(np.broadcast_to(beta, shape))

    def minimum_exact(self, lo: np.ndarray, hi: np.ndarray) -> list[Fraction]:
        shape = self.L.M.shape
        pos = self.L.M >= 0
        X = where(pos, Dy.of(np.broadcast_to(lo, shape)), Dy.of(np.broadcast_to(hi, shape)))
        P = self.L * X
        return (self.c + Dy(P.M.sum(axis=1), P.e)).fractions()

    def minimum(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return floor64(self.minimum_exact(lo, hi))
