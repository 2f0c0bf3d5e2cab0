"""Small shared wording so every format says the same thing the same way."""

from __future__ import annotations

from pipectl.model import DoctorResult, Finding, Status

STATUS_ORDER = (Status.FAIL, Status.ERROR, Status.WARN, Status.OK, Status.SKIPPED)


def display_order(findings: list[Finding]) -> list[Finding]:
    """Worst first (status, then severity), stable otherwise, so the eye lands on what matters."""
    return sorted(findings, key=lambda f: (STATUS_ORDER.index(f.status), f.severity.rank))


def summary_line(result: DoctorResult) -> str:
    counts = result.counts()
    parts = [f"{counts[s.value]} {s.value}" for s in STATUS_ORDER if counts[s.value]]
    parts += [f"{counts['suppressed']} suppressed"] if counts["suppressed"] else []
    total = len(result.findings) + len(result.suppressed)
    return f"{total} findings: " + (", ".join(parts) or "none") + f" in {result.duration_s:.1f}s"


def suppressed_text(finding: Finding) -> str:
    """Why a finding is not counted, in the same words in every format: owner, last day, reason."""
    entry = finding.suppression
    if entry is None:
        return ""
    return f"suppressed by {entry.owner} until {entry.expires.isoformat()}: {entry.reason}"


def evidence_text(finding: Finding) -> str:
    """`key=value` pairs separated by semicolons; list items are joined with commas."""
    return "; ".join(f"{k}={_value(v)}" for k, v in finding.evidence.items() if v not in ("", [], None))


def _value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def fix_commands(fix: object) -> list[str]:
    """A finding's fix as a list of commands, also from a journal written before fixes were lists."""
    if isinstance(fix, str):
        return [fix] if fix else []
    return [str(c) for c in fix or ()]


def fix_text(finding: Finding) -> str:
    """Fix and advice on one line, for formats with one message per finding (JUnit, SARIF, GitHub)."""
    commands = " && ".join(fix_commands(finding.fix))
    return "; ".join(x for x in (commands and f"fix: {commands}", finding.advice) if x)
