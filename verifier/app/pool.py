"""Local scheduler: run tasks on N isolated workers, replacing dead or overrunning ones."""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait

from ..errors import VerifierError
from .tasks import Outcome, Task
from .workers import MAX_STARTUP_FAILURES, STARTUP_LIMIT_S, Worker, describe_death


@dataclass
class _Pool:
    jobs: int
    on_result: Callable[[Outcome], None]
    workers: list[Worker] = field(default_factory=list)
    pending: deque = field(default_factory=deque)
    startup_failures: int = 0

    def _replace(self, w: Worker) -> None:
        """Drop a dead or killed worker; start another one if work is left for it."""
        self.workers.remove(w)
        idle = sum(1 for x in self.workers if not x.busy)
        if len(self.pending) > idle:
            self.workers.append(Worker())

    def run(self, tasks: Sequence[Task], tick: Callable[[], None] | None) -> None:
        self.pending = pending = deque(tasks)
        try:
            for _ in range(min(self.jobs, len(pending))):
                self.workers.append(Worker())
            while pending or any(w.busy for w in self.workers):
                for w in list(self.workers):
                    if w.ready and not w.busy and pending:
                        task = pending.popleft()
                        try:
                            w.submit(task)
                        except OSError:  # the worker died just now: the task goes back in line
                            w.task, w.deadline = None, math.inf
                            pending.appendleft(task)
                            self._dead(w)
                self._step()
                if tick is not None:
                    tick()
                # workers beyond what is left to do can go
                for w in [w for w in self.workers if w.ready and not w.busy and not pending]:
                    w.stop()
                    self.workers.remove(w)
        finally:
            for w in self.workers:
                w.kill()
            self.workers.clear()

    def _step(self) -> None:
        now = time.monotonic()
        next_deadline = min([w.deadline for w in self.workers] or [math.inf])
        wait_s = max(0.0, min(0.5, next_deadline - now))
        objs = [obj for w in self.workers for obj in w.waitables()]
        ready = set(wait(objs, timeout=wait_s))
        for w in list(self.workers):
            if w.conn in ready:
                msg = w.read()
                if msg is not None and msg[0] == "ready":
                    w.mark_ready()
                    self.startup_failures = 0
                    continue
                if msg is not None and msg[0] == "result":
                    self.on_result(w.finish(msg[1]))  # type: ignore[arg-type]
                    continue
                self._dead(w)
            elif (w.sentinel in ready) if w.sentinel is not None else w.exitcode is not None:
                self._dead(w)
            elif w.busy and time.monotonic() > w.deadline:
                self.on_result(w.overran())
                self._replace(w)
            elif not w.ready and time.monotonic() - w.started > STARTUP_LIMIT_S:
                w.kill()
                self._startup_failed(w)

    def _dead(self, w: Worker) -> None:
        was_ready = w.ready
        out = w.died()
        if out is not None:
            self.on_result(out)
        if not was_ready:
            self._startup_failed(w)
        else:
            self._replace(w)

    def _startup_failed(self, w: Worker) -> None:
        self.startup_failures += 1
        if self.startup_failures >= MAX_STARTUP_FAILURES:
            raise VerifierError(f"worker processes fail to start ({describe_death(w.exitcode)}); "
                                "see the messages above")
        self._replace(w)


def run_local(tasks: Sequence[Task], jobs: int, on_result: Callable[[Outcome], None],
              tick: Callable[[], None] | None = None) -> None:
    """Run ``tasks`` on ``jobs`` local worker processes; ``on_result`` is called as each one ends."""
    if tasks:
        _Pool(max(1, jobs), on_result).run(tasks, tick)


def run_isolated(task: Task) -> Outcome:
    """Run one task in a fresh worker process with the kill-on-overrun limit (used by Dask tasks)."""
    outcomes: list[Outcome] = []
    run_local([task], 1, outcomes.append)
    return outcomes[0]


def default_jobs() -> int:
    """Number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
