"""Where a batch runs: local worker processes (``pool``) or a Dask cluster (``dask_backend``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .pool import run_local
from .tasks import Outcome, Task


def run(tasks: Sequence[Task], jobs: int, on_result: Callable[[Outcome], None], scheduler: str | None = None,
        tick: Callable[[], None] | None = None) -> None:
    """Run ``tasks`` locally (``scheduler`` None) or on Dask (``local`` or a scheduler address)."""
    if scheduler:
        from .dask_backend import run_dask  # Dask is an optional extra: imported only when asked for

        run_dask(tasks, scheduler, jobs, on_result, tick)
    else:
        run_local(tasks, jobs, on_result, tick)
