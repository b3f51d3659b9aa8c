"""Tests of ``verifier.spec``: the data model, VNN-LIB and TOML parsing, ``make_spec``,
``load_spec``, ``Spec.bind``, and parsing every real VNN-COMP 2021 property file."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.errors import SpecError
from verifier.spec import (
    MAX_DISJUNCTS,
    Case,
    Constraints,
    Spec,
    load_spec,
    make_spec,
    parse_toml,
    parse_vnnlib,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
BENCH = SHARED / "benchmarks" / "vnncomp2021"
SRC = "prop.vnnlib"
TSRC = "prop.toml"


def declarations(n_inputs: int, n_outputs: int) -> str:
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n_inputs)) + "".join(
        f"(declare-const Y_{j} Real)\n" for j in range(n_outputs))


def unit_box(n_inputs: int) -> str:
    return "".join(f"(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n" for i in range(n_inputs))


def vnn(body: str, n_inputs: int = 2, n_outputs: int = 2, box: bool = True) -> Spec:
    """Parse ``body`` after declarations (and, by default, the box [-1, 1]^n)."""
    head = declarations(n_inputs, n_outputs) + (unit_box(n_inputs) if box else "")
    return parse_vnnlib(head + body, SRC)


def spec_error(fn, *args, contains: tuple[str, ...] = ()) -> SpecError:
    """Call ``fn`` expecting a SpecError whose text contains every string in ``contains``."""
    with pytest.raises(SpecError) as info:
        fn(*args)
    text = str(info.value)
    for fragment in contains:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return info.value


def rows(spec: Spec) -> list[Constraints]:
    return [c for case in spec.cases for c in case.unsafe]


# ---------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------


def one_row(ax, ay, rhs, strict=False) -> Constraints:
    return Constraints(np.array([ax], float), np.array([ay], float), np.array([rhs], float),
                       np.array([strict]))


def test_holds_at_is_exact_on_the_boundary():
    le = one_row([0.0], [1.0, 0.0], 1.0)
    lt = one_row([0.0], [1.0, 0.0], 1.0, strict=True)
    assert le.holds_at([0.0], [1.0, 5.0]) and not lt.holds_at([0.0], [1.0, 5.0])
    assert le.holds_at([0.0], [0.5, 5.0]) and lt.holds_at([0.0], [0.5, 5.0])
    assert not le.holds_at([0.0], [np.nextafter(1.0, 2.0), 0.0])


def test_margin_is_vectorised():
    rng = np.random.default_rng(0)
    c = Constraints(rng.normal(size=(3, 2)), rng.normal(size=(3, 4)), rng.normal(size=3),
                    np.array([True, False, True]))
    xs, ys = rng.normal(size=(50, 2)), rng.normal(size=(50, 4))
    batch = c.margin(xs, ys)
    assert batch.shape == (50, 3)
    for b in range(50):
        np.testing.assert_allclose(batch[b], c.ax @ xs[b] + c.ay @ ys[b] - c.rhs, rtol=1e-12, atol=1e-12)
        assert c.holds_at(xs[b], ys[b]) == bool(np.all(np.where(c.strict, batch[b] < 0, batch[b] <= 0)))


def test_empty_conjunction_always_holds():
    c = Constraints(np.zeros((0, 2)), np.zeros((0, 1)), np.zeros(0), np.zeros(0, bool))
    assert c.holds_at([3.0, 4.0], [5.0])
    assert c.margin(np.zeros((7, 2)), np.zeros((7, 1))).shape == (7, 0)


def test_model_arrays_are_read_only_copies_and_compare_by_value():
    ax = np.array([[1.0]])
    c = Constraints(ax, np.array([[2.0]]), np.array([3.0]), np.array([False]))
    ax[0, 0] = 9.0
    assert c.ax[0, 0] == 1.0
    with pytest.raises(ValueError):
        c.ax[0, 0] = 5.0
    assert c == Constraints([[1.0]], [[2.0]], [3.0], [False])
    assert c != Constraints([[1.0]], [[2.0]], [3.0], [True])
    assert c.ax.dtype == np.float64 and c.strict.dtype == np.bool_


def test_bad_points_and_shapes_raise_spec_error():
    c = one_row([1.0], [1.0], 0.0)
    spec_error(c.holds_at, [1.0, 2.0], [1.0], contains=("x", "1 entries"))
    spec_error(c.holds_at, np.zeros((2, 1)), np.zeros((2, 1)), contains=("margin",))
    spec_error(c.margin, ["a"], [1.0])
    spec_error(Constraints, np.zeros((2, 1)), np.zeros((1, 1)), np.zeros(1), np.zeros(1, bool))
    spec_error(Case, [0.0, 0.0], [1.0], ())
    spec_error(Case, [0.0], [1.0], (c, "y0 <= 1"))


def test_case_box_is_inclusive():
    case = Case(np.array([0.0, -1.0]), np.array([1.0, 1.0]), (one_row([0.0, 0.0], [1.0], 0.0),))
    assert case.violated_at([0.0, 1.0], [0.0])
    assert case.violated_at([1.0, -1.0], [-3.0])
    assert not case.violated_at([1.0 + 1e-12, 0.0], [-3.0])
    assert not case.violated_at([0.5, 0.0], [0.5])
    assert not Case([0.0], [1.0], ()).violated_at([0.5], [])


# ---------------------------------------------------------------------------------------------
# VNN-LIB: constructs
# ---------------------------------------------------------------------------------------------


def test_declarations_and_box():
    spec = vnn("(assert (<= Y_0 Y_1))", n_inputs=3, n_outputs=4)
    assert (spec.n_inputs, spec.n_outputs, spec.source) == (3, 4, SRC)
    [case] = spec.cases
    np.testing.assert_array_equal(case.lower, [-1, -1, -1])
    np.testing.assert_array_equal(case.upper, [1, 1, 1])
    [c] = case.unsafe
    assert c.ax.shape == (1, 3) and c.ay.shape == (1, 4)
    assert spec.warnings == ()


@pytest.mark.parametrize(("atom", "ay", "rhs", "strict"), [
    ("(<= Y_0 Y_1)", [1, -1], 0, False),
    ("(>= Y_0 Y_1)", [-1, 1], 0, False),
    ("(< Y_0 3)", [1, 0], 3, True),
    ("(> Y_0 3)", [-1, 0], -3, True),
    ("(>= 3 Y_1)", [0, 1], 3, False),
    ("(<= (+ Y_0 Y_1 1) 2)", [1, 1], 1, False),
    ("(<= (- Y_0 Y_1) 0.5)", [1, -1], 0.5, False),
    # -y0 <= 1e-3 on float64 values: y0 >= ceil64(-0.001), i.e. -y0 <= floor64(0.001) (0.001 is no float64)
    ("(<= (- Y_0) 1e-3)", [-1, 0], float(np.nextafter(0.001, 0.0)), False),
    ("(<= (- Y_0 1 Y_1) -2.5E+1)", [1, -1], -24, False),
    ("(<= (* 2 Y_0) (* Y_1 -0.5))", [2, 0.5], 0, False),
    ("(<= (+ (* 2 (- Y_0 Y_1)) Y_1) 0)", [2, -1], 0, False),
    ("(<= (* 2 3 Y_0) (* (+ 1 1) 4))", [6, 0], 8, False),
    ("(<= (/ Y_0 4) 1)", [0.25, 0], 1, False),
    ("(>= (+ Y_0 -0.5) .25)", [-1, 0], -0.75, False),
])
def test_output_atoms_are_normalised(atom, ay, rhs, strict):
    [c] = rows(vnn(f"(assert {atom})"))
    np.testing.assert_array_equal(c.ax, [[0, 0]])
    np.testing.assert_array_equal(c.ay, [ay])
    np.testing.assert_array_equal(c.rhs, [rhs])
    assert c.strict.tolist() == [strict]


@pytest.mark.parametrize(("asserts", "lower", "upper"), [
    (["(>= X_0 -0.5)", "(<= X_0 0.5)"], -0.5, 0.5),
    (["(<= -0.5 X_0)", "(>= 2 X_0)"], -0.5, 2.0),
    (["(<= (* 2 X_0) 1)", "(<= (* -4 X_0) 8)"], -2.0, 0.5),
    (["(<= (- X_0) 1)", "(<= (+ X_0 1) 3)"], -1.0, 2.0),
    (["(<= 0 X_0 1)"], 0.0, 1.0),
    (["(= X_0 0.25)"], 0.25, 0.25),
    (["(and (<= X_0 1) (<= X_0 0.5))", "(>= X_0 0)", "(>= X_0 -3)"], 0.0, 0.5),
    # -1e-3 is not a float64: its nearest float64 lies below it, so the lower bound is the next one up
    (["(>= X_0 -1e-3)", "(<= X_0 1.5e2)"], np.nextafter(-0.001, 0.0), 150.0),
    # float64(0.3) lies below 0.3 (a lower bound moves up one step), float64(0.2) above 0.2 (an
    # upper bound moves down one step); float64(0.1) above 0.1 is already inside as a lower bound
    (["(>= X_0 0.3)", "(<= X_0 1)"], np.nextafter(0.3, 1.0), 1.0),
    (["(>= X_0 0.1)", "(<= X_0 0.2)"], 0.1, np.nextafter(0.2, 0.0)),
])
def test_single_input_atoms_form_the_box(asserts, lower, upper):
    body = "".join(f"(assert {a})\n" for a in asserts) + "(assert (<= Y_0 0))"
    spec = vnn(body, n_inputs=1, n_outputs=1, box=False)
    [case] = spec.cases
    assert (case.lower.tolist(), case.upper.tolist()) == ([lower], [upper])
    [c] = case.unsafe
    np.testing.assert_array_equal(c.ax, [[0.0]])  # the bounds are not rows
    np.testing.assert_array_equal(c.ay, [[1.0]])


def test_strict_input_bound_gives_the_closed_float64_box():
    """``x0 < 1`` on float64 inputs is ``x0 <= prev(1)``: the box says it exactly, no row needed."""
    spec = vnn("(assert (< X_0 1))\n(assert (>= X_0 0))\n(assert (<= Y_0 0))", 1, 1, box=False)
    [case] = spec.cases
    assert (case.lower.tolist(), case.upper.tolist()) == ([0.0], [float(np.nextafter(1.0, 0.0))])
    [c] = case.unsafe
    assert c.n_rows == 1
    assert spec.violated_at([0.5], [0.0])
    assert not spec.violated_at([1.0], [0.0])


def test_inexact_coefficient_bound_is_decided_exactly():
    """``3 x <= 1`` in exact rationals: the box holds exactly the float64 points that satisfy it
    (its bound is 1/3 rounded inward), so no row is needed."""
    spec = vnn("(assert (<= (* 3 X_0) 1))\n(assert (>= (* 3 X_0) -1))\n(assert (<= Y_0 0))", 1, 1,
               box=False)
    [case] = spec.cases
    hi, lo = float(case.upper[0]), float(case.lower[0])
    assert Fraction(hi) <= Fraction(1, 3) < Fraction(np.nextafter(hi, 1.0))
    assert Fraction(np.nextafter(lo, -1.0)) < Fraction(-1, 3) <= Fraction(lo)
    [c] = case.unsafe
    assert c.n_rows == 1
    assert spec.violated_at([hi], [0.0]) and not spec.violated_at([np.nextafter(hi, 1.0)], [0.0])


def test_strict_inexact_bound_is_decided_exactly():
    spec = vnn("(assert (< (* 3 X_0) 1))\n(assert (>= X_0 0))\n(assert (<= Y_0 0))", 1, 1, box=False)
    [case] = spec.cases
    hi = float(case.upper[0])
    assert Fraction(hi) < Fraction(1, 3) < Fraction(np.nextafter(hi, 1.0))
    [c] = case.unsafe
    assert c.n_rows == 1
    assert not spec.violated_at([0.3334], [0.0]) and spec.violated_at([0.3333], [0.0])


def _inward(decimals: list[str], upper: bool) -> list[float]:
    """The spec's decimals rounded inward to float64 (down for an upper bound, up for a lower one)."""
    out = []
    for d in decimals:
        f = float(d)
        if upper and Fraction(f) > Fraction(d):
            f = np.nextafter(f, -np.inf)
        elif not upper and Fraction(f) < Fraction(d):
            f = np.nextafter(f, np.inf)
        out.append(float(f))
    return out


def test_mixed_and_multi_input_atoms_are_rows():
    spec = vnn("(assert (<= (+ X_0 Y_0) 1))\n(assert (<= (- X_0 X_1) 0))")
    [c] = rows(spec)
    np.testing.assert_array_equal(c.ax, [[1, 0], [1, -1]])
    np.testing.assert_array_equal(c.ay, [[1, 0], [0, 0]])
    np.testing.assert_array_equal(c.rhs, [1, 0])
    assert spec.violated_at([0.0, 0.5], [1.0, 0.0])
    assert not spec.violated_at([0.5, 0.0], [0.0, 0.0])


def test_equality_is_two_inequalities():
    spec = vnn("(assert (= Y_0 Y_1))")
    [c] = rows(spec)
    np.testing.assert_array_equal(c.ay, [[1, -1], [-1, 1]])
    assert spec.violated_at([0, 0], [0.5, 0.5])
    assert not spec.violated_at([0, 0], [0.5, 0.25])


def test_test_small_layout_bounds_inside_or():
    text = """(declare-const X_0 Real)
(declare-const Y_0 Real)
(assert (or
    (and (>= X_0 -1) (<= X_0 1) (>= Y_0 100))
))"""
    spec = parse_vnnlib(text)
    [case] = spec.cases
    assert (case.lower.tolist(), case.upper.tolist()) == ([-1.0], [1.0])
    [c] = case.unsafe
    assert (c.ay.tolist(), c.rhs.tolist(), c.strict.tolist()) == ([[-1.0]], [-100.0], [False])
    assert spec.violated_at([0.0], [100.0]) and not spec.violated_at([0.0], [99.0])


def test_or_of_boxes_gives_one_case_per_box_in_file_order():
    spec = vnn("""(assert (or
        (and (>= X_0 0) (<= X_0 1) (>= Y_0 1))
        (and (>= X_0 -1) (<= X_0 0) (<= Y_0 -1))
    ))""", n_inputs=1, n_outputs=1, box=False)
    assert [(c.lower.tolist(), c.upper.tolist()) for c in spec.cases] == [([0.0], [1.0]), ([-1.0], [0.0])]
    assert spec.violated_at([0.5], [2.0]) and not spec.violated_at([-0.5], [2.0])
    assert spec.violated_at([-0.5], [-2.0]) and not spec.violated_at([0.5], [-2.0])
    assert spec.violated_at([0.0], [-2.0]) and spec.violated_at([0.0], [2.0])


def test_disjuncts_with_equal_boxes_share_a_case():
    spec = vnn("(assert (or (<= Y_0 0) (and (<= Y_1 0) (<= -1 X_0 1)) (<= Y_0 Y_1)))")
    [case] = spec.cases
    assert [c.ay.tolist() for c in case.unsafe] == [[[1, 0]], [[0, 1]], [[1, -1]]]


def test_and_distributes_over_or_in_order():
    spec = vnn("(assert (and (or (<= Y_0 1) (<= Y_0 2)) (or (<= Y_1 3) (<= Y_1 4))))")
    [case] = spec.cases
    assert [c.rhs.tolist() for c in case.unsafe] == [[1, 3], [1, 4], [2, 3], [2, 4]]


def test_chained_comparison():
    [c] = rows(vnn("(assert (< Y_0 Y_1 2))"))
    np.testing.assert_array_equal(c.ay, [[1, -1], [0, 1]])
    assert c.rhs.tolist() == [0, 2] and c.strict.all()


def test_comments_and_odd_whitespace_do_not_matter():
    plain = vnn("(assert (or (and (<= Y_0 1) (>= Y_1 -2)) (< (+ Y_0 (* 2 Y_1)) 0.5)))")
    odd = ("; a comment ( with ) parens\r\n"
           "(declare-const X_0 Real)(declare-const X_1 Real) ; trailing\n"
           "\t(declare-const\n  Y_0\n  Real)\n(declare-const Y_1 Real)\n"
           "(assert(>= X_0 -1))(assert(<= X_0 1))\n(assert (>= X_1 -1)) (assert (<= X_1 1))\n"
           "(assert\n (or ; inside\n  (and(<= Y_0 1)(>= Y_1 -2));x\n\n\t(<  (+ Y_0 (*  2\tY_1 ))\n 0.5)))"
           "   \n; end")
    spec = parse_vnnlib(odd, SRC)
    assert spec.cases == plain.cases
    assert spec.description == "a comment ( with ) parens"


def test_harmless_smtlib_commands_are_ignored():
    spec = vnn("(assert (<= Y_0 1))\n(check-sat)\n(get-model)\n(exit)")
    assert len(rows(spec)) == 1


def test_warnings_for_dropped_or_trivial_parts():
    spec = vnn("(assert (or (and (>= X_0 2) (<= Y_0 0)) (<= Y_1 0)))")
    [case] = spec.cases
    assert len(case.unsafe) == 1
    assert any("disjunct 1 of 2" in w and "X_0" in w and "empty" in w for w in spec.warnings)
    spec = vnn("(assert (<= 1 2))\n(assert (<= Y_0 0))")
    assert any("always holds" in w and "line 9" in w for w in spec.warnings)
    assert rows(spec)[0].n_rows == 1
    spec = vnn("(assert (or (<= (- Y_0 Y_0) -1) (<= Y_1 0)))")
    assert len(rows(spec)) == 1 and any("always false" in w for w in spec.warnings)
    spec = vnn("")
    assert rows(spec)[0].n_rows == 0 and any("every input in its box" in w for w in spec.warnings)
    assert spec.violated_at([0.0, 0.0], [7.0, 8.0])


def test_big_conjunction_with_or_is_fast():
    n = 2000
    body = "".join(f"(assert (<= X_{i} 0.5))\n(assert (>= X_{i} 0.0))\n" for i in range(n))
    body += "(assert (or " + " ".join(f"(and (>= Y_{j} Y_9))" for j in range(9)) + "))"
    start = time.process_time()
    spec = parse_vnnlib(declarations(n, 10) + body, SRC)
    assert time.process_time() - start < 1.0
    assert len(spec.cases) == 1 and len(spec.cases[0].unsafe) == 9


# ---------------------------------------------------------------------------------------------
# VNN-LIB: DNF semantics against direct evaluation of the formula
# ---------------------------------------------------------------------------------------------

VARS = ("X_0", "X_1", "Y_0", "Y_1")
GRID_X = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
GRID_Y = (-1.0, -0.5, 0.0, 0.5, 1.0)

atoms = st.tuples(
    st.sampled_from(["<=", ">=", "<", ">", "="]),
    st.lists(st.tuples(st.sampled_from([-3, -2, -1, 1, 2, 3]), st.sampled_from(VARS)), min_size=1, max_size=3),
    st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]),
    st.booleans(),
)
formulas = st.recursive(
    atoms, lambda kids: st.tuples(st.sampled_from(["and", "or"]), st.lists(kids, min_size=1, max_size=3)),
    max_leaves=10)


def render(f) -> str:
    if f[0] in ("and", "or"):
        return f"({f[0]} {' '.join(render(k) for k in f[1])})"
    op, terms, const, flip = f
    lhs = "(+ " + " ".join(f"(* {c} {v})" for c, v in terms) + ")"
    return f"({op} {const} {lhs})" if flip else f"({op} {lhs} {const})"


def evaluate(f, env: dict[str, float]) -> bool:
    if f[0] == "and":
        return all(evaluate(k, env) for k in f[1])
    if f[0] == "or":
        return any(evaluate(k, env) for k in f[1])
    op, terms, const, flip = f
    a, b = sum(c * env[v] for c, v in terms), const
    if flip:
        a, b = b, a
    return {"<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b, "=": a == b}[op]


@settings(max_examples=120, deadline=None)
@given(formulas, st.booleans(), st.randoms(use_true_random=False))
def test_dnf_matches_the_formula(formula, box_first, rnd):
    box = unit_box(2)
    body = (box + f"(assert {render(formula)})") if box_first else (f"(assert {render(formula)})\n" + box)
    points = [(x0, x1, y0, y1) for x0 in GRID_X for x1 in GRID_X for y0 in GRID_Y for y1 in GRID_Y]
    try:
        spec = vnn(body, box=False)
    except SpecError as exc:  # only when no disjunct can hold: then nothing may violate
        assert "empty" in str(exc)
        assert not any(abs(p[0]) <= 1 and abs(p[1]) <= 1 and evaluate(formula, dict(zip(VARS, p))) for p in points)
        return
    for p in rnd.sample(points, 150):
        env = dict(zip(VARS, p))
        expected = abs(p[0]) <= 1 and abs(p[1]) <= 1 and evaluate(formula, env)
        assert spec.violated_at(p[:2], p[2:]) == expected, (render(formula), p)


# ---------------------------------------------------------------------------------------------
# VNN-LIB: errors, each located at file:line:column
# ---------------------------------------------------------------------------------------------

HEAD = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= -1 X_0 1))\n"


@pytest.mark.parametrize(("line4", "where", "fragments"), [
    ("(assert (<= Y_1 0))", "4:13", ("undeclared variable Y_1",)),
    ("(assert (<= Y_0 foo))", "4:17", ("'foo'",)),
    ("(assert (<= (* Y_0 X_0) 0))", "4:14", ("nonlinear",)),
    ("(assert (not (<= Y_0 0)))", "4:10", ("'not'", "and, or")),
    ("(assert (<= (max Y_0 X_0) 0))", "4:14", ("'max'",)),
    ("(assert (<= (/ 1 Y_0) 0))", "4:18", ("'/'", "constant")),
    ("(assert (<= (/ Y_0 0) 0))", "4:20", ("nonzero",)),
    ("(assert (<= Y_0 0)))", "4:20", ("unmatched ')'",)),
    ("(assert (<= Y_0 0)", "4:1", ("never closed",)),
    ("(assert (<= Y_0 1e999))", "4:17", ("1e999", "range")),
    ("(assert (<= Y_0 (* 1e200 1e200)))", "4:9", ("overflow",)),
    ("assert", "4:1", ("'assert'", "outside parentheses")),
    ("(define-fun f () Real 1)", "4:1", ("'define-fun'", "declare-const or assert")),
    ("(assert (<= Y_0 0) (<= Y_0 1))", "4:1", ("exactly one formula",)),
    ("(assert (<= Y_0))", "4:9", ("'<='", "two or more")),
    ("(assert (and))", "4:9", ("'and'", "at least one")),
    ("(assert (<= (+) 1))", "4:13", ("'+'", "at least one")),
    ("(assert Y_0)", "4:9", ("formula", "'Y_0'")),
    ("(assert ())", "4:9", ("formula",)),
    ("(assert (<= (1 Y_0) 0))", "4:14", ("operator '1'", "expression")),
    ("(declare-const Z_0 Real)", "4:16", ("'Z_0'", "X_<i>")),
    ("(declare-const X_01 Real)", "4:16", ("'X_01'",)),
    ("(declare-const X_1 Int)", "4:20", ("'Int'", "Real")),
    ("(declare-const X_0 Real)", "4:16", ("X_0 is declared twice",)),
    ("(declare-const X_2 Real)", "4:16", ("X_2", "X_1 is not")),
    ("(declare-const Y_5 Real)", "4:16", ("Y_5", "Y_1 is not")),
    ("(declare-const X_1)", "4:1", ("declare-const NAME Real",)),
    ("(assert (<= -5 X_0 -2))", "4:9", ("input region is empty", "X_0")),
    ("(assert (or (<= (* 0 Y_0) -1) (> 0 0)))", "4:13", ("unsafe region is empty",)),
])
def test_vnnlib_errors_are_located(line4, where, fragments):
    spec_error(parse_vnnlib, HEAD + line4 + "\n(assert (<= Y_0 0))\n", SRC, contains=(f"{SRC}:{where}: ", *fragments))


def test_deep_nesting_is_rejected_cleanly():
    text = HEAD + "(assert (<= Y_0 " + "(+ 1 " * 1000 + "0" + ")" * 1000 + "))"
    spec_error(parse_vnnlib, text, SRC, contains=(f"{SRC}:4:", "nesting"))


def test_missing_bounds_name_the_input_and_its_declaration():
    text = declarations(4, 1) + unit_box(3) + "(assert (<= X_3 1))\n(assert (<= Y_0 0))"
    spec_error(parse_vnnlib, text, SRC, contains=(f"{SRC}:4:16: ", "X_3 has no lower bound"))
    text = declarations(4, 1) + unit_box(3) + "(assert (>= X_3 1))\n(assert (<= Y_0 0))"
    spec_error(parse_vnnlib, text, SRC, contains=(f"{SRC}:4:16: ", "X_3 has no upper bound"))
    text = declarations(1, 1) + "(assert (or (<= -1 X_0 1) (<= X_0 1)))"
    spec_error(parse_vnnlib, text, SRC, contains=("X_0 has no lower bound in disjunct 2 of 2",))


def test_whole_file_errors():
    spec_error(parse_vnnlib, declarations(1, 1), SRC, contains=(SRC, "no (assert"))
    spec_error(parse_vnnlib, declarations(1, 0) + "(assert (<= -1 X_0 1))", SRC, contains=(SRC, "no output"))
    spec_error(parse_vnnlib, declarations(0, 1) + "(assert (<= Y_0 1))", SRC, contains=(SRC, "no input"))
    spec_error(parse_vnnlib, b"(declare-const X_0 Real)", SRC, contains=("str",))


def test_dnf_blow_up_is_refused():
    body = "".join(f"(assert (or (<= Y_0 {k}) (<= Y_1 {k})))\n" for k in range(20))
    spec_error(vnn, body, contains=(SRC, f"more than {MAX_DISJUNCTS}"))


# ---------------------------------------------------------------------------------------------
# TOML
# ---------------------------------------------------------------------------------------------

TOML = """description = "example"
[input]
lower = [0.0, -1.0]
upper = [1.0,  1.0]

[[unsafe]]
all = ["y0 <= y1", "y0 - 2*y2 >= 0.5"]

[[unsafe]]
all = ["y1 > 3"]
"""


def test_toml_basic():
    spec = parse_toml(TOML, TSRC)
    assert (spec.n_inputs, spec.n_outputs, spec.source, spec.description) == (2, None, TSRC, "example")
    [case] = spec.cases
    assert (case.lower.tolist(), case.upper.tolist()) == ([0, -1], [1, 1])
    first, second = case.unsafe
    np.testing.assert_array_equal(first.ay, [[1, -1, 0], [-1, 0, 2]])
    np.testing.assert_array_equal(first.rhs, [0, -0.5])
    np.testing.assert_array_equal(second.ay, [[0, -1, 0]])
    assert second.strict.tolist() == [True]
    assert spec.violated_at([0.5, 0.0], [0.0, 4.0, 0.0])
    assert not spec.violated_at([0.5, 0.0], [0.0, 2.0, 0.0])
    assert not spec.violated_at([1.5, 0.0], [0.0, 4.0, 0.0])


@pytest.mark.parametrize(("text", "ax", "ay", "rhs", "strict"), [
    ("y0 <= y1", [0, 0], [1, -1, 0], 0, False),
    ("y0 - 2*y2 >= 0.5", [0, 0], [-1, 0, 2], -0.5, False),
    ("y2*2 < 1", [0, 0], [0, 0, 2], 1, True),
    ("0.5 * x1 + y0 > 1e-3", [0, -0.5], [-1, 0, 0], -0.001, True),  # (numbers here are binary64 values)
    ("-(y0 - y1) <= -y1 + 3", [0, 0], [-1, 2, 0], 3, False),
    ("2*(y0 + 1) >= 3*y1 - 2.5E+1", [0, 0], [-2, 3, 0], 27, False),
    ("y0/4 <= 1", [0, 0], [0.25, 0, 0], 1, False),
    ("x0 <= y0", [1, 0], [-1, 0, 0], 0, False),
    ("+y1 >= -1", [0, 0], [0, -1, 0], 1, False),
    ("y0<=.5", [0, 0], [1, 0, 0], 0.5, False),
    ("2 * 3 * y1 <= (1 + 1) * 4", [0, 0], [0, 6, 0], 8, False),
])
def test_constraint_string_syntax(text, ax, ay, rhs, strict):
    spec = make_spec([0, 0], [1, 1], [[text]]).bind(2, 3)
    [c] = rows(spec)
    np.testing.assert_array_equal(c.ax, [ax])
    np.testing.assert_array_equal(c.ay, [ay])
    assert c.rhs.tolist() == [rhs] and c.strict.tolist() == [strict]


def test_constraint_chains_and_equality():
    [c] = rows(make_spec([0], [1], "0 <= y0 < 1"))
    np.testing.assert_array_equal(c.ay, [[-1], [1]])
    assert c.rhs.tolist() == [0, 1] and c.strict.tolist() == [False, True]
    [c] = rows(make_spec([0], [1], "y0 == y1"))
    np.testing.assert_array_equal(c.ay, [[1, -1], [-1, 1]])


coefficients = st.sampled_from([-3, -2, -1.5, -1, 0.5, 1, 2, 4])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(coefficients, st.sampled_from(["x0", "x1", "y0", "y1", "y2"]), st.integers(0, 3)),
                min_size=1, max_size=4),
       st.sampled_from(["<=", ">=", "<", ">"]), st.sampled_from([-2.0, 0.0, 0.25, 3.0]))
def test_constraint_strings_evaluate_like_python(terms, op, const):
    styles = ["{c}*{v}", "{v}*{c}", "{c} * {v}", "({c})*({v})"]
    text = " + ".join(styles[s].format(c=c, v=v) for c, v, s in terms) + f" {op} {const}"
    compare = {"<=": float.__le__, ">=": float.__ge__, "<": float.__lt__, ">": float.__gt__}[op]
    net: dict[str, float] = {}
    for c, v, _ in terms:
        net[v] = net.get(v, 0.0) + c
    try:
        spec = make_spec([-2, -2], [2, 2], [[text]]).bind(2, 3)
    except SpecError:  # only when the variables cancel and the constant comparison is false
        assert not any(net.values()) and not compare(0.0, const)
        return
    rng = np.random.default_rng(len(text))
    for _ in range(30):
        x = rng.integers(-4, 5, size=2) / 2
        y = rng.integers(-4, 5, size=3) / 2
        env = {"x0": x[0], "x1": x[1], "y0": y[0], "y1": y[1], "y2": y[2]}
        lhs = float(sum(c * env[v] for c, v, _ in terms))
        assert spec.violated_at(x, y) == compare(lhs, const), text


def test_toml_boxes_give_one_case_each_sharing_unsafe():
    text = """[[input.boxes]]
lower = [0, 0]
upper = [1, 1]
[[input.boxes]]
lower = [-1, -1]
upper = [0, 0]
[[unsafe]]
all = ["y0 >= 1"]
[[unsafe]]
all = ["y1 >= 1", "x0 + x1 <= 0"]
"""
    spec = parse_toml(text, TSRC)
    assert [c.lower.tolist() for c in spec.cases] == [[0, 0], [-1, -1]]
    assert spec.cases[0].unsafe == spec.cases[1].unsafe and len(spec.cases[0].unsafe) == 2
    assert spec.violated_at([0.5, 0.5], [1, 0]) and not spec.violated_at([0.5, 0.5], [0, 1])
    assert spec.violated_at([-0.5, -0.5], [0, 1])


def test_toml_inline_input_table_and_integers():
    spec = parse_toml('input = {lower = [0], upper = [2]}\nunsafe = [{all = ["y0 >= 1"]}]\n', TSRC)
    assert spec.cases[0].upper.tolist() == [2.0] and spec.description == ""


def toml_with(old: str, new: str) -> str:
    assert old in TOML
    return TOML.replace(old, new)


@pytest.mark.parametrize(("text", "where", "fragments"), [
    (toml_with("lower = [0.0, -1.0]", "lower = [0.0 -1.0]"), ":3:", ("invalid TOML",)),
    (toml_with("lower = [0.0, -1.0]\n", ""), ":2:", ("no lower",)),
    (toml_with('lower = [0.0, -1.0]', 'lower = "0"'), ":3:", ("list of numbers",)),
    (toml_with('lower = [0.0, -1.0]', 'lower = [0.0, "a"]'), ":3:", ("lower[1]", "'a'")),
    (toml_with('lower = [0.0, -1.0]', 'lower = [0.0, true]'), ":3:", ("lower[1]",)),
    (toml_with('lower = [0.0, -1.0]', 'lower = [0.0]'), ":4:", ("1 values",)),
    (toml_with('lower = [0.0, -1.0]', 'lower = [0.0, nan]'), ":3:", ("lower[1] is nan", "finite")),
    (toml_with('upper = [1.0,  1.0]', 'upper = [inf,  1.0]'), ":4:", ("upper[0] is inf", "unbounded")),
    (toml_with('upper = [1.0,  1.0]', 'upper = [1.0,  -2]'), ":3:", ("lower[1] = -1.0 is greater than upper[1]",)),
    (toml_with('lower = [0.0, -1.0]\nupper = [1.0,  1.0]', 'lower = []\nupper = []'), ":3:", ("empty",)),
    (toml_with('[input]\n', '[inputs]\n'), ":2:", ("unknown key 'inputs'", "description, input, unsafe")),
    (toml_with('upper =', 'uper ='), ":4:", ("unknown key 'uper'", "lower, upper, boxes")),
    (toml_with('upper = [1.0,  1.0]', 'upper = [1.0,  1.0]\nboxes = []'), ":5:", ("both",)),
    (toml_with('all = ["y1 > 3"]', 'any = ["y1 > 3"]'), ":10:", ("unknown key 'any'", "allowed keys: all")),
    (toml_with('all = ["y1 > 3"]', 'all = []'), ":10:", ("non-empty",)),
    (toml_with('all = ["y1 > 3"]', 'all = [3]'), ":10:", ("strings",)),
    (toml_with('all = ["y1 > 3"]', ''), ":9:", ("no 'all'",)),
    (toml_with('description = "example"', 'description = 3'), ":1:", ("description must be a string",)),
    (TOML.split("[[unsafe]]")[0], "", ("no [[unsafe]] block",)),
    ('[unsafe]\nall = ["y0 > 0"]\n[input]\nlower = [0]\nupper = [1]\n', ":1:", ("[[unsafe]]",)),
    ('[[unsafe]]\nall = ["y0 > 0"]\n', "", ("missing [input]",)),
    ('[[input.boxes]]\nlower = [0]\nupper = [1]\n[[input.boxes]]\nlower = [0, 0]\nupper = [1, 1]\n'
     + '[[unsafe]]\nall = ["y0 > 0"]\n', ":5:", ("number 2 has 2 inputs", "first box has 1")),
    ('[input]\nboxes = 3\n[[unsafe]]\nall = ["y0 > 0"]\n', ":2:", ("[[input.boxes]]",)),
    ('[[input.boxes]]\nlower = [0]\nupper = [1]\nside = 2\n[[unsafe]]\nall = ["y0 > 0"]\n', ":4:",
     ("unknown key 'side'", "[[input.boxes]] number 1")),
])
def test_toml_errors_are_located(text, where, fragments):
    spec_error(parse_toml, text, TSRC, contains=(f"{TSRC}{where}", *fragments))


@pytest.mark.parametrize(("constraint", "offset", "fragments"), [
    ("y0 <= 2y1", 7, ("expected", "'y1'")),
    ("y0 * y1 <= 1", 3, ("nonlinear",)),
    ("y0 <= x2", 6, ("x2 is out of range", "x0..x1")),
    ("y0 <= z1", 6, ("unknown name 'z1'",)),
    ("y0 + y1", 7, ("expected a comparison",)),
    ("(y0 <= 1", 4, ("expected ')'",)),
    ("y0 / 0 <= 1", 3, ("nonzero",)),
    ("y0 <= $1", 6, ("unexpected character '$'",)),
    ("y0 <= ", 6, ("end of the constraint",)),
    ("y0 <= 1 )", 8, ("')'",)),
    ("y0 <= 1e999", 6, ("1e999", "range")),
    ("Y0 <= 1", 0, ("'Y0'", "y<j>")),
])
def test_toml_constraint_errors_point_into_the_string(constraint, offset, fragments):
    text = toml_with('all = ["y1 > 3"]', f'all = ["y1 > 3",\n       "{constraint}"]')
    column = len('       "') + offset + 1
    err = spec_error(parse_toml, text, TSRC,
                     contains=(f"{TSRC}:11:{column}: ", repr(constraint), f"character {offset + 1}", *fragments))
    assert (err.line, err.column) == (11, column)


def test_toml_constant_constraints():
    spec = parse_toml(toml_with('all = ["y1 > 3"]', 'all = ["1 < 0", "y1 > 3"]'), TSRC)
    assert len(spec.cases[0].unsafe) == 1 and any("always false" in w for w in spec.warnings)
    spec = parse_toml(toml_with('all = ["y1 > 3"]', 'all = ["0 <= 1", "y1 > 3"]'), TSRC)
    assert spec.cases[0].unsafe[1].n_rows == 1 and any("always holds" in w for w in spec.warnings)
    spec_error(make_spec, [0], [1], [["y0 - y0 > 1"]], contains=("unsafe region is empty",))


# ---------------------------------------------------------------------------------------------
# bind
# ---------------------------------------------------------------------------------------------


def test_bind_vnnlib_checks_declared_sizes():
    spec = vnn("(assert (<= Y_0 Y_1))")
    assert spec.bind(2, 2) == spec
    spec_error(spec.bind, 3, 2, contains=(SRC, "2 inputs", "network has 3"))
    spec_error(spec.bind, 2, 5, contains=(SRC, "declares 2 outputs", "network has 5"))


def test_bind_pads_undeclared_outputs():
    spec = parse_toml(TOML, TSRC)
    assert rows(spec)[0].ay.shape == (2, 3)
    bound = spec.bind(2, 5)
    assert bound.n_outputs == 5 and all(c.ay.shape[1] == 5 for c in rows(bound))
    np.testing.assert_array_equal(rows(bound)[0].ay[:, 3:], 0)
    assert bound.violated_at([0.5, 0.0], [0, 4, 0, 9, 9])
    spec_error(spec.bind, 2, 2, contains=(TSRC, "output 2", "only 2 outputs"))
    spec_error(spec.bind, 3, 5, contains=(TSRC, "2 inputs"))


# ---------------------------------------------------------------------------------------------
# make_spec
# ---------------------------------------------------------------------------------------------


def test_make_spec_forms():
    spec = make_spec([0, -1], [1, 1], [["y0 <= y1", "y0 - 2*y2 >= 0.5"], ["y3 >= 1"]], description="d")
    assert (spec.n_inputs, spec.n_outputs, spec.source, spec.description) == (2, None, None, "d")
    assert [c.n_rows for c in rows(spec)] == [2, 1] and rows(spec)[0].ay.shape == (2, 4)
    same = make_spec(np.array([0.0, -1.0]), (1, 1), [("y0 <= y1", "y0 - 2*y2 >= 0.5"), "y3 >= 1"], "d")
    assert same == spec
    several = make_spec([[0, 0], [1, 1]], np.array([[1, 1], [2, 2]]), "y1 >= 3")
    assert len(several.cases) == 2 and several.cases[1].lower.tolist() == [1, 1]


@pytest.mark.parametrize(("args", "fragments"), [
    (([0, 0], [1], ["y0 > 0"]), ("2 values but upper has 1",)),
    (([[0, 0], [1]], [[1, 1], [2]], ["y0 > 0"]), ("list of numbers",)),
    (([0, 2], [1, 1], ["y0 > 0"]), ("lower[1] = 2.0 is greater than upper[1] = 1.0",)),
    (([0, -np.inf], [1, 1], ["y0 > 0"]), ("lower[1] is -inf",)),
    (([[0], [1]], [[1], [2], [3]], ["y0 > 0"]), ("2 boxes", "3")),
    (([[0], [0, 1]], [[1], [1, 2]], ["y0 > 0"]), ("list of numbers",)),
    (([0], [1], []), ("non-empty",)),
    (([0], [1], [[]]), ("unsafe[0]",)),
    (([0], [1], [["y0 > 0", 3]]), ("unsafe[0]",)),
    (([0], [1], ["y0 > 0", ["y1 > 0", "y0 <= 2y1"]]), ("unsafe[1][1]", "'y0 <= 2y1'", "character 8")),
    (([0], [1], None), ("unsafe",)),
    (("abc", [1], ["y0 > 0"]), ("lower",)),
])
def test_make_spec_errors(args, fragments):
    spec_error(make_spec, *args, contains=fragments)


# ---------------------------------------------------------------------------------------------
# load_spec
# ---------------------------------------------------------------------------------------------


def test_load_spec_by_extension(tmp_path):
    v = tmp_path / "p.vnnlib"
    v.write_text(declarations(2, 2) + unit_box(2) + "(assert (<= Y_0 Y_1))")
    t = tmp_path / "p.TOML"
    t.write_text(TOML)
    assert load_spec(v).source == str(v) and load_spec(str(v)).n_outputs == 2
    assert load_spec(t).n_outputs is None and load_spec(t).source == str(t)


def test_load_spec_errors_name_the_file(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{}")
    spec_error(load_spec, bad, contains=(str(bad), ".vnnlib", ".toml"))
    spec_error(load_spec, tmp_path / "missing.vnnlib", contains=("missing.vnnlib", "no such file"))
    (tmp_path / "dir.toml").mkdir()
    spec_error(load_spec, tmp_path / "dir.toml", contains=("dir.toml", "cannot read"))
    binary = tmp_path / "b.vnnlib"
    binary.write_bytes(b"(declare-const X_0 Real)\n\xff\xfe")
    spec_error(load_spec, binary, contains=("b.vnnlib", "UTF-8"))
    located = tmp_path / "e.vnnlib"
    located.write_text(HEAD + "(assert (<= Y_9 0))")
    err = spec_error(load_spec, located, contains=(f"{located}:4:13: ", "Y_9"))
    assert (err.path, err.line, err.column) == (str(located), 4, 13)
    spec_error(load_spec, 42, contains=("path",))


# ---------------------------------------------------------------------------------------------
# The real VNN-COMP 2021 files (skipped when the shared benchmarks are absent)
# ---------------------------------------------------------------------------------------------

MNIST = [f"mnistfc/prop_{i}_{eps}.vnnlib" for i in range(15) for eps in ("0.03", "0.05")]
# file -> (cases, disjuncts per case, rows per disjunct, n_inputs, n_outputs)
KNOWN = {
    "acasxu/prop_1.vnnlib": (1, 1, 1, 5, 5),
    "acasxu/prop_2.vnnlib": (1, 1, 4, 5, 5),
    "acasxu/prop_3.vnnlib": (1, 1, 4, 5, 5),
    "acasxu/prop_4.vnnlib": (1, 1, 4, 5, 5),
    "test/test_nano.vnnlib": (1, 1, 1, 1, 1),
    "test/test_tiny.vnnlib": (1, 1, 1, 1, 1),
    "test/test_small.vnnlib": (1, 1, 1, 1, 1),
    "test/test_prop.vnnlib": (1, 1, 4, 5, 5),
    **{name: (1, 9, 1, 784, 10) for name in MNIST},
}


@pytest.fixture
def bench() -> Path:
    if not BENCH.is_dir():
        pytest.skip(f"VNN-COMP 2021 benchmarks not found at {BENCH} (shared data absent)")
    return BENCH


def test_every_benchmark_file_is_covered(bench):
    found = {str(p.relative_to(bench)) for p in bench.glob("*/*.vnnlib")}
    assert found == set(KNOWN)
    assert len([f for f in found if f.startswith("mnistfc/")]) == 30


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_benchmark_file_parses(bench, name):
    start = time.process_time()  # CPU time: robust to other jobs loading the machine
    spec = load_spec(bench / name)
    elapsed = time.process_time() - start
    n_cases, n_disjuncts, n_rows, n_inputs, n_outputs = KNOWN[name]
    assert elapsed < 1.0, f"{name} took {elapsed:.2f} s"
    assert (spec.n_inputs, spec.n_outputs) == (n_inputs, n_outputs)
    assert len(spec.cases) == n_cases
    assert all(len(case.unsafe) == n_disjuncts for case in spec.cases)
    assert all(c.n_rows == n_rows for c in rows(spec))
    assert spec.warnings == ()
    assert spec.bind(n_inputs, n_outputs) == spec


def test_acasxu_prop_3_semantics(bench):
    spec = load_spec(bench / "acasxu/prop_3.vnnlib")
    [case] = spec.cases
    np.testing.assert_array_equal(case.lower, _inward(["-0.303531156", "-0.009549297", "0.493380324", "0.3", "0.3"],
                                                      upper=False))
    np.testing.assert_array_equal(case.upper, _inward(["-0.298552812", "0.009549297", "0.5", "0.5", "0.5"], upper=True))
    centre = (case.lower + case.upper) / 2
    assert spec.violated_at(centre, [0.0, 1.0, 1.0, 1.0, 1.0])  # COC minimal: unsafe
    assert spec.violated_at(centre, [1.0, 1.0, 1.0, 1.0, 1.0])  # ties count (<=)
    assert not spec.violated_at(centre, [1.0, 0.0, 1.0, 1.0, 1.0])
    assert not spec.violated_at(case.upper + 0.01, [0.0, 1.0, 1.0, 1.0, 1.0])


def test_acasxu_prop_1_row(bench):
    [c] = rows(load_spec(bench / "acasxu/prop_1.vnnlib"))
    assert (c.ay.tolist(), c.rhs.tolist()) == ([[-1, 0, 0, 0, 0]], [-3.991125645861615])


def test_mnist_disjuncts_compare_against_the_label(bench):
    for name in MNIST:
        spec = load_spec(bench / name)
        label = int(spec.description.rstrip(".").split()[-1])
        [case] = spec.cases
        assert np.all(case.lower >= 0) and np.all(case.upper <= 1) and np.all(case.lower <= case.upper)
        others = [j for j in range(10) if j != label]
        for j, c in zip(others, case.unsafe):  # (>= Y_j Y_label)  ->  Y_label - Y_j <= 0
            expected = np.zeros(10)
            expected[label], expected[j] = 1, -1
            np.testing.assert_array_equal(c.ay, [expected])
            assert c.rhs.tolist() == [0] and not c.strict.any()


# ---------------------------------------------------------------------------------------------
# Robustness: arbitrary damage to a valid file gives a Spec or a SpecError, nothing else
# ---------------------------------------------------------------------------------------------

VALID_VNNLIB = HEAD + "(assert (or (and (<= (* 2 Y_0) (- X_0 1e-3)) (> Y_0 -0.5)) (= Y_0 X_0)))\n"
SNIPPETS = ["(", ")", " ", "\n", ";", "X_", "Y_1", "-", "1e", "*", "=", '"', "'", "[", "]", ",", "#", "y0", "x9",
            "<=", "and", "or", "0", ".", "\\", "é", "\x00", "inf", "nan", "[[unsafe]]", "[input]", "lower"]


def damaged(base: str):
    edit = st.tuples(st.integers(0, len(base)), st.integers(0, 3), st.sampled_from(SNIPPETS))

    def apply(edits):
        text = base
        for at, cut, snippet in edits:
            at = min(at, len(text))
            text = text[:at] + snippet + text[at + cut:]
        return text

    return st.lists(edit, min_size=1, max_size=4).map(apply)


@settings(max_examples=300, deadline=None)
@given(damaged(VALID_VNNLIB))
def test_damaged_vnnlib_raises_only_spec_error(text):
    try:
        parse_vnnlib(text, SRC)
    except SpecError as exc:
        assert str(exc).startswith(SRC)


@settings(max_examples=300, deadline=None)
@given(damaged(TOML))
def test_damaged_toml_raises_only_spec_error(text):
    try:
        parse_toml(text, TSRC)
    except SpecError as exc:
        assert str(exc).startswith(TSRC)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="xy0123456789.e+-*/()<>= \t", max_size=25))
def test_arbitrary_constraint_strings_raise_only_spec_error(text):
    try:
        make_spec([0, 0], [1, 1], [[text]])
    except SpecError:
        pass


def test_row_on_several_variables_rounds_its_rhs_outward_and_replays_exactly():
    """``Y_0 - Y_1 <= 0.3`` (0.3 is no float64; its nearest lies below): the search's row takes the
    float64 just above 0.3 (it encloses the exact row), and a point is unsafe only if the exact row
    holds there."""
    spec = vnn("(assert (<= (- Y_0 Y_1) 0.3))")
    [c] = rows(spec)
    assert c.rhs.tolist() == [float(np.nextafter(0.3, 1.0))] and Fraction(0.3) < Fraction("0.3")
    assert c.holds_at([0.0, 0.0], [0.3, 0.0])  # 0.3 (the float) <= 0.3 (the decimal)
    assert not c.holds_at([0.0, 0.0], [float(np.nextafter(0.3, 1.0)), 0.0])  # just above the decimal
    assert c.margin([0.0, 0.0], [float(np.nextafter(0.3, 1.0)), 0.0])[0] <= 0  # ... inside the float row


def test_row_with_decimal_coefficients_is_scaled_to_float64_numbers():
    """``0.1 Y_0 - 0.3 Y_1 <= 0.05`` times 5 (the odd part of the denominators) is
    ``0.5 Y_0 - 1.5 Y_1 <= 0.25``: float64 numbers, so the search's row is the exact row, scaled,
    with no warning."""
    spec = vnn("(assert (<= (- (* 0.1 Y_0) (* 0.3 Y_1)) 0.05))")
    [c] = rows(spec)
    assert c.ay.tolist() == [[0.5, -1.5]] and c.rhs.tolist() == [0.25] and c.exact is None
    assert not any("float64" in w for w in spec.warnings)
