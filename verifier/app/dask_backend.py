"""Dask scheduler: each Dask task isolates its instance in a worker process (same limits as local runs)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..errors import VerifierError
from .pool import run_isolated
from .tasks import Outcome, Task, unknown_outcome

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
            # tasks start child processes (fresh interpreters, allowed from daemons too); non-daemonic workers
            # also let an instance use --instance-jobs (a multiprocessing pool)
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
                        out = unknown_outcome(futures[fut], f"dask task failed: {type(exc).__name__}: {exc}", 0.0)
                    on_result(out)
                if tick is not None:
                    tick()
        finally:
            if left:
                client.cancel(list(left))

