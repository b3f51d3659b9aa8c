"""Per-benchmark summary rows of a batch."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from ..results import HOLDS, UNKNOWN, VIOLATED
from .tasks import Outcome


def summarize(outcomes: Sequence[Outcome]) -> list[dict]:
    """Per benchmark (in order of appearance): counts, wrong answers, median and total time."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.task.benchmark, []).append(o)
    if len(groups) > 1:
        groups["total"] = list(outcomes)
    rows = []
    for bench, outs in groups.items():
        times = [o.time_s for o in outs]
        rows.append({"benchmark": bench, "instances": len(outs),
                     "holds": sum(o.status == HOLDS for o in outs),
                     "violated": sum(o.status == VIOLATED for o in outs),
                     "unknown": sum(o.status == UNKNOWN for o in outs),
                     "timeouts": sum(o.timed_out for o in outs),
                     "wrong": sum(o.wrong for o in outs),
                     "median_s": round(statistics.median(times), 3) if times else 0.0,
                     "total_s": round(sum(times), 3)})
    return rows
