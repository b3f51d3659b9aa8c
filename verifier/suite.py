"""Re-export of :mod:`verifier.app.suite` (instance lists, expected results, suite files, judging)."""

from .app.suite import (  # noqa: F401
    CHECK_KEYS,
    DEFAULT_SUITE_TIMEOUT,
    FAILED,
    PASSED,
    SUITE_KEYS,
    UNKNOWN_ALLOWED,
    Check,
    Judgement,
    ListError,
    Suite,
    judge,
    load_expected,
    load_instances,
    load_list,
    load_suite,
    parse_timeout,
    with_expected,
)
