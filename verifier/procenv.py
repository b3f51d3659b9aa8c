"""Re-export of :mod:`verifier.app.procenv` (how worker processes are started)."""

from .app.procenv import PACKAGE_ROOT, SINGLE_THREAD_ENV, child_environment, spawn_environment  # noqa: F401
