"""Process set-up shared by everything that starts worker processes (batch runs, --jobs)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from contextlib import contextmanager

#: numeric libraries read these when they load: one thread each in worker processes
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@contextmanager
def spawn_environment() -> Iterator[None]:
    """Single-threaded numeric libraries in the children, and permission to start them from a
    daemonic process (a Dask worker): our children watch their parent and exit with it."""
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    current = mp.current_process()
    daemon = current._config.get("daemon")  # multiprocessing offers no public switch
    for k in SINGLE_THREAD_ENV:
        os.environ[k] = "1"
    if daemon:
        current._config["daemon"] = False
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if daemon:
            current._config["daemon"] = daemon
