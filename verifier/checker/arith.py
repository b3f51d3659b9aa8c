"""The two arithmetics of the checker: exact dyadic rationals, and float64 with rigorous error slack.

Both implement the same small set of steps of a back-substitution (``Lin``): a linear form
``L @ v + c`` over the variables ``v`` of one layer, which is a *lower bound* of the objective on
the region. ``affine`` rewrites it over the layer's inputs, ``act`` over the pre-activations
(through relaxation lines), ``minimum`` bounds it over the input box.

- ``Exact``: the constant ``c`` is an exact dyadic rational (Python ints); every product and sum
  that enters it is exact (Ozaki's split into integer limbs whose float64 products and BLAS sums
  cannot round). The multipliers ``L`` are kept in float64: each time they round, the largest change
  that rounding can make (bounded exactly: TwoSum, or ``u |L|`` for one rounding) is subtracted.
- ``Fast``: float64 numpy; every rounded operation adds its worst-case error (standard model,
  ``gamma_n``, underflow included) to a slack ``s``, and the bound is ``c - s``.

Only non-negative *upper bounds* (float rounding of the network ``e``, slacks) are computed in
float64 in both modes, with ``up``: a sum of ``n < 2**20`` non-negative float64 terms is within
``n 2**-53`` of the true sum, far inside the factor ``1 + 2**-30``.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

U64 = 2.0 ** -53
TINY = 2.0 ** -1000  # covers underflow in any of the float64 sums below


def up(v):
    """An upper bound of the true value of a non-negative float64 sum computed as ``v``."""
    return np.asarray(v, dtype=np.float64) * (1.0 + 2.0 ** -30) + TINY


@lru_cache(maxsize=4096)
def g64(n: int) -> float:
    """``gamma_n`` of float64, rounded up (a function of ``n`` alone: cached)."""
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
    """Exact dyadic rationals ``M * 2**e``: ``M`` an object array of Python ints, one exponent."""

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
        return Dy.scaled((m * 2.0 ** 53).astype(np.int64).astype(object), ex.astype(np.int64) - 53)

    @staticmethod
    def scaled(M: np.ndarray, E: np.ndarray) -> Dy:
        """``M * 2**E`` with a per-entry exponent ``E``, brought to one exponent."""
        e = int(E.min(initial=0))
        return Dy(np.left_shift(M, (E - e).astype(object)), e)

    def __add__(self, o: Dy) -> Dy:
        e = min(self.e, o.e)
        return Dy(self.M * (1 << (self.e - e)) + o.M * (1 << (o.e - e)), e)

    def __sub__(self, o: Dy) -> Dy:
        return self + Dy(-o.M, o.e)

    def fractions(self) -> list[Fraction]:
        scale = Fraction(2) ** self.e
        return [Fraction(int(v)) * scale for v in np.ravel(self.M)]


def floor64(values: list[Fraction]) -> np.ndarray:
    """The largest float64 at or below each value."""
    out = np.array([float(v) for v in values])
    for i, v in enumerate(values):
        if Fraction(float(out[i])) > v:
            out[i] = np.nextafter(out[i], -np.inf)
    return out


FLUSH = 64  # entries below 2**-FLUSH of their row's largest are left out of the split, and bounded


def split(A: np.ndarray, K: int):
    """Ozaki's error-free split of the rows of ``A``: ``A = sum_t Q[t] 2**(E + K t) + R`` exactly, with
    ``Q[t]`` integers in ``[0, 2**K)`` (the top one in ``[-2**K, 2**K]``), ``E`` per row, and ``R`` the
    entries below ``2**-FLUSH`` of their row's largest. Every step (ldexp, floor, a difference whose
    result is representable) is exact in float64."""
    a = np.abs(A)
    top = np.frexp(a.max(axis=1, keepdims=True, initial=0.0))[1]  # |entry| < 2**top
    keep = (a >= np.ldexp(1.0, top - FLUSH)) & (a > 0)
    m, ex = np.frexp(np.where(keep, a, 0.0))
    mi = (m * 2.0 ** 53).astype(np.int64)
    low = ex - 53 + np.log2(np.where(keep, mi & -mi, 1)).astype(np.int64)  # exponent of the lowest set bit
    E = np.where(keep, low, top).min(axis=1, keepdims=True, initial=1 << 20)
    S = np.ldexp(np.where(keep, A, 0.0), -E)  # integers, |S| < 2**(top - E)
    Q = []
    for _ in range(-(-int((top - E).max(initial=0) + 1) // K) - 1):
        hi = np.floor(np.ldexp(S, -K))
        Q.append(S - np.ldexp(hi, K))
        S = hi
    return Q + [S], E, np.where(keep, 0.0, A)


class Right:
    """The right operand of exact products, split once: the columns of ``B`` (a matrix product) or
    its rows (``rowwise``: the row sums of ``A * B``)."""

    def __init__(self, B: np.ndarray, rowwise: bool) -> None:
        n = B.shape[1] if rowwise else B.shape[0]
        self.K = K = (50 - (n - 1).bit_length()) // 2  # 8 n 2**(2K) <= 2**53
        self.B, self.rowwise = B, rowwise
        Q, E, R = split(B if rowwise else B.T, K)
        self.Q, self.E, self.R = (Q, E, R) if rowwise else ([q.T for q in Q], E.T, R.T)
        self.absB, self.absR = np.abs(B), np.abs(self.R)

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(axis=1, keepdims=True) if self.rowwise else a @ b


def products(A: np.ndarray, B: Right):
    """``A @ B`` (or the row sums of ``A * B``) exactly, as groups ``P[s]`` of integers: the value is
    ``2**E sum_s P[s] 2**(K s)``, plus at most ``flush`` for what the splits left out. Limb products
    and their sums stay below ``2**53`` (``K``), so every BLAS sum is exact."""
    QA, EA, RA = split(A, B.K)
    if min(len(QA), len(B.Q)) > 8 or B.K < 1:
        raise ValueError("exact products: operands too long for the limb split")
    P = [0.0] * (len(QA) + len(B.Q) - 1)
    for t, qa in enumerate(QA):
        for u, qb in enumerate(B.Q):
            P[t + u] = P[t + u] + B.mul(qa, qb)
    flush = up(B.mul(np.abs(RA), B.absB) + B.mul(np.abs(A - RA), B.absR))
    return P, B.K, EA + B.E, flush


def rounded(P: list, K: int, E: np.ndarray):
    """``fl(2**E sum_s P[s] 2**(K s))`` and a bound on its error: TwoSum from the top term down
    gives every addition's error exactly, and only their sum is rounded (by at most gamma)."""
    acc, err, eabs = np.ldexp(P[-1], K * (len(P) - 1)), 0.0, 0.0
    for s in range(len(P) - 2, -1, -1):
        t = np.ldexp(P[s], K * s)
        x = acc + t
        z = x - acc
        e = (acc - (x - z)) + (t - z)
        acc, err, eabs = x, err + e, eabs + np.abs(e)
    F = np.ldexp(acc, E)
    if not np.all(np.isfinite(F)):
        raise ValueError("non-finite number in exact arithmetic")
    return F, up(np.ldexp(up(np.abs(err) + g64(len(P)) * eabs), E))


def exact(P: list, K: int, E: np.ndarray) -> Dy:
    """``2**E sum_s P[s] 2**(K s)`` (one column) as exact dyadic rationals."""
    M = sum((np.asarray(p, dtype=np.float64).astype(np.int64).astype(object) << (K * s))
            for s, p in enumerate(P))
    return Dy.scaled(M[:, 0], E[:, 0])


class Exact:
    """Exact linear forms: the constant ``c`` is an exact dyadic rational, the multipliers ``L`` are
    float64; every step that rounds ``L`` subtracts what the rounding can change, exactly bounded."""

    exact = True

    def __init__(self, L, c: np.ndarray, s: np.ndarray | None = None) -> None:
        self.L = np.asarray(L, dtype=np.float64)
        self.c = Dy.of(c)
        if s is not None and np.any(s):
            self.c = self.c - Dy.of(up(s))

    def _dot(self, X: np.ndarray) -> None:
        """``c += row sums of L * X``, exactly (less the flushed part's bound)."""
        P, K, E, flush = products(self.L, Right(X, rowwise=True))
        self.c = self.c + exact(P, K, E) - Dy.of(flush[:, 0])

    def _keep(self, L: np.ndarray, mag: np.ndarray, err: np.ndarray | None = None) -> None:
        """Take ``L``, the float64 rounding of the true multipliers, off by at most ``err`` (default:
        ``u |L| + eta`` per entry, round to nearest), times the variables' magnitude ``mag``."""
        if err is None:
            err = U64 * np.abs(L) + 2.0 ** -1074
        self.c = self.c - Dy.of(up(err @ mag))
        self.L = L

    def add_input(self, C: np.ndarray, mag: np.ndarray) -> None:
        self._keep(self.L + C, mag)

    def affine(self, Wb: Right, b: None, e: np.ndarray, zmag: np.ndarray) -> None:
        """``L x = L (W z + b + d)``, ``|d| <= e``, ``Wb`` the split of ``[W | b]``: ``c += L b - |L| e``
        exactly, ``L`` becomes ``fl(L W)``."""
        P, K, E, flush = products(self.L, Wb)
        self.c = self.c + exact([p[:, -1:] for p in P], K, E[:, -1:]) - Dy.of(up(flush[:, -1] + np.abs(self.L) @ e))
        F, D = rounded([p[:, :-1] for p in P], K, E[:, :-1])
        self._keep(F, zmag, D + flush[:, :-1])

    def act(self, lo_s, lo_t, up_s, up_t, xmag: np.ndarray, beta: np.ndarray | None = None) -> None:
        pos = self.L >= 0
        self._dot(np.where(pos, lo_t, up_t))
        G = self.L * np.where(pos, lo_s, up_s)
        if beta is not None:
            self._keep(G, xmag)
            G = G - beta
        self._keep(G, xmag)

    def minimum_exact(self, lo: np.ndarray, hi: np.ndarray) -> list[Fraction]:
        self._dot(np.where(self.L >= 0, lo, hi))
        return self.c.fractions()

    def minimum(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return floor64(self.minimum_exact(lo, hi))
