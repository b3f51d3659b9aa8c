"""The answer of a verification run: holds / violated / unknown, with evidence and statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Verdict(StrEnum):
    """The answer of a run; each value equals the plain string used in files and JSON."""

    HOLDS = "holds"
    VIOLATED = "violated"
    UNKNOWN = "unknown"


HOLDS, VIOLATED, UNKNOWN = Verdict.HOLDS, Verdict.VIOLATED, Verdict.UNKNOWN


@dataclass
class Counterexample:
    """An input (as fed to onnxruntime) and the output onnxruntime computed for it."""

    input: np.ndarray
    output: np.ndarray
    case_index: int = 0



#: process exit codes of ``verifier verify`` (documented in --help and the README)
EXIT_CODES = {HOLDS: 0, VIOLATED: 1, UNKNOWN: 3}
EXIT_USAGE = 2


@dataclass
class Result:
    """``status`` is holds / violated / unknown; ``counterexample`` is set only when violated
    (confirmed by onnxruntime); ``reason`` explains an unknown; ``stats`` are timings and sizes."""

    status: str
    counterexample: Counterexample | None = None
    reason: str | None = None
    time_s: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def timed_out(self) -> bool:
        return self.status == UNKNOWN and bool(self.stats.get("timed_out"))

    def to_json(self) -> dict:
        cex = None
        if self.counterexample is not None:
            cex = {"input": [float(v) for v in self.counterexample.input],
                   "output": [float(v) for v in self.counterexample.output]}
        return {"result": self.status, "reason": self.reason, "counterexample": cex,
                "time_s": round(self.time_s, 4), "stats": _jsonable(self.stats)}

    def vnncomp_text(self) -> str:
        """The VNN-COMP result file: sat + witness / unsat / unknown / timeout."""
        if self.status == HOLDS:
            return "unsat\n"
        if self.status == VIOLATED and self.counterexample is not None:
            xs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(self.counterexample.input)]
            ys = [f"(Y_{j} {float(v)!r})" for j, v in enumerate(self.counterexample.output)]
            return "sat\n(" + "\n ".join(xs + ys) + ")\n"
        return "timeout\n" if self.timed_out else "unknown\n"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else str(f)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj
