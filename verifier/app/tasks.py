"""What a batch runs and what it gets back: :class:`Task` (one instance) and :class:`Outcome`."""

from __future__ import annotations

from dataclasses import dataclass

from ..results import HOLDS, UNKNOWN, VIOLATED


@dataclass(frozen=True)
class Task:
    """One instance: ``onnx`` / ``vnnlib`` are the labels written to results, ``*_path`` the files."""

    onnx: str
    vnnlib: str
    model_path: str
    spec_path: str
    timeout: float
    benchmark: str = ""
    expected: str | None = None  # holds / violated / unknown / None (no expectation)
    name: str | None = None  # a suite check's name
    solver: str = "cbc"
    line: int | None = None  # where it is defined in its list file

    @property
    def label(self) -> str:
        return self.name or f"{self.onnx},{self.vnnlib}"


@dataclass
class Outcome:
    """The answer for one task; ``counterexample`` is ``{"input": [...], "output": [...]}`` or None."""

    task: Task
    status: str
    reason: str | None = None
    time_s: float = 0.0
    counterexample: dict | None = None
    timed_out: bool = False
    from_resume: bool = False
    input_error: bool = False  # the model or spec was rejected (bad input), not merely undecided

    @property
    def match(self) -> str:
        """``yes`` (same verdict as expected), ``no`` (holds vs violated contradiction) or ``""``."""
        exp = self.task.expected
        if exp not in (HOLDS, VIOLATED) or self.status not in (HOLDS, VIOLATED):
            return ""
        return "yes" if exp == self.status else "no"

    @property
    def wrong(self) -> bool:
        return self.match == "no"

    def to_json(self) -> dict:
        t = self.task
        return {"onnx": t.onnx, "vnnlib": t.vnnlib, "name": t.name, "benchmark": t.benchmark, "result": self.status,
                "time_s": round(self.time_s, 4), "reason": self.reason, "expected": t.expected, "match": self.match,
                "timed_out": self.timed_out, "input_error": self.input_error, "counterexample": self.counterexample,
                "resumed": self.from_resume}


def unknown_outcome(task: Task, reason: str, time_s: float, timed_out: bool = False) -> Outcome:
    return Outcome(task, UNKNOWN, reason, time_s, None, timed_out)

