"""Sound verification of ReLU / LeakyReLU / Clip neural networks against linear safety properties.

Python API (the same functions the ``verifier`` command uses)::

    import verifier
    net = verifier.load_model("models/collision_advisory.onnx")
    spec = verifier.load_spec("specs/collision_far_is_clear.toml")
    result = verifier.verify(net, spec, timeout=60)
    result.status            # "holds" | "violated" | "unknown"
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING

# Lazy: ``import verifier.checker`` (the independent certificate checker) must not load the rest
# of the package, so the public names below are imported on first use (PEP 562).
_EXPORTS = {
    "LayerBounds": ".bounds", "interval_bounds": ".bounds", "symbolic_bounds": ".bounds",
    "EncodingError": ".errors", "ModelError": ".errors", "SolverError": ".errors", "SpecError": ".errors",
    "VerifierError": ".errors", "make_spec": ".io.constraints", "load_model": ".io.onnx",
    "load_spec": ".io.spec_file", "Activation": ".network", "Layer": ".network", "Network": ".network",
    "Counterexample": ".result", "Result": ".result", "Verdict": ".result", "layer_bounds": ".search.query",
    "linear_query": ".search.query", "output_bounds": ".search.query", "Case": ".spec", "Constraints": ".spec",
    "Spec": ".spec", "Options": ".verify", "verify": ".verify",
}

if TYPE_CHECKING:  # for type checkers and IDEs: the eager imports
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


class _Package(types.ModuleType):
    """Importing the submodule ``verifier.verify`` binds it on the package; the name ``verify``
    stays the function (as it was with eager imports)."""

    def __setattr__(self, name: str, value) -> None:
        if name == "verify" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
