"""``verifier check``: suite files, the CI gate's exit codes, JUnit reports, malformed suites."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from verifier.batch import Outcome, Task
from verifier.cli import main
from verifier.suite import FAILED, PASSED, UNKNOWN_ALLOWED, ListError, judge, load_suite

REPO = Path(__file__).resolve().parents[2]
MODELS, SPECS = REPO / "models", REPO / "specs"


def check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verifier.cli", "check", *args], check=False, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120, cwd=REPO)


def fault_check(*args: str, hang_on: str) -> subprocess.CompletedProcess:
    """``check`` with the checks whose name contains ``hang_on`` hanging their worker (tests.app.fault_cli)."""
    return subprocess.run([sys.executable, "-m", "tests.app.fault_cli", "--hang-on", hang_on, "check", *args],
                          check=False, capture_output=True, text=True, timeout=120, cwd=REPO)


def write_suite(folder: Path, body: str) -> Path:
    path = folder / "suite.toml"
    path.write_text(body.replace("MODELS", str(MODELS)).replace("SPECS", str(SPECS)))
    return path


def junit_cases(report: Path) -> dict[str, ET.Element]:
    root = ET.parse(report).getroot()
    return {tc.get("name"): tc for tc in root.iter("testcase")}


GOOD = """
[[check]]
name = "far is clear"
model = "MODELS/collision_advisory.onnx"
spec = "SPECS/collision_far_is_clear.toml"
"""
WRONG = """
[[check]]
name = "no strong advisory beyond 0.3"
model = "MODELS/collision_advisory.onnx"
spec = "SPECS/collision_no_strong_beyond_0p3.toml"
timeout = 30
"""
HANGS = """
[[check]]
name = "hangs (test hook)"
model = "MODELS/leaky_classifier.onnx"
spec = "SPECS/leaky_centre_is_class0.toml"
timeout = 0.5
"""


def test_shipped_suite_passes(tmp_path):
    report = tmp_path / "report.xml"
    proc = check(str(SPECS / "suite.toml"), "--junit", str(report), "--json", "--jobs", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["failed"] == 0 and data["passed"] == len(data["checks"]) >= 5
    assert any(c["expected"] == "violated" for c in data["checks"])
    cases = junit_cases(report)
    assert len(cases) == len(data["checks"])
    assert all(tc.get("classname") == "shipped-models" and tc.find("failure") is None for tc in cases.values())


def test_violated_check_fails_with_counterexample_in_junit(tmp_path):
    suite = write_suite(tmp_path, GOOD + WRONG)
    report = tmp_path / "report.xml"
    proc = check(str(suite), "--junit", str(report), "--jobs", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL  no strong advisory beyond 0.3" in proc.stdout and "counterexample input" in proc.stdout
    assert "PASS  far is clear" in proc.stdout
    cases = junit_cases(report)
    failure = cases["no strong advisory beyond 0.3"].find("failure")
    assert failure is not None and failure.get("type") == "WrongVerdict"
    assert "counterexample input" in failure.text and "onnxruntime output" in failure.text
    assert cases["far is clear"].find("failure") is None
    root = ET.parse(report).getroot()
    assert root.find("testsuite").get("failures") == "1" and root.find("testsuite").get("tests") == "2"


def test_unknown_fails_unless_allowed(tmp_path):
    suite = write_suite(tmp_path, GOOD + HANGS)
    report = tmp_path / "report.xml"
    proc = fault_check(str(suite), "--junit", str(report), "--jobs", "2", hang_on="hangs (test hook)")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    failure = junit_cases(report)["hangs (test hook)"].find("failure")
    assert failure is not None and "timeout" in failure.get("message")
    proc = fault_check(str(suite), "--junit", str(report), "--jobs", "2", "--allow-unknown", hang_on="hangs (test hook)")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARN  hangs (test hook)" in proc.stdout
    case = junit_cases(report)["hangs (test hook)"]
    assert case.find("skipped") is not None and "WARNING" in case.find("system-out").text


def test_a_rejected_model_or_spec_is_an_error_even_with_allow_unknown(tmp_path):
    suite = write_suite(tmp_path, GOOD + GOOD.replace("far is clear", "wrong network").replace(
        "collision_advisory.onnx", "leaky_classifier.onnx"))
    report = tmp_path / "report.xml"
    proc = check(str(suite), "--junit", str(report), "--allow-unknown", "--jobs", "2")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "FAIL  wrong network: bad input" in proc.stdout
    cases = junit_cases(report)
    assert cases["wrong network"].find("error") is not None and cases["far is clear"].find("error") is None


def test_expect_violated_and_proved_instead(tmp_path):
    suite = write_suite(tmp_path, GOOD.replace('spec = "SPECS/collision_far_is_clear.toml"',
                                               'spec = "SPECS/collision_far_is_clear.toml"\nexpect = "violated"'))
    proc = check(str(suite), "--jobs", "1")
    assert proc.returncode == 1 and "no counterexample exists" in proc.stdout


@pytest.mark.parametrize(("body", "line", "message"), [
    ('[[check]]\nmodel = "MODELS/leaky_classifier.onnx"\nspec = "SPECS/leaky_centre_is_class0.toml"\ncolour = 1\n',
     4, "unknown key 'colour'"),
    (('[[check]]\nmodel = "MODELS/leaky_classifier.onnx"\nspec = "SPECS/leaky_centre_is_class0.toml"\n\n'
     '[[check]]\nspec = "SPECS/leaky_centre_is_class0.toml"\n'), 5, "missing the required key 'model'"),
    ('[[check]]\nmodel = "MODELS/nope.onnx"\nspec = "SPECS/leaky_centre_is_class0.toml"\n', 2,
     "model file not found: "),
    (('[[check]]\nmodel = "MODELS/leaky_classifier.onnx"\nspec = "SPECS/leaky_centre_is_class0.toml"\n'
     'expect = "safe"\n'), 4, "bad expect value 'safe'"),
    (('[[check]]\nmodel = "MODELS/leaky_classifier.onnx"\nspec = "SPECS/leaky_centre_is_class0.toml"\n'
     'timeout = "soon"\n'), 4, "bad timeout"),
    ('[[check]]\nmodel = "MODELS/leaky_classifier.onnx"\nspec = = 3\n', 3, "TOML syntax error"),
    ('name = "x"\n', None, "no checks"),
    (('[[check]]\nname = "a"\nmodel = "MODELS/leaky_classifier.onnx"\nspec = "SPECS/leaky_centre_is_class0.toml"\n'
     '[[check]]\nname = "a"\nmodel = "MODELS/leaky_classifier.onnx"\nspec = "SPECS/leaky_centre_is_class0.toml"\n'),
     5, "duplicate check name 'a'"),
])
def test_malformed_suite_exits_2_with_file_and_line(tmp_path, body, line, message):
    suite = write_suite(tmp_path, body)
    for command in ("check", "batch"):
        res = CliRunner().invoke(main, [command, str(suite)])
        assert res.exit_code == 2, res.output
        where = f"{suite}:{line}: " if line else f"{suite}: "
        assert where in res.output and message in res.output, res.output


def test_suite_paths_are_relative_to_the_suite_file(tmp_path):
    suite = load_suite(SPECS / "suite.toml")
    assert suite.name == "shipped-models"
    assert all(Path(c.model_path).is_file() and Path(c.spec_path).is_file() for c in suite.checks)
    assert all(c.line for c in suite.checks)
    with pytest.raises(ListError):
        load_suite(tmp_path / "absent.toml")


def test_judge():
    t = Task("m.onnx", "s.vnnlib", "/m", "/s", 1, expected="holds")
    assert judge(Outcome(t, "holds")).state == PASSED
    wrong = judge(Outcome(t, "violated", counterexample={"input": [0.0], "output": [1.0]}))
    assert wrong.state == FAILED and wrong.wrong
    assert judge(Outcome(t, "unknown", "timeout")).state == FAILED
    assert judge(Outcome(t, "unknown", "timeout"), allow_unknown=True).state == UNKNOWN_ALLOWED
