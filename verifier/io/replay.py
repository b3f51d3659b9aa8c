"""Replay candidate counterexamples: in onnxruntime on the ONNX model, or, for a network built in
memory, in the network's own float32 forward pass.

A candidate is accepted only if, after being clipped into the box and cast to the model's own input
element type (float16, float32 or float64, as the ONNX graph declares it; float32 for a network
built in memory), the output that the oracle computes violates the exact property with zero
tolerance. The value fed is the value reported: it is exactly representable in the input type and
lies inside the box, bounds included. This is the strictest check VNN-COMP applies, and the only way
a *violated* verdict is ever reported.

Two oracles with one interface (``name``, ``dtype``, ``calls``, ``run(x)``):

- :class:`OnnxOracle`, used whenever the network came from an ONNX model. Its session is built from
  the model's bytes: those that ``load_model`` keeps in ``network.meta[ONNX_BYTES]`` (the serialised
  model it converted, external data inlined), else the bytes given, else the file at
  ``network.source`` read once. ``oracle.model_bytes`` is what worker processes receive, so they
  never open (or re-parse) the ONNX file, and a model whose file was deleted after loading still replays.
- :class:`NetworkOracle`, for a ``Network`` built in memory (no ONNX model): the float32 evaluation
  the error model of such a network describes (each layer one float32 ``Gemm``, ``verifier.network``).
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ModelError
from ..network import Network
from ..result import Counterexample
from ..spec import Case

#: key of ``Network.meta`` holding the serialised ONNX model (set by ``io.onnx.load_model``)
ONNX_BYTES = "onnx_bytes"
#: ``oracle.name`` of the two oracles (reported as ``stats["oracle"]``)
ONNXRUNTIME = "onnxruntime"
NETWORK_FLOAT32 = "network float32 forward pass"

#: onnxruntime's name of a graph input's element type -> the numpy type fed to it
INPUT_TYPES = {"tensor(float16)": np.float16, "tensor(float)": np.float32, "tensor(double)": np.float64}


def model_bytes_of(network: Network) -> bytes | None:
    """The ONNX model's bytes kept with ``network`` by the loader, or None."""
    return network.meta.get(ONNX_BYTES)


def has_onnx_model(network: Network) -> bool:
    """True if ``network`` came from an ONNX model (bytes kept, or a source file named)."""
    return model_bytes_of(network) is not None or network.source is not None


class OnnxOracle:
    """A cached onnxruntime session for one ONNX model, single-threaded, built from the model's bytes."""

    name = ONNXRUNTIME

    def __init__(self, network: Network, model_bytes: bytes | None = None) -> None:
        import onnxruntime as ort

        data = model_bytes if model_bytes is not None else model_bytes_of(network)
        if data is None:
            if network.source is None:
                raise ValueError("the network has no ONNX model to replay counterexamples on")
            with open(network.source, "rb") as f:
                data = f.read()
        self.model_bytes: bytes = data
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = network.input_shape
        if inp.type not in INPUT_TYPES:
            raise ModelError(f"{network.source or '<model>'}: input '{inp.name}' has element type {inp.type}; counterexamples "
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


class NetworkOracle:
    """The float32 forward pass of a network built in memory, layer by layer over its DAG: each
    layer's sources concatenated (``Network.gather``), ``W z + b`` as one float32 matrix product
    (numpy for dense weights, scipy for sparse ones, both accumulating in float32) plus the
    float32 bias, then the activation (rounded to float32 once; ReLU, Clip and max are exact).
    This is the evaluation the network's default error model describes (``Layer``: one float32
    ``Gemm`` per layer), so the weights, biases and clip limits must be float32 numbers
    (``ValueError`` otherwise: the float32 network would be another network).
    """

    name = NETWORK_FLOAT32
    dtype = np.float32

    def __init__(self, network: Network) -> None:
        self.network = network
        self.layers = []
        for k, layer in enumerate(network.layers):
            w, b = _float32_weight(layer.weight), np.asarray(layer.bias, dtype=np.float32)
            limits = [] if layer.activation is None else [a for a in (layer.activation.lo, layer.activation.hi)
                                                           if a is not None]
            checks = [("weights", _same_values(w, layer.weight)), ("biases", _same_values(b, layer.bias)),
                      *(("clip limits", _same_values(np.asarray(a, dtype=np.float32), a)) for a in limits)]
            for what, same in checks:
                if not same:
                    raise ValueError(f"layer {k}: the {what} are not float32 numbers; a network built in memory "
                                     "is evaluated in float32 (round them with numpy.float32 first)")
            self.layers.append((w, b, layer.activation))
        self.calls = 0

    def run(self, x: np.ndarray) -> np.ndarray:
        """Output (float64 copy of the float32 output) for one flat input vector."""
        self.calls += 1
        tensors = [np.asarray(x).astype(np.float32).ravel()]
        for k, (w, b, act) in enumerate(self.layers):
            z = self.network.gather(k, tensors)
            p = np.asarray(w @ z, dtype=np.float32) + b  # float32 + float32: one rounding
            if act is not None:  # computed in float64 from float32 values, rounded once
                p = np.asarray(act.apply(p.astype(np.float64))).astype(np.float32)
            tensors.append(p.astype(np.float32))
        return tensors[-1].astype(np.float64).ravel()


def _float32_weight(W):
    """``W`` in float32, of the same kind (dense numpy or scipy CSR)."""
    return W.astype(np.float32) if hasattr(W, "tocsr") else np.asarray(W, dtype=np.float32)


def _same_values(single, exact) -> bool:
    """Whether the float32 copy ``single`` holds the same numbers as ``exact`` (dense or sparse)."""
    if hasattr(exact, "tocsr"):
        return (single.astype(np.float64) != exact).nnz == 0
    return bool(np.array_equal(np.asarray(exact, dtype=np.float64), np.asarray(single).astype(np.float64)))


def make_oracle(network: Network, model_bytes: bytes | None = None) -> OnnxOracle | NetworkOracle:
    """onnxruntime whenever the network came from an ONNX model (or ``model_bytes`` are given), else
    the network's own float32 forward pass."""
    if model_bytes is not None or has_onnx_model(network):
        return OnnxOracle(network, model_bytes)
    return NetworkOracle(network)


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


def confirm(oracle: OnnxOracle | NetworkOracle, case: Case, x: np.ndarray, case_index: int = 0
            ) -> Counterexample | None:
    """Replay ``x`` with ``oracle`` and return a counterexample if the exact property is violated."""
    xc = cast_into_box(x, case.lower, case.upper, oracle.dtype)
    if xc is None:
        return None
    y = oracle.run(xc)
    if case.violated_at(xc, y):
        return Counterexample(xc, y, case_index)
    return None


@functools.cache
def float_model(oracle: str = ONNXRUNTIME) -> dict:
    """What a proof covers (reported in every result's stats): the evaluation and onnxruntime's version,
    or, for a network built in memory, its float32 forward pass."""
    if oracle == NETWORK_FLOAT32:
        return {"evaluation": "the network's float32 forward pass: per layer one float32 matrix product plus "
                              "bias (any summation order), then the activation; worst-case rounding bound per "
                              "layer (verifier/floatmodel.py)"}
    import onnxruntime

    return {"evaluation": "onnxruntime CPUExecutionProvider, float32 kernels, default graph optimisations, "
                          "denormals kept; worst-case rounding bound per operator (verifier/floatmodel.py)",
            "onnxruntime": onnxruntime.__version__}
