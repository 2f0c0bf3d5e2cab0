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
from pipectl.repair import StepEnding
from pipectl.report.json import SCHEMA as REPORT_SCHEMA
from pipectl.report.plan import OUTCOME_SCHEMA, PLAYBOOK_SCHEMA
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
    patch, secret set, trigger, deploy register, redrive, service env set, watch deploy, playbook run — one
    document per step, one after another; each step's `RepairOutcome` follows them."""

    action: str
    """What kind of repair: reset, patch, secret, trigger, redrive, service_env, verify …"""
    title: str
    details: dict[str, Any]
    """What the plan rests on (filters, counts, ids), per action."""
    changes: list[Change]
    """Empty when there is nothing to do."""


class RepairOutcome(Closed):
    """How one step of a repair ended, `pipectl.outcome/v1`: with `-o json`, after the plans, one per plan in
    the same order, each as soon as its step ends — also when the run is a dry run, is refused, stops at a
    failed step or is interrupted. A repair exits 0 exactly when every one of them is `ok` (a playbook: when
    its verdict is)."""

    schema_: Literal[OUTCOME_SCHEMA] = Field(alias="schema")
    run_id: str
    """The journal run holding the plan, the changes with their before-values, and the verdicts
    (`pipectl report RUN_ID`, `pipectl undo RUN_ID`)."""
    step: Annotated[int, Field(ge=1)]
    """Which plan this is the outcome of, counting from 1."""
    steps: Annotated[int, Field(ge=1)]
    """How many steps the run planned."""
    action: str
    """The plan's `action`."""
    title: str
    """The plan's `title`."""
    result: StepEnding
    """How the step ended: the journal's ok, failed, interrupted, refused, dry-run; nothing-to-do when its
    plan changes nothing; not-started when an earlier step failed or the run stopped before it."""
    dry_run: bool
    """`--dry-run`: the plan was shown and nothing was changed."""
    confirmed: bool
    """The run got past the confirmation (`--yes`, or yes on the terminal). False for a dry run, a refusal
    (also no terminal and no `--yes`: exit 2) and a run with nothing to do, which stop before asking."""
    applied: bool | None
    """The step's changes were made. Null when it cannot be told — the write stopped or was interrupted
    midway, and `summary` says what was committed."""
    verified: bool | None
    """What the step changed was read back and found as planned; null when no verify ran."""
    ok: bool
    """True for ok, dry-run and nothing-to-do."""
    summary: str
    """The words the operator reads on stderr."""
    details: dict[str, Any]
    """Numbers and names behind the summary, per action (rows moved, flow run id, planned changes …)."""


class PlaybookVerdict(Closed):
    """`pipectl playbook run -o json`'s last document, `pipectl.playbook/v1`, after the plans and the steps'
    outcomes: the incident report's verdict — FIXED only when every step was verified *and* no check fails
    afterwards. Also printed when the run stops halfway or is interrupted (then NOT FIXED)."""

    schema_: Literal[PLAYBOOK_SCHEMA] = Field(alias="schema")
    playbook: str
    run_id: str
    """The journal run (`pipectl report RUN_ID` writes its incident report)."""
    dry_run: bool
    result: Literal["ok", "failed", "interrupted", "refused", "dry-run"]
    """How the run ended, in the journal's words."""
    verdict: Literal["FIXED", "NOT FIXED"] | None
    """Null for a dry run, which changes nothing."""
    ok: bool
    """The exit code is 0 exactly when it is true: FIXED, or a dry run."""
    summary: str
    still_failing: list[str]
    """Ids of the findings that still fail after every step was done (what makes it NOT FIXED then)."""
    details: dict[str, Any]
    """As on stderr: the steps done and not started when it stopped, the last step's words when FIXED."""
    steps: list[RepairOutcome]
    """Every planned step's outcome, in order, as printed before."""


# ------------------------------------------------------------------------------------------------ serve


class Health(Closed):
    """`pipectl serve`'s `GET /healthz` body."""

    status: Literal["ok", "failing", "unknown", "starting"]
    summary: str
    checked_at: datetime | None
    """When the last run finished; null before the first one has."""
    failing: list[str]
    """Ids of the findings that make it fail."""
