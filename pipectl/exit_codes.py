"""The process exit status of `doctor`, as one pure function so CI gates can rely on it."""

from __future__ import annotations

from collections.abc import Iterable

from pipectl.model import Finding, Severity, Status

OK = 0
FAILED = 1
USAGE = 2
UNKNOWN = 3


def exit_code(findings: Iterable[Finding], fail_on: Severity = Severity.P2) -> int:
    """1 if a FAIL at or above `fail_on`, else 3 if some check could not tell, else 0."""
    findings = list(findings)
    if any(f.status is Status.FAIL and f.severity <= fail_on for f in findings):
        return FAILED
    if any(f.status is Status.ERROR for f in findings):
        return UNKNOWN
    return OK
