"""``certificate = true`` in a suite: ``verifier check`` writes each check's certificate next to the JUnit
report, a check without its certificate fails, and a certificate the checker rejects fails the gate
(exit code 1)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from verifier.app import certificates
from verifier.app.certificates import CERTIFICATE_FAILURE, certificates_folder, judge_certificate
from verifier.app.suite import FAILED, PASSED, Judgement, ListError, certificate_file, load_suite
from verifier.app.tasks import Outcome, Task
from verifier.cli import main
from verifier.io.certificate import read

REPO = Path(__file__).resolve().parents[2]
MODELS, SPECS = REPO / "models", REPO / "specs"

SUITE = f"""
name = "certified"
certificate = true

[[check]]
name = "far is clear"
model = "{MODELS}/collision_advisory.onnx"
spec = "{SPECS}/collision_far_is_clear.toml"

[[check]]
name = "no strong advisory beyond 0.3"
model = "{MODELS}/collision_advisory.onnx"
spec = "{SPECS}/collision_no_strong_beyond_0p3.toml"
expect = "violated"

[[check]]
name = "leaky centre, no certificate asked"
model = "{MODELS}/leaky_classifier.onnx"
spec = "{SPECS}/leaky_centre_is_class0.vnnlib"
certificate = false
"""


def _suite(tmp_path: Path, body: str = SUITE) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(body)
    return path


def test_suite_certificate_key_at_the_top_and_per_check(tmp_path):
    suite = load_suite(_suite(tmp_path))
    assert [c.certificate for c in suite.checks] == [True, True, False]
    tasks = suite.tasks(certificates=str(tmp_path / "certs"))
    assert tasks[0].certificate == str(tmp_path / "certs" / "01-far-is-clear.proof.json.gz")
    assert tasks[1].certificate.endswith("02-no-strong-advisory-beyond-0.3.proof.json.gz")
    assert tasks[2].certificate is None and tasks[0].options.certificate == tasks[0].certificate
    assert all(t.certificate is None for t in suite.tasks())  # verifier batch: no certificates


def test_a_bad_certificate_value_is_reported_with_its_line(tmp_path):
    with pytest.raises(ListError, match=r"suite.toml:3: bad certificate value 'yes'"):
        load_suite(_suite(tmp_path, SUITE.replace("certificate = true", "certificate = 'yes'")))


def test_certificate_files_are_named_by_number_and_check():
    assert certificate_file("/r", 0, "a b/c: d") == "/r/01-a-b-c-d.proof.json.gz"
    assert certificate_file("/r", 11, "???") == "/r/12-check.proof.json.gz"
    assert certificates_folder("out/report.xml", "s.toml").endswith("out/report.certificates")


def test_check_writes_the_certificates_next_to_the_junit_report(tmp_path):
    report = tmp_path / "report.xml"
    res = CliRunner().invoke(main, ["check", str(_suite(tmp_path)), "--junit", str(report), "--jobs", "1", "--json"])
    assert res.exit_code == 0, res.output
    folder = tmp_path / "report.certificates"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["01-far-is-clear.proof.json.gz", "02-no-strong-advisory-beyond-0.3.proof.json.gz"]
    assert read(folder / files[0])["verdict"] == "holds"
    assert read(folder / files[1])["verdict"] == "violated"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["certificates"] == str(folder) and out["checks"][0]["certificate"] == str(folder / files[0])
    cases = {tc.get("name"): tc for tc in ET.parse(report).getroot().iter("testcase")}
    assert f"certificate: {folder / files[0]}" in cases["far is clear"].find("system-out").text


def test_a_certificate_the_checker_rejects_fails_the_gate(tmp_path, monkeypatch):
    seen = []

    def reject(model, spec, cert):
        seen.append(cert)
        return False, "leaf 3: bound -0.5 is not positive"

    monkeypatch.setattr(certificates, "run_checker", reject)
    report = tmp_path / "report.xml"
    res = CliRunner().invoke(main, ["check", str(_suite(tmp_path)), "--junit", str(report), "--jobs", "1"])
    assert res.exit_code == 1, res.output
    assert len(seen) == 2
    assert "the checker rejects its certificate: leaf 3" in res.stdout and "2 certificate rejected" in res.stdout
    cases = {tc.get("name"): tc for tc in ET.parse(report).getroot().iter("testcase")}
    assert cases["far is clear"].find("failure").get("type") == CERTIFICATE_FAILURE
    assert cases["leaky centre, no certificate asked"].find("failure") is None


def test_a_check_that_cannot_have_its_certificate_fails(tmp_path):
    body = f"""
certificate = true
[[check]]
name = "clipped"
model = "{MODELS}/clipped_regressor.onnx"
spec = "{SPECS}/clipped_small_inputs_small_product.toml"
"""
    res = CliRunner().invoke(main, ["check", str(_suite(tmp_path, body)), "--jobs", "1"], catch_exceptions=False)
    assert res.exit_code == 3, res.output
    assert "no certificate was written" in res.stdout and "ReLU and LeakyReLU" in res.stdout


def _judged(stats: dict | None, status: str = "holds") -> Judgement:
    task = Task("m.onnx", "s.toml", "/m.onnx", "/s.toml", 10.0, expected="holds", certificate="/c/01-x.proof.json.gz")
    return Judgement(Outcome(task, status, stats=stats), PASSED, False, "holds as required")


def test_judge_certificate():
    written = {"certificate": {"written": True, "path": "/c/01-x.proof.json.gz"}}
    assert judge_certificate(_judged(written), lambda *a: (True, "")).state == PASSED
    j = judge_certificate(_judged(written), lambda *a: None)
    assert j.state == PASSED and "not checked" in j.message
    j = judge_certificate(_judged(written), lambda *a: 1 / 0)
    assert j.state == FAILED and j.rejected and "checker failed: ZeroDivisionError" in j.message
    j = judge_certificate(_judged({"certificate": {"written": False, "reason": "case 0: too deep"}}))
    assert j.state == FAILED and not j.rejected and "too deep" in j.message and j.kind == CERTIFICATE_FAILURE
    j = _judged(None)
    assert judge_certificate(Judgement(j.outcome, FAILED, False, "unknown")).message == "unknown"
