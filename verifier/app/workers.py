"""Worker isolation: one worker process per running instance, in its own session, with a hard time limit.

A worker is a fresh Python interpreter (``subprocess.Popen``, so nothing is inherited but what is
handed over explicitly: the environment of :func:`verifier.app.procenv.child_environment`, with
BLAS / OpenMP pinned to one thread, and one end of a socket pair). It is started in its own
session (process group), so that CBC, which the worker starts as a subprocess, belongs to that
group. The parent gives each instance ``timeout + grace`` seconds; past that it kills the whole
group (worker and solver) and reports the instance as *unknown* (reason ``timeout``), then starts
a fresh worker for the remaining instances. A worker that dies (out of memory, crash, signal)
gives *unknown* with the reason; it never stops the batch. A worker kills its own group when its
parent disappears, so a killed batch leaves no solver behind.

The same isolation is used inside Dask tasks (:func:`verifier.app.pool.run_isolated`), so time
limits also hold on a cluster. What a worker runs for a task is :func:`run_in_process`, unless
the task names another function in ``Task.runner`` (tests use that to make a worker crash or
hang; nothing is read from environment variables).
"""

from __future__ import annotations

import importlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection

from ..errors import VerifierError
from ..results import UNKNOWN
from .memory import PeakSampler
from .procenv import child_environment
from .tasks import Outcome, Task, unknown_outcome

#: seconds a worker may take to start (imports) before it is counted as failed
STARTUP_LIMIT_S = 120.0
#: after this many workers in a row die before they are ready, the batch stops (broken install)
MAX_STARTUP_FAILURES = 3


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


def resolve_runner(path: str) -> Callable[[Task], dict]:
    """The function named by a dotted path ``package.module:function``."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise VerifierError(f"bad task runner {path!r}: expected 'package.module:function'")
    return getattr(importlib.import_module(module), name)


def run_in_process(task: Task) -> dict:
    """Verify one task in this process; never raises (bad input becomes unknown with the reason).

    ``time_s`` is the time of the verify call alone (model loading included): the worker has
    imported everything before it reports ready, so its start-up is not in it."""
    from ..verify import verify

    t0 = time.perf_counter()
    try:
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


def _answer(task: Task) -> dict:
    if task.runner is None:
        return run_in_process(task)
    t0 = time.perf_counter()
    try:
        return resolve_runner(task.runner)(task)
    except Exception as exc:  # noqa: BLE001 - as run_in_process: never stop the worker
        return {"status": UNKNOWN, "reason": f"internal error: {type(exc).__name__}: {exc}",
                "time_s": time.perf_counter() - t0}


def serve(fd: int, parent_pid: int) -> None:
    """Entry point of a worker (``python -c``): answer tasks read from socket ``fd`` one at a time
    until told to stop. The parent has already made this process a session leader."""
    conn = Connection(fd)
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
        conn.send(("result", _answer(task)))


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


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class Worker:
    """A worker process in its own session, running one task at a time.

    ``conn`` carries tasks and answers; ``sentinel`` (when the platform has pidfds) becomes
    readable when the process exits, for :func:`multiprocessing.connection.wait`."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        parent_sock, child_sock = socket.socketpair()
        code = f"from verifier.app.workers import serve; serve({child_sock.fileno()}, {os.getpid()})"
        try:
            self.process = subprocess.Popen([sys.executable, "-c", code], env=env or child_environment(),
                                            pass_fds=(child_sock.fileno(),), start_new_session=True,
                                            stdin=subprocess.DEVNULL)
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())
        fd = _pidfd(self.process.pid)
        self.sentinel = None if fd is None else _Fd(fd)
        self.started = time.monotonic()
        self.ready = False
        self.startup_s: float | None = None  # spawn to ready: interpreter start and imports
        self.task: Task | None = None
        self.task_started = 0.0
        self.deadline = math.inf
        self.killed = False
        self.sampler: PeakSampler | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    @property
    def busy(self) -> bool:
        return self.task is not None

    def waitables(self) -> list:
        return [self.conn] + ([self.sentinel] if self.sentinel is not None else [])

    def _join(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def submit(self, task: Task) -> None:
        self.task, self.task_started = task, time.monotonic()
        self.deadline = self.task_started + task.timeout + grace_for(task.timeout)
        self.sampler = PeakSampler(self.process.pid)
        self.conn.send(task)

    def _peak(self) -> float | None:
        """Peak resident MiB of the worker's process group during its task (sampled)."""
        sampler, self.sampler = self.sampler, None
        return None if sampler is None else sampler.stop()

    def kill(self) -> None:
        """Kill the worker's whole process group (the worker and its solver) and reap it; once."""
        if self.killed:
            return
        self.killed = True
        for kill in (os.killpg, os.kill):  # the group is the worker's pid (start_new_session)
            try:
                kill(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._join(5)
        self.conn.close()
        if self.sentinel is not None:
            self.sentinel.close()

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it (and its group) if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self._join(2)
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
                       wall_s=time.monotonic() - self.task_started, worker_startup_s=self.startup_s,
                       peak_rss_mb=self._peak())

    def died(self) -> Outcome | None:
        """Reap a dead worker; the outcome of its task (unknown, with the cause) if it had one."""
        self._join(5)
        why = describe_death(self.process.poll())
        peak = self._peak()
        self.kill()
        if self.task is None:
            return None
        return replace(unknown_outcome(self.task, why, time.monotonic() - self.task_started), peak_rss_mb=peak)

    def overran(self) -> Outcome:
        """Kill a worker past its deadline; the task's outcome is unknown with reason timeout."""
        assert self.task is not None
        elapsed = time.monotonic() - self.task_started
        peak = self._peak()
        self.kill()
        out = unknown_outcome(self.task, f"timeout: killed after {elapsed:.1f} s (limit {self.task.timeout:g} s, the "
                              "solver did not stop in time)", elapsed, timed_out=True)
        return replace(out, peak_rss_mb=peak)


class _Fd:
    """A raw descriptor with ``fileno()``, as :func:`multiprocessing.connection.wait` wants."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def fileno(self) -> int:
        assert self.fd is not None
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
