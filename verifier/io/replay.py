"""Replay candidate counterexamples in onnxruntime on the original ONNX file.

A candidate is accepted only if, after being clipped into the box and cast to the model's own input
element type (float16, float32 or float64, as the ONNX graph declares it), the output that
onnxruntime computes violates the exact property with zero tolerance. The value fed is the value
reported: it is exactly representable in the input type and lies inside the box, bounds included.
This is the strictest check VNN-COMP applies, and the only way a *violated* verdict is ever reported.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..network import Network
from ..result import Counterexample
from ..spec import Case

#: onnxruntime's name of a graph input's element type -> the numpy type fed to it
INPUT_TYPES = {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxOracle:
    """A cached onnxruntime session for one model file, single-threaded."""

    def __init__(self, network: Network) -> None:
        import onnxruntime as ort

        if network.source is None:
            raise ValueError("the network has no source ONNX file to replay counterexamples on")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(network.source, sess_options=opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = network.input_shape
        if inp.type not in INPUT_TYPES:
            raise ModelError(f"{network.source}: input '{inp.name}' has element type {inp.type}; counterexamples "
                             "can only be replayed for float16, float32 or float64 inputs")
        self.dtype = INPUT_TYPES[inp.type]  # the model's own input type: what onnxruntime is fed
        self.calls = 0
        self._seen: dict[bytes, np.ndarray] = {}  # replays of the same input (box vertices shared by sub-boxes)

    #: inputs whose outputs are remembered (onnxruntime is deterministic for one session)
    CACHE_SIZE = 4096

    def run(self, x: np.ndarray) -> np.ndarray:
        """Output (float64 copy of the model's output) for one flat input vector."""
        feed = np.asarray(x).astype(self.dtype).reshape(self.input_shape)
        key = feed.tobytes()
        out = self._seen.get(key)
        if out is None:
            self.calls += 1
            out = np.asarray(self.session.run(None, {self.input_name: feed})[0], dtype=np.float64).ravel()
            if len(self._seen) >= self.CACHE_SIZE:
                self._seen.clear()
            self._seen[key] = out
        return out.copy()


def cast_into_box(x: np.ndarray, lower: np.ndarray, upper: np.ndarray, dtype=np.float32) -> np.ndarray | None:
    """Clip ``x`` into the box and cast to ``dtype`` so that the cast value still lies in the box.

    Returns the values as float64 (exactly representable in ``dtype``), or None if some box
    coordinate contains no ``dtype`` value at all (a degenerate box at a non-representable point,
    or a box beyond the range of ``dtype``, e.g. above 65504 for float16).
    """
    x = np.clip(np.asarray(x, dtype=np.float64), lower, upper)
    with np.errstate(over="ignore"):  # beyond the range of dtype: +-inf, nudged to the largest finite value
        c = x.astype(dtype)
    # nudge values that rounding pushed outside the (float64) box back in by one ulp
    too_low = c.astype(np.float64) < lower
    c[too_low] = np.nextafter(c[too_low], np.array(np.inf, dtype=dtype))
    too_high = c.astype(np.float64) > upper
    c[too_high] = np.nextafter(c[too_high], np.array(-np.inf, dtype=dtype))
    out = c.astype(np.float64)
    if np.any(out < lower) or np.any(out > upper):
        return None
    return out


def confirm(oracle: OnnxOracle, case: Case, x: np.ndarray, case_index: int = 0) -> Counterexample | None:
    """Replay ``x`` in onnxruntime and return a counterexample if the exact property is violated."""
    xc = cast_into_box(x, case.lower, case.upper, oracle.dtype)
    if xc is None:
        return None
    y = oracle.run(xc)
    if case.violated_at(xc, y):
        return Counterexample(xc, y, case_index)
    return None
