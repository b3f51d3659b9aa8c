"""Run many verification instances in isolated worker processes, each under a hard time limit.

Every instance runs in a worker process started with the ``spawn`` method in its own session
(process group), so that CBC, which the worker starts as a subprocess, belongs to that group.
The parent gives each instance ``timeout + grace`` seconds; past that it kills the whole group
(worker and solver) and reports the instance as *unknown* (reason ``timeout``), then starts a
fresh worker for the remaining instances. A worker that dies (out of memory, crash, signal) gives
*unknown* with the reason; it never stops the batch. A worker kills its own group when its parent
disappears, so a killed batch leaves no solver behind.

The same isolation is used inside Dask tasks (:func:`run_isolated`), so time limits also hold on
a cluster. Test-only fault injection (never set these in production): ``VERIFIER_TEST_CRASH_ON``
and ``VERIFIER_TEST_HANG_ON`` hold a substring of an instance label (``onnx,vnnlib`` as listed);
a worker given a matching instance kills itself with SIGKILL, or starts a child process and hangs.
"""

from __future__ import annotations

import csv
import io
import math
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from .errors import VerifierError
from .procenv import spawn_environment
from .results import HOLDS, UNKNOWN, VIOLATED

#: seconds a worker may take to start (imports) before it is counted as failed
STARTUP_LIMIT_S = 120.0
#: after this many workers in a row die before they are ready, the batch stops (broken install)
MAX_STARTUP_FAILURES = 3
#: thread-count variables set to 1 in workers: one instance = one core


def grace_for(timeout: float) -> float:
    """Extra seconds past an instance's timeout before the parent kills its worker."""
    return 2.0 + 0.05 * timeout


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


def _unknown(task: Task, reason: str, time_s: float, timed_out: bool = False) -> Outcome:
    return Outcome(task, UNKNOWN, reason, time_s, None, timed_out)


# ---------------------------------------------------------------------------------------------
# Worker process side
# ---------------------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    """Kill this worker's process group (worker + solver) as soon as its parent is gone."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os.killpg(os.getpgrp(), signal.SIGKILL)


def _test_hooks(task: Task) -> None:
    """Test-only fault injection, see the module docstring."""
    crash, hang = os.environ.get("VERIFIER_TEST_CRASH_ON"), os.environ.get("VERIFIER_TEST_HANG_ON")
    if crash and crash in task.label:
        os.kill(os.getpid(), signal.SIGKILL)
    if hang and hang in task.label:
        # a stand-in for a hung CBC: a child process in the worker's group, and a worker that never answers
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", "verifier-test-hang-child"])
        while True:
            time.sleep(3600)


def run_in_process(task: Task) -> dict:
    """Verify one task in this process; never raises (bad input becomes unknown with the reason)."""
    from .verify import verify

    t0 = time.perf_counter()
    try:
        _test_hooks(task)
        res = verify(task.model_path, task.spec_path, timeout=task.timeout, solver=task.solver)
    except VerifierError as exc:
        return {"status": UNKNOWN, "reason": f"error: {exc}", "time_s": time.perf_counter() - t0, "input_error": True}
    except MemoryError:
        return {"status": UNKNOWN, "reason": "error: out of memory", "time_s": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - a bug on one instance must not stop the batch
        return {"status": UNKNOWN, "reason": f"internal error: {type(exc).__name__}: {exc}",
                "time_s": time.perf_counter() - t0}
    cex = res.to_json()["counterexample"]
    return {"status": res.status, "reason": res.reason, "time_s": time.perf_counter() - t0, "counterexample": cex,
            "timed_out": res.timed_out}


def _worker_main(conn: Connection, parent_pid: int) -> None:
    """Entry point of a worker: own session, then answer tasks one at a time until told to stop."""
    try:
        os.setsid()
    except OSError:  # already a group leader: keep going, the parent falls back to killing the pid
        pass
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    # warm up before reporting ready, so that an instance's time does not include the imports
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import pulp  # noqa: F401

    import verifier.verify  # noqa: F401

    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(("result", run_in_process(task)))


# ---------------------------------------------------------------------------------------------
# Parent side: one worker process
# ---------------------------------------------------------------------------------------------


def _describe_death(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker process died"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory, or killed from outside)" if exitcode == -signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with code {exitcode}"


class Worker:
    """A spawned worker process in its own process group, running one task at a time."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, os.getpid()), name="verifier-worker",
                                   daemon=False)
        with spawn_environment():
            self.process.start()
        child.close()
        self.started = time.monotonic()
        self.ready = False
        self.task: Task | None = None
        self.task_started = 0.0
        self.deadline = math.inf
        self.killed = False

    @property
    def busy(self) -> bool:
        return self.task is not None

    def submit(self, task: Task) -> None:
        self.task, self.task_started = task, time.monotonic()
        self.deadline = self.task_started + task.timeout + grace_for(task.timeout)
        self.conn.send(task)

    def kill(self) -> None:
        """Kill the worker's whole process group (the worker and its solver) and reap it; once."""
        if self.killed:
            return
        self.killed = True
        pid = self.process.pid
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it (and its group) if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(2)
        self.kill()

    def read(self) -> tuple[str, object] | None:
        """The next message, or None if the worker died (the pipe was closed)."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            return None

    def finish(self, payload: dict) -> Outcome:
        task, self.task, self.deadline = self.task, None, math.inf
        assert task is not None
        return Outcome(task, payload["status"], payload.get("reason"), float(payload.get("time_s", 0.0)),
                       payload.get("counterexample"), bool(payload.get("timed_out")),
                       input_error=bool(payload.get("input_error")))

    def died(self) -> Outcome | None:
        """Reap a dead worker; the outcome of its task (unknown, with the cause) if it had one."""
        self.process.join(5)
        why = _describe_death(self.process.exitcode)
        self.kill()
        if self.task is None:
            return None
        return _unknown(self.task, why, time.monotonic() - self.task_started)

    def overran(self) -> Outcome:
        """Kill a worker past its deadline; the task's outcome is unknown with reason timeout."""
        assert self.task is not None
        elapsed = time.monotonic() - self.task_started
        self.kill()
        return _unknown(self.task, f"timeout: killed after {elapsed:.1f} s (limit {self.task.timeout:g} s, the "
                        "solver did not stop in time)", elapsed, timed_out=True)


# ---------------------------------------------------------------------------------------------
# Schedulers
# ---------------------------------------------------------------------------------------------


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
        objs = [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
        ready = set(wait(objs, timeout=wait_s))
        for w in list(self.workers):
            if w.conn in ready:
                msg = w.read()
                if msg is not None and msg[0] == "ready":
                    w.ready, self.startup_failures = True, 0
                    continue
                if msg is not None and msg[0] == "result":
                    self.on_result(w.finish(msg[1]))  # type: ignore[arg-type]
                    continue
                self._dead(w)
            elif w.process.sentinel in ready:
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
            raise VerifierError(f"worker processes fail to start ({_describe_death(w.process.exitcode)}); "
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


# ---------------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------------

DASK_HINT = 'install the optional extra: pip install ".[dask]" (or pip install "dask[distributed]")'


def import_dask():
    """``(dask, distributed)``, imported on demand: Dask is an optional extra."""
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise VerifierError(f"--scheduler needs Dask, which is not installed ({exc}); {DASK_HINT}") from None
    return dask, distributed


@contextmanager
def dask_client(scheduler: str, jobs: int) -> Iterator[object]:
    """A Dask client: ``local`` starts a LocalCluster (``jobs`` single-threaded worker processes),
    anything else is the address of a running scheduler (e.g. ``tcp://host:8786``)."""
    dask, distributed = import_dask()
    cluster = None
    try:
        if scheduler == "local":
            # tasks start child processes: make the workers non-daemonic (see _spawn_environment)
            with dask.config.set({"distributed.worker.daemon": False}):
                cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                   dashboard_address=None)
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        raise VerifierError(f"cannot connect to the Dask scheduler {scheduler!r}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_dask(tasks: Sequence[Task], scheduler: str, jobs: int, on_result: Callable[[Outcome], None],
             tick: Callable[[], None] | None = None) -> None:
    """Run ``tasks`` as Dask tasks; each task isolates its instance in a child process (same limits)."""
    if not tasks:
        return
    with dask_client(scheduler, jobs) as client:
        futures = {client.submit(run_isolated, t, pure=False, key=f"verify-{i}-{os.getpid()}-{time.time_ns()}"): t
                   for i, t in enumerate(tasks)}
        left = set(futures)
        try:
            while left:
                time.sleep(0.2)
                done = {f for f in left if f.done()}
                left -= done
                for fut in done:
                    try:
                        out = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a lost Dask worker must not stop the batch
                        out = _unknown(futures[fut], f"dask task failed: {type(exc).__name__}: {exc}", 0.0)
                    on_result(out)
                if tick is not None:
                    tick()
        finally:
            if left:
                client.cancel(list(left))


def run(tasks: Sequence[Task], jobs: int, on_result: Callable[[Outcome], None], scheduler: str | None = None,
        tick: Callable[[], None] | None = None) -> None:
    """Run ``tasks`` locally (``scheduler`` None) or on Dask (``local`` or a scheduler address)."""
    if scheduler:
        run_dask(tasks, scheduler, jobs, on_result, tick)
    else:
        run_local(tasks, jobs, on_result, tick)


# ---------------------------------------------------------------------------------------------
# Results file (CSV, one row per instance as it finishes) and summary
# ---------------------------------------------------------------------------------------------

RESULT_COLUMNS = ("onnx", "vnnlib", "result", "time_s", "reason", "expected", "match")
_STATUSES = (HOLDS, VIOLATED, UNKNOWN)


class ResultsFile:
    """The ``--out`` CSV: header, then one flushed row per finished instance.

    With ``resume`` an existing file is kept: its rows are returned by :meth:`previous` (a last line
    cut short by a kill is dropped) and new rows are appended after them.
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False) -> None:
        self.path = os.fspath(path)
        self.rows: list[dict] = []
        try:
            if resume and os.path.exists(self.path):
                self.rows = self._recover()
                self.file = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115 - open for the run
            else:
                self.file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
                self._write(RESULT_COLUMNS)
        except OSError as exc:
            raise VerifierError(f"{self.path}: cannot write the results file: {exc.strerror}") from None

    def _recover(self) -> list[dict]:
        with open(self.path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):  # a row cut short by a kill: drop it, keep the rest
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerifierError(f"{self.path}: not a results file (not UTF-8 text)") from None
        lines = text.splitlines()
        if not lines:
            with open(self.path, "w", encoding="utf-8", newline="") as f:
                f.write(",".join(RESULT_COLUMNS) + "\n")
            return []
        header = next(csv.reader([lines[0]]))
        if tuple(header) != RESULT_COLUMNS:
            raise VerifierError(f"{self.path}:1: not a results file of 'verifier batch' (header "
                                f"{','.join(header)!r}, expected {','.join(RESULT_COLUMNS)!r}); "
                                "refusing to append to it: drop --resume to overwrite it")
        rows = []
        for n, fields in enumerate(csv.reader(lines[1:]), start=2):
            if not fields:
                continue
            if len(fields) != len(RESULT_COLUMNS) or fields[2] not in _STATUSES:
                raise VerifierError(f"{self.path}:{n}: malformed results row ({len(fields)} columns, result "
                                    f"{fields[2] if len(fields) > 2 else '?'!r}); fix or delete this line")
            row = dict(zip(RESULT_COLUMNS, fields))
            try:
                row["time_s"] = float(row["time_s"] or 0.0)
            except ValueError:
                raise VerifierError(f"{self.path}:{n}: bad time_s {row['time_s']!r}") from None
            rows.append(row)
        return rows

    def _write(self, fields: Sequence[object]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(fields)
        self.file.write(buf.getvalue())  # one write per row: a kill can cut at most the last line
        self.file.flush()
        os.fsync(self.file.fileno())

    def write(self, out: Outcome) -> None:
        reason = " ".join((out.reason or "").split())  # one row = one line, whatever the reason text
        t = out.task
        self._write((t.onnx, t.vnnlib, out.status, f"{out.time_s:.3f}", reason, t.expected or "", out.match))

    def close(self) -> None:
        self.file.close()


def split_resumed(tasks: Sequence[Task], rows: Sequence[dict]) -> tuple[list[Outcome], list[Task]]:
    """(outcomes already in ``rows``, tasks still to run); a task listed twice needs two rows."""
    left: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        left.setdefault((r["onnx"], r["vnnlib"]), []).append(r)
    done, todo = [], []
    for t in tasks:
        prev = left.get((t.onnx, t.vnnlib))
        if prev:
            r = prev.pop(0)
            done.append(Outcome(t, r["result"], r["reason"] or None, r["time_s"], None,
                                r["reason"].startswith("timeout"), from_resume=True))
        else:
            todo.append(t)
    return done, todo


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
