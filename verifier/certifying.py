"""Proof certificates in a verification run (``Options.certificate``): the run's side of them.

``Certifier.open`` runs before anything else: it needs the model and the spec as files (their
bytes are hashed; a network or spec built in memory is refused with a ``VerifierError``) and a
folder it can write to. ``bind`` checks the loaded network against the hashed bytes and whether a
certificate can describe it at all (ReLU / LeakyReLU chains with float32 inputs). ``prove`` runs
the certifying search of one case (``search.certify``) in a share ``CERTIFY_SHARE`` of the
remaining time; when a case cannot be certified, the reason is kept, the normal strategy decides
that case with the time left, and no later case is certified. ``finish`` writes the file:

- *holds*, every case certified: the proof trees;
- *violated*: the counterexample (case index, input, output as replayed) and the cases' boxes and
  disjuncts (no trees);
- anything else: no file, and the reason.

It always leaves ``stats.certificate``: ``{"written", "path" | "reason", "nodes", "leaves",
"bytes", "certify_s"}``. A holds certificate is written only for a holds result.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .budget import Expired
from .errors import VerifierError
from .io.certificate import Sources, case_entry, counterexample_entry, sha256, write
from .io.replay import model_bytes_of
from .network import Network
from .result import HOLDS, VIOLATED, Counterexample, Result
from .search.certify import CaseProof, NotCertified, certify_case, not_certifiable
from .spec import Spec

#: the share of the remaining time a case's certifying search may take (the normal strategy gets the
#: rest when the certificate cannot be made)
CERTIFY_SHARE = 0.75


class Certifier:
    """The certificate of one run: what it is about, the cases certified so far, or why it cannot be made."""

    def __init__(self, path: str, sources: Sources, model_bytes: bytes, spec_path: str) -> None:
        self.path = path
        self.sources = sources
        self._model_bytes: bytes | None = model_bytes  # until ``bind`` compared them with the network
        self._spec_path = spec_path
        self.proofs: dict[int, CaseProof] = {}
        self.failure: str | None = None
        self.seconds = 0.0

    @classmethod
    def open(cls, path: str | os.PathLike, model, spec) -> Certifier:
        """Hash the model and spec files; ``VerifierError`` if either has no file or ``path`` cannot be written."""
        path = str(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise VerifierError(f"{path}: cannot write the certificate: folder {folder} does not exist or is not "
                                "writable")
        model_path = _model_file(model)
        spec_path = _spec_file(spec)
        try:
            model_bytes, spec_bytes = Path(model_path).read_bytes(), Path(spec_path).read_bytes()
        except OSError as exc:
            raise VerifierError(f"{exc.filename}: cannot read the file to hash for the certificate: "
                                f"{exc.strerror}") from None
        return cls(path, Sources.of(model_path, model_bytes, spec_path, spec_bytes), model_bytes, spec_path)

    def bind(self, network: Network) -> None:
        """Check the loaded network: from the hashed bytes, and one a certificate can describe."""
        import onnx

        kept = model_bytes_of(network)
        same = kept is not None and onnx.load_model_from_string(self._model_bytes).SerializeToString() == kept
        self._model_bytes = None
        if not same:
            self.failure = ("the ONNX model loaded is not the one in the file hashed (was the file changed, or does "
                            "the model keep its weights in external data files?)")
            return
        self.failure = not_certifiable(network)

    @property
    def active(self) -> bool:
        return self.failure is None

    def prove(self, network: Network, ci: int, case, todo: list[int], bounds, oracle, deadline, strategy: str,
              inputs: np.ndarray | None, settings, progress=None) -> bool | Counterexample:
        """Certify case ``ci`` (True), find it violated (the counterexample) or give up on certificates (False)."""
        t = time.perf_counter()
        try:
            got = certify_case(network, case, todo, bounds, oracle, deadline.child(CERTIFY_SHARE), ci, strategy,
                               inputs, settings, progress)
        except Expired as exc:  # its share of the time ran out in a phase that cannot stop early
            got = NotCertified(f"timeout during {exc.phase}", timed_out=True)
        finally:
            self.seconds += time.perf_counter() - t
        if isinstance(got, CaseProof):
            self.proofs[ci] = got
            return True
        if isinstance(got, Counterexample):
            return got
        self.failure = f"case {ci}: the certifying search could not prove it ({got.reason})"
        return False

    def finish(self, result: Result, spec: Spec) -> dict:
        """Write the certificate the result allows (if any); set and return ``result.stats.certificate``."""
        t = time.perf_counter()
        proofs = self.proofs.values() if result.status == HOLDS else ()  # the trees a certificate holds
        nodes, leaves = sum(p.nodes for p in proofs), sum(p.leaves for p in proofs)
        doc, reason = self._document(result, spec, nodes, leaves)
        info: dict = {"written": False}
        if doc is not None:
            try:
                size = write(self.path, doc)
                info = {"written": True, "path": self.path, "verdict": str(result.status), "bytes": size}
            except OSError as exc:
                reason = f"cannot write {self.path}: {exc.strerror or exc}"
        if not info["written"]:
            info["reason"] = reason
        self.seconds += time.perf_counter() - t
        info.update(nodes=nodes, leaves=leaves, certify_s=round(self.seconds, 4))
        result.stats.certificate = info
        return info

    def _document(self, result: Result, spec: Spec, nodes: int, leaves: int) -> tuple[dict | None, str | None]:
        """The certificate of ``result``, or None and why there is none."""
        if result.status not in (HOLDS, VIOLATED):
            before = f" ({self.failure})" if self.failure else ""
            return None, f"the verdict is {result.status}: no certificate is written for it{before}"
        try:
            unchanged = sha256(Path(self._spec_path).read_bytes()) == self.sources.spec_sha256
        except OSError as exc:
            return None, f"{self._spec_path}: cannot read the spec file again: {exc.strerror}"
        if not unchanged:
            return None, "the spec file changed during the run"
        stats = {"prover": "relu-verifier", "certify_s": round(self.seconds, 4), "nodes": nodes, "leaves": leaves,
                 "strategy": {str(ci): p.strategy for ci, p in sorted(self.proofs.items())}}
        if result.status == VIOLATED:
            cex = result.counterexample
            doc = self.sources.header(VIOLATED)
            doc["cases"] = [case_entry(c, []) for c in spec.cases]
            doc["counterexample"] = counterexample_entry(cex.case_index, cex.input, cex.output)
            doc["stats"] = stats
            return doc, None
        if self.failure is not None:
            return None, self.failure
        missing = [ci for ci in range(len(spec.cases)) if ci not in self.proofs]
        if missing:  # cannot happen: every case of a holds run went through ``prove``
            return None, f"cases {missing} were not certified"
        doc = self.sources.header(HOLDS)
        doc["cases"] = [case_entry(c, self.proofs[ci].trees) for ci, c in enumerate(spec.cases)]
        doc["stats"] = stats
        return doc, None


def _model_file(model) -> str:
    """The ONNX file of ``model`` (a path, or a network loaded from one that is still there)."""
    if not isinstance(model, Network):
        return os.fspath(model)
    if model.source is None or model_bytes_of(model) is None:
        raise VerifierError("a certificate needs the model as an ONNX file: this network was built in memory, "
                            "there is no file to hash (save it as ONNX and verify the file)")
    if not os.path.isfile(model.source):
        raise VerifierError(f"{model.source}: the network's ONNX file is gone; a certificate needs the file to hash")
    return model.source


def _spec_file(spec) -> str:
    """The spec file of ``spec`` (a path, or a spec read from a file that still says the same)."""
    if not isinstance(spec, Spec):
        return os.fspath(spec)
    from .io.spec_file import load_spec

    if spec.source is None or not os.path.isfile(spec.source):
        raise VerifierError("a certificate needs the spec as a file: this spec was built in memory (or its file is "
                            "gone), there is no file to hash")
    if not _same_cases(load_spec(spec.source), spec):
        raise VerifierError(f"{spec.source}: the spec given is not what its file says; a certificate hashes the file")
    return spec.source


def _same_cases(a: Spec, b: Spec) -> bool:
    """The same boxes and disjuncts (output columns padded alike: one of them may be bound to a network)."""
    from .errors import SpecError

    width = a.n_outputs or b.n_outputs or max((c.ay.shape[1] for s in (a, b) for case in s.cases for c in case.unsafe),
                                              default=0)
    try:
        return a.n_inputs == b.n_inputs and a.bind(a.n_inputs, width).cases == b.bind(b.n_inputs, width).cases
    except SpecError:
        return False
