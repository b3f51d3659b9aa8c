"""Certificates in the CI gate (``verifier check`` with ``certificate = true`` in a suite).

A check that requires a certificate writes it into the certificates folder next to the JUnit report
(``certificates_folder``; one file per check, ``suite.certificate_file``). It passes only when it
obtains its required verdict *and* its certificate was written *and* the independent checker
accepts it (``run_checker``: ``verifier.checker.check_certificate`` in fast mode). While the checker
is not installed, a written certificate passes with a note that it was not checked.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from .suite import FAILED, PASSED, Judgement

#: the JUnit failure type of a check whose certificate is missing or rejected
CERTIFICATE_FAILURE = "CertificateError"


def certificates_folder(junit_path: str | None, suite_path: str) -> str:
    """``report.xml`` -> ``report.certificates`` beside it; without a report, ``<suite>.certificates``
    in the current folder (an absolute path: workers may run elsewhere)."""
    if junit_path:
        p = Path(junit_path)
        return os.path.abspath(p.with_name(p.stem + ".certificates"))
    return os.path.abspath(Path(suite_path).stem + ".certificates")


def run_checker(model_path: str, spec_path: str, cert_path: str) -> tuple[bool, str] | None:
    """The independent checker's verdict on a certificate, ``(valid, reason)``; None if the checker
    (``verifier.checker``) is not installed. The gate's one hook to the checker."""
    try:
        from ..checker import check_certificate  # type: ignore[attr-defined]
    except ImportError:
        return None
    res = check_certificate(model_path, spec_path, cert_path, mode="fast")
    return bool(res.valid), str(res.reason or "")


def judge_certificate(j: Judgement, checker=None) -> Judgement:
    """``j`` with its certificate judged: a passed check fails if its certificate is missing or the
    checker (default ``run_checker``) rejects it (``rejected``, ``kind`` ``CertificateError``)."""
    checker = checker or run_checker
    task = j.outcome.task
    if task.certificate is None or j.state != PASSED:
        return j
    info = (j.outcome.stats or {}).get("certificate") or {}
    if not info.get("written"):
        return replace(j, state=FAILED, kind=CERTIFICATE_FAILURE,
                       message=f"{j.message}, but no certificate was written ({info.get('reason') or 'no reason given'})")
    path = info.get("path") or task.certificate
    try:
        verdict = checker(task.model_path, task.spec_path, path)
    except Exception as exc:  # noqa: BLE001 - a checker that fails proves nothing: the check fails, the gate goes on
        return replace(j, state=FAILED, kind=CERTIFICATE_FAILURE, rejected=True,
                       message=f"{j.message}, but the certificate checker failed: {type(exc).__name__}: {exc}")
    if verdict is None:
        return replace(j, message=f"{j.message}; certificate {os.path.basename(path)} written (not checked: "
                                  "verifier.checker is not available)")
    valid, reason = verdict
    if not valid:
        return replace(j, state=FAILED, kind=CERTIFICATE_FAILURE, rejected=True,
                       message=f"{j.message}, but the checker rejects its certificate: {reason}")
    return replace(j, message=f"{j.message}; certificate {os.path.basename(path)} accepted by the checker")
