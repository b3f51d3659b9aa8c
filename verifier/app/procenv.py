"""How worker processes are started: an explicit environment handed to each child.

A batch worker is started as a fresh interpreter (``subprocess.Popen``) with the environment of
:func:`child_environment`: numeric libraries pinned to one thread (one instance = one core;
they read these variables when they load, so they must be set at start-up, not later) and this
package first on ``PYTHONPATH``. Nothing in the parent is changed, and no multiprocessing
internals are touched (a fresh interpreter may be started from a daemonic Dask worker).

A ``multiprocessing`` pool (the per-instance ``--jobs`` workers of ``search.parallel``) cannot be
given an environment: its initializer receives :func:`single_thread_values` and applies them in the
child with :func:`apply_environment`; the parent's ``os.environ`` is never written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: numeric libraries read these when they load: one thread each in worker processes
SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: the folder holding the ``verifier`` package: children import the same code as their parent
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker process: ``base`` (default ``os.environ``) with single-threaded
    BLAS / OpenMP and :data:`PACKAGE_ROOT` first on ``PYTHONPATH``."""
    env = dict(os.environ if base is None else base)
    env.update(single_thread_values())
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != PACKAGE_ROOT]
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT, *paths])
    return env


def single_thread_values() -> dict[str, str]:
    """The variables that pin numeric libraries to one thread, for a child to apply (a fresh dict)."""
    return {k: "1" for k in SINGLE_THREAD_ENV}


def apply_environment(values: Mapping[str, str]) -> None:
    """Set ``values`` in this process's ``os.environ``: call it in a worker process only (a pool
    initializer), never in the parent."""
    os.environ.update(values)
