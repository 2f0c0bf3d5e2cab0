"""`pipectl serve`'s two answers: Prometheus metric families and the /healthz body, from a doctor result.

Pure, like every renderer: a result in, metric families or a dict out. Every label value passes through
the redactor, as every other output does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipectl.exit_codes import FAILED, OK, exit_code
from pipectl.model import DoctorResult, Finding, Severity, Status
from pipectl.redact import redactor
from pipectl.report.common import STATUS_ORDER, summary_line

STATUS_VALUE = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3, Status.SKIPPED: -1}
"""The value of `pipectl_check_status`: numbers, so dashboards can threshold and alert on them."""

QUEUE_KINDS = (("visible", "sqs.queue", "visible"), ("in_flight", "sqs.queue", "in_flight"),
               ("delayed", "sqs.queue", "delayed"), ("dlq", "sqs.dlq", "messages"))
"""(kind label, check, evidence key): the queue depths the SQS checks' findings carry."""


@dataclass(frozen=True)
class Snapshot:
    """What the server knows at one instant: the last result, how many runs ended, and why the last failed."""

    result: DoctorResult | None = None
    runs: int = 0
    error: str | None = None
    """The last run crashed (a bug, not a finding): the result, if any, is an older one."""


def checked_at(result: DoctorResult) -> datetime:
    """When a run finished: what staleness alerts compare against."""
    return result.started_at + timedelta(seconds=result.duration_s)


def healthz(snapshot: Snapshot, fail_on: Severity) -> tuple[int, dict]:
    """HTTP status and body of /healthz: doctor's exit code as a load balancer reads it (0 → 200, else 503)."""
    result = snapshot.result
    if result is None:
        summary = f"the first run crashed: {snapshot.error}" if snapshot.error else "the first run has not finished"
        return 503, redactor.data({"status": "unknown" if snapshot.error else "starting", "summary": summary,
                                   "checked_at": None, "failing": []})
    code = exit_code(result.findings, fail_on)
    status = {OK: "ok", FAILED: "failing"}.get(code, "unknown")
    summary = summary_line(result)
    if snapshot.error:  # the verdict below is an old run's: say so, and do not call it healthy
        status, summary = "unknown", f"the last run crashed: {snapshot.error}; before it: {summary}"
    failing = [f.id for f in result.findings
               if (f.status is Status.FAIL and f.severity <= fail_on) or f.status is Status.ERROR]
    body = {"status": status, "summary": summary, "checked_at": checked_at(result).isoformat(),
            "failing": failing}
    return (200 if status == "ok" else 503), redactor.data(body)


class ResultCollector:
    """A prometheus_client collector reading the server's snapshot at scrape time: no global gauges to keep
    in step, and a scrape only ever reads, never runs a check."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []  # registering must not read a snapshot that does not exist yet

    def collect(self) -> Iterator[Metric]:
        yield from families(self._snapshot())


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """Every metric family of one snapshot; before the first run, only the run counter."""
    runs = CounterMetricFamily("pipectl_runs", "Check runs finished since pipectl serve started.")
    runs.add_metric([], snapshot.runs)
    yield runs
    result = snapshot.result
    if result is None:
        return
    yield _check_status(result.findings)
    yield _stuck_rows(result.findings)
    yield _queue_messages(result.findings)
    last = GaugeMetricFamily("pipectl_last_run_timestamp_seconds",
                             "Unix time when the last check run finished.")
    last.add_metric([], checked_at(result).timestamp())
    yield last
    duration = GaugeMetricFamily("pipectl_last_run_duration_seconds",
                                 "Wall time of the last check run (checks run concurrently; the runner does "
                                 "not time them one by one).")
    duration.add_metric([], result.duration_s)
    yield duration
    findings = GaugeMetricFamily("pipectl_findings", "Findings of the last run per status.", labels=["status"])
    for status, count in result.counts().items():
        findings.add_metric([status], count)
    yield findings


def _check_status(items: tuple[Finding, ...]) -> Metric:
    family = GaugeMetricFamily(
        "pipectl_check_status",
        "Status of each finding of the last run: 0 ok, 1 warn, 2 fail, 3 error (could not tell), -1 skipped.",
        labels=["check", "subject", "component", "severity"])
    worst: dict[tuple[str, ...], Status] = {}
    for f in items:  # one series per label set: of findings sharing one, the worst counts
        key = _labels(f.check, f.subject, f.component, f.severity.value)
        if key not in worst or STATUS_ORDER.index(f.status) < STATUS_ORDER.index(worst[key]):
            worst[key] = f.status
    for key, status in worst.items():
        family.add_metric(list(key), STATUS_VALUE[status])
    return family


def _stuck_rows(items: tuple[Finding, ...]) -> Metric:
    """From db.stuck's evidence: a failing group's `rows`, and 0 for each status an OK finding checked."""
    family = GaugeMetricFamily("pipectl_stuck_rows", "Rows past their stuck_after threshold per table, status "
                               "and group (the group_by values, joined by /).", labels=["table", "status", "group"])
    samples: dict[tuple[str, ...], float] = {}
    for f in items:
        if f.check != "db.stuck" or "table" not in f.evidence:
            continue
        table = str(f.evidence["table"])
        if f.status is Status.FAIL and isinstance(f.evidence.get("rows"), int) and "status" in f.evidence:
            status = str(f.evidence["status"])
            prefix = f"{table}/{status}/"
            group = f.subject[len(prefix):] if f.subject.startswith(prefix) else ""
            key = _labels(table, status, group)
            samples[key] = samples.get(key, 0) + f.evidence["rows"]
        elif f.status is Status.OK:
            for status in f.evidence.get("statuses") or ():
                samples.setdefault(_labels(table, str(status), ""), 0)
    for key, value in samples.items():
        family.add_metric(list(key), value)
    return family


def _queue_messages(items: tuple[Finding, ...]) -> Metric:
    """From sqs.queue's evidence (visible, in flight, delayed) and sqs.dlq's (messages in the queue's DLQ)."""
    family = GaugeMetricFamily("pipectl_queue_messages", "Messages per queue: visible, in_flight and delayed "
                               "in the queue itself, dlq in its dead-letter queue.", labels=["queue", "kind"])
    samples: dict[tuple[str, ...], float] = {}
    for f in items:
        for kind, check, key in QUEUE_KINDS:
            value = f.evidence.get(key)
            if f.check == check and "queue" in f.evidence and isinstance(value, int) and not isinstance(value, bool):
                samples[_labels(str(f.evidence["queue"]), kind)] = value
    for key, value in samples.items():
        family.add_metric(list(key), value)
    return family


def _labels(*values: str) -> tuple[str, ...]:
    return tuple(redactor(v) for v in values)
