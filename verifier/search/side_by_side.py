"""``--jobs N`` on the MILP path: N solver processes solve the disjuncts' MILPs at once.

Each solve takes the next disjunct and a fair share of the time left (the same share rule as one
at a time, times the number of solves running side by side). Outcomes are booked in the calling
thread (``book``: the replay and the attack are not thread-safe), in the order they finish; the
first booking that returns something (a confirmed counterexample) cancels the solves still running.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..budget import Deadline
from ..milp.model import MILP
from ..milp.solvers import Solver


def solve_side_by_side(todo: list[int], jobs: int, problem: Callable[[int], MILP], solver: Solver,
                       deadline: Deadline, book: Callable[[int, MILP, object], object | None]
                       ) -> tuple[object | None, bool]:
    """Solve ``problem(di)`` for every ``di`` in ``todo`` with ``jobs`` threads, each driving one
    solver process. ``book(di, problem, outcome)`` runs in this thread; a non-None return stops
    everything and is returned. Returns ``(found, unsolved)``: ``unsolved`` is True if some
    disjunct never got a solve (the deadline passed first)."""
    pending = list(todo)
    lock = threading.Lock()
    cancel = threading.Event()
    results: queue.SimpleQueue = queue.SimpleQueue()

    def worker() -> list:
        done = []
        while not cancel.is_set():
            with lock:
                if not pending:
                    break
                n_left = len(pending)  # this one included
                di = pending.pop(0)
            if deadline.expired():
                done.append((di, None, None))
                continue
            rounds = -(-n_left // jobs)  # solves this worker can still expect to run
            prob = problem(di)
            done.append((di, prob, solver.solve(prob, deadline.share(rounds), cancel=cancel)))
            results.put(done[-1])
        return done

    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(worker) for _ in range(jobs)]
        try:
            while True:
                try:
                    di, prob, out = results.get(timeout=0.05)
                except queue.Empty:
                    if any(f.done() and f.exception() is not None for f in futures):
                        break  # a worker failed: stop the others, then f.result() below raises it
                    if all(f.done() for f in futures) and results.empty():
                        break
                    continue
                found = book(di, prob, out)
                if found is not None:
                    return found, False
        finally:
            cancel.set()  # leaving the pool waits for the (killed) solves to return
    outcomes = [o for f in futures for o in f.result()]
    return None, any(out is None for _, _, out in outcomes)
