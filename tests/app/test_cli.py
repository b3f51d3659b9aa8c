"""The ``verifier`` command line: exit codes, messages for bad input, ``--json``, ``--vnncomp-out``, ``info``.

Most runs go through ``click.testing.CliRunner`` on ``verifier.cli.main``; a few are real processes of the
installed console script and of ``python cli.py`` from the repository root.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import helper

from tests.helpers.checks import check_counterexample
from tests.helpers.networks import ACT_BY_NAME, RELU, cancel_network, network_to_onnx, random_network, spike_network
from tests.helpers.onnx_builders import GraphBuilder, make_model, save, tensor
from tests.helpers.paths import REPO
from verifier.cli import main
from verifier.spec import load_spec

VERIFIER = Path(sys.executable).parent / "verifier"

HOLDS_TOML = """\
description = "the spike never reaches 1.01"
[input]
lower = [-1.0, -1.0]
upper = [1.0, 1.0]

[[unsafe]]
all = ["y0 >= 1.01"]
"""

VIOLATED_TOML = HOLDS_TOML.replace("1.01", "0.5")  # the spike reaches 1 at (0.3125, -0.4375)

# y0 of the cancel network is exactly 0.75: y0 >= 0.75 + 1e-7 holds by less than the margin -> unknown
UNKNOWN_VNNLIB = """\
; y0 >= 0.7500001 on the cancel network
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 -1.0))
(assert (<= X_0 1.0))
(assert (>= X_1 -1.0))
(assert (<= X_1 1.0))
(assert (>= Y_0 0.7500001))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    out = {
        "spike": network_to_onnx(spike_network(), RELU, d / "spike.onnx"),
        "cancel": network_to_onnx(cancel_network(), RELU, d / "cancel.onnx"),
        "holds": d / "holds.toml",
        "violated": d / "violated.toml",
        "unknown": d / "unknown.vnnlib",
    }
    out["holds"].write_text(HOLDS_TOML)
    out["violated"].write_text(VIOLATED_TOML)
    out["unknown"].write_text(UNKNOWN_VNNLIB)
    return out


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------------ verdicts
def test_holds_exit_0(files):
    r = run("verify", files["spike"], files["holds"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("HOLDS")
    assert "holds.toml" in r.stdout and "spike.onnx" in r.stdout


def test_violated_exit_1_prints_the_counterexample(files):
    r = run("verify", files["spike"], files["violated"])
    assert r.exit_code == 1, r.output
    assert r.stdout.startswith("VIOLATED")
    assert "counterexample input" in r.stdout and "onnxruntime output" in r.stdout


def test_unknown_exit_3_gives_the_reason(files):
    r = run("verify", files["cancel"], files["unknown"])
    assert r.exit_code == 3, r.output
    assert r.stdout.startswith("UNKNOWN") and "tau" in r.stdout


def test_quiet_prints_only_the_verdict(files):
    r = run("verify", files["spike"], files["holds"], "--quiet")
    assert r.exit_code == 0
    assert len(r.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize("solver", ["cbc", "highs"])
def test_solver_option(files, solver):
    from verifier.solve import solver_available

    assert solver_available(solver)  # both are core dependencies
    r = run("verify", files["cancel"], files["unknown"], "--solver", solver, "--json")
    assert r.exit_code == 3
    assert last_json(r.stdout)["stats"]["solver"] == solver


def test_api_options_solver_is_used(files):
    from verifier.solve import solver_available
    from verifier.verify import Options, verify

    assert solver_available("highs")
    res = verify(files["cancel"], files["unknown"], options=Options(solver="highs"))
    assert res.stats["solver"] == "highs"


# --------------------------------------------------------------------------------- --json output
def test_json_violated(files):
    r = run("verify", files["spike"], files["violated"], "--json")
    assert r.exit_code == 1
    data = last_json(r.stdout)
    assert set(data) >= {"result", "reason", "counterexample", "time_s", "stats"}
    assert data["result"] == "violated" and data["reason"] is None
    cex = data["counterexample"]
    assert isinstance(cex["input"], list) and len(cex["input"]) == 2
    assert isinstance(cex["output"], list) and len(cex["output"]) == 1
    assert all(isinstance(v, float) for v in cex["input"] + cex["output"])
    check_counterexample(files["spike"], load_spec(files["violated"]), cex["input"], cex["output"])
    assert isinstance(data["time_s"], float) and data["time_s"] >= 0
    assert isinstance(data["stats"], dict)


@pytest.mark.parametrize(("which", "model", "result", "code"),
                         [("holds", "spike", "holds", 0), ("unknown", "cancel", "unknown", 3)])
def test_json_holds_and_unknown(files, which, model, result, code):
    r = run("verify", files[model], files[which], "--json")
    assert r.exit_code == code
    data = last_json(r.stdout)
    assert data["result"] == result
    assert data["counterexample"] is None
    assert (data["reason"] is None) == (result == "holds")
    json.dumps(data)  # everything in it is plain JSON


# ----------------------------------------------------------------------------- --vnncomp-out
def test_vnncomp_out_sat_witness_matches_json(files, tmp_path):
    out = tmp_path / "result.txt"
    r = run("verify", files["spike"], files["violated"], "--vnncomp-out", out, "--json")
    assert r.exit_code == 1
    text = out.read_text()
    assert text.startswith("sat\n(")
    pairs = re.findall(r"\((X|Y)_(\d+) ([^()\s]+)\)", text)
    assert [(k, int(i)) for k, i, _ in pairs] == [("X", 0), ("X", 1), ("Y", 0)]
    cex = last_json(r.stdout)["counterexample"]
    xs = [float(v) for k, _, v in pairs if k == "X"]
    ys = [float(v) for k, _, v in pairs if k == "Y"]
    assert xs == cex["input"] and ys == cex["output"]  # full precision
    check_counterexample(files["spike"], load_spec(files["violated"]), xs, ys)
    assert text.rstrip().endswith("))")


def test_vnncomp_out_unsat_and_unknown(files, tmp_path):
    out = tmp_path / "r.txt"
    assert run("verify", files["spike"], files["holds"], "--vnncomp-out", out).exit_code == 0
    assert out.read_text() == "unsat\n"
    assert run("verify", files["cancel"], files["unknown"], "--vnncomp-out", out).exit_code == 3
    assert out.read_text() == "unknown\n"


def test_vnncomp_out_timeout(files, tmp_path):
    """A solver that times out (registered under a name, as a program embedding the CLI would)."""
    from tests.helpers.solvers import FakeSolver
    from verifier.milp.solvers import SolveOutcome, register_solver

    def fake(milp, time_limit=None, solver="cbc", cancel=None):
        return SolveOutcome("timeout", None, solver, 0.0, "time limit")

    register_solver("always-timeout", lambda: FakeSolver(fake, "always-timeout"))
    try:
        out = tmp_path / "r.txt"
        spec = tmp_path / "p.toml"
        spec.write_text(HOLDS_TOML.replace("y0 >= 1.01", "y0 >= 0.76"))
        r = run("verify", files["cancel"], spec, "--vnncomp-out", out, "--timeout", "50", "--solver", "always-timeout")
        assert r.exit_code == 3, r.output
        assert "timeout" in r.stdout
        assert out.read_text() == "timeout\n"
    finally:
        register_solver("always-timeout", None)


def test_unknown_solver_name_is_a_usage_error(files):
    r = run("verify", files["cancel"], files["unknown"], "--solver", "gurobi")
    assert r.exit_code == 2 and "not a solver" in r.output and "cbc, highs" in r.output


def test_vnncomp_out_unwritable(files, tmp_path):
    r = run("verify", files["spike"], files["holds"], "--vnncomp-out", tmp_path / "no" / "such" / "dir.txt")
    assert r.exit_code == 2
    assert "dir.txt" in r.stderr and "Traceback" not in r.output


# ----------------------------------------------------------------------------- usage errors: 2
def _bad_files(files: dict[str, Path], d: Path) -> dict[str, tuple[list, tuple[str, ...]]]:
    """case -> (arguments, fragments that the error message must contain)."""
    garbage = d / "garbage.onnx"
    garbage.write_bytes(bytes(range(256)) * 3)
    g = GraphBuilder(seed=1)
    h = g.gemm("x", 2, 3)
    h = g.op("Tanh", [h], name="my_tanh")
    g.gemm(h, 3, 1, out="y")
    tanh = save(d, g.model([tensor("x", [1, 2])], [tensor("y", [1, 1])]), "tanh_net.onnx")
    txt = d / "prop.txt"
    txt.write_text(HOLDS_TOML)
    bad_vnnlib = d / "broken.vnnlib"
    bad_vnnlib.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1.0)\n"
                          "(assert (>= X_0 0.0))\n")
    bad_op = d / "badop.vnnlib"
    bad_op.write_text("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
                      "(assert (<= X_0 1.0))\n(assert (>= X_0 0.0))\n(assert (<= X_1 1.0))\n(assert (>= X_1 0.0))\n"
                      "(assert (frobnicate Y_0 0.5))\n")
    swapped = d / "swapped.toml"
    swapped.write_text(HOLDS_TOML.replace("upper = [1.0, 1.0]", "upper = [1.0, -2.0]"))
    three = d / "three_inputs.toml"
    three.write_text(HOLDS_TOML.replace("[-1.0, -1.0]", "[-1.0, -1.0, 0.0]").replace("[1.0, 1.0]", "[1.0, 1.0, 1.0]"))
    big_y = d / "y7.toml"
    big_y.write_text(HOLDS_TOML.replace("y0 >= 1.01", "y7 >= 1.0"))
    not_onnx = d / "model.onnx.txt"
    not_onnx.write_text("this is not a model")
    return {
        "missing model": (["verify", d / "absent.onnx", files["holds"]], ("absent.onnx", "not found")),
        "missing spec": (["verify", files["spike"], d / "absent.toml"], ("absent.toml", "no such file")),
        "bad extension": (["verify", files["spike"], txt], ("prop.txt", ".txt", "extension")),
        "not onnx": (["verify", garbage, files["holds"]], ("garbage.onnx", "not a readable ONNX")),
        "text as onnx": (["verify", not_onnx, files["holds"]], ("model.onnx.txt", "ONNX")),
        "unsupported op": (["verify", tanh, files["holds"]], ("tanh_net.onnx", "Tanh", "unsupported", "my_tanh")),
        "unclosed vnnlib": (["verify", files["spike"], bad_vnnlib], ("broken.vnnlib:3", "never closed")),
        "unknown vnnlib operator": (["verify", files["spike"], bad_op], ("badop.vnnlib:8", "frobnicate")),
        "toml lower > upper": (["verify", files["spike"], swapped], ("swapped.toml", "lower[1]", "greater than",
                                                                      "upper[1]")),
        "too many inputs": (["verify", files["spike"], three], ("three_inputs.toml", "3 inputs", "2")),
        "output out of range": (["verify", files["spike"], big_y], ("y7.toml", "y7", "1 output")),
        "declared outputs mismatch": (["verify", files["spike"], files["unknown"]],
                                      ("unknown.vnnlib", "2 outputs", "1")),
        "unknown solver": (["verify", files["spike"], files["holds"], "--solver", "gurobi"],
                           ("--solver", "gurobi", "cbc", "highs")),
        "zero timeout": (["verify", files["spike"], files["holds"], "--timeout", "0"], ("--timeout",)),
        "info missing model": (["info", d / "absent.onnx"], ("absent.onnx", "not found")),
        "info unsupported op": (["info", tanh], ("tanh_net.onnx", "Tanh")),
    }


BAD_CASES = ["missing model", "missing spec", "bad extension", "not onnx", "text as onnx", "unsupported op",
             "unclosed vnnlib", "unknown vnnlib operator", "toml lower > upper", "too many inputs",
             "output out of range", "declared outputs mismatch", "unknown solver", "zero timeout", "info missing model", "info unsupported op"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exit_2_with_a_clear_message(files, tmp_path, case):
    args, fragments = _bad_files(files, tmp_path)[case]
    r = run(*args)
    assert r.exit_code == 2, (case, r.exit_code, r.output)
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    for frag in fragments:
        assert frag in r.stderr, f"{case}: {frag!r} missing from stderr: {r.stderr!r}"
    assert r.stdout.strip() == ""


def test_help_documents_exit_codes():
    for args in (["--help"], ["verify", "--help"]):
        r = run(*args)
        assert r.exit_code == 0
        if args == ["--help"]:
            text = r.stdout
            for code, word in (("0", "holds"), ("1", "violated"), ("2", "usage"), ("3", "unknown")):
                assert re.search(rf"^\s*{code}\s+{word}", text, re.MULTILINE), f"exit code {code} not documented"
    r = run("verify", "--help")
    for opt in ("--timeout", "--solver", "--json", "--vnncomp-out"):
        assert opt in r.stdout


# ------------------------------------------------------------------------------------- info
def test_info_text(files):
    r = run("info", files["spike"])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert re.search(r"input shape\s+\[1, 2\]", out)
    assert re.search(r"output shape\s+\[1, 1\]", out)
    assert re.search(r"parameters\s+19\b", out)  # 4*2+4 + 4+1 + 1+1
    assert re.search(r"neurons\s+5\b", out)
    assert out.count("ReLU") == 2 and "none (output)" in out


def test_info_json(files):
    r = run("info", files["cancel"], "--json")
    assert r.exit_code == 0
    data = last_json(r.stdout)
    assert data["input_shape"] == [1, 2] and data["output_shape"] == [1, 2]
    assert data["inputs"] == 2 and data["outputs"] == 2
    assert data["parameters"] == 2 * 2 + 2 + 2 * 2 + 2
    assert data["neurons"] == 2
    assert [(entry["inputs"], entry["outputs"]) for entry in data["layers"]] == [(2, 2), (2, 2)]
    assert data["layers"][0]["activation"] == "ReLU"
    assert data["opset"] == 13


def test_info_describes_leaky_and_clip(tmp_path):
    g = GraphBuilder(seed=2)
    h = g.op("LeakyRelu", [g.gemm("x", 3, 4)], alpha=0.1)
    h = g.op("Clip", [g.gemm(h, 4, 4), g.const(np.float32(0.0)), g.const(np.float32(6.0))])
    g.gemm(h, 4, 2, out="y")
    path = save(tmp_path, g.model([tensor("x", [1, 3])], [tensor("y", [1, 2])]))
    r = run("info", path, "--json")
    acts = [entry["activation"] for entry in last_json(r.stdout)["layers"]]
    assert acts == ["LeakyRelu(alpha=0.1)".replace("Relu", "ReLU"), "Clip(0, 6)", "none (output)"]


def _dag_model(tmp_path) -> Path:
    """Conv -> Relu -> MaxPool, a residual block (Conv -> Relu -> Conv, Add the pooled tensor,
    Relu), then Flatten -> Gemm."""
    g = GraphBuilder(seed=3)
    h = g.op("Relu", [g.op("Conv", ["x", g.weight((2, 1, 3, 3), 0.5)], pads=[1, 1, 1, 1], name="stem")])
    p = g.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2], name="pool")
    r = g.op("Relu", [g.op("Conv", [p, g.weight((2, 2, 3, 3), 0.5)], pads=[1, 1, 1, 1], name="inner")])
    r = g.op("Conv", [r, g.weight((2, 2, 3, 3), 0.5)], pads=[1, 1, 1, 1], name="res")
    r = g.op("Relu", [g.op("Add", [r, p], name="skip")])
    g.gemm(g.op("Flatten", [r]), 8, 3, out="y")
    return save(tmp_path, g.model([tensor("x", [1, 1, 4, 4])], [tensor("y", [1, 3])]))


def test_info_json_describes_the_dag(tmp_path):
    r = run("info", _dag_model(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    data = last_json(r.stdout)
    assert data["dag"] is True
    stem, pool, inner, res, out = data["layers"]
    assert [x["name"] for x in stem["reads"]] == ["input"] and stem["reads"][0]["shape"] == [1, 1, 4, 4]
    assert stem["output_shape"] == [1, 2, 4, 4] and stem["onnx_ops"] == ["Conv 'stem'", "Relu 'Relu_node_0'"]
    assert pool["activation_kind"] == "max" and pool["windows"] == {"count": 8, "max_size": 4}
    assert (pool["outputs"], pool["outputs_after_activation"], pool["output_shape"]) == (32, 8, [1, 2, 2, 2])
    assert [x["name"] for x in inner["reads"]] == ["layer 1"]
    assert [(x["name"], x["shape"]) for x in res["reads"]] == [("layer 1", [1, 2, 2, 2]), ("layer 2", [1, 2, 2, 2])]
    assert res["inputs"] == 16 and res["onnx_ops"] == ["Conv 'res'", "Add 'skip'", "Relu 'Relu_node_2'"]
    assert out["activation"] == "none (output)" and out["output_shape"] == [1, 3]
    assert out["onnx_ops"][-1].startswith("Gemm") and out["weights"]["nonzeros"] == 24


def test_info_text_shows_reads_shapes_windows_and_operators(tmp_path):
    r = run("info", _dag_model(tmp_path))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert re.search(r"layers\s+5 \(a DAG", out), out
    assert re.search(r"^\s+1\s+layer 0\s+32 -> 32\s+\[1, 2, 2, 2\]\s+Max over 8 windows of up to 4\s+MaxPool$", out, re.MULTILINE), out
    assert re.search(r"^\s+3\s+layer 1, layer 2\s+16 -> 8\s+\[1, 2, 2, 2\]\s+ReLU\s+Conv, Add, Relu$", out, re.MULTILINE), out


# ------------------------------------------------------------------------- real processes
def _proc(args: list, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.skipif(not VERIFIER.exists(), reason="console script not installed next to this python")
def test_console_script_violated_json(files):
    p = _proc([VERIFIER, "verify", files["spike"], files["violated"], "--json"])
    assert p.returncode == 1, p.stderr
    data = json.loads(p.stdout.strip().splitlines()[-1])
    assert data["result"] == "violated"
    check_counterexample(files["spike"], load_spec(files["violated"]), data["counterexample"]["input"])
    assert "Traceback" not in p.stderr


@pytest.mark.skipif(not VERIFIER.exists(), reason="console script not installed next to this python")
def test_console_script_unknown_and_error(files, tmp_path):
    p = _proc([VERIFIER, "verify", files["cancel"], files["unknown"]])
    assert p.returncode == 3 and p.stdout.startswith("UNKNOWN")
    p = _proc([VERIFIER, "verify", tmp_path / "nothing.onnx", files["holds"]])
    assert p.returncode == 2
    assert "nothing.onnx" in p.stderr and "Traceback" not in p.stderr


def test_python_cli_py_from_repo_root(files, tmp_path):
    out = tmp_path / "res.txt"
    p = _proc([sys.executable, "cli.py", "verify", files["spike"], files["holds"], "--vnncomp-out", out])
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("HOLDS") and out.read_text() == "unsat\n"
    assert "Traceback" not in p.stderr
    p = _proc([sys.executable, "cli.py", "info", files["spike"], "--json"])
    assert p.returncode == 0 and json.loads(p.stdout.splitlines()[-1])["neurons"] == 5


def test_no_warnings_or_tracebacks_on_stderr_for_a_normal_run(files):
    p = _proc([sys.executable, "cli.py", "verify", files["spike"], files["violated"]])
    assert p.returncode == 1
    assert p.stderr.strip() == "", p.stderr


def test_no_runtime_warning_on_stderr_for_one_sided_clip_networks(tmp_path):
    act = ACT_BY_NAME["min0.3"]
    path = network_to_onnx(random_network(0, act), act, tmp_path / "minclip.onnx")
    spec = tmp_path / "p.toml"
    spec.write_text(HOLDS_TOML.replace("y0 >= 1.01", "y0 - y1 >= 100"))
    p = _proc([sys.executable, "cli.py", "verify", path, spec, "--quiet"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr.strip() == "", p.stderr


def test_unsupported_operator_message_lists_every_unsupported_node(tmp_path):
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"], name="s1"), helper.make_node("Tanh", ["a"], ["y"], name="t1")]
    path = save(tmp_path, make_model(nodes, [tensor("x", [1, 2])], [tensor("y", [1, 2])]), "two_bad.onnx")
    r = run("info", path)
    assert r.exit_code == 2
    assert "Sigmoid" in r.stderr and "Tanh" in r.stderr and "s1" in r.stderr and "t1" in r.stderr
