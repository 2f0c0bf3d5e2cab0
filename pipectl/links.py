"""Which failures explain which symptoms: one declarative table, applied after every doctor run.

"40 rows stuck in QUEUED" is shown under "the deployment runs without MODAL_TOKEN_ID", not beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from pipectl.model import Finding, Status


@dataclass(frozen=True)
class Link:
    """A finding of check `symptom` (whose evidence matches `when`) is explained by failing `causes`."""

    symptom: str
    causes: tuple[str, ...]
    when: Mapping[str, str] = field(default_factory=dict)
    """Evidence the symptom must have for the link to apply."""
    cause_subjects: tuple[str, ...] = ()
    """For causes that cover several components (credentials.present), the subjects that count."""
    cause_when: Mapping[str, str] = field(default_factory=dict)
    """Evidence a cause must have to count."""


_CREDENTIALS = "credentials.present"
_MODAL_DISPATCH = ("prefect.job_variables", "modal.auth", "modal.function")
_ORCHESTRATION = ("prefect.api", "prefect.deployment", "prefect.work_pool")
_HOSTED = ("service.env", "service.queue")
_PREFECT_READS = ("prefect.deployment", "prefect.work_pool", "prefect.job_variables", "prefect.runs", "prefect.stalled",
                  "modal.auth")

LINKS: tuple[Link, ...] = (
    # rows handed to Modal that Modal never picked up (the first incident)
    Link("db.stuck", _MODAL_DISPATCH, when={"status": "QUEUED"}),
    Link("db.stuck", (_CREDENTIALS,), when={"status": "QUEUED"}, cause_subjects=("modal",)),
    # rows nothing picked up: no run started, or no worker ran it (the second incident)
    Link("db.stuck", _ORCHESTRATION, when={"status": "PENDING"}),
    Link("db.stuck", _ORCHESTRATION + ("sqs.queue",), when={"status": "pending"}),
    Link("db.stuck", (_CREDENTIALS,), when={"status": "pending"}, cause_subjects=("aws", "sqs")),
    Link("prefect.runs", ("prefect.job_variables", "modal.auth", "modal.function", "prefect.work_pool",
                          "prefect.deployment")),
    Link("prefect.runs", ("db.connect",), cause_subjects=("",)),  # the database itself, not one table
    Link("sqs.dlq", ("prefect.deployment", "sqs.queue")),
    Link("sqs.queue", (_CREDENTIALS,), cause_subjects=("aws", "sqs")),
    Link("sqs.dlq", (_CREDENTIALS,), cause_subjects=("aws", "sqs")),
    Link("prefect.deployment", ("prefect.work_pool",), when={"problem": "work_pool_missing"}),
    # a deployment whose slots zombie runs hold
    Link("prefect.deployment", ("prefect.stalled",), when={"problem": "concurrency_full"}),
    # a deleted pool leaves its deployments on no pool: recreate the pool first, then point them back at it
    Link("prefect.deployment", ("prefect.work_pool",), when={"problem": "work_pool_mismatch", "work_pool": "None"}),
    # the hosted services (the second incident): the push endpoint that queues nothing, the subscriber that
    # crashes or reads the wrong queue, the worker that cannot reach Prefect
    Link("db.stuck", _HOSTED, when={"status": "pending"}),
    Link("sqs.dlq", _HOSTED),
    Link("sqs.queue", _HOSTED),
    Link("prefect.work_pool", ("service.env",)),
    Link("service.env", ("service.queue",)),
    # an unreachable upstream explains every check that could not read through it
    *(Link(check, ("prefect.api",)) for check in _PREFECT_READS),
    Link("modal.function", ("modal.auth",), cause_subjects=("local",)),
)

_EXPLAINING = (Status.FAIL, Status.ERROR)
_EXPLAINED = (Status.FAIL, Status.WARN, Status.ERROR)


def link_findings(findings: Sequence[Finding], links: Sequence[Link] = LINKS) -> list[Finding]:
    """Fill `caused_by` from the table, nearest causes only; an edge that would close a cycle is left out."""
    edges: dict[str, list[str]] = {f.id: list(f.caused_by) for f in findings}
    for symptom in findings:
        if symptom.status not in _EXPLAINED:
            continue
        for link in links:
            if link.symptom != symptom.check or not _matches(symptom, link.when):
                continue
            for cause in findings:
                if link.cause_subjects and cause.subject not in link.cause_subjects:
                    continue
                if cause.check not in link.causes or cause.status not in _EXPLAINING or cause.id == symptom.id:
                    continue
                if not _matches(cause, link.cause_when) or cause.id in edges[symptom.id]:
                    continue
                if not _reaches(edges, cause.id, symptom.id):
                    edges[symptom.id].append(cause.id)
    for node, causes in edges.items():  # keep only the nearest causes: A → B → symptom, not A → symptom too
        edges[node] = [c for c in causes if not any(o != c and _reaches(edges, o, c) for o in causes)]
    return [replace(f, caused_by=tuple(edges[f.id])) if edges[f.id] != list(f.caused_by) else f for f in findings]


def _matches(finding: Finding, when: Mapping[str, str]) -> bool:
    return all(str(finding.evidence.get(key)) == value for key, value in when.items())


def _reaches(edges: Mapping[str, list[str]], start: str, target: str) -> bool:
    """Whether `start` is already (transitively) explained by `target`."""
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(edges.get(node, ()))
    return False
