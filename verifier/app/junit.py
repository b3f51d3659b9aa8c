"""Write JUnit XML reports, the format CI systems (GitHub Actions, GitLab, Jenkins) display as tests.

One ``<testsuite>`` per suite file, one ``<testcase>`` per check; a failed check carries a
``<failure>`` (the counterexample or the reason), a check whose model or spec was rejected an
``<error>``, an unknown verdict that was allowed is
``<skipped>`` with the reason, plus a ``<system-out>`` warning.
"""

from __future__ import annotations

import os
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class CaseOutcome(StrEnum):
    """A JUnit test case's outcome (the report format's vocabulary, mapped from ``CheckState``)."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # the check could not run (model or spec rejected)
    SKIP = "skip"  # an allowed unknown


PASS, FAIL, ERROR, SKIP = CaseOutcome.PASS, CaseOutcome.FAIL, CaseOutcome.ERROR, CaseOutcome.SKIP


@dataclass(frozen=True)
class Case:
    """One test case: ``outcome`` is pass / fail / error (could not run) / skip; ``details`` is the body of
    the failure or error."""

    name: str
    time_s: float
    outcome: CaseOutcome
    message: str = ""
    details: str = ""
    kind: str = ""  # failure type, e.g. WrongVerdict / Unknown
    output: str = ""  # system-out text


def _clean(text: str) -> str:
    """Drop the characters XML 1.0 cannot hold (control characters from odd reasons)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def build(suite_name: str, cases: Sequence[Case], suite_file: str | None = None) -> ET.ElementTree:
    """The XML tree of a report (``classname`` of every case is the suite name)."""
    failures = sum(c.outcome == FAIL for c in cases)
    errors = sum(c.outcome == ERROR for c in cases)
    skipped = sum(c.outcome == SKIP for c in cases)
    total = sum(c.time_s for c in cases)
    root = ET.Element("testsuites", name=suite_name, tests=str(len(cases)), failures=str(failures), errors=str(errors),
                      skipped=str(skipped), time=f"{total:.3f}")
    attrs = {"name": suite_name, "tests": str(len(cases)), "failures": str(failures), "errors": str(errors),
             "skipped": str(skipped), "time": f"{total:.3f}",
             "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat(),
             "hostname": socket.gethostname()}
    if suite_file:
        attrs["file"] = suite_file
    suite = ET.SubElement(root, "testsuite", attrs)
    for c in cases:
        tc = ET.SubElement(suite, "testcase", name=_clean(c.name), classname=_clean(suite_name), time=f"{c.time_s:.3f}")
        if c.outcome in (FAIL, ERROR):
            el = ET.SubElement(tc, "failure" if c.outcome == FAIL else "error", message=_clean(c.message),
                               type=c.kind or "Failure")
            el.text = _clean(c.details or c.message)
        elif c.outcome == SKIP:
            ET.SubElement(tc, "skipped", message=_clean(c.message))
        if c.output:
            ET.SubElement(tc, "system-out").text = _clean(c.output)
    ET.indent(root)
    return ET.ElementTree(root)


def write(path: str | os.PathLike, suite_name: str, cases: Sequence[Case], suite_file: str | None = None) -> None:
    """Write the report to ``path`` (UTF-8, with an XML declaration)."""
    build(suite_name, cases, suite_file).write(path, encoding="utf-8", xml_declaration=True)
