"""What a batch runs and what it gets back: :class:`Task` (one instance) and :class:`Outcome`.

A task carries every verify option that matters for one instance (timeout, solver, strategy,
bounds, processes per instance, seed), so that ``verifier batch --strategy milp`` reaches the
worker exactly as ``verifier verify --strategy milp`` would; :attr:`Task.options` is the
:class:`verifier.verify.Options` the worker runs with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..errors import VerifierError
from ..results import HOLDS, UNKNOWN, VIOLATED

SOLVERS = ("cbc", "highs")
STRATEGIES = ("auto", "input-split", "neuron-split", "milp")
BOUNDS = ("symbolic", "interval")
#: the verify options a task carries besides its timeout (names as in suite files and Task fields)
OPTION_FIELDS = ("solver", "strategy", "bounds", "instance_jobs", "seed")


def option_problem(key: str, value: object) -> str | None:
    """Why ``value`` is not a valid value of the task option ``key`` (None if it is)."""
    choices = {"solver": SOLVERS, "strategy": STRATEGIES, "bounds": BOUNDS}.get(key)
    if choices is not None:
        return None if value in choices else f"bad {key} {value!r}: use one of {', '.join(choices)}"
    if key == "instance_jobs":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return None if ok else f"bad instance_jobs {value!r}: expected a whole number >= 1"
    if key == "seed":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else f"bad seed {value!r}: expected a whole number >= 0"
    return f"unknown option {key!r} (known: {', '.join(OPTION_FIELDS)})"


@dataclass(frozen=True)
class Task:
    """One instance: ``onnx`` / ``vnnlib`` are the labels written to results, ``*_path`` the files.

    ``runner`` is the dotted path (``package.module:function``) of a function ``f(task) -> dict``
    that replaces :func:`verifier.app.workers.run_in_process` in the worker; None (always, outside
    tests) runs the real verifier. It is a string so that a task stays hashable and picklable.
    """

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
    strategy: str = "auto"
    bounds: str = "symbolic"
    instance_jobs: int = 1  # processes inside this one instance (verify's Options.jobs), not the batch's --jobs
    seed: int = 0
    runner: str | None = None
    certificate: str | None = None  # write the proof certificate here (``verifier check`` with ``certificate = true``)

    @property
    def label(self) -> str:
        return self.name or f"{self.onnx},{self.vnnlib}"

    @property
    def options(self):
        """The :class:`verifier.verify.Options` this task is verified with."""
        from ..verify import Options

        return Options(timeout=self.timeout, solver=self.solver, strategy=self.strategy, bounds=self.bounds,
                       jobs=self.instance_jobs, seed=self.seed, certificate=self.certificate)

    def option_values(self) -> dict:
        """The options besides the timeout, as a dict (for reports)."""
        return {k: getattr(self, k) for k in OPTION_FIELDS}

    def with_options(self, values: Mapping[str, object] | None) -> Task:
        """This task with the options of ``values`` that are not None (keys of :data:`OPTION_FIELDS`)."""
        if not values:
            return self
        given = {k: v for k, v in values.items() if v is not None}
        for k, v in given.items():
            problem = option_problem(k, v)
            if problem:
                raise VerifierError(problem)
        return replace(self, **given) if given else self


@dataclass
class Outcome:
    """The answer for one task; ``counterexample`` is ``{"input": [...], "output": [...]}`` or None.

    ``time_s`` is the verify time measured inside the worker (model loading included, worker
    start-up excluded); ``wall_s`` is the parent's time from handing the task to a ready worker to
    its answer (adds the pipe round trip); ``worker_startup_s`` is how long the worker that ran it
    took to start (interpreter and imports), which neither includes.
    """

    task: Task
    status: str
    reason: str | None = None
    time_s: float = 0.0
    counterexample: dict | None = None
    timed_out: bool = False
    from_resume: bool = False
    input_error: bool = False  # the model or spec was rejected (bad input), not merely undecided
    stats: dict | None = None  # the verify result's stats (None when the worker gave no result)
    wall_s: float | None = None
    worker_startup_s: float | None = None
    #: peak resident MiB of the worker and its solver processes during the task (sampled; None
    #: when it ran in this process or /proc is missing)
    peak_rss_mb: float | None = None

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
                "resumed": self.from_resume,
                "wall_s": None if self.wall_s is None else round(self.wall_s, 4),
                "worker_startup_s": None if self.worker_startup_s is None else round(self.worker_startup_s, 4),
                "peak_rss_mb": self.peak_rss_mb,
                "timeout": t.timeout, "options": t.option_values(), "stats": self.stats}


def unknown_outcome(task: Task, reason: str, time_s: float, timed_out: bool = False) -> Outcome:
    return Outcome(task, UNKNOWN, reason, time_s, None, timed_out, wall_s=time_s)
