"""The ``verifier`` command line (kept so that ``python -m verifier.cli`` and the console script
``verifier = "verifier.cli:main"`` keep working); it lives in :mod:`verifier.app.cli`."""

from .app.cli import EXIT_HELP, EXIT_INTERNAL, bounds, info, main, verify

__all__ = ["EXIT_HELP", "EXIT_INTERNAL", "bounds", "info", "main", "verify"]

if __name__ == "__main__":  # pragma: no cover
    main()
