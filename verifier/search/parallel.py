"""Spread the open sub-boxes of one branch and bound over worker processes (``--jobs N``).

Workers are started with the ``spawn`` method (no inherited solver or BLAS state), each loads the
network and an onnxruntime session once, and runs single-threaded (BLAS and onnxruntime pinned
to one thread; CBC is started with ``threads 1``). Each task is one open box, searched to the end
by the same ``input_split`` as the sequential code. The first counterexample stops everyone.
"""

from __future__ import annotations

import multiprocessing as mp
import time

from ..procenv import spawn_environment
from ..spec import Case, Constraints
from .input_split import BabOutcome, BabSettings, BabStats, Box, input_split

_worker: dict = {}


def _init(model_path: str) -> None:
    from ..io.onnx import load_model
    from ..io.replay import OnnxOracle

    _worker["network"] = load_model(model_path)
    _worker["oracle"] = OnnxOracle(_worker["network"])


def _task(args) -> BabOutcome:
    case, disjuncts, settings, wall_deadline, case_index, box = args
    deadline = None if wall_deadline is None else time.perf_counter() + (wall_deadline - time.time())
    return input_split(_worker["network"], case, disjuncts, _worker["oracle"], settings, deadline, case_index,
                       boxes=[box])


def run_boxes(model_path: str, case: Case, disjuncts: list[Constraints], boxes: list[Box], jobs: int,
              settings: BabSettings, wall_deadline: float | None, case_index: int = 0) -> BabOutcome:
    """Search ``boxes`` with ``jobs`` processes; holds only if every box holds."""
    ctx = mp.get_context("spawn")
    stats = BabStats()
    reasons: list[str] = []
    with spawn_environment(), ctx.Pool(jobs, initializer=_init, initargs=(model_path,)) as pool:
        tasks = [(case, disjuncts, settings, wall_deadline, case_index, b) for b in boxes]
        for out in pool.imap_unordered(_task, tasks):
            stats.merge(out.stats)
            if out.status == "violated":
                pool.terminate()
                return BabOutcome("violated", out.counterexample, None, stats)
            if out.status != "holds":  # anything but an explicit proof leaves the answer open
                reasons.append(out.reason or "undecided sub-box")
                if out.reason and out.reason.startswith("timeout"):
                    pool.terminate()
                    return BabOutcome("unknown", None, out.reason, stats)
    if reasons or stats.undecided:
        return BabOutcome("unknown", None, "; ".join(dict.fromkeys(reasons)) or "undecided sub-boxes", stats)
    return BabOutcome("holds", None, None, stats)
