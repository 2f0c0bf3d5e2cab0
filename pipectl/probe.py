"""`pipectl probe`: one marked work item sent through the whole pipeline, followed hop by hop.

The only way to catch an entry point that answers 201 and does nothing. The item goes in through the
configured entry point (`[probe] url`, or a row inserted into `[probe] table`); then, reading with the same
code as `pipectl trace`, the probe waits for each hop — row created, message taken off the queue, flow
run created, run completed, row in its final status — and names the first that did not happen within
the deadline, with the failing checks behind that hop. Afterwards it deletes what it left: its row, the
flow runs that name it, its dead-lettered messages. A message still waiting in the main queue cannot be
taken back without receiving others' messages: the report says so.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipectl.config import PipelineConfig, StateTable
from pipectl.errors import PipectlError, UsageError
from pipectl.model import Finding

HOPS = (
    ("accepted", "the entry point accepted the item"),
    ("row", "its row exists"),
    ("queued", "its message reached the queue"),
    ("consumed", "its message was taken off the queue"),
    ("run", "a flow run names it"),
    ("completed", "that flow run completed"),
    ("final", "its row reached its final status"),
)
HOP_CHECKS = {
    "accepted": ["http.endpoint", "service.env"],
    "row": ["db.connect", "service.env"],
    "queued": ["service.env", "sqs.queue", "credentials.present"],
    "consumed": ["service.env", "service.queue", "sqs.queue"],
    "run": ["prefect.api", "prefect.deployment", "sqs.dlq", "service.env"],
    "completed": ["prefect.work_pool", "prefect.runs", "prefect.stalled", "service.env"],
    "final": ["prefect.runs", "db.stuck"],
}
"""The checks that can explain each hop: the failing ones are named as the likely cause."""
_ENDED_BADLY = ("FAILED", "CRASHED", "CANCELLED")
NEVER_QUEUED_AFTER = 10.0
"""Seconds the queue must stay empty, with no run and no dead letter naming the item, before the probe
concludes the item was never queued (a busy queue is never empty: there the deadline decides)."""


@dataclass
class Hop:
    """One step the item should take; `done` is None for a hop not reached."""

    name: str
    title: str
    done: bool | None = None
    detail: str = ""
    seconds: float | None = None


@dataclass
class ProbeResult:
    """What happened to the probe's item; `failed` is the first hop that did not happen."""

    marker: str
    item_id: str | None
    hops: list[Hop]
    failed: str | None = None
    causes: list[Finding] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed is None


def as_finding(result: ProbeResult) -> Finding:
    """The probe as one of doctor's findings (`doctor --probe`), explained by its hop's failing checks."""
    from pipectl.model import Severity, Status

    hops = {h.name: (h.done, h.detail) for h in result.hops}
    failed = next((h for h in result.hops if h.name == result.failed), None)
    return Finding(
        check="pipeline.probe", status=Status.OK if result.ok else Status.FAIL, severity=Severity.P0,
        component="pipeline", summary=(f"a probe item went through the whole pipeline in {result.seconds:.1f}s"
                                       if failed is None else f"a probe item stopped: {failed.title} did not happen "
                                       f"({failed.detail})"),
        impact="" if failed is None else "Work sent in the way users send it does not get done.",
        evidence={"marker": result.marker, "item_id": result.item_id, "failed_hop": result.failed,
                  "hops": {k: v[0] for k, v in hops.items()}},
        advice="" if failed is None or result.causes else "No check explains this hop: follow an item with "
        "`pipectl trace ITEM_ID` and read the logs of the service that should have done it.",
        caused_by=tuple(dict.fromkeys(f.id for f in result.causes)),
    )


def table_of(config: PipelineConfig) -> StateTable:
    """The state table the probe's item is a row of; bad input when the config cannot say."""
    name = config.probe.table or (config.state_tables[0].table if len(config.state_tables) == 1 else None)
    if name is None:
        raise UsageError("[probe] table: name the state table the probe's item lands in "
                         f"(state tables: {', '.join(t.table for t in config.state_tables) or 'none'})")
    for table in config.state_tables:
        if table.table == name:
            return table
    raise UsageError(f"[probe] table {name}: not a configured [[state_tables]] entry")


def entry_table(config: PipelineConfig) -> StateTable:
    """The probe's state table, once the config names a way in: bad input otherwise, for a dry run too."""
    table = table_of(config)
    if not config.probe.url and not config.probe.insert:
        raise UsageError("[probe]: give `url` (an HTTP entry point) or `insert` (columns of a row to insert)")
    return table


def writes(config: PipelineConfig) -> list[str]:
    """Exactly what a probe writes, for the plan shown before it runs and for the README."""
    probe, table = config.probe, entry_table(config)
    entry = (f"{probe.method} {_safe(probe.url)} with a body marked pipectl-probe-<hex>" if probe.url
             else f"INSERT one row into {table.table} marked pipectl-probe-<hex>")
    done = ("deletes its row, the flow runs that name it and its dead-lettered messages" if probe.cleanup
            else "leaves them in place ([probe] cleanup = false)")
    return [entry, "whatever the pipeline does with it: a queue message, a flow run, the row's updates",
            f"afterwards it {done}"]


def run_probe(config: PipelineConfig, environ: Mapping[str, str], *, timeout: float | None = None,
              progress: Callable[[str], None] = lambda text: None, known: list[Finding] | None = None) -> ProbeResult:
    """Send, follow, explain, clean up. Never raises for what the pipeline does; bad config is UsageError.
    `known`: findings of a doctor run just made, used as the hops' causes instead of running checks again."""
    table = entry_table(config)
    started, marker = time.monotonic(), f"pipectl-probe-{secrets.token_hex(4)}"
    hops = [Hop(name, title) for name, title in HOPS]
    result = ProbeResult(marker, None, hops)
    try:
        result.item_id = _send(config, table, marker)
        _mark(hops[0], True, f"item {result.item_id}", started)
        progress(f"sent item {result.item_id} ({marker})")
        _follow(config, environ, result, table, started, timeout or config.probe.timeout.total_seconds(), progress)
    except PipectlError as exc:
        _mark(hops[0], False, str(exc), started)
    result.failed = next((h.name for h in hops if not h.done), None)
    if result.failed:
        result.causes = (_causes(config, environ, result.failed) if known is None else
                         [f for f in known if f.check in HOP_CHECKS[result.failed] and f.status.value in ("fail", "error")])
    if result.item_id and config.probe.cleanup:
        result.cleanup = _clean(config, environ, table, result.item_id)
    result.seconds = time.monotonic() - started
    return result


def _send(config: PipelineConfig, table: StateTable, marker: str) -> str:
    from pipectl.connectors import canary

    probe = config.probe
    timeout = max(config.doctor.timeout, 10.0)
    if not probe.url:
        return canary.insert_row(config.database.dsn or "", table, _marked(probe.insert, marker), timeout)
    status, answer = canary.post_item(probe.url, probe.method, _marked(probe.body, marker), timeout)
    if not 200 <= status < 300:
        raise PipectlError(f"{probe.method} {_safe(probe.url)} answered HTTP {status}")
    item_id = _field(answer, probe.id_field)
    if item_id is None:
        raise PipectlError(f"HTTP {status}, but the answer has no `{probe.id_field}` naming the item "
                           "([probe] id_field)")
    return str(item_id)


def _follow(config: PipelineConfig, environ: Mapping[str, str], result: ProbeResult, table: StateTable,
            started: float, timeout: float, progress: Callable[[str], None]) -> None:
    """Read the item's trace until every hop happened, one ended it badly, or the deadline passed."""
    from pipectl.trace import gather

    hops = {h.name: h for h in result.hops}
    deadline, per_read, empty_since = started + timeout, max(config.doctor.timeout, 5.0), None
    while True:
        events = gather(config, result.item_id or "", [table], environ, per_read).events
        status = next((e.data.get("status") for e in reversed(events) if e.kind == "row-status"), None)
        states = [e.data for e in events if e.kind == "flow-run-state"]
        dead = [e for e in events if e.kind == "dlq-message"]
        last = states[-1].get("state_type") if states else None
        if status is not None:
            _mark(hops["row"], True, f"{table.table} status {status}", started)
        if states or dead:
            _mark(hops["queued"], True, "a consumer received it", started)
            _mark(hops["consumed"], True, "taken off the queue" + (" and dead-lettered" if dead and not states else ""),
                  started)
        if states:
            _mark(hops["run"], True, f"flow run {states[-1].get('flow_run_name')}", started)
        if last == "COMPLETED":
            _mark(hops["completed"], True, "COMPLETED", started)
        if status in config.probe.final_status:
            _mark(hops["final"], True, f"status {status}", started)
        if all(h.done for h in result.hops):
            return
        ended = last in _ENDED_BADLY or (dead and not states)
        if not (states or dead) and hops["row"].done:  # nothing took it: is anything waiting in the queue?
            empty = _waiting(config, environ) == 0
            empty_since = (empty_since or time.monotonic()) if empty else None
            ended = ended or (empty_since is not None and time.monotonic() - empty_since >= NEVER_QUEUED_AFTER)
        if ended or time.monotonic() >= deadline:
            _explain(config, environ, hops, status, last, dead, timeout)
            return
        progress(f"waiting: {next(h.title for h in result.hops if not h.done)}")
        time.sleep(1.0)


def _explain(config: PipelineConfig, environ: Mapping[str, str], hops: dict[str, Hop], status: Any,
             last: str | None, dead: list, timeout: float) -> None:
    """The first hop that did not happen, with what was seen instead."""
    first = next(h for h in hops.values() if not h.done)
    first.done = False
    if first.name == "row":
        first.detail = "no row with the item's id: the entry point answered, but wrote nothing"
    elif first.name == "queued":
        waiting = _waiting(config, environ)
        if waiting:  # inferred from the depth: messages wait, this one among them (or others' only)
            first.done, first.detail = True, f"inferred: {waiting} message(s) wait in the queue"
            first = hops["consumed"]
            first.done = False
            first.detail = "no flow run names it and nothing took the waiting messages off the queue"
        else:
            first.detail = ("no flow run names it, it is in no dead-letter queue, and the queue is empty: "
                            "it was never queued" if waiting == 0 else "the queue could not be read")
    elif first.name == "run":
        first.detail = "its message was dead-lettered: the consumer failed to start its run"
    elif first.name == "completed":
        first.detail = f"the flow run is {last}" + ("" if last in _ENDED_BADLY else f" after {timeout:g}s")
    elif first.name == "final":
        first.detail = f"the run completed but the row is {status}, not {' or '.join(config.probe.final_status)}"


def _waiting(config: PipelineConfig, environ: Mapping[str, str]) -> int | None:
    """Messages waiting or in flight in the configured queues; None when they cannot be read (or none)."""
    from pipectl.connectors import sqs

    waiting = None
    try:
        for queue in config.queues:
            if queue.url:
                stats = sqs.queue_stats(queue.url, endpoint_url=config.aws.endpoint_url, region=config.aws.region,
                                        timeout=5.0, environ=config.aws.environ(environ))
                waiting = (waiting or 0) + stats.visible + stats.in_flight
    except PipectlError:
        return None
    return waiting


def _causes(config: PipelineConfig, environ: Mapping[str, str], hop: str) -> list[Finding]:
    from pipectl.repairs.verify_checks import run_selected

    try:
        found = run_selected(config, dict(environ), HOP_CHECKS[hop], config.doctor.timeout).findings
    except PipectlError:
        return []
    return [f for f in found if f.status.value in ("fail", "error")]


def _clean(config: PipelineConfig, environ: Mapping[str, str], table: StateTable, item_id: str) -> list[str]:
    """Take back what the item left; one line per thing, saying what was done or why not."""
    from pipectl.connectors import canary, prefect_write
    from pipectl.trace import _names_item, gather

    lines, timeout = [], max(config.doctor.timeout, 10.0)
    events = gather(config, item_id, [table], environ, timeout).events
    runs = {e.data["flow_run_id"] for e in events if e.kind == "flow-run-state"}
    for run_id in sorted(runs):
        lines.append(_attempt(f"deleted flow run {run_id}", lambda r=run_id: prefect_write.delete_flow_run(
            config.prefect.api_url or "", config.prefect.api_key, r, timeout)))
    for queue in {e.data["queue"]: e for e in events if e.kind == "dlq-message"}:
        dlq = next(q.dlq_url for q in config.queues if (q.name or q.url) == queue or q.url == queue)
        lines.append(_attempt(f"deleted its message(s) from the dead-letter queue of {queue}",
                              lambda u=dlq: canary.delete_dead_letters(
                                  u, lambda body: _names_item(body, item_id) is not None,
                                  endpoint_url=config.aws.endpoint_url, region=config.aws.region, timeout=timeout,
                                  environ=config.aws.environ(environ))))
    lines.append(_attempt(f"deleted row {item_id} of {table.table}",
                          lambda: canary.delete_row(config.database.dsn or "", table, item_id, timeout)))
    return lines


def _attempt(done: str, action: Callable[[], Any]) -> str:
    try:
        action()
    except PipectlError as exc:
        return f"could not be cleaned up — {done.replace('deleted ', '', 1)}: {exc}"
    return done


def _mark(hop: Hop, done: bool, detail: str, started: float) -> None:
    if hop.done is None or (done and not hop.done):
        hop.done, hop.detail, hop.seconds = done, detail, round(time.monotonic() - started, 1)


def _marked(value: Any, marker: str) -> Any:
    if isinstance(value, str):
        return value.replace("{marker}", marker)
    if isinstance(value, dict):
        return {k: _marked(v, marker) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked(v, marker) for v in value]
    return value


def _field(answer: Any, path: str) -> Any:
    for part in path.split("."):
        answer = answer.get(part) if isinstance(answer, dict) else None
    return answer


def _safe(url: str | None) -> str:
    from pipectl.connectors.http import safe_url

    return safe_url(url or "")
