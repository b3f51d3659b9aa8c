"""Re-export of :mod:`verifier.app.procenv` (how worker processes are started)."""

from .app.procenv import (  # noqa: F401
    PACKAGE_ROOT,
    SINGLE_THREAD_ENV,
    apply_environment,
    child_environment,
    single_thread_values,
)
