"""Models whose graph input is float16 or float64 (and bfloat16, which is refused).

onnxruntime must be fed the model's own input element type, and a counterexample must be the value
actually fed: exactly representable in that type and inside the box, bounds included, even when the
box bounds themselves are not representable. The VNN-COMP result file and ``--json`` print those
values with full precision, so that reading them back gives the fed values bit for bit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto

from tests.helpers.onnx_builders import GraphBuilder, save, tensor
from verifier.cli import main
from verifier.errors import ModelError
from verifier.network import Activation, Layer, Network
from verifier.onnx_loader import load_model
from verifier.oracle import OnnxOracle, cast_into_box
from verifier.spec import load_spec
from verifier.verify import Options, verify

NP_TYPES = {TensorProto.FLOAT16: np.float16, TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}
TYPE_NAMES = {TensorProto.FLOAT16: "float16", TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64"}
# box bounds that no float16 (nor float32) value equals: the corner must be rounded inwards
LOWER, UPPER = [-0.99, -0.97], [0.93, 0.91]


def cast_model(elem_type: int) -> onnx.ModelProto:
    """input (elem_type) -> Cast to float -> Gemm -> Relu -> Gemm: the same weights for every input type."""
    g = GraphBuilder(seed=1)
    x = g.op("Cast", ["x"], to=TensorProto.FLOAT)
    h = g.op("Relu", [g.gemm(x, 2, 6)])
    g.gemm(h, 6, 2, out="y")
    return g.model([tensor("x", [1, 2], elem_type)], [tensor("y", [1, 2])])


def float16_model() -> onnx.ModelProto:
    """Everything in float16: input, weights, Gemm and Relu, output."""
    g = GraphBuilder(seed=2)
    w1, b1 = g.const(g.randn((6, 2), 0.7), dtype=np.float16), g.const(g.randn((6,), 0.3), dtype=np.float16)
    h = g.op("Relu", [g.op("Gemm", ["x", w1, b1], transB=1)])
    w2, b2 = g.const(g.randn((2, 6), 0.4), dtype=np.float16), g.const(g.randn((2,), 0.3), dtype=np.float16)
    g.op("Gemm", [h, w2, b2], out="y", transB=1)
    return g.model([tensor("x", [1, 2], TensorProto.FLOAT16)], [tensor("y", [1, 2], TensorProto.FLOAT16)])


def replay(path: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on ``x`` fed in the model's declared input type (independent of the verifier)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(double)": np.float64}[inp.type]
    feed = np.asarray(x, dtype=np.float64).astype(dtype)
    return np.asarray(sess.run(None, {inp.name: feed.reshape(1, -1)})[0], dtype=np.float64).ravel()


def check_fed_point(path: Path, dtype, x, y, y0_min: float) -> None:
    """``x`` is exactly a ``dtype`` value, lies in the box, and onnxruntime gives ``y`` with y0 >= y0_min."""
    x = np.asarray(x, dtype=np.float64)
    assert np.array_equal(x.astype(dtype).astype(np.float64), x), f"{x.tolist()} is not representable in {dtype}"
    assert np.all(x >= LOWER) and np.all(x <= UPPER), x.tolist()
    y_ort = replay(path, x)
    np.testing.assert_array_equal(np.asarray(y, dtype=np.float64), y_ort)
    assert y_ort[0] >= y0_min


def max_y0(path: Path) -> float:
    """The largest y0 over the box (exact MILP bound), for thresholds relative to it."""
    r = CliRunner().invoke(main, ["bounds", str(path), f"--lower={LOWER[0]},{LOWER[1]}",
                                  f"--upper={UPPER[0]},{UPPER[1]}", "--method", "milp", "--json"])
    assert r.exit_code == 0, r.output
    box = json.loads(r.output.strip().splitlines()[-1])["boxes"][0]
    assert box["exact"][0]
    return box["upper"][0]


def spec_file(tmp_path: Path, threshold: float, fmt: str) -> Path:
    if fmt == "toml":
        text = f'[input]\nlower = {LOWER}\nupper = {UPPER}\n[[unsafe]]\nall = ["y0 >= {threshold!r}"]\n'
    else:
        text = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
                f"(assert (>= X_0 {LOWER[0]}))\n(assert (<= X_0 {UPPER[0]}))\n"
                f"(assert (>= X_1 {LOWER[1]}))\n(assert (<= X_1 {UPPER[1]}))\n(assert (>= Y_0 {threshold!r}))\n")
    path = tmp_path / f"spec.{fmt}"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- cast_into_box


def test_cast_into_box_float16():
    lo, hi = np.array([-0.99, 0.0]), np.array([0.93, 70000.0])
    x = cast_into_box(np.array([0.95, 1e6]), lo, hi, np.float16)
    # 0.93 rounds up to 0.93017578125 in float16: the value returned is the float16 just below
    assert x[0] == 0.9296875 and x[1] == 65504.0
    assert float(np.float16(0.93)) > 0.93  # (so that the test above is about the nudge)
    # no float16 value between 0.93 and 0.9301 (float32 has some); none beyond the float16 range
    assert cast_into_box(np.array([0.93]), np.array([0.93]), np.array([0.9301]), np.float16) is None
    assert cast_into_box(np.array([0.93]), np.array([0.93]), np.array([0.9301]), np.float32) is not None
    assert cast_into_box(np.array([7e4]), np.array([7e4]), np.array([8e4]), np.float16) is None
    neg = cast_into_box(np.array([-1e6]), np.array([-1e5]), np.array([0.0]), np.float16)
    assert neg[0] == -65504.0


@pytest.mark.parametrize("elem_type", list(NP_TYPES))
def test_oracle_feeds_the_models_input_type(tmp_path, elem_type):
    path = save(tmp_path, cast_model(elem_type))
    net = load_model(path)
    assert net.meta["input_dtype"] == TYPE_NAMES[elem_type]
    oracle = OnnxOracle(net)
    assert oracle.dtype is NP_TYPES[elem_type]
    x = cast_into_box(np.array([0.3, -0.7]), np.array(LOWER), np.array(UPPER), oracle.dtype)
    np.testing.assert_array_equal(oracle.run(x), replay(path, x))


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("fmt", ["toml", "vnnlib"])
@pytest.mark.parametrize("elem_type", list(NP_TYPES))
def test_violated_counterexample_is_the_fed_value(tmp_path, elem_type, fmt):
    path = save(tmp_path, cast_model(elem_type))
    top = max_y0(path)
    threshold = top - 0.002  # met only near the corner (0.93, 0.91), which float16 cannot represent
    res = verify(path, spec_file(tmp_path, threshold, fmt))
    assert res.status == "violated", res.reason
    check_fed_point(path, NP_TYPES[elem_type], res.counterexample.input, res.counterexample.output, threshold)


@pytest.mark.parametrize("strategy", ["milp", "input-split"])
def test_violated_float16_without_falsification(tmp_path, strategy):
    path = save(tmp_path, cast_model(TensorProto.FLOAT16))
    threshold = max_y0(path) - 0.002
    res = verify(path, spec_file(tmp_path, threshold, "toml"), options=Options(strategy=strategy, falsify=False))
    assert res.status == "violated", res.reason
    check_fed_point(path, np.float16, res.counterexample.input, res.counterexample.output, threshold)


def test_violated_on_a_model_computing_in_float16(tmp_path):
    path = save(tmp_path, float16_model())
    threshold = max_y0(path) - 0.05
    res = verify(path, spec_file(tmp_path, threshold, "toml"))
    assert res.status == "violated", res.reason
    check_fed_point(path, np.float16, res.counterexample.input, res.counterexample.output, threshold)
    # the reported output is onnxruntime's float16 output
    out = res.counterexample.output
    assert np.array_equal(out.astype(np.float16).astype(np.float64), out)


@pytest.mark.parametrize("strategy", ["milp", "input-split"])
def test_holds_on_a_float16_input_model(tmp_path, strategy):
    path = save(tmp_path, cast_model(TensorProto.FLOAT16))
    threshold = max_y0(path) + 0.1  # far from the boundary
    spec = spec_file(tmp_path, threshold, "vnnlib")
    r = CliRunner().invoke(main, ["verify", str(path), str(spec), "--json", "--strategy", strategy])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["result"] == "holds"


@pytest.mark.parametrize("elem_type", [TensorProto.FLOAT16, TensorProto.DOUBLE])
def test_json_and_vnncomp_file_print_the_fed_values_exactly(tmp_path, elem_type):
    path = save(tmp_path, cast_model(elem_type))
    threshold = max_y0(path) - 0.002
    spec = spec_file(tmp_path, threshold, "vnnlib")
    out_file = tmp_path / "result.txt"
    r = CliRunner().invoke(main, ["verify", str(path), str(spec), "--json", "--vnncomp-out", str(out_file)])
    assert r.exit_code == 1, r.output
    cex = json.loads(r.output.strip().splitlines()[-1])["counterexample"]
    x_json = np.array(cex["input"], dtype=np.float64)
    check_fed_point(path, NP_TYPES[elem_type], x_json, cex["output"], threshold)
    text = out_file.read_text()
    pairs = re.findall(r"\(([XY])_(\d+) ([^\s()]+)\)", text)
    x_file = np.array([float(v) for k, _, v in pairs if k == "X"])
    y_file = np.array([float(v) for k, _, v in pairs if k == "Y"])
    np.testing.assert_array_equal(x_file, x_json)  # bit for bit: full precision in both
    np.testing.assert_array_equal(y_file, replay(path, x_file))
    assert load_spec(spec).bind(2, 2).violated_at(x_file, y_file)


# ----------------------------------------------------------------------------- bfloat16


def test_bfloat16_input_is_refused_with_a_clear_message(tmp_path):
    path = save(tmp_path, cast_model(TensorProto.BFLOAT16))
    with pytest.raises(ModelError, match=r"input 'x' is bfloat16.*float16, float32, float64"):
        load_model(path)
    spec = spec_file(tmp_path, 0.5, "toml")
    for args in (["verify", str(path), str(spec)], ["verify", str(path), str(spec), "--json"], ["info", str(path)]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, r.output
        assert "bfloat16" in r.output and "input 'x'" in r.output and "float16, float32, float64" in r.output
        assert "internal error" not in r.output


def test_oracle_refuses_an_input_type_it_cannot_feed(tmp_path):
    # a Network built by hand (the loader would refuse the file) whose ONNX input is bfloat16
    path = save(tmp_path, cast_model(TensorProto.BFLOAT16))
    relu = Activation("relu")
    net = Network((Layer(np.eye(2), np.zeros(2), relu), Layer(np.eye(2), np.zeros(2), None)), (1, 2), (1, 2),
                  source=str(path), meta={"input_dtype": "float32"})
    with pytest.raises(ModelError, match=r"input 'x' has element type tensor\(bfloat16\)"):
        OnnxOracle(net)
