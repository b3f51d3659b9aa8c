"""The exact arithmetic's limb products (Ozaki split) against ``fractions.Fraction``: the split
reconstructs its input exactly, the products' groups are the exact products (what the flush left out
within its bound), and the rounded product's error bound contains the true error. Matrices span wide
exponent ranges, with zeros, signs, subnormals and float32-valued operands."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from verifier.checker import arith as A


def _matrix(rng, shape, spread):
    """Entries of random sign and magnitude ``2**[-spread, spread]``, some zeros and exact integers."""
    M = rng.standard_normal(shape) * np.exp2(rng.integers(-spread, spread + 1, size=shape))
    M[rng.random(shape) < 0.1] = 0.0
    ints = rng.random(shape) < 0.05
    M[ints] = np.round(M[ints] * 8)
    return M


def _fr(M):
    return [[Fraction(float(v)) for v in row] for row in np.atleast_2d(M)]


def _value(P, K, E, i, j):
    return sum(Fraction(int(P[s][i, j])) * 2 ** (K * s) for s in range(len(P))) * Fraction(2) ** int(E[i, j])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("spread", [0, 20, 120])
def test_split_is_exact(seed, spread):
    rng = np.random.default_rng(seed)
    M = _matrix(rng, (5, 9), spread)
    M[0, 0] = 2.0 ** -1070  # a subnormal next to normal numbers
    M[1] = M[1] * 2.0 ** -1040  # a row of tiny numbers and subnormals, with zeros
    K = 21
    Q, E, R = A.split(M, K)
    for t, q in enumerate(Q):
        assert np.all(q == np.round(q))
        if t < len(Q) - 1:
            assert np.all((q >= 0) & (q < 2 ** K))
        else:
            assert np.all(np.abs(q) <= 2 ** K)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            v = sum(Fraction(int(q[i, j])) * 2 ** (K * t) for t, q in enumerate(Q)) * Fraction(2) ** int(E[i, 0])
            assert v + Fraction(float(R[i, j])) == Fraction(float(M[i, j]))
            assert R[i, j] == 0 or abs(R[i, j]) < 2.0 ** -A.FLUSH * np.abs(M[i]).max()


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("spread", [0, 30, 90])
def test_products_and_rounding_are_exact_within_their_bounds(seed, spread):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 40))
    L = _matrix(rng, (4, n), spread)
    W = _matrix(rng, (n, 6), spread // 3).astype(np.float32).astype(np.float64)
    P, K, E, flush = A.products(L, A.Right(W, rowwise=False))
    F, D = A.rounded(P, K, E)
    Lf, Wf = _fr(L), _fr(W)
    for i in range(4):
        for j in range(6):
            true = sum(Lf[i][k] * Wf[k][j] for k in range(n))
            got = _value(P, K, E, i, j)
            assert abs(true - got) <= Fraction(float(flush[i, j]))
            assert abs(Fraction(float(F[i, j])) - got) <= Fraction(float(D[i, j]))
            assert float(D[i, j]) <= 4 * 2.0 ** -53 * abs(float(F[i, j])) + 2.0 ** -900
    X = _matrix(rng, (4, n), spread)
    P, K, E, flush = A.products(L, A.Right(X, rowwise=True))
    exact = A.exact(P, K, E).fractions()
    Xf = _fr(X)
    for i in range(4):
        true = sum(Lf[i][k] * Xf[i][k] for k in range(n))
        assert abs(true - exact[i]) <= Fraction(float(flush[i, 0]))


def test_exact_linear_form_is_a_lower_bound_of_the_true_form():
    """``Exact`` through affine and activation steps: ``c - (what it subtracted)`` never exceeds the
    exact minimum of the true form over the box, and it loses far less than the fast arithmetic."""
    rng = np.random.default_rng(7)
    n0, n1 = 6, 8
    W = rng.standard_normal((n1, n0)).astype(np.float32).astype(np.float64)
    b = rng.standard_normal(n1).astype(np.float32).astype(np.float64)
    L0 = rng.standard_normal((3, n1))
    lo, hi = -np.ones(n0), np.ones(n0)
    zmag, e = np.ones(n0), np.zeros(n1)
    ex = A.Exact(L0.copy(), np.zeros(3))
    ex.affine(A.Right(np.column_stack([W, b]), False), None, e, zmag)
    fa = A.Fast(L0.copy(), np.zeros(3))
    fa.affine(W, b, e, zmag)
    got_exact, got_fast = ex.minimum_exact(lo, hi), fa.minimum(lo, hi)
    Lf, Wf, bf = _fr(L0), _fr(W), [Fraction(float(v)) for v in b]
    for i in range(3):
        coef = [sum(Lf[i][k] * Wf[k][j] for k in range(n1)) for j in range(n0)]
        true = sum(Lf[i][k] * bf[k] for k in range(n1)) - sum(abs(c) for c in coef)
        assert got_exact[i] <= true
        assert true - got_exact[i] <= Fraction(1, 2 ** 45)
        assert Fraction(float(got_fast[i])) <= true


def test_operands_too_long_for_the_split_are_refused():
    """2**21 terms leave 14-bit limbs: 116 significant bits need 9 of them, more than the sums allow."""
    row = np.full((1, 2 ** 21), 1.0 + 2.0 ** -52)
    row[0, 1] = 2.0 ** -63 * (1.0 + 2.0 ** -52)  # lowest bit 2**-115, above the flush threshold
    with pytest.raises(ValueError):
        A.products(row, A.Right(row, rowwise=True))
