"""Adversarial review of the independent certificate checker (verifier.checker), round 14.

Every hole is a pair of tests: a *premise* test (plain, must pass) shows with onnxruntime that the
certificate's verdict is false, and a test asserts that the checker
rejects the certificate (``Result.valid`` False or ``BadInput``); it fails today because the
checker accepts it. Crashes (a traceback instead of exit code 1 / 2) and completeness problems
(a correct certificate rejected) follow. All were found by a review and are fixed.

Models are built with ``onnx.helper`` and certificates by hand: the checker must trust neither.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

from verifier.checker import check_certificate
from verifier.checker.cli import run as cli_run
from verifier.checker.model import BadInput

MODES = ("fast", "exact")


# ------------------------------------------------------------------ builders

def _model(path, nodes, inits: dict, n_in: int = 1, n_out: int = 1, functions=(), opsets=None) -> Path:
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
                      [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
                      [nh.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = oh.make_model(g, opset_imports=opsets or [oh.make_opsetid("", 13)], functions=list(functions))
    m.ir_version = 8
    onnx.save(m, str(path))
    return Path(path)


def _vnnlib(path, lower, upper, conj: list[str], n_out: int = 1) -> Path:
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lower))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        lines += [f"(assert (>= X_{i} {lo}))", f"(assert (<= X_{i} {hi}))"]
    lines.append("(assert (and " + " ".join(conj) + "))")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def _row(ay=(), ax=(), rhs=0.0, strict=False) -> dict:
    return {"ax": [list(p) for p in ax], "ay": [list(p) for p in ay], "rhs": rhs, "strict": strict}


def _sha(p) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _cert(path, model, spec, cases, verdict="holds", **extra) -> Path:
    ops = sorted({n.op_type for n in onnx.load(str(model)).graph.node})
    doc = {"format": "relu-verifier-certificate", "version": 1, "verdict": verdict,
           "model": {"file": Path(model).name, "sha256": _sha(model)},
           "spec": {"file": Path(spec).name, "sha256": _sha(spec)},
           "onnxruntime": "review", "float_model": {"dtype": "float32"}, "operators": ops,
           "relaxation": "crown-1", "cases": cases, **extra}
    Path(path).write_text(json.dumps(doc))
    return Path(path)


def _root_case(lower, upper, rows: list[dict], evidence=None) -> dict:
    """One case, one disjunct (``rows``), the root closes it (default: lam 1 on row 0)."""
    ev = evidence or {"lam": [[0, 1.0]]}
    return {"lower": list(lower), "upper": list(upper), "disjuncts": [rows],
            "trees": [{"disjuncts": [0], "root": {"bounds": True, "close": {"0": ev}}}]}


def _ort(model, x) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    return np.asarray(sess.run(None, {inp.name: np.asarray(x, np.float32).reshape(shape)})[0]).ravel()


def _rejected(model, spec, cert, mode="fast") -> bool:
    try:
        return not check_certificate(str(model), str(spec), str(cert), mode).valid
    except BadInput:
        return True


def _gemm_relu_gemm(w0, w1, relu="Relu", domain=""):
    return [oh.make_node("Gemm", ["x", "W0"], ["h"]), oh.make_node(relu, ["h"], ["r"], domain=domain),
            oh.make_node("Gemm", ["r", "W1"], ["y"])]


# ------------------------------------------------------------------ H1: node.domain / model-local functions

def _local_function_case(tmp_path):
    """A model-local function ``evil.Relu`` whose body is Identity: the checker reads op_type
    'Relu' and ignores node.domain; onnxruntime inlines the function. y = -x on [1, 2]."""
    f = oh.make_function("evil", "Relu", ["X"], ["Y"], [oh.make_node("Identity", ["X"], ["Y"])],
                         [oh.make_opsetid("", 13)])
    model = _model(tmp_path / "f.onnx", _gemm_relu_gemm(-1.0, 1.0, domain="evil"), {"W0": [[-1.0]], "W1": [[1.0]]},
                   functions=[f], opsets=[oh.make_opsetid("", 13), oh.make_opsetid("evil", 1)])
    spec = _vnnlib(tmp_path / "f.vnnlib", [1.0], [2.0], ["(<= Y_0 -0.5)"])
    cert = _cert(tmp_path / "f.json", model, spec, [_root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], rhs=-0.5)])])
    return model, spec, cert


def test_premise_local_function_relu_is_identity_in_onnxruntime(tmp_path):
    model, _, _ = _local_function_case(tmp_path)
    y = _ort(model, [1.5])
    assert y[0] == -1.5 and y[0] <= -0.5  # x = 1.5 is in the box, y in the unsafe region


@pytest.mark.parametrize("mode", MODES)
def test_local_function_named_like_a_supported_op_is_refused(tmp_path, mode):
    model, spec, cert = _local_function_case(tmp_path)
    assert _rejected(model, spec, cert, mode)


# ------------------------------------------------------------------ H2: float32 overflow

def _overflow_case(tmp_path):
    """h = 3e38 x overflows float32 to +inf for x > 1.134; g = relu(-1e-38 h + 10) is then
    relu(-inf) = 0 while in the checker's (overflow-free) model g = 10 - 3x in [4, 7]."""
    nodes = [oh.make_node("Gemm", ["x", "W0"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("Gemm", ["r", "W1", "B1"], ["g"]), oh.make_node("Relu", ["g"], ["q"]),
             oh.make_node("Gemm", ["q", "W2"], ["y"])]
    model = _model(tmp_path / "o.onnx", nodes, {"W0": [[3e38]], "W1": [[-1e-38]], "B1": [10.0], "W2": [[1.0]]})
    spec = _vnnlib(tmp_path / "o.vnnlib", [1.0], [2.0], ["(<= Y_0 1.0)"])
    cert = _cert(tmp_path / "o.json", model, spec, [_root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], rhs=1.0)])])
    return model, spec, cert


def test_premise_float32_overflow_gives_an_unsafe_output(tmp_path):
    model, _, _ = _overflow_case(tmp_path)
    assert _ort(model, [1.0])[0] == 7.0
    assert _ort(model, [1.5])[0] == 0.0  # <= 1: unsafe


@pytest.mark.parametrize("mode", MODES)
def test_bounds_beyond_float32_range_do_not_prove(tmp_path, mode):
    model, spec, cert = _overflow_case(tmp_path)
    assert _rejected(model, spec, cert, mode)


# ------------------------------------------------------------------ H3: constant tables differ from onnxruntime's

def _late_constant_case(tmp_path):
    """Initializer W = 2 and a Constant node W = 5 *after* the Gemm that reads W: the checker
    uses the initializer (the Constant comes too late for it), onnxruntime the Constant node
    ("Duplicate initializer ... will use the latest encountered")."""
    nodes = [oh.make_node("Gemm", ["x", "W"], ["y"]),
             oh.make_node("Constant", [], ["W"], value=nh.from_array(np.array([[5.0]], np.float32)))]
    model = _model(tmp_path / "c.onnx", nodes, {"W": [[2.0]]})
    spec = _vnnlib(tmp_path / "c.vnnlib", [1.0], [2.0], ["(>= Y_0 5.0)"])
    cert = _cert(tmp_path / "c.json", model, spec, [_root_case([1.0], [2.0], [_row(ay=[(0, -1.0)], rhs=-5.0)])])
    return model, spec, cert


def _sparse_initializer_case(tmp_path):
    """Dense initializer W = 2 and a sparse_initializer W = 5: the checker never reads
    graph.sparse_initializer, onnxruntime uses the sparse one."""
    model = _model(tmp_path / "s.onnx", [oh.make_node("Gemm", ["x", "W"], ["y"])], {"W": [[2.0]]})
    m = onnx.load(str(model))
    m.graph.sparse_initializer.append(oh.make_sparse_tensor(
        nh.from_array(np.array([5.0], np.float32), "W"), nh.from_array(np.array([[0, 0]], np.int64), "W_i"), [1, 1]))
    onnx.save(m, str(model))
    spec = _vnnlib(tmp_path / "s.vnnlib", [1.0], [2.0], ["(>= Y_0 5.0)"])
    cert = _cert(tmp_path / "s.json", model, spec, [_root_case([1.0], [2.0], [_row(ay=[(0, -1.0)], rhs=-5.0)])])
    return model, spec, cert


@pytest.mark.parametrize("build", [_late_constant_case, _sparse_initializer_case])
def test_premise_onnxruntime_uses_the_shadowing_constant(tmp_path, build):
    model, _, _ = build(tmp_path)
    assert _ort(model, [1.5])[0] == 7.5  # 5 * 1.5 >= 5: unsafe; the checker reads y = 2x <= 4


@pytest.mark.parametrize("build", [_late_constant_case, _sparse_initializer_case])
def test_shadowed_constants_are_refused(tmp_path, build):
    model, spec, cert = build(tmp_path)
    assert _rejected(model, spec, cert)


# ------------------------------------------------------------------ H4: violated, counterexample outside the decimal box

def _decimal_box_case(tmp_path):
    """Spec X_0 >= 0.5000000000000000000001: its nearest float64 is 0.5 (below the decimal).
    The counterexample x = 0.5 (y = 0.5 <= 0.5) is accepted as inside the box, but it is not;
    the smallest float32 really inside is 0.50000006, where y > 0.5: the property holds."""
    model = _model(tmp_path / "v.onnx", _gemm_relu_gemm(1.0, 1.0), {"W0": [[1.0]], "W1": [[1.0]]})
    spec = _vnnlib(tmp_path / "v.vnnlib", ["0.5000000000000000000001"], ["1.0"], ["(<= Y_0 0.5)"])
    cert = _cert(tmp_path / "v.json", model, spec, [], verdict="violated",
                 counterexample={"case": 0, "x": [0.5], "y": [0.5]})
    return model, spec, cert


def test_premise_decimal_box_counterexample_is_outside_and_the_property_holds(tmp_path):
    model, _, _ = _decimal_box_case(tmp_path)
    assert not Fraction(0.5) >= Fraction("0.5000000000000000000001")
    first = np.nextafter(np.float32(0.5), np.float32(1.0))  # the smallest float32 in the box
    assert _ort(model, [first])[0] > 0.5  # y = x is increasing: no float32 input of the box is unsafe


def test_counterexample_outside_the_exact_decimal_box_is_rejected(tmp_path):
    model, spec, cert = _decimal_box_case(tmp_path)
    assert _rejected(model, spec, cert)


# ------------------------------------------------------------------ H5: gamma_n for n >= 2**24 terms

N_BIG = 2 ** 24 + 1


def _many_terms_case(tmp_path):
    """One output summing 2**24 + 1 ReLUs: gamma_n = n u / (1 - n u) is negative there, the
    'error' bound e < 0 makes the bounds cross and the root 'empty': anything is proved. Here
    y = N relu(x) >= 0 on [0, 1] is always in the unsafe region y >= -1."""
    nodes = [oh.make_node("MatMul", ["x", "W0"], ["h"]), oh.make_node("Relu", ["h"], ["r"]),
             oh.make_node("MatMul", ["r", "W1"], ["y"])]
    model = _model(tmp_path / "big.onnx", nodes, {"W0": np.ones((1, N_BIG), np.float32),
                                                  "W1": np.ones((N_BIG, 1), np.float32)})
    spec = _vnnlib(tmp_path / "big.vnnlib", [0.0], [1.0], ["(>= Y_0 -1.0)"])
    cert = _cert(tmp_path / "big.json", model, spec, [_root_case([0.0], [1.0], [_row(ay=[(0, -1.0)], rhs=1.0)])])
    return model, spec, cert


def test_premise_gamma_is_negative_beyond_2_24_terms():
    from verifier.checker.bounds import U32

    n = N_BIG
    assert n * U32 / (1.0 - n * U32) < 0  # what Net.gam computes for such a row


def test_rows_with_more_than_2_24_terms_do_not_prove_everything(tmp_path):
    model, spec, cert = _many_terms_case(tmp_path)
    assert _ort(model, [0.0])[0] == 0.0  # >= -1: every input is unsafe (premise, cheap once built)
    assert _rejected(model, spec, cert)


# ------------------------------------------------------------------ crashes: tracebacks instead of exit codes 1 / 2

def _small(tmp_path):
    model = _model(tmp_path / "m.onnx", _gemm_relu_gemm(1.0, 1.0), {"W0": [[1.0]], "W1": [[1.0]]})
    spec = _vnnlib(tmp_path / "m.vnnlib", [1.0], [2.0], ["(<= Y_0 0.5)"])
    return model, spec


def _crash_nan_box(tmp_path):
    model, spec = _small(tmp_path)
    case = _root_case([float("nan")], [float("nan")], [_row(ay=[(0, 1.0)], rhs=0.5)])
    return model, spec, _cert(tmp_path / "c.json", model, spec, [case])  # json writes NaN, json.loads reads it


def _crash_lam_row_inf(tmp_path):
    model, spec = _small(tmp_path)
    case = _root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], rhs=0.5)], {"lam": [[float("inf"), 1.0]]})
    return model, spec, _cert(tmp_path / "c.json", model, spec, [case])


def _crash_split_at_huge_int(tmp_path):
    model, spec = _small(tmp_path)
    case = _root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], rhs=0.5)])
    case["trees"][0]["root"].update(close={}, split={"input": 0, "at": 10 ** 400}, children=[{}, {}])
    return model, spec, _cert(tmp_path / "c.json", model, spec, [case])


def _crash_close_is_a_list(tmp_path):
    model, spec = _small(tmp_path)
    case = _root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], rhs=0.5)])
    case["trees"][0]["root"]["close"] = [0]
    return model, spec, _cert(tmp_path / "c.json", model, spec, [case])


def _crash_counterexample_list(tmp_path):
    model, spec = _small(tmp_path)
    return model, spec, _cert(tmp_path / "c.json", model, spec, [], verdict="violated", counterexample=[1.0])


def _crash_tiny_lam_denominator(tmp_path):
    """lam = 5e-324 makes D = 2**1074 in objective_lower: np.gcd / float overflow."""
    model = _model(tmp_path / "m.onnx", _gemm_relu_gemm(1.0, 1.0), {"W0": [[1.0]], "W1": [[1.0]]})
    spec = _vnnlib(tmp_path / "m.vnnlib", [1.0], [2.0], ["(<= (- Y_0 X_0) -0.5)", "(<= Y_0 0.25)"])
    rows = [_row(ay=[(0, 1.0)], ax=[(0, -1.0)], rhs=-0.5), _row(ay=[(0, 1.0)], rhs=0.25)]
    case = _root_case([1.0], [2.0], rows, {"lam": [[0, 1.0], [1, 5e-324]]})
    return model, spec, _cert(tmp_path / "c.json", model, spec, [case])


def _crash_spec_row_input_out_of_range(tmp_path):
    model = _model(tmp_path / "m.onnx", _gemm_relu_gemm(1.0, 1.0), {"W0": [[1.0]], "W1": [[1.0]]})
    spec = _vnnlib(tmp_path / "m.vnnlib", [1.0], [2.0], ["(<= (+ Y_0 X_3) 0.5)"])
    case = _root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], ax=[(3, 1.0)], rhs=0.5)])
    return model, spec, _cert(tmp_path / "c.json", model, spec, [case])


def _crash_spec_huge_decimal(tmp_path):
    model, _ = _small(tmp_path)
    spec = tmp_path / "h.vnnlib"
    spec.write_text("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (>= X_0 0))(assert (<= X_0 1e400))"
                    "(assert (<= Y_0 0))")
    return model, spec, _cert(tmp_path / "c.json", model, spec, [])


def _crash_toml_inf(tmp_path):
    model, _ = _small(tmp_path)
    spec = tmp_path / "i.toml"
    spec.write_text("[input]\nlower = [0.0]\nupper = [inf]\n[[unsafe]]\nall = ['y0 <= 0']\n")
    return model, spec, _cert(tmp_path / "c.json", model, spec, [])


def _crash_toml_unsafe_table(tmp_path):
    model, _ = _small(tmp_path)
    spec = tmp_path / "t.toml"
    spec.write_text("[input]\nlower = [0.0]\nupper = [1.0]\n[unsafe]\nall = ['y0 <= 0']\n")
    return model, spec, _cert(tmp_path / "c.json", model, spec, [])


def _crash_gemm_bias_shape(tmp_path):
    model = _model(tmp_path / "g.onnx", [oh.make_node("Gemm", ["x", "W", "C"], ["y"])], {"W": [[2.0]], "C": [[1.0], [2.0]]})
    spec = _vnnlib(tmp_path / "g.vnnlib", [1.0], [2.0], ["(<= Y_0 0.5)"])
    return model, spec, _cert(tmp_path / "c.json", model, spec, [])


def _crash_constant_value_floats(tmp_path):
    nodes = [oh.make_node("Constant", [], ["W"], value_floats=[2.0]), oh.make_node("Mul", ["x", "W"], ["y"])]
    model = _model(tmp_path / "k.onnx", nodes, {})
    spec = _vnnlib(tmp_path / "k.vnnlib", [1.0], [2.0], ["(<= Y_0 0.5)"])
    return model, spec, _cert(tmp_path / "c.json", model, spec, [_root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], rhs=0.5)])])


CRASHES = [_crash_nan_box, _crash_lam_row_inf, _crash_split_at_huge_int, _crash_close_is_a_list,
           _crash_counterexample_list, _crash_tiny_lam_denominator, _crash_spec_row_input_out_of_range,
           _crash_spec_huge_decimal, _crash_toml_inf, _crash_toml_unsafe_table, _crash_gemm_bias_shape,
           _crash_constant_value_floats]


@pytest.mark.parametrize("build", CRASHES, ids=[f.__name__[7:] for f in CRASHES])
def test_malformed_inputs_give_exit_codes_not_tracebacks(tmp_path, build, capsys):
    model, spec, cert = build(tmp_path)
    # two of these are correct certificates once read (a tiny positive multiplier, a Constant given
    # by value_floats): valid; the others are malformed: invalid or bad input, never a traceback
    correct = build in (_crash_tiny_lam_denominator, _crash_constant_value_floats)
    assert cli_run(str(model), str(spec), str(cert)) in ((0,) if correct else (1, 2))


# ------------------------------------------------------------------ completeness

def test_a_later_certificate_case_may_prove_the_spec_case(tmp_path):
    model, spec = _small(tmp_path)
    rows = [_row(ay=[(0, 1.0)], rhs=0.5)]
    good = _root_case([1.0], [2.0], rows)
    assert check_certificate(str(model), str(spec), str(_cert(tmp_path / "g.json", model, spec, [good]))).valid
    bigger_without_trees = {"lower": [0.0], "upper": [3.0], "disjuncts": [rows], "trees": []}
    cert = _cert(tmp_path / "c.json", model, spec, [bigger_without_trees, good])
    assert check_certificate(str(model), str(spec), str(cert)).valid


@pytest.mark.parametrize("mode", MODES)
def test_rows_mixing_x_and_y_use_their_cancellation(tmp_path, mode):
    """y = relu(x) = x on [1, 2]; unsafe y - x <= -0.5 is empty (y - x is within 1e-6 of 0),
    but the checker bounds min(y) + min(-x) = 1 - 2 separately and finds -0.5."""
    model = _model(tmp_path / "m.onnx", _gemm_relu_gemm(1.0, 1.0), {"W0": [[1.0]], "W1": [[1.0]]})
    spec = _vnnlib(tmp_path / "m.vnnlib", [1.0], [2.0], ["(<= (- Y_0 X_0) -0.5)"])
    cert = _cert(tmp_path / "c.json", model, spec,
                 [_root_case([1.0], [2.0], [_row(ay=[(0, 1.0)], ax=[(0, -1.0)], rhs=-0.5)])])
    res = check_certificate(str(model), str(spec), str(cert), mode)
    assert res.valid, res.reason


def test_constant_value_floats_is_read(tmp_path):
    model, spec, cert = _crash_constant_value_floats(tmp_path)
    assert _ort(model, [1.5])[0] == 3.0
    assert check_certificate(str(model), str(spec), str(cert)).valid
