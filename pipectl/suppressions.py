"""Applying the suppressions a team wrote down: accepted findings step aside, expired entries speak up.

Entries come from `[[suppressions]]` in the config and from `.pipectl-ignore.toml` beside it. A finding a
live entry matches is reported as suppressed and decides nothing (exit code, health, metrics of failures);
an entry past its `expires` date suppresses nothing and adds a WARN naming itself, so an acceptance that
nobody renewed turns back into the finding instead of hiding it for ever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from pipectl.model import Finding, Severity, Status, Suppression

IGNORE_FILE = ".pipectl-ignore.toml"
CHECK_ID = "config.suppressions"
_SUPPRESSIBLE = (Status.FAIL, Status.ERROR, Status.WARN)


def today() -> date:
    """The day expiry dates are compared with: UTC, so a CI runner and a laptop agree."""
    return datetime.now(UTC).date()


def apply(findings: Iterable[Finding], entries: Sequence[Suppression], on: date
          ) -> tuple[list[Finding], list[Finding]]:
    """(findings that count, findings suppressed): expired entries suppress nothing and add a WARN each."""
    live = [e for e in entries if not e.expired(on)]
    active: list[Finding] = []
    suppressed: list[Finding] = []
    for finding in findings:
        entry = next((e for e in live if e.matches(finding)), None) if finding.status in _SUPPRESSIBLE else None
        if entry is None:
            active.append(finding)
        else:
            suppressed.append(replace(finding, suppression=entry))
    active.extend(expired_warning(e) for e in entries if e.expired(on))
    return active, suppressed


def expired_warning(entry: Suppression) -> Finding:
    """The WARN for an entry past its date: names it, its owner and reason, and where to renew or remove it."""
    target = f"{entry.check}:{entry.subject}" if entry.subject not in ("", "*") else entry.check
    return Finding(
        check=CHECK_ID, status=Status.WARN, severity=Severity.P2, component="config", subject=target,
        summary=f"the suppression of {target} expired on {entry.expires.isoformat()} "
                f"(owner {entry.owner}: {entry.reason}); what it matched is reported again",
        impact="A finding the team accepted until a date is no longer accepted; it may fail this run again.",
        evidence={"file": entry.source, "owner": entry.owner, "expires": entry.expires.isoformat()},
        advice=f"Fix what it matched and delete the entry, or renew `expires` in {entry.source or 'the config'} "
               "after the owner agrees.",
    )


def ignore_file(config_path: Path) -> Path:
    """Where the suppressions kept apart from the config live: beside it, so they travel with it."""
    return config_path.parent / IGNORE_FILE
