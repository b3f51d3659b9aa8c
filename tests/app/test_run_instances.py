"""``benchmarks/run_instances.py``: a thin layer over the batch code, on the shared ``test`` benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "benchmarks" / "vnncomp2021"
pytestmark = pytest.mark.skipif(not (BENCH / "test").is_dir(), reason=f"shared benchmarks not found at {BENCH}")


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/run_instances.py", *args], check=False, capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def test_test_benchmark_summary_and_json(tmp_path):
    out = tmp_path / "r.json"
    proc = run_script(str(BENCH / "test"), "--timeout", "30", "--jobs", "2", "--json-out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "== test: 5 instances" in proc.stdout
    head = [ln for ln in proc.stdout.splitlines() if ln.startswith("benchmark")]
    assert head and all(w in head[0] for w in ("solved", "holds", "viol", "unk", "wrong", "median_s", "total_s",
                                               "med_bin", "max_bin"))
    assert "test: network" in proc.stdout  # five networks: one row each
    report = json.loads(out.read_text())["test"]
    s = report["summary"]
    assert (s["instances"], s["solved"], s["holds"], s["violated"], s["wrong"]) == (5, 5, 4, 1, 0)
    assert len(report["networks"]) == 5
    for r in report["rows"]:
        assert r["match"] == "yes" and not r["wrong"]
        assert 0 < r["time_s"] <= r["wall_s"] + 1e-3 and r["worker_startup_s"] > 0


def test_filter_limit_and_verify_args_reach_the_instances(tmp_path):
    out = tmp_path / "r.json"
    proc = run_script(str(BENCH / "test"), "--filter", "test_(sat|unsat)", "--limit", "1", "--timeout", "30",
                      "--verify-args", "--strategy milp --seed 3", "--json-out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["test"]["rows"]
    assert [r["onnx"] for r in rows] == ["test_sat.onnx"]
    assert rows[0]["options"]["strategy"] == "milp" and rows[0]["options"]["seed"] == 3
    bad = run_script(str(BENCH / "test"), "--verify-args", "--vnncomp-out x")
    assert bad.returncode != 0 and "not a per-instance option" in bad.stderr


def test_a_wrong_verdict_exits_1(tmp_path):
    folder = tmp_path / "test"
    folder.mkdir()
    t = BENCH / "test"
    (folder / "instances.csv").write_text(f"{t / 'test_sat.onnx'},{t / 'test_prop.vnnlib'},30\n")
    (folder / "expected.csv").write_text(f"onnx,vnnlib,timeout_s,expected\n{t / 'test_sat.onnx'},"
                                         f"{t / 'test_prop.vnnlib'},30,holds\n")
    proc = run_script(str(folder), "--timeout", "30")
    assert proc.returncode == 1 and "WRONG" in proc.stdout
