"""`pipectl watch`: doctor as a Prefect deployment on the team's own workers, speaking only on change.

The watchdog flow (`pipectl.watch_flow.watchdog`) runs doctor, publishes the report as a markdown artifact,
and emits one Prefect event per finding whose status changed since the previous run — `failed`, `warned`,
`errored` (the check could not tell) or `resolved` — so Prefect Automations notify once per change, never
once per run. The statuses it compares with live in Prefect itself, as a table artifact written by every
run (`state_key`): it has no size cap (a Variable holds 5,000 characters), keeps a history linked to each
run, and shows in the UI what is not OK right now. The first run has no previous table and counts every
finding that is not OK as new. This module holds the pure parts and the `watch deploy` repair; Prefect is
reached only through `pipectl.connectors`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pipectl.errors import UsageError
from pipectl.model import DoctorResult, Status
from pipectl.redact import redactor
from pipectl.repair import Change, JournalRun, Outcome, Plan, Repair

FLOW_NAME = "pipectl-watch"
ENTRYPOINT = "pipectl.watch_flow.watchdog"
"""A module path, no colon: Prefect imports it from the worker's installed pipectl, with no code to pull."""
PULL_STEPS = [{"prefect.deployments.steps.set_working_directory": {"directory": "."}}]
"""Stay where the worker starts the run: with no pull step at all, Prefect copies that folder into a fresh
workspace for every run."""
MIN_EVERY = 60.0
"""Seconds: each run starts a process on a worker; more often than once a minute is load, not watching."""
EVENT_PREFIX = "pipectl.finding."
EVENTS = {"fail": EVENT_PREFIX + "failed", "warn": EVENT_PREFIX + "warned", "error": EVENT_PREFIX + "errored"}
RESOLVED = EVENT_PREFIX + "resolved"
_NOT_OK = (Status.FAIL, Status.WARN, Status.ERROR)


def slug(pipeline: str) -> str:
    """The pipeline's name as Prefect keys allow it (lowercase letters, digits, dashes); a name that had to
    change gets a short hash, so `a/b` and `a-b` never share a watchdog's state."""
    plain = re.sub(r"[^a-z0-9]+", "-", pipeline.lower()).strip("-") or "pipeline"
    if plain == pipeline:
        return plain
    return f"{plain}-{hashlib.sha256(pipeline.encode()).hexdigest()[:6]}"


def report_key(pipeline: str) -> str:
    """The markdown artifact every run publishes: one key, so the UI shows the latest and its history."""
    return f"pipectl-watch-{slug(pipeline)}"


def state_key(pipeline: str) -> str:
    """The table artifact of the findings that are not OK: the next run's previous statuses. Its own
    prefix: no pipeline's report key can be another pipeline's state key."""
    return f"pipectl-findings-{slug(pipeline)}"


def deployment_name(pipeline: str, name: str | None = None) -> str:
    """FLOW/DEPLOYMENT of the watchdog: `pipectl-watch/<pipeline>` unless `--name` says otherwise."""
    if name is not None and (not name.strip() or "/" in name):
        raise UsageError(f"--name {name!r}: give the deployment's own name, without a slash")
    return f"{FLOW_NAME}/{name.strip() if name else slug(pipeline)}"


def parse_every(text: str) -> float:
    """`--every 5m` in seconds; at least MIN_EVERY."""
    from pipectl.durations import option_seconds

    return option_seconds(text, "--every", MIN_EVERY, "each run starts a process on a worker")


# ---------------------------------------------------------------- what changed between two runs


@dataclass(frozen=True)
class Tracked:
    """A finding that is not OK, as the state table keeps it: enough to label its `resolved` event later."""

    id: str
    status: str
    severity: str
    check: str
    component: str
    summary: str
    cause: bool = True
    """Not explained by another finding of the run: automations may listen to causes only."""


@dataclass(frozen=True)
class StatusChange:
    """One finding whose status differs from the previous run's (absent counts as OK)."""

    event: str
    finding: Tracked
    previous: str
    current: str


def tracked(result: DoctorResult) -> dict[str, Tracked]:
    """The run's findings that are not OK, by id. SKIPPED counts as OK: a check with nothing to look at
    has no news."""
    causes = {f.id for f in result.causes()}
    return {f.id: Tracked(f.id, f.status.value, f.severity.value, f.check, f.component, redactor(f.summary),
                          f.id in causes)
            for f in result.findings if f.status in _NOT_OK}


def from_rows(rows: list[Mapping[str, Any]] | None) -> dict[str, Tracked] | None:
    """The previous run's table back as Tracked findings; None when there was no previous run."""
    if rows is None:
        return None
    fields = Tracked.__dataclass_fields__
    return {str(row["id"]): Tracked(**{k: v for k, v in row.items() if k in fields})
            for row in rows if isinstance(row, Mapping) and row.get("status") in EVENTS}


def rows(current: Mapping[str, Tracked]) -> list[dict[str, Any]]:
    """The state table a run publishes (and the next one reads)."""
    return [asdict(item) for item in current.values()]


def changes(previous: Mapping[str, Tracked] | None, current: Mapping[str, Tracked]) -> list[StatusChange]:
    """What changed: a finding new or with another status than before, and one that is gone or OK
    (`resolved`). With no previous run, every finding that is not OK is new."""
    before = previous or {}
    found = [StatusChange(EVENTS[now.status], now, before[key].status if key in before else "ok", now.status)
             for key, now in current.items() if key not in before or before[key].status != now.status]
    found += [StatusChange(RESOLVED, old, old.status, "ok") for key, old in before.items() if key not in current]
    return found


def event(change: StatusChange, pipeline: str, result: DoctorResult | None = None) -> dict[str, Any]:
    """The Prefect event of one change: the finding as the resource, with labels automations match on
    (pipeline, check, component, severity, status, cause); the summary and fix in the payload. Redacted."""
    item = change.finding
    found = next((f for f in result.findings if f.id == item.id), None) if result else None
    resource = {
        "prefect.resource.id": f"pipectl.finding.{slug(pipeline)}.{item.id}",
        "prefect.resource.name": item.id,
        "pipectl.pipeline": pipeline,
        "pipectl.check": item.check,
        "pipectl.component": item.component,
        "pipectl.severity": item.severity,
        "pipectl.status": change.current,
        "pipectl.cause": "true" if item.cause else "false",
    }
    payload = {"finding": item.id, "previous": change.previous, "status": change.current,
               "summary": item.summary, "report": report_key(pipeline)}
    if found is not None:
        payload |= {"impact": found.impact, "fix": list(found.fix), "advice": found.advice,
                    "caused_by": list(found.caused_by)}
    return {"event": change.event, "resource": redactor.data(resource), "payload": redactor.data(payload)}


def summary(result: DoctorResult, found: list[StatusChange], code: int) -> str:
    """The run's one line: its verdict, its counts and what it told Prefect (the final state's message)."""
    counts = result.counts()
    verdict = {0: "healthy", 1: "failing", 3: "could not tell"}.get(code, "failing")
    told = ", ".join(f"{n} {name.removeprefix(EVENT_PREFIX)}" for name, n in Counter(c.event for c in found).items())
    return (f"{result.pipeline}: {verdict} ({counts['fail']} fail, {counts['warn']} warn, {counts['error']} "
            f"error, {counts['ok']} ok); " + (f"events: {told}" if told else "no change, no event"))


# ---------------------------------------------------------------- one run, inside the flow


def run_once(config: str, context: str | None = None, timeout: float | None = None) -> tuple[bool, str]:
    """Doctor once, as `pipectl doctor --config CONFIG` would, then the report, the events and the state.

    Returns (healthy, summary line): healthy when doctor would exit 0. Events go out before the state
    table is written: a run that dies between the two repeats its events next time rather than lose them."""
    from pipectl.config_load import environment, load_config
    from pipectl.connectors import prefect_watch
    from pipectl.exit_codes import exit_code
    from pipectl.interface import Context
    from pipectl.registry import load_checks
    from pipectl.report.markdown import render
    from pipectl.runner import require_something_checked, run_checks

    cfg = load_config(config, context=context)
    ctx = Context(config=cfg, timeout=timeout or cfg.doctor.timeout, environ=environment(cfg.source))
    result = run_checks(list(load_checks().items.values()), ctx)
    require_something_checked(result, cfg.source.path)
    api = prefect_watch.run_api()
    current = tracked(result)
    found = changes(from_rows(prefect_watch.latest_table(*api, state_key(cfg.pipeline))), current)
    prefect_watch.emit([event(change, cfg.pipeline, result) for change in found])
    code = exit_code(result.findings, cfg.doctor.fail_on)
    line = redactor(summary(result, found, code))
    prefect_watch.publish(report_key(cfg.pipeline), redactor(render(result)), state_key(cfg.pipeline),
                          redactor.data(rows(current)), line)
    return code == 0, line


# ---------------------------------------------------------------- `pipectl watch deploy`


_LABELS = {"work_pool": "pool", "every_s": "interval", "concurrency_limit": "concurrency limit",
           "pull_steps": "pull steps"}


class WatchDeploy(Repair):
    """Creates the watchdog deployment, or brings an existing one to the schedule, pool and parameters
    asked for; nothing else on the server changes."""

    def __init__(self, config, *, every: float, work_pool: str, name: str | None, worker_config: str,
                 context: str | None, timeout: float | None) -> None:
        self.config, self.every, self.work_pool = config, every, work_pool
        self.name = deployment_name(config.pipeline, name)
        self.parameters = {"config": worker_config, "context": context, "timeout": timeout}
        self._api = (config.prefect.api_url, config.prefect.api_key)
        self._timeout = config.prefect.timeout
        self._existing: Any = None

    def _wanted(self) -> dict[str, Any]:
        return {"work_pool": self.work_pool, "every_s": self.every, "entrypoint": ENTRYPOINT,
                "parameters": self.parameters, "concurrency_limit": 1, "pull_steps": PULL_STEPS}

    def plan(self) -> Plan:
        from pipectl.connectors import prefect as prefect_api
        from pipectl.connectors import prefect_watch
        from pipectl.durations import format_duration

        if prefect_api.read_work_pool(*self._api, self.work_pool, timeout=self._timeout) is None:
            raise UsageError(f"--work-pool {self.work_pool}: Prefect at {self._api[0]} has no such work pool")
        self._existing = prefect_watch.read_watchdog(*self._api, self.name)
        details = {"deployment": self.name, "work_pool": self.work_pool, "every": format_duration(self.every),
                   "config (as the worker sees it)": self.parameters["config"],
                   "context": self.parameters["context"] or "(the config's default)",
                   "report artifact": report_key(self.config.pipeline),
                   "events": ", ".join([*EVENTS.values(), RESOLVED])}
        before = self._existing.as_dict() if self._existing else None
        after = self._wanted()
        if before is not None and all(before.get(k) == v for k, v in after.items()):
            return Plan("watch-deploy", f"{self.name} already watches as asked", (), details)
        what = "create" if before is None else "update " + ", ".join(
            _LABELS.get(k, k) for k, v in after.items() if before.get(k) != v)
        change = Change(f"deployment {self.name}", f"{what}: doctor every {format_duration(self.every)} "
                        f"on pool {self.work_pool}", before, after)
        return Plan("watch-deploy", f"deploy the watchdog {self.name}", (change,), details)

    def apply(self, plan: Plan, journal: JournalRun) -> Outcome:
        from pipectl.connectors import prefect_write
        from pipectl.connectors.prefect_watch import flow_parameter_schema

        flow, name = self.name.split("/")
        deployment_id = prefect_write.create_deployment(
            *self._api, flow_name=flow, name=name, entrypoint=ENTRYPOINT, work_pool=self.work_pool,
            pull_steps=PULL_STEPS, parameters=self.parameters, parameter_schema=flow_parameter_schema(),
            tags=["pipectl"], description=f"pipectl doctor on pipeline {self.config.pipeline}; events "
            f"{EVENT_PREFIX}* on change", replace=True, schedule_every=self.every, concurrency_limit=1,
            timeout=self._timeout)
        journal.record("change", {"kind": "deployment_created", "deployment": self.name,
                                  "deployment_id": deployment_id, "replaced": self._existing is not None,
                                  "before": self._existing.as_dict() if self._existing else None})
        return Outcome(True, f"deployed the watchdog {self.name}", {"deployment_id": deployment_id})

    def verify(self, applied: Outcome) -> Outcome:
        from pipectl.connectors import prefect_watch

        found = prefect_watch.read_watchdog(*self._api, self.name)
        if found is None:
            return Outcome(False, f"{self.name} is not in Prefect after the create call")
        wrong = [k for k, v in self._wanted().items() if found.as_dict().get(k) != v]
        if wrong:
            return Outcome(False, f"{self.name} differs from what was asked: {', '.join(wrong)}")
        from pipectl.durations import format_duration

        return Outcome(True, f"{self.name} runs doctor every {format_duration(self.every)} on pool {self.work_pool}",
                       {"status": f"`pipectl watch status --name {self.name.split('/')[1]}`"})


# ---------------------------------------------------------------- `pipectl watch status`


@dataclass(frozen=True)
class WatchStatus:
    """The watchdog deployment and its latest runs, for `pipectl watch status` to show."""

    watchdog: Any
    runs: list[Any]
    next_run: Any
    ui: str
    """Prefect's UI, for links to the runs' reports."""


def status(config, name: str | None, limit: int) -> WatchStatus:
    """Read the watchdog `name` (default: the pipeline's) and its last `limit` runs that were due."""
    from pipectl.connectors import prefect_watch
    from pipectl.errors import NotFound

    if not 1 <= limit <= 100:
        raise UsageError(f"--limit must be between 1 and 100, not {limit}")
    api = (config.prefect.api_url, config.prefect.api_key)
    deployment = deployment_name(config.pipeline, name)
    found = prefect_watch.read_watchdog(*api, deployment)
    if found is None:
        raise NotFound(f"no watchdog {deployment} in Prefect at {config.prefect.api_url}: deploy it with "
                       f"`pipectl watch deploy --every 5m --work-pool POOL`")
    runs, upcoming = prefect_watch.watch_runs(*api, found.id, report_key(config.pipeline),
                                              state_key(config.pipeline), limit)
    return WatchStatus(found, runs, upcoming, prefect_watch.ui_url(config.prefect.api_url))
