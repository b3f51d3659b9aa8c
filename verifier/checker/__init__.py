"""An independent checker of proof certificates (docs/certificate.md).

It imports nothing else of ``verifier``: it reads the ONNX model (``model``) and the spec
(``spec``) itself, applies its own float32 error model and recomputes every bound of the proof
tree (``bounds``) in exact dyadic arithmetic or in float64 with rigorous error terms (``arith``).
"""

from .check import Result, check_certificate, read_certificate

__all__ = ["Result", "check_certificate", "read_certificate"]
