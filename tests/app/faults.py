"""Worker faults for tests, injected through ``Task.runner`` (never through environment variables).

``hang`` stands in for a hung CBC: it starts a child process in the worker's process group and
never answers; ``crash`` kills the worker with SIGKILL (as the kernel's OOM killer would).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

HANG = "tests.app.faults:hang"
CRASH = "tests.app.faults:crash"


def hang(task) -> dict:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", "verifier-test-hang-child"])
    while True:
        time.sleep(3600)


def crash(task) -> dict:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def inject(tasks, hang_on: str | None = None, crash_on: str | None = None):
    """``tasks`` with the fault runners set on those whose label contains ``hang_on`` / ``crash_on``."""
    from dataclasses import replace

    out = []
    for t in tasks:
        if hang_on and hang_on in t.label:
            t = replace(t, runner=HANG)
        elif crash_on and crash_on in t.label:
            t = replace(t, runner=CRASH)
        out.append(t)
    return out


def report_process(task) -> dict:
    """Not a fault: what the worker process looks like from inside (environment, session), as the reason."""
    import json

    from verifier.app.procenv import SINGLE_THREAD_ENV

    facts = {"env": {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}, "pid": os.getpid(), "sid": os.getsid(0),
             "pgrp": os.getpgrp()}
    return {"status": "unknown", "reason": json.dumps(facts), "time_s": 0.0}


def fail(task) -> dict:
    raise RuntimeError("runner bug")
