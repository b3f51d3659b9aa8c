"""``verifier bounds --method exact``: the JSON schema of docs/bounds.md round-trips (witness values
are onnxruntime's at the witness inputs), the human table shows the found extrema, and the exit
code says whether every row closed its gap (0) or not (3)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from tests.helpers.networks import RELU, network_to_onnx, random_network
from verifier.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return network_to_onnx(random_network(11, RELU, widths=(2, 10, 10, 2)), RELU,
                           tmp_path_factory.mktemp("exact") / "m.onnx")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_json_round_trip_and_witnesses_replay(model):
    res = run("bounds", model, "--lower", "-1,-0.5", "--upper", "1,0.5", "--method", "exact", "--gap", "1e-3",
              "--query", "y0 - y1", "--query", "y1", "--timeout", "60", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["method"] == "exact" and len(out["boxes"]) == 1
    box = out["boxes"][0]
    assert box["names"] == ["y0 - y1", "y1"] and box["gap"] == 1e-3 and box["oracle"] == "onnxruntime"
    assert box["exact"] == [True, True] and "input branching" in box["engine"]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    C = np.array([[1.0, -1.0], [0.0, 1.0]])
    for end in ("lower", "upper"):
        w = box["witness"][end]
        for r in range(2):
            x = np.array(w["input"][r], np.float32)
            assert np.all(x >= [-1, -0.5]) and np.all(x <= [1, 0.5])
            y = sess.run(None, {"input": x.reshape(1, 2)})[0].ravel().astype(float)
            assert C[r] @ y == pytest.approx(w["value"][r], abs=1e-12)
        lo, hi, v = np.array(box["lower"]), np.array(box["upper"]), np.array(w["value"])
        assert np.all(lo <= v) and np.all(v <= hi)
        assert np.all(v - lo <= 1e-3) if end == "lower" else np.all(hi - v <= 1e-3)
    assert {"lower", "upper"} == set(box["stats"][0]) and "explored" in box["stats"][1]["lower"]


def test_human_table(model):
    res = run("bounds", model, "--lower", "-1,-1", "--upper", "1,1", "--method", "exact", "--timeout", "60")
    assert res.exit_code == 0, res.output
    assert "min found" in res.output and "max found" in res.output and "gap left" in res.output
    assert res.output.count(" yes") == 2


def test_unclosed_gap_exits_3_with_sound_bounds(tmp_path):
    path = network_to_onnx(random_network(7, RELU, widths=(2, 64, 64, 64, 2)), RELU, tmp_path / "big.onnx")
    res = run("bounds", path, "--lower", "-3,-3", "--upper", "3,3", "--method", "exact", "--gap", "0",
              "--timeout", "0.2", "--json")
    assert res.exit_code == 3, res.output
    box = json.loads(res.output.strip().splitlines()[-1])["boxes"][0]
    assert not all(box["exact"])
    sym = json.loads(run("bounds", path, "--lower", "-3,-3", "--upper", "3,3", "--json").output)["boxes"][0]
    assert np.all(np.array(box["lower"]) >= np.array(sym["lower"]) - 1e-12)


def test_other_methods_unchanged(model):
    res = run("bounds", model, "--lower", "-1,-1", "--upper", "1,1", "--method", "lp", "--json")
    assert res.exit_code == 0
    box = json.loads(res.output)["boxes"][0]
    assert "witness" not in box and set(box) >= {"lower", "upper", "exact", "method"}
