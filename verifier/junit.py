"""Re-export of :mod:`verifier.app.junit` (JUnit XML reports)."""

from .app.junit import ERROR, FAIL, PASS, SKIP, Case, build, write  # noqa: F401
