"""Per-benchmark summary rows of a batch (and the per-network rows of ``benchmarks/run_instances.py``)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from ..results import HOLDS, UNKNOWN, VIOLATED
from .tasks import Outcome


def milp_size(o: Outcome) -> dict:
    """The largest MILP of an instance (``variables`` / ``binaries`` / ``constraints``), or {}."""
    return (o.stats or {}).get("milp") or {}


def summarize(outcomes: Sequence[Outcome], key: Callable[[Outcome], str] | None = None) -> list[dict]:
    """Per group (``key``, default the benchmark; in order of appearance, plus ``total`` when there are
    several): counts, wrong answers, solved (decided and not wrong), median and total in-worker time,
    MILP sizes and the largest sampled peak memory (worker + solver)."""
    key = key or (lambda o: o.task.benchmark)
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(key(o), []).append(o)
    if len(groups) > 1:
        groups["total"] = list(outcomes)
    rows = []
    for bench, outs in groups.items():
        times = [o.time_s for o in outs]
        bins = [milp_size(o)["binaries"] for o in outs if "binaries" in milp_size(o)]
        rss = [o.peak_rss_mb for o in outs if o.peak_rss_mb is not None]
        rows.append({"benchmark": bench, "instances": len(outs),
                     "holds": sum(o.status == HOLDS for o in outs),
                     "violated": sum(o.status == VIOLATED for o in outs),
                     "unknown": sum(o.status == UNKNOWN for o in outs),
                     "timeouts": sum(o.timed_out for o in outs),
                     "wrong": sum(o.wrong for o in outs),
                     "solved": sum(o.status in (HOLDS, VIOLATED) and not o.wrong for o in outs),
                     "median_s": round(statistics.median(times), 3) if times else 0.0,
                     "total_s": round(sum(times), 3),
                     "median_binaries": statistics.median(bins) if bins else None,
                     "max_binaries": max(bins) if bins else None,
                     "max_rss_mb": max(rss) if rss else None})
    return rows
