"""Proof certificates, format version 1: the file and its parts (``docs/certificate.md``).

A certificate is one JSON object (gzip-compressed when the file name ends in ``.gz``): what it is
about (the SHA-256 of the ONNX file's bytes and of the spec file's bytes, the onnxruntime version
and float model, the model's operator types), the verdict, per case of the spec its input box, its
unsafe disjuncts as read (rows ``ax.x + ay.y <= rhs``) and the proof trees, and for *violated* the
counterexample. This module writes the parts; what goes into the trees is decided by the
certifying search (``search.certify``).

Floats are written by Python's ``json`` (shortest repr: they read back as the same float64); float
arrays as ``{"f64": base64 of little-endian float64}``. Files are written atomically (a temporary
file in the same folder, then renamed), so a reader never sees half a certificate.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..floatmodel import UNDERFLOW, UNIT_ROUNDOFF
from ..spec import Case, Constraints

FORMAT = "relu-verifier-certificate"
VERSION = 1
#: the bound semantics the checker recomputes (CROWN / DeepPoly back-substitution, float32 rounding)
RELAXATION = "crown-1"
#: gzip level: 6 is about as small as 9 on these files and several times faster
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Sources:
    """The files a certificate is about: names, SHA-256 of their bytes, the model's operator types."""

    model_file: str
    model_sha256: str
    spec_file: str
    spec_sha256: str
    operators: tuple[str, ...]

    @classmethod
    def of(cls, model_file: str, model_bytes: bytes, spec_file: str, spec_bytes: bytes) -> Sources:
        """From the files' names and bytes (the model's op types are read from its bytes)."""
        return cls(Path(model_file).name, sha256(model_bytes), Path(spec_file).name, sha256(spec_bytes),
                   operator_types(model_bytes))

    def header(self, verdict: str) -> dict:
        """The certificate's fields before its cases."""
        import onnxruntime

        return {"format": FORMAT, "version": VERSION, "verdict": str(verdict),
                "model": {"file": self.model_file, "sha256": self.model_sha256},
                "spec": {"file": self.spec_file, "sha256": self.spec_sha256},
                "onnxruntime": onnxruntime.__version__,
                "float_model": {"dtype": "float32", "unit_roundoff": UNIT_ROUNDOFF["float32"],
                                "underflow": UNDERFLOW["float32"]},
                "operators": list(self.operators), "relaxation": RELAXATION}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def operator_types(model_bytes: bytes) -> tuple[str, ...]:
    """The sorted, distinct op types of the nodes of an ONNX model's main graph."""
    import onnx

    model = onnx.load_model_from_string(model_bytes)
    return tuple(sorted({node.op_type for node in model.graph.node}))


def encode_array(values: np.ndarray) -> dict:
    """``{"f64": base64}`` of the values as little-endian float64."""
    data = np.ascontiguousarray(np.asarray(values, dtype="<f8").ravel()).tobytes()
    return {"f64": base64.b64encode(data).decode("ascii")}


def decode_array(obj: dict) -> np.ndarray:
    """The float64 array of an ``encode_array`` object."""
    return np.frombuffer(base64.b64decode(obj["f64"]), dtype="<f8").astype(np.float64)


def rows(cons: Constraints) -> list[dict]:
    """The ROWs of one disjunct exactly as read: sparse ``ax`` / ``ay`` (nonzero coefficients), ``rhs``, ``strict``."""
    out = []
    for k in range(cons.n_rows):
        out.append({"ax": [[int(i), float(cons.ax[k, i])] for i in np.flatnonzero(cons.ax[k])],
                    "ay": [[int(i), float(cons.ay[k, i])] for i in np.flatnonzero(cons.ay[k])],
                    "rhs": float(cons.rhs[k]), "strict": bool(cons.strict[k])})
    return out


def case_entry(case: Case, trees: list[dict]) -> dict:
    """One CASE: the input box, the disjuncts' rows and the proof trees (``[]`` in a violated certificate)."""
    return {"lower": [float(v) for v in case.lower], "upper": [float(v) for v in case.upper],
            "disjuncts": [rows(c) for c in case.unsafe], "trees": trees}


def counterexample_entry(case_index: int, x: np.ndarray, y: np.ndarray) -> dict:
    return {"case": int(case_index), "x": [float(v) for v in np.ravel(x)], "y": [float(v) for v in np.ravel(y)]}


def encode(doc: dict, path: str | os.PathLike) -> bytes:
    """The file's bytes: compact JSON, gzip-compressed when ``path`` ends in ``.gz`` (NaN refused)."""
    data = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
    return data


def write(path: str | os.PathLike, doc: dict) -> int:
    """Write the certificate atomically; returns its size in bytes (``OSError`` if it cannot be written)."""
    data = encode(doc, path)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)


def read(path: str | os.PathLike) -> dict:
    """A certificate file as a dict (gunzipped when it starts with the gzip magic bytes)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return json.loads(data)
