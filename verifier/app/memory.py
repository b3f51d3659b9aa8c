"""Peak resident memory of a worker and its solver processes, sampled from ``/proc``.

A worker runs in its own process group (``start_new_session``), with its CBC solver as a child
in the same group, so the group's summed resident set is what the instance costs. Sampling
(every ``interval`` seconds, in a thread of the parent) can miss a peak shorter than that; the
figure is a measurement for benchmark tables, never a limit. Where ``/proc`` is missing
(not Linux) the peak is None.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def group_rss(pgid: int) -> int | None:
    """Summed resident bytes of the processes in process group ``pgid`` (None without ``/proc``)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    total = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended meanwhile
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 21 and int(fields[2]) == pgid:
            total += int(fields[21]) * _PAGE
    return total


class PeakSampler:
    """Samples ``group_rss(pgid)`` until ``stop()``, which returns the peak in MiB (or None)."""

    def __init__(self, pgid: int, interval: float = 0.2) -> None:
        self.pgid, self.interval = pgid, interval
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            rss = group_rss(self.pgid)
            if rss is not None:
                self.peak = rss if self.peak is None else max(self.peak, rss)
            if self._stop.wait(self.interval):
                return

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(2 * self.interval + 1)
        return None if self.peak is None else round(self.peak / 2 ** 20, 1)
