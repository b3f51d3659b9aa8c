"""Adversarial review, round 16: exact spec numbers (f231f00), odd-denominator row scaling (6e0a44c)
and inward input bounds (a3099d0), in the verifier's readers and the checker's.

Held up (plain tests): strict rows whose coefficient is a 30-digit decimal next to 1 (the MILP margin
and the exact replay find the violation), rows with 30-digit coefficients that stay inexact after
scaling, one-variable output rows with decimals between floats (strict and not), rows that cancel
exactly, scaled rows in ``Constraints.exact`` replayed by ``holds_at``, 1e300 constants.

Findings (strict xfails):

* R16-1 (high, regression): ``verifier bounds --query`` reads the query through ``make_spec`` and
  takes the row as the quantity; rows are now rescaled (odd-denominator scaling, one-variable rows
  normalised to coefficient +-1), so ``--query "y0/3 + 1"`` bounds ``y0 + 3`` (reported [3, 5],
  "exact", true range [1, 5/3]) and ``"y0/10 - y1/10"`` bounds 5x the quantity.
* R16-2 (medium): a factor whose float64 coefficients are all 0 but whose exact ones are not
  (``1 - 1e-200 * 1e-200 * x0``) counts as a constant in ``*`` and ``/``: the nonlinear spec is
  read as linear with the exact row dropped, and verify answers *violated* with a counterexample that
  does not satisfy the spec's condition (the checker refuses the spec: nonlinear).
* R16-3 (low): ``(<= (* 1e-400 X_0) 1)`` (or ``1e-200*1e-200*x0 <= 1`` in a constraint string)
  raises ZeroDivisionError, not SpecError (the exact bound overflows, the float fallback divides by
  the float64 coefficient 0.0).
* R16-4 (low): the checker crashes (OverflowError, not BadInput / an invalid result) on a row whose
  exact rhs is beyond float64 (``(>= (+ (* 0.1 Y_0) (* 0.1 Y_1)) 1.7e308)`` scaled by 5, or
  ``(* 1e300 1e300)``).
* R16-5 (low, completeness): one-variable rows with ``2**1000 <= |rhs / c| < 2**1024`` are
  normalised by the verifier but not by the checker (threshold 2**1000): the holds certificate of
  ``(>= (* 0.1 Y_0) 1e303)`` is rejected.
* R16-6 (low, completeness, pre-existing): the checker's VNN-LIB reader has no ``/``, no ``=``, no
  n-ary ``*`` / ``-``, all of which the verifier reads: holds certificates of such specs are rejected.
* R16-7 (low): ``holds_at`` with an inf / nan in an output that the row does not use says False
  (0 * inf = nan in the float margin), so a genuine counterexample is not confirmed.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from tests.soundness.test_review_certificates import _BOX_V, _HDR, _accepted, _certify, _model, _ort
from verifier.checker import spec as CS
from verifier.checker.model import BadInput
from verifier.errors import SpecError
from verifier.io.constraints import make_spec
from verifier.io.vnnlib import parse_vnnlib

V = float(np.float32(0.1))
VX = format(Decimal(V), "f")  # V's exact decimal (repr(V) is a different decimal in VNN-LIB)
_BOX_H = "(assert (>= X_0 0.5))\n(assert (<= X_0 1.0))\n(assert (>= X_1 0.0))\n(assert (<= X_1 1.0))\n"


# =============================================================================================
# What held up
# =============================================================================================

def test_strict_row_with_30_digit_coefficient_next_to_one(tmp_path):
    # y0 - c y1 < 0 with c = 1 + 1e-30: float64 c is 1, and y0 - y1 >= 0 on the box; the spec is
    # violated where y0 = y1 > 0 (x1 = 1, x0 = 0): the margin and the exact replay find it
    text = _HDR + _BOX_V + "(assert (< (- Y_0 (* 1.000000000000000000000000000001 Y_1)) 0))\n"
    r, cp, mp, sp = _certify(tmp_path, text, "vnnlib")
    assert r.status == "violated"
    y = _ort(mp, r.counterexample.input)
    assert Fraction(float(y[0])) - Fraction("1.000000000000000000000000000001") * Fraction(float(y[1])) < 0
    assert cp is not None and _accepted(mp, sp, cp)[0]


def test_row_with_30_digit_coefficient_that_stays_inexact(tmp_path):
    text = _HDR + _BOX_H + ("(assert (<= (- (* 1.4000000000000000000000000000001 Y_1) Y_0) 0))\n"
                            "(assert (<= (- X_1 (* 0.45 X_0)) 0))\n")
    r, cp, mp, sp = _certify(tmp_path, text, "vnnlib")
    assert r.status == "violated"  # e.g. x = (1, 0.42): y = (1.42, 1)
    x = [Fraction(float(v)) for v in r.counterexample.input]
    y = [Fraction(float(v)) for v in _ort(mp, r.counterexample.input)]
    assert Fraction("1.4000000000000000000000000000001") * y[1] - y[0] <= 0 and x[1] - Fraction("0.45") * x[0] <= 0
    assert cp is not None and _accepted(mp, sp, cp)[0]


@pytest.mark.parametrize("row,status", [
    (f"(assert (< Y_1 {V!r}1))", "violated"),   # V < V + 1e-18: y1 = V is unsafe
    (f"(assert (> Y_1 {V!r}1))", "not violated"),      # y1 <= V < decimal (by less than tau: unknown)
    (f"(assert (>= Y_1 {V!r}1))", "not violated"),
    (f"(assert (<= (- Y_1) (- 0 {VX})))", "violated"),   # -y1 <= -V: y1 >= V
    (f"(assert (< (* 3 Y_1) (* 3 {V!r}1)))", "violated"),
    (f"(assert (>= (* 3 Y_1) (* 3 {V!r}1)))", "not violated"),
    (f"(assert (> Y_1 {VX}))", "not violated"),  # y1 <= V, never > V
    (f"(assert (<= Y_1 {V!r}))", "violated"),  # repr(V) is a decimal above V
    (f"(assert (and (<= Y_1 {VX}) (>= Y_1 {VX})))", "violated"),  # y1 = V
    ("(assert (and (<= (* 3 Y_1) 0.3) (>= (* 3 Y_1) 0.3)))", "not violated"),  # y1 = 0.1: no float
])
def test_one_variable_output_rows_between_floats(tmp_path, row, status):
    # x0 <= V, x1 = 0: y1 = x0 <= V; "V1" is the decimal V followed by a 1 (just above V)
    box = f"(assert (>= X_0 0.0))\n(assert (<= X_0 {V!r}))\n(assert (>= X_1 0.0))\n(assert (<= X_1 0.0))\n"
    r, cp, mp, sp = _certify(tmp_path, _HDR + box + row + "\n", "vnnlib")
    if status == "violated":
        assert r.status == "violated"
    else:
        assert r.status != "violated"
    if r.status != "unknown":
        assert cp is not None and _accepted(mp, sp, cp)[0]


def test_scaled_row_is_replayed_exactly():
    s = make_spec([0, 0], [1, 1], [["y0/3 - y1/3 <= 0.1"]]).bind(2, 2)
    c = s.cases[0].unsafe[0]
    assert c.exact is not None and c.ay.tolist() == [[1.0, -1.0]]
    t = Fraction(0.1) * 3  # the exact rhs, not a float64
    above = float(t) if Fraction(float(t)) > t else float(np.nextafter(float(t), 1.0))
    below = float(np.nextafter(above, 0.0))
    assert Fraction(below) < t < Fraction(above) and c.rhs[0] == above  # outward
    assert c.holds_at([0, 0], [below, 0.0]) and not c.holds_at([0, 0], [above, 0.0])


def test_cancelling_row_is_constant():
    # 0.3 y0 - 3 * 0.1 y0 is exactly 0 in VNN-LIB: the row 0 <= -1 never holds, the block is dropped
    text = _HDR + _BOX_V + "(assert (or (and (<= (- (* 0.3 Y_0) (* 3 0.1 Y_0)) -1)) (and (>= Y_1 5))))\n"
    s = parse_vnnlib(text)
    assert len(s.cases[0].unsafe) == 1


# =============================================================================================
# R16-1: bounds --query on rescaled rows
# =============================================================================================

@pytest.mark.parametrize("query,coef,offset", [
    ("y0/3 + 1", [1 / 3, 0.0], 1.0),
    ("y0/10 - y1/10", [0.1, -0.1], 0.0),
    ("y0/3 + y1/3 + 1", [1 / 3, 1 / 3], 1.0),
])
# R16-1: fixed (was a strict xfail of the review)
def test_query_rows_are_the_query(query, coef, offset):
    from verifier.app.cli import _query_rows
    C, d, _ = _query_rows((query,), 2, 2)
    assert np.allclose(C[0], coef, rtol=1e-15) and np.isclose(d[0], offset)


# R16-1: fixed (was a strict xfail of the review)
def test_bounds_cli_query_with_division(tmp_path):
    from click.testing import CliRunner

    from verifier.app.cli import main
    mp = _model(tmp_path / "m.onnx")
    res = CliRunner().invoke(main, ["bounds", mp, "--lower", "0,0", "--upper", "1,1", "--query", "y0/3 + 1",
                                    "--method", "exact", "--json", "-q"])
    import json
    out = json.loads(res.output.strip().splitlines()[-1])
    box = out["boxes"][0]
    lo, hi = box["lower"][0], box["upper"][0]
    assert lo <= 1.0 + 1e-6 and hi >= 5 / 3 - 1e-6 and hi <= 5 / 3 + 1e-3  # y0 in [0, 2]


# =============================================================================================
# R16-2: a factor with float64-zero but exactly nonzero coefficients counts as a constant
# =============================================================================================

_E = Fraction(1, 10 ** 400)
_E2 = Fraction(1e-200) ** 2  # constraint strings: binary64 numbers


@pytest.mark.parametrize("text,ext,factor", [
    (_HDR + _BOX_V + "(assert (>= (* (- 1 (* 1e-200 (* 1e-200 X_0))) Y_0) 2))\n", "vnnlib", lambda x0: 1 - _E * x0),
    (_HDR + _BOX_V + "(assert (>= (/ Y_0 (+ 1 (* 1e-200 (* 1e-200 X_0)))) 2))\n", "vnnlib",
     lambda x0: 1 / (1 + _E * x0)),
    ('[input]\nlower = [0.0, 0.0]\nupper = [1.0, 1.0]\n[[unsafe]]\nall = ["(1 - 1e-200*1e-200*x0) * y0 >= 2"]\n',
     "toml", lambda x0: 1 - _E2 * x0),
], ids=["vnnlib-mul", "vnnlib-div", "toml-mul"])
# R16-2: fixed (was a strict xfail of the review)
def test_factor_with_exact_nonzero_coefficients_is_not_a_constant(tmp_path, text, ext, factor):
    try:
        r, _cp, mp, _sp = _certify(tmp_path, text, ext)
    except SpecError:
        return  # refusing the nonlinear product is right
    if r.status == "violated":
        x0 = Fraction(float(r.counterexample.input[0]))
        y0 = Fraction(float(_ort(mp, r.counterexample.input)[0]))
        assert factor(x0) * y0 >= 2


# =============================================================================================
# R16-3: ZeroDivisionError on a tiny input coefficient
# =============================================================================================

# R16-3: fixed (was a strict xfail of the review)
@pytest.mark.parametrize("how", ["vnnlib", "make_spec"])
def test_tiny_input_coefficient_is_not_a_crash(how):
    try:
        if how == "vnnlib":
            s = parse_vnnlib(_HDR + _BOX_V + "(assert (<= (* 1e-400 X_0) 1))\n(assert (<= Y_0 0))\n")
        else:
            s = make_spec([0, 0], [1, 1], [["1e-200*1e-200*x0 <= 1", "y0 <= 0"]])
    except SpecError:
        return
    assert s.cases[0].upper[0] == 1.0  # x0 <= 1e400 adds nothing


# =============================================================================================
# R16-4: checker crash on an rhs beyond float64
# =============================================================================================

# R16-4: fixed (was a strict xfail of the review)
@pytest.mark.parametrize("row", ["(assert (>= (+ (* 0.1 Y_0) (* 0.1 Y_1)) 1.7e308))",
                                 "(assert (>= (+ Y_0 Y_1) (* 1e300 1e300)))"])
def test_checker_huge_rhs_is_not_a_crash(tmp_path, row):
    sp = tmp_path / "s.vnnlib"
    sp.write_text(_HDR + _BOX_V + row + "\n")
    try:
        CS.load(str(sp), 2)
    except BadInput:
        pass


# =============================================================================================
# R16-5 / R16-6: certificates of true properties rejected (the two readers differ)
# =============================================================================================

@pytest.mark.parametrize("row", [
    "(assert (>= (* 0.1 Y_0) 1e303))",   # R16-5: 2**1000 <= 1e304 < 2**1024
    "(assert (> (/ Y_0 3) 1))",          # R16-6: '/'
    "(assert (= Y_0 3))",                # R16-6: '='
    "(assert (> (* 0.5 4 Y_0) 9))",      # R16-6: n-ary '*'
    "(assert (> (- Y_0 Y_1 1) 9))",      # R16-6: n-ary '-'
], ids=["1e303", "div", "eq", "mul3", "minus3"])
# R16-5/6: fixed (was a strict xfail of the review)
def test_holds_certificates_are_accepted(tmp_path, row):
    r, cp, mp, sp = _certify(tmp_path, _HDR + _BOX_V + row + "\n", "vnnlib")
    assert r.status == "holds" and cp is not None
    assert _accepted(mp, sp, cp)[0]


def test_holds_certificate_of_1e300_row_is_accepted(tmp_path):
    r, cp, mp, sp = _certify(tmp_path, _HDR + _BOX_V + "(assert (>= (* 0.1 Y_0) 1e300))\n", "vnnlib")
    assert r.status == "holds" and cp is not None and _accepted(mp, sp, cp)[0]


# =============================================================================================
# R16-7: holds_at with non-finite outputs the row does not use
# =============================================================================================

# R16-7: fixed (was a strict xfail of the review)
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_holds_at_ignores_unused_nonfinite_outputs(bad):
    c = make_spec([0, 0], [1, 1], [["y0 <= 1"]]).bind(2, 2).cases[0].unsafe[0]
    assert c.holds_at([0, 0], [0.0, bad])


def test_holds_at_nonfinite_used_output_is_not_a_holds():
    c = make_spec([0, 0], [1, 1], [["y0 <= 1"]]).bind(2, 2).cases[0].unsafe[0]
    assert not c.holds_at([0, 0], [np.nan, 0.0]) and not c.holds_at([0, 0], [np.inf, 0.0])
    assert c.holds_at([0, 0], [-np.inf, 0.0])
