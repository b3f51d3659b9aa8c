"""The VNN-COMP tool scripts (vnncomp/*.sh) on the shared ``test`` benchmark, witnesses replayed."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "benchmarks" / "vnncomp2021"
SCRIPTS = REPO / "vnncomp"
pytestmark = [
    pytest.mark.skipif(not BENCH.is_dir(), reason=f"shared VNN-COMP benchmarks not found at {BENCH}"),
    pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                       reason="needs bash and GNU timeout"),
]
ENV = {**os.environ, "VERIFIER_PYTHON": sys.executable}


def expected_test_instances() -> list[tuple[str, str, str]]:
    if not BENCH.is_dir():
        return []
    with (BENCH / "test" / "expected.csv").open() as f:
        return [(r["onnx"], r["vnnlib"], r["expected"]) for r in csv.DictReader(f)]


def run_script(name: str, *args: str, env: dict | None = None, limit: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / name), *args], check=False, capture_output=True, text=True,
                          env=env or ENV, timeout=limit)


def parse_witness(text: str) -> tuple[np.ndarray, np.ndarray]:
    """X and Y of a ``sat`` result file: ``((X_0 v) ... (Y_0 v) ...)``."""
    pairs = re.findall(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)", text)
    xs = {int(i): float(v) for k, i, v in pairs if k == "X"}
    ys = {int(i): float(v) for k, i, v in pairs if k == "Y"}
    assert sorted(xs) == list(range(len(xs))) and sorted(ys) == list(range(len(ys)))
    return np.array([xs[i] for i in range(len(xs))]), np.array([ys[i] for i in range(len(ys))])


def replay(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if "double" in inp.type else np.float32
    return np.asarray(sess.run(None, {inp.name: x.astype(dtype).reshape(shape)})[0], dtype=np.float64).ravel()


@pytest.mark.parametrize(("onnx", "vnnlib", "expected"), expected_test_instances())
def test_run_instance_on_the_shared_test_benchmark(tmp_path, onnx, vnnlib, expected):
    from verifier.spec import load_spec

    folder = BENCH / "test"
    prep = run_script("prepare_instance.sh", "v1", "test", str(folder / onnx), str(folder / vnnlib))
    assert prep.returncode == 0, prep.stderr
    result = tmp_path / "result.txt"
    t0 = time.monotonic()
    run = run_script("run_instance.sh", "v1", "test", str(folder / onnx), str(folder / vnnlib), str(result), "30")
    assert time.monotonic() - t0 < 30
    assert run.returncode == 0, run.stderr
    text = result.read_text()
    verdict = text.split()[0]
    assert verdict == {"holds": "unsat", "violated": "sat"}[expected], text
    if verdict == "sat":
        x, y_file = parse_witness(text)
        y = replay(folder / onnx, x)
        np.testing.assert_allclose(y_file, y, rtol=1e-5, atol=1e-6)
        spec = load_spec(folder / vnnlib).bind(x.size, y.size)
        assert spec.violated_at(x, y), "the witness does not violate the property in onnxruntime"


def test_prepare_rejects_missing_files_and_bad_arguments(tmp_path):
    assert run_script("prepare_instance.sh", "v1", "test", str(tmp_path / "a.onnx"), str(tmp_path / "b.vnnlib"),
                      limit=30).returncode != 0
    assert run_script("prepare_instance.sh", "v2", "x", "y", limit=30).returncode != 0


def test_run_instance_writes_a_result_even_when_the_tool_crashes(tmp_path):
    crash = tmp_path / "crash.sh"
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    result = tmp_path / "result.txt"
    folder = BENCH / "test"
    run = run_script("run_instance.sh", "v1", "test", str(folder / "test_nano.onnx"), str(folder / "test_nano.vnnlib"),
                     str(result), "10", env={**ENV, "VERIFIER_PYTHON": str(crash)})
    assert run.returncode == 0
    assert result.read_text().strip() == "error"
    # bad input (the tool exits 2 without a result file) is an error too
    run = run_script("run_instance.sh", "v1", "test", str(folder / "test_nano.onnx"), str(folder / "test_prop.vnnlib"),
                     str(result), "10")
    assert result.read_text().strip() == "error", run.stdout + run.stderr


def test_run_instance_returns_before_the_timeout_when_the_tool_hangs(tmp_path):
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    result = tmp_path / "result.txt"
    folder = BENCH / "test"
    t0 = time.monotonic()
    run_script("run_instance.sh", "v1", "test", str(folder / "test_nano.onnx"), str(folder / "test_nano.vnnlib"),
               str(result), "3", env={**ENV, "VERIFIER_PYTHON": str(hang)})
    assert time.monotonic() - t0 < 3
    assert result.read_text().strip() == "timeout"
