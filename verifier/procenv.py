"""Re-export of :mod:`verifier.app.procenv` (how worker processes are started)."""

from .app.procenv import SINGLE_THREAD_ENV, spawn_environment  # noqa: F401
