"""Sound verification of ReLU / LeakyReLU / Clip neural networks against linear safety properties.

Python API (the same functions the ``verifier`` command uses)::

    import verifier
    net = verifier.load_model("models/collision_advisory.onnx")
    spec = verifier.load_spec("specs/collision_far_is_clear.toml")
    result = verifier.verify(net, spec, timeout=60)
    result.status            # "holds" | "violated" | "unknown"
"""

from .bounds import LayerBounds, interval_bounds, symbolic_bounds
from .errors import EncodingError, ModelError, SolverError, SpecError, VerifierError
from .io.constraints import make_spec
from .io.onnx import load_model
from .io.spec_file import load_spec
from .network import Activation, Layer, Network
from .result import Counterexample, Result, Verdict
from .search.query import layer_bounds, linear_query, output_bounds
from .spec import Case, Constraints, Spec
from .verify import Options, verify

__all__ = [
    "Activation",
    "Case",
    "Constraints",
    "Counterexample",
    "EncodingError",
    "Layer",
    "LayerBounds",
    "ModelError",
    "Network",
    "Options",
    "Result",
    "SolverError",
    "Spec",
    "SpecError",
    "Verdict",
    "VerifierError",
    "interval_bounds",
    "layer_bounds",
    "linear_query",
    "load_model",
    "load_spec",
    "make_spec",
    "output_bounds",
    "symbolic_bounds",
    "verify",
]
__version__ = "0.1.0"
