"""Re-export of :mod:`verifier.app.commands_batch` (the ``batch`` and ``check`` commands)."""

from .app.commands_batch import EXIT_INTERRUPTED, EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, EXIT_WRONG, batch, check, register
from .app.render import Progress

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNKNOWN", "EXIT_USAGE", "EXIT_WRONG", "Progress", "batch", "check",
           "register"]
