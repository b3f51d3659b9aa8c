"""Unsafe disjuncts that constrain only the inputs.

A disjunct such as ``(<= X_0 0.5)`` in ``(or (<= X_0 0.5) (>= Y_0 100))`` says that every input of
the box satisfying its input rows is unsafe. In VNN-LIB its single-input bounds become the case's
box and no row is left; in TOML (``all = ["x0 <= 0.5"]``) it stays a row with ``ay = 0``; a row
like ``x0 + x1 <= 0.3`` stays a row in both. Every stage must take such disjuncts: falsification,
bounds pruning, the LP check, the per-disjunct MILPs (also side by side), input splitting (also in
worker processes) and ``verifier bounds``. The answer is checked, not only the absence of a crash:
violated with an onnxruntime-replayed point inside the box that satisfies the input rows, or holds
when the input-only disjunct is empty inside the box and the other disjuncts hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.helpers.checks import check_counterexample, ort_eval
from tests.helpers.networks import RELU, network_to_onnx, random_network
from verifier import falsify
from verifier.bab import BabSettings, input_split, lp_refutes
from verifier.bounds import symbolic_bounds
from verifier.cli import main
from verifier.encoding import encode, output_rows
from verifier.onnx_loader import load_model
from verifier.oracle import OnnxOracle
from verifier.solve import solve
from verifier.spec import Constraints, load_spec, make_spec
from verifier.verify import Options, verify

LOWER, UPPER = [0.0, 0.0], [1.0, 1.0]
# On [0, 1]^2 the network's y0 lies in about [-1.2, -0.1]: "y0 >= 100" is never met (bounds prove it).
NEVER = "y0 >= 100"

# name -> (TOML constraint strings of the input-only disjunct, the same in VNN-LIB, does it hold?)
# The x-only disjunct is OR-ed with "y0 >= 100", which always holds (is empty).
DISJUNCTS = {
    "bound": (["x0 <= 0.5"], "(<= X_0 0.5)", False),
    "strict": (["x0 < 0.5"], "(< X_0 0.5)", False),
    "general": (["x0 + x1 <= 0.3"], "(<= (+ X_0 X_1) 0.3)", False),
    # empty inside the box: by bounds alone (a single row), or only with both rows together (LP / MILP)
    "empty": (["x0 >= 2"], "(>= X_0 2)", True),
    "empty_pair": (["x0 + x1 <= 0.3", "x0 - x1 >= 0.9"], "(and (<= (+ X_0 X_1) 0.3) (>= (- X_0 X_1) 0.9))", True),
}
# a second input-only disjunct that is empty inside the box but not by any single row
EMPTY_PAIR_2 = ["x0 + x1 >= 1.7", "x1 - x0 >= 0.9"]

VNNLIB_HEAD = """\
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 0))
(assert (<= X_0 1))
(assert (>= X_1 0))
(assert (<= X_1 1))
"""


def vnnlib_text(disjunct: str) -> str:
    return VNNLIB_HEAD + f"(assert (or {disjunct} (>= Y_0 100)))\n"


def toml_text(constraints: list[str]) -> str:
    quoted = ", ".join(json.dumps(c) for c in constraints)
    return (f"[input]\nlower = {LOWER}\nupper = {UPPER}\n\n[[unsafe]]\nall = [{quoted}]\n\n"
            f"[[unsafe]]\nall = [\"{NEVER}\"]\n")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    net = random_network(0, RELU, widths=(2, 8, 8, 2))
    return network_to_onnx(net, RELU, tmp_path_factory.mktemp("input_only") / "net.onnx")


@pytest.fixture(scope="module")
def net(model_path):
    return load_model(model_path)


def write_spec(tmp_path: Path, name: str, fmt: str) -> Path:
    toml, vnn, _ = DISJUNCTS[name]
    path = tmp_path / f"{name}.{fmt}"
    path.write_text(toml_text(toml) if fmt == "toml" else vnnlib_text(vnn))
    return path


def check_input_only_point(model_path: Path, spec, name: str, x, y) -> None:
    """``x`` violates the spec (replayed independently), lies in [0, 1]^2 and meets the disjunct's
    input rows exactly (the other disjunct, y0 >= 100, can never be met)."""
    x = np.asarray(x, dtype=np.float64)
    check_counterexample(model_path, spec, x, y)
    assert np.all(x >= LOWER) and np.all(x <= UPPER)
    assert ort_eval(model_path, x[None, :])[0, 0] < 100
    if name == "bound":
        assert x[0] <= 0.5
    elif name == "strict":
        assert x[0] < 0.5
    elif name == "general":
        assert x[0] + x[1] <= 0.3
    else:
        raise AssertionError(f"{name} cannot be violated")


# ----------------------------------------------------------------------------- the data model


def test_spec_shapes_of_an_input_only_disjunct(tmp_path):
    vnn = load_spec(write_spec(tmp_path, "bound", "vnnlib"))
    # the input bound became the box of its own case, with no row left
    rowless = [c for c in vnn.cases if any(d.n_rows == 0 for d in c.unsafe)]
    assert len(rowless) == 1 and rowless[0].upper[0] == 0.5
    toml = load_spec(write_spec(tmp_path, "bound", "toml")).bind(2, 2)
    (case,) = toml.cases
    d = case.unsafe[0]
    assert d.n_rows == 1 and not d.ay.any() and d.ax[0, 0] == 1.0


def test_worst_margin_without_rows_is_minus_infinity():
    none = Constraints(np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool))
    assert none.worst_margin(np.zeros((4, 2)), np.ones((4, 3))).tolist() == [-np.inf] * 4
    assert none.worst_margin([0.0, 0.0], [1.0, 1.0, 1.0]) == -np.inf
    assert none.holds_at([0.0, 0.0], [1.0, 1.0, 1.0])
    rows = Constraints([[1.0, 0.0], [0.0, 1.0]], np.zeros((2, 3)), [0.5, 0.25], [False, False])
    np.testing.assert_array_equal(rows.worst_margin([[0.0, 0.0], [1.0, 0.0]], np.zeros((2, 3))), [-0.25, 0.5])


# ----------------------------------------------------------------------------- falsification


def rowless(n_outputs: int = 2) -> Constraints:
    return Constraints(np.zeros((0, 2)), np.zeros((0, n_outputs)), np.zeros(0), np.zeros(0, bool))


def test_falsify_with_zero_rows(net):
    lo, hi = np.array(LOWER), np.array(UPPER)
    X = np.array([[0.0, 0.0], [0.5, 1.0], [1.0, 0.25]])
    assert np.all(falsify.margins(net, rowless(), X) == -np.inf)
    best_x, best_g = falsify.pgd(net, rowless(), lo, hi, X, steps=5)
    assert np.all(best_g == -np.inf) and np.all((best_x >= lo) & (best_x <= hi))
    cands = falsify.search(net, rowless(), lo, hi, np.random.default_rng(0), n_random=16, restarts=2, steps=5)
    assert cands.shape[1] == 2 and len(cands) > 0
    assert np.all((cands >= lo) & (cands <= hi))


def test_falsify_with_input_rows_only(net):
    # x0 + x1 <= 0.3: the margin is the input row's alone, and PGD walks to where it holds
    cons = make_spec(LOWER, UPPER, [["x0 + x1 <= 0.3"]]).bind(2, 2).cases[0].unsafe[0]
    lo, hi = np.array(LOWER), np.array(UPPER)
    X = np.array([[1.0, 1.0], [0.1, 0.1]])
    np.testing.assert_allclose(falsify.margins(net, cons, X), [1.7, -0.1])
    best_x, best_g = falsify.pgd(net, cons, lo, hi, np.array([[1.0, 1.0]]), steps=40, step_frac=0.2)
    assert best_g[0] <= 0 and best_x[0].sum() <= 0.3


# ----------------------------------------------------------------------------- bounds, LP, MILP


def test_lp_check_on_input_only_disjuncts(net):
    lo, hi = np.array(LOWER), np.array(UPPER)
    b = symbolic_bounds(net, lo, hi)

    def cons(strings):
        return make_spec(LOWER, UPPER, [strings]).bind(2, 2).cases[0].unsafe[0]

    assert not lp_refutes(net, b, lo, hi, rowless())
    assert not lp_refutes(net, b, lo, hi, cons(["x0 + x1 <= 0.3"]))
    assert lp_refutes(net, b, lo, hi, cons(DISJUNCTS["empty_pair"][0]))
    assert lp_refutes(net, b, lo, hi, cons(EMPTY_PAIR_2))


def test_milp_of_input_only_disjuncts(net):
    lo, hi = np.array(LOWER), np.array(UPPER)
    milp = encode(net, symbolic_bounds(net, lo, hi), lo, hi)
    for cons in (rowless(), make_spec(LOWER, UPPER, [["x0 + x1 <= 0.3"]]).bind(2, 2).cases[0].unsafe[0]):
        out = solve(milp.with_rows(output_rows(net, milp, cons.ax, cons.ay, cons.rhs + 1e-9)), 30)
        assert out.status in ("feasible", "optimal")
        x = out.values[milp.input_vars]
        assert np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)
        assert np.all(cons.ax @ x <= cons.rhs + 1e-6)
    empty = make_spec(LOWER, UPPER, [DISJUNCTS["empty_pair"][0]]).bind(2, 2).cases[0].unsafe[0]
    out = solve(milp.with_rows(output_rows(net, milp, empty.ax, empty.ay, empty.rhs)), 30)
    assert out.status == "infeasible"


def test_input_split_of_input_only_disjuncts(net, model_path):
    spec = make_spec(LOWER, UPPER, [["x0 + x1 <= 0.3"]]).bind(2, 2)
    case = spec.cases[0]
    out = input_split(net, case, list(case.unsafe), OnnxOracle(net), BabSettings(), None)
    assert out.status == "violated"
    check_input_only_point(model_path, spec, "general", out.counterexample.input, out.counterexample.output)
    empty = make_spec(LOWER, UPPER, [DISJUNCTS["empty_pair"][0], EMPTY_PAIR_2]).bind(2, 2)
    out = input_split(net, empty.cases[0], list(empty.cases[0].unsafe), OnnxOracle(net), BabSettings(), None)
    assert out.status == "holds", out.reason


# ----------------------------------------------------------------------------- the whole pipeline

PATHS = {
    "falsify": Options(strategy="milp"),
    "milp": Options(strategy="milp", falsify=False),
    "input-split": Options(strategy="input-split", falsify=False),
}


@pytest.mark.parametrize("fmt", ["vnnlib", "toml"])
@pytest.mark.parametrize("path_name", list(PATHS))
@pytest.mark.parametrize("name", list(DISJUNCTS))
def test_verify_answers(model_path, tmp_path, fmt, path_name, name):
    spec_path = write_spec(tmp_path, name, fmt)
    res = verify(model_path, spec_path, options=PATHS[path_name])
    spec = load_spec(spec_path).bind(2, 2)
    if DISJUNCTS[name][2]:
        assert res.status == "holds", res.reason
        assert res.counterexample is None
    else:
        assert res.status == "violated", res.reason
        check_input_only_point(model_path, spec, name, res.counterexample.input, res.counterexample.output)
        expected = {"falsify": "falsification", "milp": "milp", "input-split": "branch and bound"}[path_name]
        assert res.stats["found_by"] == expected


def test_empty_pair_is_proved_by_lp_and_by_milp(model_path, monkeypatch):
    spec = make_spec(LOWER, UPPER, [DISJUNCTS["empty_pair"][0], [NEVER]])
    res = verify(model_path, spec, options=PATHS["milp"])
    assert res.status == "holds", res.reason
    assert res.stats["disjunct_outcomes"]["proved_by_lp"] == 1
    # without HiGHS there is no LP check: the disjunct's MILP proves it (interval bounds: no tightening)
    monkeypatch.setattr("verifier.lp.highs_available", lambda: False)
    res = verify(model_path, spec, options=Options(strategy="milp", falsify=False, bounds="interval"))
    assert res.status == "holds", res.reason
    assert res.stats["disjunct_outcomes"]["proved_by_milp"] == 1
    assert res.stats["disjunct_outcomes"]["proved_by_bounds"] == 1


def test_input_only_milps_side_by_side(model_path, monkeypatch):
    # two input-only disjuncts that survive bounds and LP: solved side by side, the answer replays
    spec = make_spec(LOWER, UPPER, [["x0 + x1 <= 0.3"], ["x0 <= 0.5", "x1 >= 0.5"]]).bind(2, 2)
    res = verify(model_path, spec, options=Options(strategy="milp", falsify=False, jobs=2))
    assert res.status == "violated", res.reason
    assert res.stats["milps_side_by_side"] == 2
    check_counterexample(model_path, spec, res.counterexample.input, res.counterexample.output)
    x = res.counterexample.input
    assert x[0] + x[1] <= 0.3 or (x[0] <= 0.5 and x[1] >= 0.5)
    # two empty input-only disjuncts (no LP check): both MILPs prove them side by side
    monkeypatch.setattr("verifier.lp.highs_available", lambda: False)
    spec = make_spec(LOWER, UPPER, [DISJUNCTS["empty_pair"][0], EMPTY_PAIR_2, [NEVER]])
    res = verify(model_path, spec, options=Options(strategy="milp", falsify=False, jobs=2, bounds="interval"))
    assert res.status == "holds", res.reason
    assert res.stats["milps_side_by_side"] == 2
    assert res.stats["disjunct_outcomes"]["proved_by_milp"] == 2


@pytest.mark.parametrize("name", ["general", "empty_pair"])
def test_input_split_in_worker_processes(model_path, tmp_path, name):
    # parallel_after=0: the root box goes straight to the two worker processes
    spec_path = write_spec(tmp_path, name, "toml")
    res = verify(model_path, spec_path, options=Options(strategy="input-split", falsify=False, jobs=2,
                                                        parallel_after=0, timeout=120))
    assert res.stats.get("parallel_jobs") == 2
    if DISJUNCTS[name][2]:
        assert res.status == "holds", res.reason
    else:
        assert res.status == "violated", res.reason
        check_input_only_point(model_path, load_spec(spec_path).bind(2, 2), name, res.counterexample.input,
                               res.counterexample.output)


# ----------------------------------------------------------------------------- command line


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("fmt", ["vnnlib", "toml"])
@pytest.mark.parametrize("extra", [[], ["--strategy", "milp"], ["--strategy", "input-split"],
                                   ["--strategy", "milp", "--jobs", "2"]])
def test_cli_json_violated(model_path, tmp_path, fmt, extra):
    spec_path = write_spec(tmp_path, "bound", fmt)
    out_file = tmp_path / "result.txt"
    r = run_cli("verify", model_path, spec_path, "--json", "--vnncomp-out", out_file, *extra)
    assert r.exit_code == 1, r.output
    data = json.loads(r.output.strip().splitlines()[-1])
    assert data["result"] == "violated"
    x = data["counterexample"]["input"]
    check_input_only_point(model_path, load_spec(spec_path).bind(2, 2), "bound", x, data["counterexample"]["output"])
    text = out_file.read_text()
    assert text.startswith("sat\n") and f"(X_0 {float(x[0])!r})" in text


@pytest.mark.parametrize("fmt", ["vnnlib", "toml"])
@pytest.mark.parametrize("name", ["empty", "empty_pair"])
def test_cli_json_holds(model_path, tmp_path, fmt, name):
    spec_path = write_spec(tmp_path, name, fmt)
    r = run_cli("verify", model_path, spec_path, "--json", "--strategy", "milp")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output.strip().splitlines()[-1])
    assert data["result"] == "holds" and data["counterexample"] is None


@pytest.mark.parametrize("fmt", ["vnnlib", "toml"])
def test_cli_bounds_reads_input_only_specs(model_path, tmp_path, fmt):
    spec_path = write_spec(tmp_path, "bound", fmt)
    r = run_cli("bounds", model_path, spec_path, "--json")
    assert r.exit_code == 0, r.output
    boxes = json.loads(r.output.strip().splitlines()[-1])["boxes"]
    spec = load_spec(spec_path)
    assert len(boxes) == len(spec.cases) == (2 if fmt == "vnnlib" else 1)
    rng = np.random.default_rng(0)
    for box, case in zip(boxes, spec.cases):
        xs = case.lower + (case.upper - case.lower) * rng.random((20, 2))
        ys = ort_eval(model_path, xs.astype(np.float32))
        assert np.all(ys >= np.array(box["lower"]) - 1e-6) and np.all(ys <= np.array(box["upper"]) + 1e-6)
