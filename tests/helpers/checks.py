"""Independent replay of counterexamples in onnxruntime (no verifier code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from tests.helpers.onnx_builders import concrete_shape, graph_input


# ------------------------------------------------------------------------- independent replay
def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_eval(path: Path, xs: np.ndarray) -> np.ndarray:
    """onnxruntime outputs (float64 copies) for float32 inputs ``xs`` of shape (b, n)."""
    model = onnx.load(str(path))
    inp = graph_input(model)
    shape = concrete_shape(inp)
    sess = ort_session(path)
    out = []
    for x in np.atleast_2d(np.asarray(xs, dtype=np.float32)):
        (y,) = sess.run(None, {inp.name: x.reshape(shape)})
        out.append(np.asarray(y, dtype=np.float64).ravel())
    return np.stack(out)


def check_counterexample(onnx_path: Path, spec, x, y_reported=None) -> None:
    """Assert that ``x`` violates ``spec`` on the ONNX model: replayed in onnxruntime here, with the spec's
    box and constraint rows evaluated by hand (exact, zero tolerance; '<' rows strict)."""
    x = np.asarray(x, dtype=np.float64)
    assert np.all(np.isfinite(x))
    x32 = x.astype(np.float32)
    assert np.array_equal(x32.astype(np.float64), x), "counterexample input is not float32-representable"
    y = ort_eval(onnx_path, x32[None, :])[0]
    if y_reported is not None:
        np.testing.assert_allclose(np.asarray(y_reported, dtype=np.float64), y, rtol=0, atol=1e-6 * (1 + np.abs(y).max()))
    violated_somewhere = False
    for case in spec.cases:
        if not (np.all(case.lower <= x) and np.all(x <= case.upper)):
            continue
        for cons in case.unsafe:
            ay = np.zeros((cons.ay.shape[0], y.size))
            ay[:, :cons.ay.shape[1]] = cons.ay[:, :y.size]
            lhs = cons.ax @ x + ay @ y
            ok = np.where(cons.strict, lhs < cons.rhs, lhs <= cons.rhs)
            if np.all(ok):
                violated_somewhere = True
    assert violated_somewhere, f"counterexample x={x.tolist()} y={y.tolist()} does not violate the spec"
