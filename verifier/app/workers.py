"""Worker isolation: one spawned process per running instance, in its own process group, with a hard
time limit.


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

import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

from ..errors import VerifierError
from ..results import UNKNOWN
from .procenv import spawn_environment
from .tasks import Outcome, Task, unknown_outcome

#: seconds a worker may take to start (imports) before it is counted as failed
STARTUP_LIMIT_S = 120.0
#: after this many workers in a row die before they are ready, the batch stops (broken install)
MAX_STARTUP_FAILURES = 3
#: thread-count variables set to 1 in workers: one instance = one core


def grace_for(timeout: float) -> float:
    """Extra seconds past an instance's timeout before the parent kills its worker."""
    return 2.0 + 0.05 * timeout



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
    from ..verify import verify

    t0 = time.perf_counter()
    try:
        _test_hooks(task)
        res = verify(task.model_path, task.spec_path, options=task.options)
    except VerifierError as exc:
        return {"status": UNKNOWN, "reason": f"error: {exc}", "time_s": time.perf_counter() - t0, "input_error": True}
    except MemoryError:
        return {"status": UNKNOWN, "reason": "error: out of memory", "time_s": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - a bug on one instance must not stop the batch
        return {"status": UNKNOWN, "reason": f"internal error: {type(exc).__name__}: {exc}",
                "time_s": time.perf_counter() - t0}
    data = res.to_json()
    return {"status": res.status, "reason": res.reason, "time_s": time.perf_counter() - t0,
            "counterexample": data["counterexample"], "timed_out": res.timed_out, "stats": data["stats"]}


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


def describe_death(exitcode: int | None) -> str:
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
        self.startup_s: float | None = None  # spawn to ready: interpreter start and imports
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

    def mark_ready(self) -> None:
        self.ready, self.startup_s = True, time.monotonic() - self.started

    def finish(self, payload: dict) -> Outcome:
        task, self.task, self.deadline = self.task, None, math.inf
        assert task is not None
        return Outcome(task, payload["status"], payload.get("reason"), float(payload.get("time_s", 0.0)),
                       payload.get("counterexample"), bool(payload.get("timed_out")),
                       input_error=bool(payload.get("input_error")), stats=payload.get("stats"),
                       wall_s=time.monotonic() - self.task_started, worker_startup_s=self.startup_s)

    def died(self) -> Outcome | None:
        """Reap a dead worker; the outcome of its task (unknown, with the cause) if it had one."""
        self.process.join(5)
        why = describe_death(self.process.exitcode)
        self.kill()
        if self.task is None:
            return None
        return unknown_outcome(self.task, why, time.monotonic() - self.task_started)

    def overran(self) -> Outcome:
        """Kill a worker past its deadline; the task's outcome is unknown with reason timeout."""
        assert self.task is not None
        elapsed = time.monotonic() - self.task_started
        self.kill()
        return unknown_outcome(self.task, f"timeout: killed after {elapsed:.1f} s (limit {self.task.timeout:g} s, the "
                        "solver did not stop in time)", elapsed, timed_out=True)

