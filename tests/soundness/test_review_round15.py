"""Adversarial review, round 15: the checker's Ozaki-split exact arithmetic (0255bed) and the inward
rounding of VNN-LIB / constraint-string input bounds (a3099d0).

The exact arithmetic held up: limb products, their rounding bounds and whole back-substitutions agree
with ``fractions.Fraction`` (never above, within ~1e-9 relative) on matrices and networks with
1e-300 next to 1e30, subnormals, zero rows, entries at the flush threshold, negative powers of two,
long rows, and non-finite operands are refused. Those are plain tests.

The findings were in the spec readers (all fixed but R15-8, a strict xfail; the tests say what was wrong): *holds* for violated properties when a
bound or row constant / coefficient is folded in float64 (strict input bounds, which the change keeps
on the old path, and every row); *violated* with counterexamples outside the decimal box where the new
exact path is skipped (exponents beyond +-400, TOML ``[[unsafe]]`` input bounds); a crash on decimals
with more than 4300 digits (new: every number token now goes through ``Fraction``).

Network (from ``test_review_certificates``): ``y0 = relu(x0) + relu(x1)``, ``y1 = relu(x1) +
relu(x0 - x1)``: with ``x1 = 0`` (or ``x1 = -1e10``), ``y0 = x0`` and ``y1 = x0`` (``y1 = 1e10``)
exactly in float32; with ``x0 = 0``, ``y1 = x1``.
"""

from __future__ import annotations

from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest

from tests.soundness.test_review_certificates import _HDR, _accepted, _certify, _ort
from verifier.checker import arith as A
from verifier.checker import bounds as B
from verifier.checker import check_certificate
from verifier.checker import spec as CS
from verifier.checker.model import Layer, Model
from verifier.errors import SpecError
from verifier.io.constraints import make_spec
from verifier.io.toml_spec import parse_toml
from verifier.io.vnnlib import parse_vnnlib

V = float(np.float32(0.1))  # 0.100000001490116119384765625 exactly
P03 = float(np.float32(0.3))
P03_BELOW = float(np.nextafter(np.float32(0.3), np.float32(0)))


def _dec(fr: Fraction) -> str:
    getcontext().prec = 80
    return format(Decimal(fr.numerator) / Decimal(fr.denominator), "f")


V_UP = _dec(Fraction(V) + Fraction(1, 10 ** 20))  # its nearest float64 is V, and it is above V
assert float(V_UP) == V and Fraction(V_UP) > Fraction(V)

_FIX_X0 = "(assert (>= X_0 0.0))\n(assert (<= X_0 0.0))\n"
_FIX_X1 = "(assert (>= X_1 0.0))\n(assert (<= X_1 0.0))\n"


def _inside(x, lows, highs) -> bool:
    """``x`` in the spec's own (decimal) box, bounds as exact rationals (None: unbounded)."""
    return all((lo is None or Fraction(float(v)) >= lo) and (hi is None or Fraction(float(v)) <= hi)
               for v, lo, hi in zip(x, lows, highs))


# =============================================================================================
# Findings: verify says *holds* on violated properties (float64-folded spec constants)
# =============================================================================================

# R15: fixed (was a strict xfail of the review)
def test_strict_input_bound_with_folded_constant_is_not_outward(tmp_path):
    text = _HDR + _FIX_X1 + f"(assert (>= X_0 0.0))\n(assert (< (+ X_0 1e10) (+ {P03!r} 1e10)))\n"
    text += "(assert (>= Y_1 0.2999995))\n"
    # the truth: x = (prev32(0.3), 0) lies in the decimal region (x0 + 1e10 < P + 1e10) and is unsafe
    x = np.array([P03_BELOW, 0.0])
    assert Fraction(P03_BELOW) + 10 ** 10 < Fraction(P03) + 10 ** 10
    r, cp, mp, sp = _certify(tmp_path, text, "vnnlib")
    assert Fraction(float(_ort(mp, x)[1])) >= Fraction("0.2999995")
    assert r.status != "holds"
    if r.status == "violated":  # a genuine counterexample: its certificate replays in the checker
        assert cp is not None and _accepted(mp, sp, cp)[0]


@pytest.mark.parametrize("text,ext", [
    (_HDR + _FIX_X1 + f"(assert (>= X_0 0.0))\n(assert (<= X_0 {V!r}))\n(assert (>= (+ Y_1 1e10) (+ {V!r} 1e10)))\n",
     "vnnlib"),
    (f"[input]\nlower = [0.0, 0.0]\nupper = [{V!r}, 0.0]\n[[unsafe]]\nall = [\"y1 + 1e10 >= {V!r} + 1e10\"]\n", "toml"),
], ids=["vnnlib", "toml"])
# R15: fixed (was a strict xfail of the review)
def test_output_row_with_folded_constant(tmp_path, text, ext):
    r, cp, mp, sp = _certify(tmp_path, text, ext)
    assert _ort(mp, [V, 0.0])[1] == V  # y1 = V >= V: unsafe, x0 = V in the box
    assert r.status != "holds"
    if r.status == "violated":
        assert cp is not None and _accepted(mp, sp, cp)[0]


_BIG = "(assert (>= X_0 0.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 -1e10))\n(assert (<= X_1 -1e10))\n"


@pytest.mark.parametrize("text,ext", [
    # input row x0 + (0.3 - 3*0.1) x1 <= V, exactly x0 <= V; float64: x0 - 5.55e-17 x1 <= V, i.e. x0 <= V - 5.55e-7
    (_HDR + _BIG + f"(assert (<= (+ X_0 (* 0.3 X_1) (* (* -3 0.1) X_1)) {V!r}))\n(assert (>= Y_0 {V!r}))\n", "vnnlib"),
    # output row y0 + (0.3 - 3*0.1) y1 >= V with y1 = 1e10
    (_HDR + _BIG + f"(assert (>= (+ Y_0 (* 0.3 Y_1) (* (* -3 0.1) Y_1)) {V!r}))\n(assert (<= X_0 {V!r}))\n", "vnnlib"),
], ids=["vnnlib-input-row", "vnnlib-output-row"])
# R15: fixed (was a strict xfail of the review)
def test_row_with_cancelling_coefficients(tmp_path, text, ext):
    """(The TOML variant is gone: there 0.3 and 0.1 are binary64 numbers, 0.3 - 3 * 0.1 is -2.8e-17
    exactly, and the property holds as written.)"""
    r, cp, mp, sp = _certify(tmp_path, text, ext)
    y = _ort(mp, [V, -1e10])
    assert y[0] == V  # exactly: y0 + 0 * y1 = V >= V, x0 = V <= V: unsafe
    assert r.status != "holds"
    if r.status == "violated":
        assert cp is not None and _accepted(mp, sp, cp)[0]


# =============================================================================================
# Findings: verify says *violated* at a point outside the spec's decimal box
# =============================================================================================

@pytest.mark.parametrize("text,lows,highs", [
    (_HDR + _FIX_X0 + "(assert (>= X_1 1e-401))\n(assert (<= X_1 1.0))\n(assert (<= Y_1 0.0))\n",
     [0, Fraction(1, 10 ** 401)], [0, 1]),
    (_HDR + _FIX_X0 + f"(assert (>= X_1 0.0))\n(assert (<= X_1 (+ {V!r} -1e-500)))\n(assert (>= Y_1 {V!r}))\n",
     [0, 0], [0, Fraction(V) - Fraction(1, 10 ** 500)]),
], ids=["1e-401", "V-1e-500"])
# R15: fixed (was a strict xfail of the review)
def test_exponent_beyond_400_bound_is_not_inward(tmp_path, text, lows, highs):
    r, _cp, _mp, _sp = _certify(tmp_path, text, "vnnlib")
    if r.status == "violated":
        assert _inside(r.counterexample.input, lows, highs)


@pytest.mark.parametrize("bound,unsafe_y,lows", [
    (f"x1 >= {V_UP}", f"y1 <= {V!r}", [0, Fraction(float(V_UP))]),
    ("x1 >= 1e-401", "y1 <= 0", [0, Fraction(0)]),
], ids=["V_UP", "1e-401"])
# R15-5, settled: numbers in TOML constraint strings are binary64 values, as TOML's own numbers (the
# review read them as exact decimals): "x1 >= V_UP" is x1 >= V, "x1 >= 1e-401" is x1 >= 0; the
# verifier and the checker read them alike, so a violated certificate replays.
def test_toml_unsafe_block_input_bound_is_read_as_binary64(tmp_path, bound, unsafe_y, lows):
    text = f'[input]\nlower = [0.0, 0.0]\nupper = [0.0, 1.0]\n[[unsafe]]\nall = ["{bound}", "{unsafe_y}"]\n'
    r, cp, mp, sp = _certify(tmp_path, text, "toml")
    if r.status == "violated":
        assert _inside(r.counterexample.input, lows, [None, None])
        assert cp is not None and _accepted(mp, sp, cp)[0]


# =============================================================================================
# Findings: crashes / wrong acceptance in the readers
# =============================================================================================

_LONG = "0." + "0" * 5000 + "1"


@pytest.mark.parametrize("make", [
    lambda: parse_vnnlib("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n"
                         f"(assert (<= X_0 1))\n(assert (>= Y_0 {_LONG}))\n"),
    lambda: make_spec([0.0], [1.0], [f"y0 >= {_LONG}"]),
    lambda: parse_toml(f'[input]\nlower = [0.0]\nupper = [1.0]\n[[unsafe]]\nall = ["x0 <= {_LONG}"]\n'),
], ids=["vnnlib", "make_spec", "toml"])
# R15-6: fixed (was a strict xfail of the review)
def test_decimal_with_more_than_4300_digits(make):
    try:
        make()
    except SpecError:
        pass


# R15-7: fixed (was a strict xfail of the review)
def test_division_by_an_exactly_zero_constant_is_refused():
    text = ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
            "(assert (<= (/ X_0 (- (* 3 0.1) 0.3)) 1))\n(assert (>= Y_0 1))\n")
    with pytest.raises(SpecError):
        parse_vnnlib(text)


# =============================================================================================
# What holds up: inward rounding of non-strict single-input atoms (verifier and checker agree)
# =============================================================================================

def _inward(v: Fraction, upper: bool) -> float:
    f = float(v)
    if upper and Fraction(f) > v:
        f = float(np.nextafter(f, -np.inf))
    if not upper and Fraction(f) < v:
        f = float(np.nextafter(f, np.inf))
    return f + 0.0


@pytest.mark.parametrize("lo_atom,hi_atom,lo,hi", [
    ("(>= (* 3 X_0) 1)", "(<= (* X_0 3) 2)", Fraction(1, 3), Fraction(2, 3)),
    ("(>= (/ X_0 3) 0.1)", "(<= (/ X_0 3) 0.2)", Fraction(3, 10), Fraction(6, 10)),
    ("(<= (- X_0) -0.1)", "(>= (- X_0) -0.7)", Fraction(1, 10), Fraction(7, 10)),
    ("(>= (+ X_0 0.1 -0.1) 0.1)", "(<= (+ X_0 0.1) (+ 0.3 0.1))", Fraction(1, 10), Fraction(3, 10)),
    ("(>= (- 1 X_0) 0.25)", "(<= (- 1 X_0) 0.9)", Fraction(1, 10), Fraction(3, 4)),
    ("(>= X_0 0.1000000014901161193847656249)", "(<= X_0 0.1000000014901161193847656251)",
     Fraction("0.1000000014901161193847656249"), Fraction("0.1000000014901161193847656251")),
    ("(>= X_0 0.0)", f"(<= X_0 {V_UP})", Fraction(0), Fraction(V_UP)),
    ("(>= X_0 1e-400)", "(<= X_0 1e-300)", Fraction(1, 10 ** 400), Fraction(1, 10 ** 300)),
    ("(>= (* 1e-320 X_0) 1e-321)", "(<= (* 1e-320 X_0) 1e-320)", Fraction(1, 10), Fraction(1)),
    ("(>= X_0 -0.0)", "(<= X_0 0.12345678901234567890123456789)", Fraction(0),
     Fraction("0.12345678901234567890123456789")),
])
def test_nonstrict_bounds_are_rounded_inward_like_the_checker(tmp_path, lo_atom, hi_atom, lo, hi):
    text = f"(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert {lo_atom})\n(assert {hi_atom})\n"
    text += "(assert (>= Y_0 1))\n"
    spec = parse_vnnlib(text)
    (case,) = spec.cases
    assert case.lower[0] == _inward(lo, False) and case.upper[0] == _inward(hi, True)
    assert not case.unsafe[0].ax.any()  # no input row left
    if "/" not in text:  # the checker's reader has no '/'
        p = tmp_path / "s.vnnlib"
        p.write_text(text)
        (cc,) = CS.load(str(p), 1)
        assert (cc.lower, cc.upper) == ([case.lower[0]], [case.upper[0]])


def test_chained_and_equality_bounds():
    hdr = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
    (case,) = parse_vnnlib(hdr + "(assert (<= 0 X_0 0.1))\n(assert (>= Y_0 1))\n").cases
    assert case.upper[0] == _inward(Fraction(1, 10), True) < 0.1
    (case,) = parse_vnnlib(hdr + "(assert (= X_0 0.5))\n(assert (>= Y_0 1))\n").cases
    assert case.lower[0] == case.upper[0] == 0.5
    with pytest.raises(SpecError, match="rounded inward"):  # no float64 equals 0.1
        parse_vnnlib(hdr + "(assert (= X_0 0.1))\n(assert (>= Y_0 1))\n")
    with pytest.raises(SpecError, match="rounded inward"):  # no float64 in [1e-400, 1e-399]
        parse_vnnlib(hdr + "(assert (>= X_0 1e-400))\n(assert (<= X_0 1e-399))\n(assert (>= Y_0 1))\n")


def test_knife_edge_decimal_lower_bound_is_not_violated(tmp_path):
    """x1 >= V_UP (just above float32(0.1), whose float64 is float32(0.1)): y1 = x1 <= V never holds."""
    text = _HDR + _FIX_X0 + f"(assert (>= X_1 {V_UP}))\n(assert (<= X_1 1.0))\n(assert (<= Y_1 {V!r}))\n"
    r, _cp, _mp, _sp = _certify(tmp_path, text, "vnnlib")
    assert r.status != "violated"


def test_true_property_certificate_accepted_in_exact_mode(tmp_path):
    text = _HDR + "(assert (>= X_0 0.0))\n(assert (<= (* 3 X_0) 1))\n(assert (>= X_1 0.1))\n(assert (<= X_1 0.7))\n"
    text += "(assert (>= Y_0 1.1))\n"
    r, cp, mp, sp = _certify(tmp_path, text, "vnnlib")
    assert r.status == "holds" and cp is not None
    for mode in ("fast", "exact"):
        res = check_certificate(mp, sp, str(cp), mode=mode)
        assert res.valid, res.reason


# =============================================================================================
# What holds up: the exact arithmetic against fractions.Fraction
# =============================================================================================

def _nasty(rng, shape, kind):
    M = rng.standard_normal(shape)
    if kind == 0:  # the whole float64 range
        M *= np.exp2(rng.integers(-1074, 1000, size=shape).astype(float))
    elif kind == 1:  # 1e-300 next to 1e30
        M = np.where(rng.random(shape) < .5, 1e-300, 1e30) * np.sign(M)
    elif kind == 2:  # at the flush threshold of the row's maximum 1
        M = np.ones(shape)
        M[:, 1:] = np.exp2(-64.0 + rng.integers(-2, 3, size=(shape[0], shape[1] - 1))) * \
            (1 + rng.integers(0, 2, size=(shape[0], shape[1] - 1)) * 2.0 ** -52)
        M *= np.where(rng.random(shape) < .5, -1, 1)
    elif kind == 3:  # subnormals only
        M = rng.integers(-2 ** 20, 2 ** 20, size=shape) * 2.0 ** -1074
    elif kind == 4:  # negative powers of two (negative top limbs)
        M = -np.exp2(rng.integers(-60, 60, size=shape).astype(float))
    else:  # full 53-bit mantissas over 64 binades
        M = (1 + rng.random(shape)) * np.exp2(rng.integers(-63, 1, size=shape).astype(float)) * np.sign(M)
    M[rng.random(shape) < 0.1] = 0.0
    if rng.random() < .2:
        M[rng.integers(shape[0])] = 0.0
    return M


def _fr(M):
    return [[Fraction(float(v)) for v in row] for row in np.atleast_2d(M)]


@pytest.mark.parametrize("seed", range(12))
def test_limb_products_bracket_the_true_products(seed):
    rng = np.random.default_rng(1500 + seed)
    n = int(rng.choice([1, 2, 7, 33, 300]))
    L, W = _nasty(rng, (2, n), seed % 6), _nasty(rng, (n, 3), (seed // 2) % 6)
    with np.errstate(all="ignore"):
        P, K, E, flush = A.products(L, A.Right(W, rowwise=False))
        try:
            F, D = A.rounded(P, K, E)
        except ValueError:  # overflow to inf: refused
            return
    if not (np.all(np.isfinite(flush)) and np.all(np.isfinite(D))):
        return  # Dy.of refuses these later
    Lf, Wf = _fr(L), _fr(W)
    for i in range(2):
        for j in range(3):
            true = sum(Lf[i][k] * Wf[k][j] for k in range(n))
            got = sum(Fraction(int(P[s][i, j])) * 2 ** (K * s) for s in range(len(P))) * Fraction(2) ** int(E[i, j])
            assert abs(true - got) <= Fraction(float(flush[i, j]))
            assert abs(Fraction(float(F[i, j])) - true) <= Fraction(float(D[i, j])) + Fraction(float(flush[i, j]))


@pytest.mark.parametrize("W", [np.array([[np.inf], [1.0]]), np.array([[np.nan], [1.0]]), np.array([[1e308], [1e308]])])
def test_non_finite_operands_and_overflow_are_refused(W):
    ex = A.Exact(np.array([[1.0, 1.0]]), np.zeros(1))
    with np.errstate(all="ignore"), pytest.raises(ValueError):
        ex.affine(A.Right(np.column_stack([W, np.zeros(2)]), False), None, np.zeros(2), np.ones(1))


def _fa(M):
    return np.vectorize(lambda v: Fraction(float(v)), otypes=[object])(np.asarray(M, dtype=np.float64))


class _FracLin:
    """The same back-substitution with exact rational multipliers (the pre-0255bed exact mode)."""

    exact = True

    def __init__(self, L, c, s=None):
        self.L, self.c = _fa(L), _fa(c)
        if s is not None and np.any(s):
            self.c = self.c - _fa(A.up(s))

    def affine(self, Wb, b, e, zmag):
        Bf = _fa(Wb.B)
        self.c = self.c + self.L @ Bf[:, -1] - np.abs(self.L) @ _fa(e)
        self.L = self.L @ Bf[:, :-1]

    def act(self, lo_s, lo_t, up_s, up_t, xmag, beta=None):
        pos = self.L >= 0
        S, T = np.where(pos, _fa(lo_s), _fa(up_s)), np.where(pos, _fa(lo_t), _fa(up_t))
        self.c = self.c + (self.L * T).sum(axis=1)
        self.L = self.L * S
        if beta is not None:
            self.L = self.L - _fa(beta)

    def add_input(self, C, mag):
        self.L = self.L + _fa(C)

    def minimum_exact(self, lo, hi):
        self.c = self.c + (self.L * np.where(self.L >= 0, _fa(lo), _fa(hi))).sum(axis=1)
        return list(self.c)


@pytest.mark.parametrize("seed", range(20))
def test_exact_backsubstitution_never_exceeds_the_rational_one(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(v) for v in rng.integers(1, 6, size=int(rng.integers(2, 5)))]
    spread = int(rng.choice([0, 10, 40, 100]))
    layers = []
    for k in range(len(sizes) - 1):
        W = rng.standard_normal((sizes[k + 1], sizes[k])) * np.exp2(rng.integers(-spread, spread // 4 + 1, size=(sizes[k + 1], sizes[k])))
        W[rng.random(W.shape) < .2] = 0
        b = rng.standard_normal(sizes[k + 1]) * np.exp2(rng.integers(-spread, 2, size=sizes[k + 1]))
        W, b = W.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
        act = None if k == len(sizes) - 2 else str(rng.choice(["relu", "leaky"]))
        layers.append(Layer(W, b, act, float(np.float32(0.1)) if act == "leaky" else 0.0))
    model = Model(layers, sizes[0], sizes[-1], [], "", "x")
    mid = rng.standard_normal(sizes[0]).astype(np.float32).astype(np.float64)
    rad = np.abs(rng.standard_normal(sizes[0])).astype(np.float32).astype(np.float64) * 2.0 ** float(rng.integers(-30, 2))
    lo, hi = mid - rad, mid + rad
    net = B.Net(model, exact=True)
    try:
        bnds = B.node_bounds(net, lo, hi, {})
    except B.CannotBound:
        return
    K, m = len(layers) - 1, 3
    L0 = rng.standard_normal((m, sizes[-1])) * np.exp2(rng.integers(-spread, spread // 4 + 1, size=(m, sizes[-1])))
    alphas = {j: rng.random(sizes[j + 1]) for j in range(K)} if seed % 2 else None
    betas = {j: np.abs(rng.standard_normal(sizes[j + 1])) for j in range(K)} if seed % 3 == 0 else None
    C = rng.standard_normal((m, sizes[0]))
    args = (K, L0, np.zeros(m), np.zeros(m), (lo, hi), (bnds[0], bnds[1]), bnds[2], alphas, betas)
    ex = B.backsub(net, *args)
    ex.add_input(C, np.maximum(np.abs(lo), np.abs(hi)))
    got = ex.minimum_exact(lo, hi)
    net.Lin = _FracLin
    fr = B.backsub(net, *args)
    fr.add_input(C, None)
    ref = fr.minimum_exact(lo, hi)
    for g, t in zip(got, ref):
        assert g <= t
        assert t - g <= Fraction(1, 10 ** 6) * (abs(t) + 1)


# =============================================================================================
# Completeness: a certificate of a true property that both modes reject
# =============================================================================================

_BOX_T2 = "[input]\nlower = [0.0, 0.0]\nupper = [1.0, 1.0]\n"


def test_row_with_tiny_coefficient_is_accepted_in_both_modes(tmp_path):
    """y0 - y1 = min(x0, x1) <= 1 < 1.5 (interval arithmetic alone gives 2): back-substitution with a
    1e-300 coefficient next to 1 (main's exact mode refused this with an OverflowError)."""
    r, cp, mp, sp = _certify(tmp_path, _BOX_T2 + '[[unsafe]]\nall = ["y0 - y1 + 1e-300*y1 >= 1.5"]\n', "toml")
    assert r.status == "holds" and cp is not None
    for mode in ("fast", "exact"):
        res = check_certificate(mp, sp, str(cp), mode=mode)
        assert res.valid, res.reason


# R15-8 (completeness): the checker scales a row by the odd part of its denominators; with 1e-300 as
# an exact decimal that is 5^300, and 1e300 * 5^300 overflows float64 (the certificate of a true
# property was rejected). TOML numbers are binary64 values now (dyadic: no odd part), so this TOML row
# is accepted; the same row in VNN-LIB (exact decimals) would still be refused (left: completeness).
def test_row_with_1e300_and_1e_300_coefficients_is_accepted(tmp_path):
    text = _BOX_T2 + '[[unsafe]]\nall = ["1e300*y0 - 1e300*y1 + 1e-300*y1 >= 1.5e300"]\n'
    r, cp, mp, sp = _certify(tmp_path, text, "toml")
    assert r.status == "holds" and cp is not None
    res = check_certificate(mp, sp, str(cp), mode="exact")
    assert res.valid, res.reason


def test_disjuncts_with_equal_float_boxes_and_an_empty_one(tmp_path):
    """Two decimals with the same inward float64 (0.3, 0.30000000000000001): one verifier case, two
    checker cases, both covered; a disjunct on x0 = 0.1 has no float64 point and is dropped by both
    (its y1 >= 0 would be violated anywhere)."""
    base = "(assert (>= X_0 0.0))\n(assert (>= X_1 0.0))\n(assert (<= X_1 1.0))\n"
    text = _HDR + base + ("(assert (or (and (<= X_0 0.30000000000000001) (>= Y_0 10)) (and (<= X_0 0.3) (>= Y_1 10))"
                          " (and (<= X_0 0.1) (>= X_0 0.1) (>= Y_1 0))))\n")
    r, cp, mp, sp = _certify(tmp_path, text, "vnnlib")
    assert r.status == "holds" and cp is not None
    assert len(parse_vnnlib(text).cases) == 1 and len(CS.load(sp, 2)) == 2
    for mode in ("fast", "exact"):
        res = check_certificate(mp, sp, str(cp), mode=mode)
        assert res.valid, res.reason


def test_row_with_decimal_coefficients_certificate_round_trip(tmp_path):
    """A row with decimal coefficients (scaled by the odd part of its denominators, in the verifier
    and the checker alike): the holds certificate is accepted in both arithmetics."""
    from tests.soundness.test_review_certificates import _BOX_V

    text = _HDR + _BOX_V + "(assert (>= (- (* 0.1 Y_0) (* 0.3 Y_1)) 0.25))\n"
    r, cp, mp, sp = _certify(tmp_path, text, "vnnlib")
    assert r.status == "holds" and cp is not None
    for mode in ("fast", "exact"):
        res = check_certificate(mp, sp, str(cp), mode=mode)
        assert res.valid, res.reason
