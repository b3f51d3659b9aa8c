"""The independent certificate checker: import isolation, hand-computed certificates (the float32
error model, beta multipliers), bisection certificates of random nets in both arithmetics, a
float32 trap, and a fast mutation test."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

import verifier
from tests.helpers import hand_certificates as C
from tests.helpers import mutations
from tests.helpers.networks import (
    ACT_BY_NAME,
    RELU,
    cancel_network,
    make_net,
    network_to_onnx,
    random_network,
    reference_forward,
)
from verifier.checker import check_certificate
from verifier.io.certificate import rows

MODES = ("fast", "exact")


def _vnnlib(path, lower, upper, disjuncts: list[list[str]], n_out: int = 1):
    """``disjuncts``: VNN-LIB atoms over Y (each inner list one conjunction)."""
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lower))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        lines += [f"(assert (>= X_{i} {lo!r}))", f"(assert (<= X_{i} {hi!r}))"]
    body = " ".join("(and " + " ".join(conj) + ")" for conj in disjuncts)
    lines.append(f"(assert (or {body}))")
    path.write_text("\n".join(lines) + "\n")
    return path


def _root_cert(model, spec, rows_per_disjunct: int = 1, evidence=None):
    """One case, one tree, the root closes every disjunct with ``evidence`` (default row 0)."""
    sp = verifier.load_spec(spec)
    case = sp.cases[0]
    close = {str(j): copy.deepcopy(evidence) if evidence else {"lam": [[0, 1.0]]} for j in range(len(case.unsafe))}
    return C.document(model, spec, [{"lower": case.lower.tolist(), "upper": case.upper.tolist(),
                                      "disjuncts": [rows(c) for c in case.unsafe],
                                      "trees": [{"disjuncts": list(range(len(case.unsafe))),
                                                 "root": {"bounds": True, "close": close}}]}])


def test_importing_the_checker_loads_nothing_else_of_verifier():
    code = ("import sys, verifier.checker, verifier.checker.cli\n"
            "print([m for m in sys.modules if m.startswith('verifier') and m != 'verifier'"
            " and not m.startswith('verifier.checker')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ the float32 error model, by hand

def _identity_net(tmp_path):
    """``y = relu(x)`` as two float32 Gemms: on [1, 2] the float value is within
    e0 + e1 of x, e0 = gamma_1 * 2 + eta (first layer), e1 = gamma_1 * (2 + e0) + eta."""
    net = make_net([([[1.0]], [0.0], "relu"), ([[1.0]], [0.0], None)])
    return network_to_onnx(net, RELU, tmp_path / "id.onnx")


@pytest.mark.parametrize("mode", MODES)
def test_hand_computed_float_error_margin(tmp_path, mode):
    model = _identity_net(tmp_path)
    u, eta = 2.0 ** -24, 2.0 ** -149
    g1 = u / (1 - u)
    e0 = g1 * 2 + eta
    e1 = g1 * (2 + e0) + eta
    bound = 1.0 - e0 - e1  # the smallest float value of y the model admits on [1, 2]
    for rhs, valid in ((bound - 2e-9, True), (bound + 2e-9, False), (0.5, True), (1.0, False)):
        spec = _vnnlib(tmp_path / "p.vnnlib", [1.0], [2.0], [[f"(<= Y_0 {rhs!r})"]])
        cert = C.save(_root_cert(model, spec), tmp_path / "c.json")
        res = check_certificate(str(model), str(spec), str(cert), mode)
        assert res.valid is valid, (rhs, res.reason)


def test_float32_trap_real_arithmetic_proof_is_rejected(tmp_path):
    """``y = relu(x + 2**24) - 2**24``: in reals y = x >= 0.2 on [0.2, 0.9], but float32 rounds
    2**24 + 0.5 to 2**24 (float32 numbers are 2 apart there), so y = 0 is reachable. A root proof
    (what real-arithmetic bounds give) must be rejected."""
    net = make_net([([[1.0]], [2.0 ** 24], "relu"), ([[1.0]], [-(2.0 ** 24)], None)])
    model = network_to_onnx(net, RELU, tmp_path / "trap.onnx")
    spec = _vnnlib(tmp_path / "p.vnnlib", [0.2], [0.9], [["(<= Y_0 0.1)"]])
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.array([[0.5]], np.float32)})[0]
    assert y[0, 0] <= 0.1  # the trap is real
    cert = C.save(_root_cert(model, spec), tmp_path / "c.json")
    for mode in MODES:
        res = check_certificate(str(model), str(spec), str(cert), mode)
        assert not res.valid and "not > 0" in res.reason


# ------------------------------------------------------------------ beta multipliers, by hand

@pytest.mark.parametrize("mode", MODES)
def test_hand_computed_beta_certificate(tmp_path, mode):
    """``y0 = 0.75 + relu(p) - relu(p)``: no bound without splits proves y0 < 0.76. Split both
    neurons at 0: the leaves with equal phases close with the plain bound, the mixed ones need
    beta = 1 on the neuron whose phase contradicts the other's (p >= 0 and p <= 0)."""
    net = cancel_network()
    model = network_to_onnx(net, RELU, tmp_path / "cancel.onnx")
    spec = _vnnlib(tmp_path / "p.vnnlib", [-1.0, -1.0], [1.0, 1.0], [["(>= Y_0 0.76)"]])
    sp = verifier.load_spec(spec)
    case = sp.cases[0]

    def leaf(beta_neuron=None):
        ev = {"lam": [[0, 1.0]]}
        if beta_neuron is not None:
            ev["beta"] = {"0": [[beta_neuron, 1.0]]}
        return {"bounds": False, "close": {"0": ev}}

    def split(i, low, high):
        return {"bounds": False, "close": {}, "split": {"neuron": [0, i], "at": 0.0}, "children": [low, high]}

    # path n0 <= 0: then n1 <= 0 (plain) or n1 >= 0 (contradiction: beta on n1, the 'high' one)
    def tree(beta_ok=True):
        mixed_a = leaf(1 if beta_ok else None)  # n0 <= 0, n1 >= 0
        mixed_b = leaf(1 if beta_ok else None)  # n0 >= 0, n1 <= 0
        return {"bounds": True, "close": {}, "split": {"neuron": [0, 0], "at": 0.0},
                "children": [split(1, leaf(), mixed_a), split(1, mixed_b, leaf())]}

    def doc(root):
        return C.document(model, spec, [{"lower": case.lower.tolist(), "upper": case.upper.tolist(),
                                         "disjuncts": [rows(c) for c in case.unsafe],
                                         "trees": [{"disjuncts": [0], "root": root}]}])

    assert not check_certificate(str(model), str(spec), str(C.save(_root_cert(model, spec), tmp_path / "r.json")),
                                 mode).valid
    res = check_certificate(str(model), str(spec), str(C.save(doc(tree()), tmp_path / "c.json")), mode)
    assert res.valid, res.reason
    res = check_certificate(str(model), str(spec), str(C.save(doc(tree(False)), tmp_path / "c.json")), mode)
    assert not res.valid
    bad = tree()
    bad["children"][0]["children"][0]["close"]["0"]["beta"] = {"0": [[1, 1.0]]}  # fine: n1 is split there
    bad["children"][0]["close"] = {"0": {"lam": [[0, 1.0]], "beta": {"0": [[1, 1.0]]}}}  # n1 not split yet
    res = check_certificate(str(model), str(spec), str(C.save(doc(bad), tmp_path / "c.json")), mode)
    assert not res.valid and "split at 0 on the path" in res.reason


# ------------------------------------------------------------------ bisection certificates

def _random_case(tmp_path, act_name: str, seed: int):
    act = ACT_BY_NAME[act_name]
    net = random_network(seed, act, widths=(2, 8, 8, 2))
    model = network_to_onnx(net, act, tmp_path / f"n{seed}.onnx")
    rng = np.random.default_rng(seed)
    y = reference_forward(net, act, rng.uniform(-1, 1, (2000, 2)))
    t0 = float(y[:, 0].max()) + 0.2  # well above every sample: holds (else the builder fails)
    t1 = float(y[:, 1].min()) - 0.2
    spec = _vnnlib(tmp_path / f"p{seed}.vnnlib", [-1.0, -1.0], [1.0, 1.0],
                   [[f"(>= Y_0 {t0!r})"], [f"(<= Y_1 {t1!r})", "(>= Y_0 Y_1)"]], n_out=2)
    return net, model, spec


@pytest.mark.parametrize("act_name,seed", [("relu", 1), ("leaky0.1", 2), ("relu", 3)])
def test_bisection_certificates_check_in_both_arithmetics(tmp_path, act_name, seed):
    net, model, spec = _random_case(tmp_path, act_name, seed)
    sp = verifier.load_spec(spec)
    cert = C.save(C.bisection_certificate(model, spec, net, sp), tmp_path / "c.json.gz")
    for mode in MODES:
        res = check_certificate(str(model), str(spec), str(cert), mode)
        assert res.valid, (mode, res.reason)
        assert res.stats["closed"] >= 1


def test_mutated_certificates_are_rejected_unless_still_correct(tmp_path):
    """Every kind of mutation (tests/helpers/mutations.py) of a bisection certificate is rejected,
    unless the mutant is still a proof: then the exact arithmetic accepts it too and no sampled
    point of the box breaks the property."""
    net, model, spec = _random_case(tmp_path, "relu", 3)
    sp = verifier.load_spec(spec)
    doc = C.bisection_certificate(model, spec, net, sp)
    rng = np.random.default_rng(0)
    tried = rejected = still_valid = 0
    for kind in mutations.KINDS:
        for _ in range(2):
            m = mutations.mutate(doc, kind, rng)
            if m is None:
                continue
            tried += 1
            res = check_certificate(str(model), str(spec), str(C.save(m, tmp_path / "m.json")), "fast")
            if not res.valid:
                rejected += 1
                continue
            still_valid += 1
            assert kind not in ("model hash", "spec hash", "shrink box", "change spec row", "drop subtree"), kind
            assert check_certificate(str(model), str(spec), str(tmp_path / "m.json"), "exact").valid, kind
            case = sp.cases[0]
            xs = rng.uniform(case.lower, case.upper, (4000, case.lower.size))
            ys = reference_forward(net, RELU, xs)
            assert not any(case.violated_at(x, y) for x, y in zip(xs, ys)), kind
    print(f"mutants: {tried} tried, {rejected} rejected, {still_valid} still valid")
    assert tried >= 20 and rejected >= tried // 2


def test_bad_input_and_cli_exit_codes(tmp_path):
    net, model, spec = _random_case(tmp_path, "relu", 1)
    sp = verifier.load_spec(spec)
    good = C.save(C.bisection_certificate(model, spec, net, sp), tmp_path / "c.json")
    bad = C.save({"format": "something else"}, tmp_path / "bad.json")
    wrong = json.loads(good.read_text())
    wrong["cases"][0]["trees"] = []
    wrong = C.save(wrong, tmp_path / "wrong.json")
    for cert, code in ((good, 0), (wrong, 1), (bad, 2)):
        r = subprocess.run([sys.executable, "-m", "verifier.checker", str(model), str(spec), str(cert), "--json"],
                           check=False, capture_output=True, text=True)
        assert r.returncode == code, r.stdout + r.stderr
        assert "valid" in json.loads(r.stdout.strip().splitlines()[-1])
