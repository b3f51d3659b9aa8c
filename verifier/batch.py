"""Re-export of the batch machinery, which lives in :mod:`verifier.app` (tasks, workers, pool,
dask_backend, results_csv, summary)."""

from .app.dask_backend import DASK_HINT, dask_client, import_dask, run_dask
from .app.dispatch import run
from .app.pool import default_jobs, run_isolated, run_local
from .app.results_csv import RESULT_COLUMNS, ResultsFile, split_resumed
from .app.summary import summarize
from .app.tasks import Outcome, Task
from .app.workers import MAX_STARTUP_FAILURES, STARTUP_LIMIT_S, Worker, grace_for, run_in_process

__all__ = ["DASK_HINT", "MAX_STARTUP_FAILURES", "RESULT_COLUMNS", "STARTUP_LIMIT_S", "Outcome", "ResultsFile", "Task",
           "Worker", "dask_client", "default_jobs", "grace_for", "import_dask", "run", "run_dask", "run_in_process",
           "run_isolated", "run_local", "split_resumed", "summarize"]
