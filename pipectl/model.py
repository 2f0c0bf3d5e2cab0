"""The data every part of pipectl exchanges: findings, their status and severity, and a doctor run."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import ClassVar

from pipectl.redact import redactor


class Status(str, enum.Enum):
    """What a check concluded. ERROR means it could not tell (the system was unreachable)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


class Severity(str, enum.Enum):
    """How urgent a finding is; P0 is the most urgent. Ordered: P0 < P1 < P2."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"

    @property
    def rank(self) -> int:
        return int(self.value[1])

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().upper())
        except ValueError:
            raise ValueError(f"severity must be one of P0, P1, P2, not {text!r}") from None


Evidence = Mapping[str, "str | int | float | bool | None | list[str] | list[int]"]


@dataclass(frozen=True)
class Suppression:
    """A team's decision to live with a finding for a while: who owns it, why, and the day that ends.

    The expiry is required: a suppression nobody revisits is a baseline, and baselines rot."""

    __pydantic_config__: ClassVar[dict] = {"extra": "forbid"}  # a typo in a config entry is an error, not a silent no-op

    check: str
    """The check id the finding comes from, e.g. `db.stuck`."""
    owner: str
    """Who answers for it (a person or a team)."""
    reason: str
    """Why it is acceptable for now; shown wherever the finding is."""
    expires: date
    """The last day it holds; from the day after, the finding is reported again, with a WARN about the entry."""
    subject: str = "*"
    """Which of the check's subjects: a glob (`workflow_states/*`); `*` (the default) is all of them."""
    source: str = ""
    """The file the entry came from (set by pipectl when it reads the file)."""

    def matches(self, finding: Finding) -> bool:
        return finding.check == self.check and fnmatchcase(finding.subject, self.subject or "*")

    def expired(self, today: date) -> bool:
        return today > self.expires

    def as_dict(self) -> dict:
        return {"owner": self.owner, "reason": self.reason, "expires": self.expires.isoformat(),
                "source": self.source}


@dataclass(frozen=True)
class Finding:
    """One conclusion of one check about one subject, fit to be read by a person at 3 a.m."""

    check: str
    """Id of the check that produced it, e.g. `prefect.job_variables`."""
    status: Status
    """OK, WARN, FAIL, ERROR (could not tell) or SKIPPED."""
    severity: Severity
    """How urgent it is when not OK."""
    component: str
    """The part of the pipeline it is about: database, prefect, sqs, modal, repo, http, config."""
    summary: str
    """One line saying what was found."""
    subject: str = ""
    """What the finding is about when a check looks at several things (a table, a deployment)."""
    impact: str = ""
    """What breaks for the pipeline because of it."""
    evidence: Evidence = field(default_factory=dict)
    """Names and numbers that support the summary; never secret values."""
    fix: tuple[str, ...] = ()
    """The exact commands that repair it, in order, each runnable as printed (usually `pipectl …`).
    A tested promise: run them and doctor passes. Only commands; words go to `advice`."""
    advice: str = ""
    """What a person must decide or do that no command can (where to find a token, what to look at)."""
    caused_by: tuple[str, ...] = ()
    """Ids of the findings that explain this one (this one is their symptom)."""
    suppression: Suppression | None = None
    """Set when a live suppression accepts this finding: it is reported as such and no longer fails a run."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", MappingProxyType(dict(self.evidence)))
        object.__setattr__(self, "caused_by", tuple(self.caused_by))
        fix = (self.fix,) if isinstance(self.fix, str) else tuple(self.fix)
        object.__setattr__(self, "fix", tuple(c for c in fix if c))
        redactor.protect(self.id, self.check, self.component, *self.fix, *self.caused_by)

    @property
    def id(self) -> str:
        """Stable identifier used by `caused_by`: the check id, plus the subject when there is one."""
        return f"{self.check}:{self.subject}" if self.subject else self.check

    def as_dict(self) -> dict:
        """The v1 JSON shape of a finding, also what the journal stores."""
        return {
            "id": self.id,
            "check": self.check,
            "subject": self.subject,
            "status": self.status.value,
            "severity": self.severity.value,
            "component": self.component,
            "summary": self.summary,
            "impact": self.impact,
            "evidence": dict(self.evidence),
            "fix": list(self.fix),
            "advice": self.advice,
            "caused_by": list(self.caused_by),
            "suppression": self.suppression.as_dict() if self.suppression else None,
        }


@dataclass(frozen=True)
class DoctorResult:
    """Everything one `pipectl doctor` run found, in a deterministic order."""

    pipeline: str
    started_at: datetime
    duration_s: float
    findings: tuple[Finding, ...]
    suppressed: tuple[Finding, ...] = ()
    """Findings a live suppression accepts: kept out of `findings`, so they decide nothing, yet reported."""

    def counts(self) -> dict[str, int]:
        """Number of findings per status, every status present (zero included), and how many are suppressed."""
        counts = {status.value: 0 for status in Status}
        for finding in self.findings:
            counts[finding.status.value] += 1
        return {**counts, "suppressed": len(self.suppressed)}

    def causes(self) -> list[Finding]:
        """Findings that are not explained by another finding of this run: the roots of the tree."""
        ids = {f.id for f in self.findings}
        return [f for f in self.findings if not any(c in ids for c in f.caused_by)]

    def symptoms_of(self, cause: Finding) -> list[Finding]:
        """The findings `cause` explains."""
        return [f for f in self.findings if cause.id in f.caused_by]
