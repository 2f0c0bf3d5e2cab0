"""Every JSON document pipectl prints, as pydantic models: what `docs/report.schema.json` is generated from.

These models describe the outputs; they do not produce them (the renderers in `pipectl.report` do). They
exist so that the shape a script may rely on is written down once, in code, and the test suite checks every
JSON output it makes pipectl print against the schema generated from them (`tests/schema_check.py`).

The documents about pipectl itself and its records (listings, journal, settings, watchdog) are in
`pipectl.report.listing_documents`.

Objects are closed (no keys beyond the ones named here): a key added to an output without being added here
fails the tests, so the schema cannot fall behind the outputs. Where the content is open by nature — a
finding's evidence, a plan's details, a journaled event's data, a config value — the model says so.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pipectl.model import Severity, Status
from pipectl.report.json import SCHEMA as REPORT_SCHEMA
from pipectl.report.probe import SCHEMA as PROBE_SCHEMA
from pipectl.report.trace import SCHEMA as TRACE_SCHEMA

Count = Annotated[int, Field(ge=0)]
"""A number of things counted (findings, events): never negative."""


class Closed(BaseModel):
    """An object with exactly the keys its model names; attribute docstrings become the descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


# -------------------------------------------------------------------------------------------- doctor


class Suppression(Closed):
    """The entry that accepts a finding for a while: it is reported, yet decides nothing."""

    owner: str
    """Who answers for it (a person or a team)."""
    reason: str
    """Why it is acceptable for now."""
    expires: date
    """The last day it holds (YYYY-MM-DD)."""
    source: str
    """The file the entry came from."""


class Finding(Closed):
    """One conclusion of one check about one subject (`pipectl.model.Finding.as_dict`); the journal stores
    the same shape."""

    id: str
    """`check:subject`, or the check id when there is no subject; what `caused_by` refers to."""
    check: str
    """Id of the check that produced it, e.g. `prefect.job_variables`."""
    subject: str
    """What it is about when a check looks at several things (a table, a deployment); may be empty."""
    status: Status
    severity: Severity
    component: str
    """The part of the pipeline it is about: database, prefect, sqs, modal, repo, http, config, hosting …"""
    summary: str
    """One line saying what was found."""
    impact: str
    """What breaks for the pipeline because of it; may be empty."""
    evidence: dict[str, Any]
    """Names and numbers that support the summary, never secret values. Keys and values differ per check
    (and plugins add their own): mostly scalars and lists of them, sometimes a small object."""
    fix: list[str]
    """The exact commands that repair it, in order, each runnable as printed."""
    advice: str
    """What a person must decide or do that no command can; may be empty."""
    caused_by: list[str]
    """Ids of the findings that explain this one (this one is their symptom)."""
    suppression: Suppression | None = None
    """The suppression that accepts this finding, or null. Optional: outputs before suppressions lack it."""


class Summary(Closed):
    """How many findings ended in each status, every status present (zero included)."""

    ok: Count
    warn: Count
    fail: Count
    error: Count
    skipped: Count
    suppressed: Count = 0
    """How many findings a live suppression accepts. Optional: outputs before suppressions lack it."""


class DoctorReport(Closed):
    """`pipectl doctor -o json` (also `--output-file` in JSON): the CI contract, `pipectl.report/v2`."""

    schema_: Literal[REPORT_SCHEMA] = Field(alias="schema")
    """The document's own version: a change that breaks a reader bumps it."""
    pipeline: str
    started_at: datetime
    duration_s: Annotated[float, Field(ge=0)]
    """Wall time of the run, in seconds."""
    findings: list[Finding]
    summary: Summary


# --------------------------------------------------------------------------------------- trace, probe


class TraceEvent(Closed):
    """One thing that happened to the item, or one source's word on it."""

    time: datetime | None
    """When, in UTC; null when the source does not say."""
    source: str
    """Where it was seen: postgres, prefect, sqs-dlq, modal."""
    kind: str
    """What it is, e.g. row-created, row-status, flow-run, dead-letter, note, unavailable."""
    detail: str
    data: dict[str, Any] = {}
    """The raw facts behind `detail`; present only when there are any."""


class Trace(Closed):
    """`pipectl trace ITEM_ID -o json`, `pipectl.trace/v1`: one item's timeline across systems, oldest first.
    """

    schema_: Literal[TRACE_SCHEMA] = Field(alias="schema")
    item_id: str
    found: bool
    """False when no source knows the item (the command then exits 1)."""
    summary: str
    """Where the item is now, in one line."""
    events: list[TraceEvent]


class ProbeHop(Closed):
    """One step the probe's item should take."""

    name: str
    """accepted, row, queued, consumed, run, completed, final."""
    title: str
    done: bool | None
    """True when it happened, false when it did not, null when the probe never got that far."""
    detail: str
    after_s: float | None
    """Seconds after the item was sent that it was seen; null when it was not."""


class ProbeCause(Closed):
    """A failing finding that explains where the probe stopped (a short form of a finding)."""

    id: str
    status: Status
    severity: Severity
    summary: str
    fix: list[str]


class Probe(Closed):
    """`pipectl probe -o json`, `pipectl.probe/v1`: a marked item sent through the pipeline, hop by hop."""

    schema_: Literal[PROBE_SCHEMA] = Field(alias="schema")
    ok: bool
    marker: str
    item_id: str | None
    """The id the entry point gave the item; null when it gave none."""
    failed_hop: str | None
    """The first hop that did not happen; null when the item went all the way."""
    seconds: float
    summary: str
    hops: list[ProbeHop]
    causes: list[ProbeCause]
    cleanup: list[str]
    """What the probe deleted afterwards, one line each."""


# ---------------------------------------------------------------------------------------------- repairs


class Change(Closed):
    """One thing a repair will change, with what it was and what it will be (never secret values)."""

    target: str
    summary: str
    before: Any
    after: Any


class Plan(Closed):
    """A repair's plan (`pipectl.repair.Plan.as_dict`), printed by every repair with `-o json` — reset,
    patch, secret set, trigger, deploy register, redrive, service env set, undo, playbook run — one
    document per step, one after another. The outcome goes to stderr, as text."""

    action: str
    """What kind of repair: reset, patch, secret, trigger, redrive, service_env, verify …"""
    title: str
    details: dict[str, Any]
    """What the plan rests on (filters, counts, ids), per action."""
    changes: list[Change]
    """Empty when there is nothing to do."""


# ------------------------------------------------------------------------------------------------ serve


class Health(Closed):
    """`pipectl serve`'s `GET /healthz` body."""

    status: Literal["ok", "failing", "unknown", "starting"]
    summary: str
    checked_at: datetime | None
    """When the last run finished; null before the first one has."""
    failing: list[str]
    """Ids of the findings that make it fail."""
