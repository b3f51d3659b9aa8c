"""The answer of a verification run: holds / violated / unknown, with evidence and statistics."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
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



@dataclass
class DisjunctOutcomes:
    """How the (case, disjunct) pairs of a run were settled; ``open_reasons`` say why the undecided
    ones stayed open (in order, duplicates kept once when reported)."""

    proved_by_bounds: int = 0
    proved_by_lp: int = 0
    proved_by_milp: int = 0
    proved_by_split: int = 0  # neuron-splitting branch and bound (every leaf closed by its bound)
    undecided: int = 0
    open_reasons: list[str] = field(default_factory=list)

    def count(self, key: str, reason: str | None = None) -> None:
        setattr(self, key, getattr(self, key) + 1)
        if reason:
            self.open_reasons.append(reason)

    @property
    def reason(self) -> str | None:
        return "; ".join(dict.fromkeys(self.open_reasons)) or None

    def to_json(self) -> dict:
        return {"proved_by_bounds": self.proved_by_bounds, "proved_by_lp": self.proved_by_lp,
                "proved_by_milp": self.proved_by_milp, "proved_by_split": self.proved_by_split,
                "undecided": self.undecided}


@dataclass
class RunStats(Mapping):
    """Timings, sizes and facts of one run (``Result.stats``). Unset fields (None) are left out of
    the JSON. Reading it as a mapping (``stats["bounds_s"]``, ``stats.get(...)``) gives the JSON
    view's values, as the stats dict of earlier versions did."""

    oracle: str | None = None  # "onnxruntime" or the network's own float32 forward pass
    solver: str | None = None
    cases: int | None = None
    disjuncts: int | None = None
    load_s: float | None = None
    fixed_inputs: dict[int, int] | None = None  # case -> inputs folded as constants
    strategy: str | None = None
    bounds_method: str | None = None
    margin_tau: float | None = None
    unstable_interval: list[int] | None = None  # per case: unstable neurons under interval bounds
    unstable_used: list[int] | None = None  # ... under the bounds used
    unstable_after_alpha: list[int] | None = None  # ... after optimised intermediate bounds (neuron-split)
    unstable_after_lp: list[int] | None = None
    falsify_s: float | None = None
    bounds_s: float | None = None
    lp_check_s: float | None = None
    lp_tightening_s: float | None = None
    alpha_bounds_s: float | None = None
    encode_s: float | None = None
    solve_s: float | None = None
    neuron_split_s: float | None = None
    found_by: str | None = None  # falsification / milp / branch and bound
    solved_by: str | None = None
    disjunct_outcomes: DisjunctOutcomes | None = None
    proof_from_bounds_only: bool | None = None
    timed_out: bool | None = None
    milps_side_by_side: int | None = None
    parallel_jobs: int | None = None
    bab: dict | None = None  # branch-and-bound counters (BabStats)
    milp: dict | None = None  # the largest MILP: variables / binaries / constraints
    milps_solved: int | None = None
    float_error_max_hidden: float | None = None
    float_error_max_output: float | None = None
    replay_calls: int | None = None
    onnxruntime_calls: int | None = None
    float_model: dict | None = None
    #: the proof certificate: written, path or reason, nodes, leaves, bytes, certify_s (``Options.certificate``)
    certificate: dict | None = None
    #: anything else (from a stats mapping with keys this version does not know)
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, value: RunStats | Mapping | None) -> RunStats:
        if isinstance(value, RunStats):
            return value
        known = {f.name for f in fields(cls)} - {"extra"}
        value = dict(value or {})
        out = cls(**{k: v for k, v in value.items() if k in known})
        out.extra = {k: v for k, v in value.items() if k not in known}
        return out

    def add_time(self, name: str, seconds: float) -> None:
        """Accumulate a phase time (seconds, rounded to 0.1 ms)."""
        setattr(self, name, round((getattr(self, name) or 0.0) + seconds, 4))

    def append(self, name: str, value) -> None:
        if getattr(self, name) is None:
            setattr(self, name, [])
        getattr(self, name).append(value)

    def note_milp(self, size: dict) -> None:
        """Count one MILP solved; keep the size of the one with the most binaries."""
        if self.milp is None or size["binaries"] > self.milp["binaries"]:
            self.milp = size
        self.milps_solved = (self.milps_solved or 0) + 1

    def raise_to(self, name: str, value: float) -> None:
        """Keep the largest value seen."""
        old = getattr(self, name)
        setattr(self, name, value if old is None else max(old, value))

    def _view(self) -> dict:
        """The set fields as plain values (nested records as dicts), plus ``extra``."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra" or v is None:
                continue
            out[f.name] = v.to_json() if hasattr(v, "to_json") else v
        out.update(self.extra)
        return out

    def to_json(self) -> dict:
        return _jsonable(self._view())

    # the mapping view (compatibility with the stats dict of earlier versions)
    def __getitem__(self, key: str):
        return self._view()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())


#: process exit codes of ``verifier verify`` (documented in --help and the README)
EXIT_CODES = {HOLDS: 0, VIOLATED: 1, UNKNOWN: 3}
EXIT_USAGE = 2


@dataclass
class Result:
    """``status`` is holds / violated / unknown; ``counterexample`` is set only when violated
    (confirmed by onnxruntime); ``reason`` explains an unknown; ``stats`` are timings and sizes
    (``RunStats``; a mapping given here is converted)."""

    status: str
    counterexample: Counterexample | None = None
    reason: str | None = None
    time_s: float = 0.0
    stats: RunStats = field(default_factory=RunStats)

    def __post_init__(self) -> None:
        self.stats = RunStats.of(self.stats)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def timed_out(self) -> bool:
        return self.status == UNKNOWN and bool(self.stats.timed_out)

    def to_json(self) -> dict:
        cex = None
        if self.counterexample is not None:
            cex = {"input": [float(v) for v in self.counterexample.input],
                   "output": [float(v) for v in self.counterexample.output]}
        return {"result": self.status, "reason": self.reason, "counterexample": cex,
                "time_s": round(self.time_s, 4), "stats": self.stats.to_json()}

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
