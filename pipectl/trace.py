"""`pipectl trace ITEM_ID`: one work item followed across the state tables, Prefect, the DLQs and Modal.

The sources are read at once, each within the timeout; one that cannot be read becomes an `unavailable`
event and the others still show. Nothing is changed: rows are read in read-only transactions, dead-letter
queues are only peeked at (never deleted from) and the main queues are not read at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from pipectl.config import PipelineConfig, StateTable
from pipectl.connectors.pg_names import split_table
from pipectl.errors import NotFound, PipectlError, Unreachable, UsageError

RUNS_SEARCHED = 1000
"""How many of each deployment's latest flow runs are searched for the item (Prefect cannot filter on parameters)."""
RUNS_SHOWN = 20
DLQ_PEEK = 100
MODAL_NOTE = "Modal calls: not listable through Modal's API"
_EPOCH = datetime.fromtimestamp(0, UTC)
IN_FLIGHT_NOTE = ("messages in flight in the main queue are not shown: only dead-letter queues are read, "
                  "since receiving from the main queue would change its receive counts")


@dataclass(frozen=True)
class Event:
    """One thing that happened to the item, or one source's word on it; `time` is None when unknown."""

    time: datetime | None
    source: str  # postgres, prefect, sqs-dlq, modal
    kind: str
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    """What every source says about one item, oldest first, and a one-line summary of where it is now."""

    item_id: str
    summary: str
    found: bool
    events: list[Event]


@dataclass
class _Part:
    """One source's contribution: its events, its clause of the summary, whether it holds the item."""

    source: str
    events: list[Event] = field(default_factory=list)
    summary: str = ""
    found: bool = False
    label: str | None = None

    def note(self, kind: str, detail: str) -> bool:
        """An event without a time: a note, or `unavailable` for what could not be read (named by source)."""
        self.events.append(Event(None, self.source, kind, f"{self.source}: {detail}" if kind == "unavailable"
                                 else detail))
        return kind == "unavailable"


def check_table(config: PipelineConfig, table: str | None) -> list[StateTable]:
    """The state tables to search: the one `--table` names (bad input if not configured), else all."""
    if table is None:
        return list(config.state_tables)
    chosen = [t for t in config.state_tables if t.table == table]
    if not chosen:
        known = ", ".join(t.table for t in config.state_tables) or "none configured"
        raise UsageError(f"--table {table}: not a configured state table (state tables: {known})")
    return chosen


def gather(config: PipelineConfig, item_id: str, tables: list[StateTable], environ: Mapping[str, str],
           timeout: float) -> Timeline:
    """Ask every source about `item_id` at once and merge their answers into one timeline."""
    reads = {"postgres": partial(_postgres, config, item_id, tables, timeout),
             "prefect": partial(_prefect, config, item_id, timeout),
             "sqs-dlq": partial(_dlqs, config, item_id, environ, timeout)}
    with ThreadPoolExecutor(len(reads), thread_name_prefix="pipectl-trace") as pool:
        parts = list(pool.map(_safely, reads, reads.values()))
    functions = ", ".join(config.modal.functions)
    parts.append(_Part("modal"))
    parts[-1].note("note", MODAL_NOTE + (f" (functions: {functions})" if functions else ""))
    found = any(p.found for p in parts)
    label = next((p.label for p in parts if p.label), "item")
    clauses = "; ".join(p.summary for p in parts if p.summary)
    unread = any(e.kind == "unavailable" for p in parts for e in p.events)
    nowhere = "found nowhere" + (" that could be read" if unread else "")
    summary = f"{label} {item_id}: {clauses}" if found else f"item {item_id}: {nowhere}: {clauses}"
    events = [e for p in parts for e in p.events]
    timed = sorted((e for e in events if e.time is not None), key=lambda e: e.time)
    return Timeline(item_id, summary, found, timed + [e for e in events if e.time is None])


def _safely(source: str, read: Callable[[], _Part]) -> _Part:
    """A source that fails is one line saying so, never a traceback."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - one line, whatever the library raised
        return _unavailable(source, _why(exc), f"{source} unreadable")


def _unavailable(source: str, why: str, summary: str) -> _Part:
    part = _Part(source, summary=summary)
    part.note("unavailable", why)
    return part


def _postgres(config: PipelineConfig, item_id: str, tables: list[StateTable], timeout: float) -> _Part:
    if not config.database.dsn:
        return _unavailable("postgres", "not configured (no database.dsn)", "state store not configured")
    if not tables:
        return _unavailable("postgres", "no [[state_tables]] configured", "no state table configured")
    from pipectl.connectors import postgres

    part, rows, unread = _Part("postgres"), [], 0
    with postgres.session(config.database.dsn, timeout, config.database.connect_timeout) as db:
        for table in tables:
            try:
                rows += [(table, str(status), _utc(updated), _utc(created))
                         for status, updated, created in db.item_rows(table, item_id)]
            except Exception as exc:  # noqa: BLE001 - this table is unreadable; the others may not be
                unread += part.note("unavailable", f"{table.table}: {_why(exc)}")
    clauses = []
    for table, status, updated, created in rows:
        data = {"table": table.table, "status": status}
        if created is not None:
            part.events.append(Event(created, "postgres", "row-created", f"{table.table}: row created", data))
        part.events.append(Event(updated, "postgres", "row-status",
                                 f"{table.table}: status {status} (last update, {table.updated_column})", data))
        since = f"since {_clock(updated)}" if updated else f"({table.updated_column} unknown)"
        clauses.append(f"{table.table + ' ' if len(tables) > 1 else ''}row status {status} {since}")
    part.found = bool(rows)
    holders = {split_table(table.table)[1] for table, *_ in rows}
    part.label = holders.pop().removesuffix("s") if len(holders) == 1 else None
    part.summary = "; ".join(clauses) or ("state tables unreadable" if unread == len(tables) else
                                          f"no row in {', '.join(t.table for t in tables)}{_some(unread)}")
    return part


def _prefect(config: PipelineConfig, item_id: str, timeout: float) -> _Part:
    url, key = config.prefect.api_url, config.prefect.api_key or None
    if not url:
        return _unavailable("prefect", "not configured (no prefect.api_url)", "Prefect not configured")
    if not config.prefect.deployments:
        return _unavailable("prefect", "no [[prefect.deployments]] configured", "no deployment configured")
    from pipectl.connectors import prefect as api
    from pipectl.connectors import prefect_runs

    part, runs, unread = _Part("prefect"), [], 0
    for entry in config.prefect.deployments:
        try:
            deployment = api.read_deployment(url, key, entry.name, timeout)
            if deployment is None:
                raise NotFound("deployment not found")
            listed = prefect_runs.flow_runs_with_parameters(url, key, deployment.id, RUNS_SEARCHED, timeout)
        except Unreachable as exc:  # the API is down: the other deployments would only wait as long
            unread = part.note("unavailable", str(exc)) + len(config.prefect.deployments)
            break
        except PipectlError as exc:
            unread += part.note("unavailable", f"{entry.name}: {exc}")
            continue
        if len(listed) >= RUNS_SEARCHED:
            part.note("note", f"{entry.name}: only its latest {RUNS_SEARCHED} runs were searched")
        runs += [(entry.name, run, names[0]) for run, params in listed
                 if (names := [k for k, v in params.items() if _same(v, item_id)])]
    runs.sort(key=lambda r: r[1].expected_start_time or _EPOCH, reverse=True)
    if len(runs) > RUNS_SHOWN:
        part.note("note", f"{len(runs)} flow runs name it: the latest {RUNS_SHOWN} are shown")
    runs = runs[:RUNS_SHOWN]
    try:
        histories = prefect_runs.flow_run_states(url, key, [r.id for _, r, _ in runs], timeout) if runs else {}
    except PipectlError as exc:  # the runs still show, with their current state only
        histories, unread = {}, unread + part.note("unavailable", f"state histories: {exc}")
    for deployment, run, parameter in runs:
        data = {"deployment": deployment, "flow_run_id": run.id, "flow_run_name": run.name, "parameter": parameter}
        current = prefect_runs.StateInfo(run.state_type, run.state_name, run.state_since, None)
        for state in histories.get(run.id) or [current]:
            message = f": {_short(state.message)}" if state.message else ""
            part.events.append(Event(state.timestamp, "prefect", "flow-run-state",
                                     f"{deployment} run {run.name}: {_state(state.type, state.name)}{message}",
                                     {**data, "state_type": state.type, "state_name": state.name}))
    part.found = bool(runs)
    if not runs:
        part.summary = "Prefect unreadable" if unread >= len(config.prefect.deployments) else \
            "no flow run names it" + _some(unread)
        return part
    run = max((r for _, r, _ in runs), key=lambda r: r.state_since or r.expected_start_time or _EPOCH)
    since = f" since {_clock(run.state_since)}" if run.state_since else ""
    more = f" ({len(runs)} runs name it)" if len(runs) > 1 else ""
    part.summary = f"flow run {run.name} {_state(run.state_type, run.state_name)}{since}{more}"
    return part


def _state(kind: str | None, name: str | None) -> str:
    """COMPLETED, or SCHEDULED (Late) when the name says more than the type."""
    return f"{kind} ({name})" if name and kind and name.upper() != kind else str(kind or name)


def _dlqs(config: PipelineConfig, item_id: str, environ: Mapping[str, str], timeout: float) -> _Part:
    if not config.queues:
        return _unavailable("sqs-dlq", "no [[queues]] configured", "no queue configured")
    from pipectl.connectors import sqs

    part = _Part("sqs-dlq")
    part.note("note", IN_FLIGHT_NOTE)
    env = config.aws.environ(environ)
    region = config.aws.region or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None
    endpoint = config.aws.endpoint_url or None
    hits, hidden, unread = [], 0, 0
    for queue in config.queues:
        name = queue.name or (queue.url or "").rsplit("/", 1)[-1] or "queue"
        try:
            if not queue.dlq_url:
                raise NotFound("no dlq_url configured")
            ref = sqs.parse_queue_url(queue.dlq_url, endpoint)
            messages, stats = sqs.peek_messages(queue.dlq_url, limit=DLQ_PEEK, endpoint_url=endpoint,
                                                region=ref.region or region, timeout=timeout, environ=env)
        except PipectlError as exc:
            unread += part.note("unavailable", f"{name}: {exc}")
            continue
        hidden += stats.in_flight
        if stats.visible > len(messages) or stats.in_flight:
            part.note("note", f"{ref.name}: {len(messages)} message(s) looked at of {stats.visible} visible; "
                              f"{stats.in_flight} in flight not looked at")
        for message in messages:
            body = _names_item(message.body, item_id)
            if body is None:
                continue
            hits.append((ref.name, message.receive_count))
            sent = None if message.sent is None else datetime.fromtimestamp(message.sent, UTC)
            part.events.append(Event(sent, "sqs-dlq", "dlq-message",
                                     f"in {ref.name} (dead-letter queue of {name}): received "
                                     f"{message.receive_count} times, this look included; body {_short(body)}",
                                     {"queue": name, "dlq": ref.name, "message_id": message.message_id,
                                      "receive_count": message.receive_count, "body": json.loads(body)}))
    part.found, hidden_note = bool(hits), f" ({hidden} message(s) in flight there not looked at)" if hidden else ""
    part.summary = "; ".join(f"in the DLQ {dlq} (received {n} times)" for dlq, n in hits) or (
        "DLQ unreadable" if unread == len(config.queues) else f"not in the DLQ{hidden_note or _some(unread)}")
    return part


def _names_item(body: str, item_id: str) -> str | None:
    """The body (credentials replaced) as compact JSON when a key ending in "id" holds the item's id."""
    from pipectl.secrets import scrub

    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not any(str(k).lower().endswith("id") and _same(v, item_id)
                                             for k, v in data.items()):
        return None
    return json.dumps(scrub(data), separators=(",", ":"), default=str)


def _same(value: Any, item_id: str) -> bool:
    return not isinstance(value, (dict, list)) and value is not None and str(value) == item_id


def _utc(value: Any) -> datetime | None:
    """A timestamp in UTC; one without a time zone (or a date) is taken to be UTC already."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _clock(moment: datetime) -> str:
    """12:01 UTC today, else 2024-05-01 12:01 UTC."""
    moment = moment.astimezone(UTC)
    return f"{moment:%H:%M} UTC" if moment.date() == datetime.now(UTC).date() else f"{moment:%Y-%m-%d %H:%M} UTC"


def _some(unread: int) -> str:
    return " (some unreadable)" if unread else ""


def _why(exc: BaseException) -> str:
    """A failure in one line: pipectl's own message, else the library's first line with its type."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return str(exc) if isinstance(exc, PipectlError) else f"{type(exc).__name__}: {first}".rstrip(": ")


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
