"""The JSON documents that list things — installed checks and playbooks, sandbox components, journal runs and
events, config keys, contexts, watchdog runs — as pydantic models, beside `pipectl.report.documents` (the
doctor report, trace, probe, plans, /healthz), whose conventions they follow: closed objects, attribute
docstrings as descriptions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import RootModel

from pipectl.model import Severity
from pipectl.report.documents import Closed, Count

# --------------------------------------------------------------------------------------------- listings


class CheckEntry(Closed):
    """One installed check, its docstring split in its three parts."""

    id: str
    component: str
    severity: Severity
    detects: str
    why: str
    fix: str


class CheckList(RootModel[list[CheckEntry]]):
    """`pipectl checks list -o json`: the installed checks, by id."""


class PlaybookEntry(Closed):
    """One installed playbook: its name and its docstring on one line."""

    name: str
    description: str


class PlaybookList(RootModel[list[PlaybookEntry]]):
    """`pipectl playbooks list -o json`: the installed playbooks, by name."""


class SandboxComponent(Closed):
    """One process of the sandbox, where it listens, and whether it answers."""

    name: str
    address: str
    healthy: bool


class SandboxStatus(RootModel[list[SandboxComponent]]):
    """`pipectl sandbox status --format json`: each component of the local sandbox and whether it answers."""


# ------------------------------------------------------------------------------------- journal, report


class JournalRun(Closed):
    """A run as the journal holds it."""

    id: str
    command: str
    """The command line as typed."""
    pipeline: str
    started_at: datetime
    actor: str
    """user@host."""
    config: str
    """The config file the run was made with ('' when unknown)."""
    endpoints: str
    """Fingerprint of the pipeline's systems ('' for runs of older versions)."""


class JournalListingRun(JournalRun):
    """A run in the listing, with how it ended."""

    result: str
    """ok, failed, interrupted, refused, dry-run, or `-` when it recorded no outcome."""
    summary: str
    """The last outcome's words; may be empty."""


class JournalListing(Closed):
    """`pipectl journal -o json`: recent runs, newest first."""

    runs: list[JournalListingRun]


class JournalEvent(Closed):
    """One journal record of a run: a plan, a change with before-values, a verify, an outcome, a finding."""

    seq: int
    run_id: str
    at: datetime
    kind: str
    data: dict[str, Any]
    """As journaled, per kind; credentials only as fingerprints."""


class IncidentRun(Closed):
    """`pipectl report -o json`: a run and its journaled events, as stored."""

    run: JournalRun
    events: list[JournalEvent]


# --------------------------------------------------------------------------------------------- settings


class ConfigKey(Closed):
    """One key of the config: the value in use and where it came from."""

    key: str
    """Dotted path, e.g. `state_tables[0].stuck_after.QUEUED`."""
    value: Any
    """The value in use; a credential only as "(set)"."""
    source: str
    """Where it comes from: file, default, `env:NAME`, a `PIPECTL_*` override …"""


class ConfigShow(Closed):
    """`pipectl config show -o json`: every key of the config in use, with its value and source."""

    config: str
    context: str | None
    keys: list[ConfigKey]


class ContextList(Closed):
    """`pipectl context list -o json`: the contexts of the config file and the one in use."""

    config: str
    contexts: list[str]
    current: str | None


class ContextShow(Closed):
    """`pipectl context show -o json`: what the context in use points at (never a credential)."""

    context: str | None
    config: str
    pipeline: str
    prefect: str | None
    database: str | None
    queues: list[str]
    deployments: list[str]


# ------------------------------------------------------------------------------------------------ watch


class WatchCounts(Closed):
    """How many findings a watchdog run left in each status that is not OK."""

    fail: Count
    warn: Count
    error: Count


class WatchRun(Closed):
    """One run of the watchdog deployment."""

    flow_run_id: str
    name: str
    state: str | None
    """Prefect's state name (Completed, Failed, Late …), else its type."""
    state_type: str | None
    message: str | None
    expected_start: str | None
    """A time as Python prints it (`2026-01-01 02:14:00+00:00`), or null."""
    started: str | None
    """A time as Python prints it, or null when the run has not started."""
    counts: WatchCounts | None
    """Null when the run wrote no state table (yet)."""
    events: dict[str, Count]
    """How many events of each name it emitted."""
    url: str
    report: str | None
    """A link to its report artifact in Prefect's UI, or null."""


class WatchStatus(Closed):
    """`pipectl watch status -o json`: the watchdog deployment and its latest runs, newest first."""

    deployment: str
    deployment_id: str
    url: str
    work_pool: str | None
    every_s: float | None
    """Seconds between runs; null when it has no schedule."""
    paused: bool
    next_run: str | None
    """A time as Python prints it, or null."""
    runs: list[WatchRun]
