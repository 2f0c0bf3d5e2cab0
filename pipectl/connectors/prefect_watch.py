"""Prefect for `pipectl watch`: the watchdog's bookkeeping inside its own flow run, and the reads that
`watch deploy` and `watch status` make.

Inside the run, artifacts and events go through Prefect's own client, to the API the run reports to
(the worker's PREFECT_API_URL): that is what links each artifact to its run and adds the run, its flow,
deployment and work pool as related resources of each event. Every read goes over the REST API
(`prefect_rest`) within one deadline. Nothing here formats output or decides what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pipectl.connectors.prefect import concurrency_of
from pipectl.connectors.prefect_rest import (
    DEFAULT_TIMEOUT,
    Conversation,
    as_uuid,
    call,
    parse_time,
    segment,
    split_deployment_name,
)

EVENT_PAGES = 10
"""Pages of events (50 each, the API's most) `watch status` reads at most: 500 changes in the runs shown."""


# ---------------------------------------------------------------- inside the flow run


def run_api() -> tuple[str, str | None]:
    """The API this flow run reports to, and its key: where the watchdog keeps its state."""
    from prefect.settings import get_current_settings

    settings = get_current_settings().api
    key = settings.key.get_secret_value() if settings.key is not None else None
    if not settings.url:
        from pipectl.errors import UsageError

        raise UsageError("PREFECT_API_URL is not set where the watchdog runs: it must run on a Prefect worker")
    return str(settings.url), key


def latest_table(api_url: str, api_key: str | None, key: str, timeout: float = DEFAULT_TIMEOUT) -> list | None:
    """The rows of the newest artifact named `key`; None when there is none yet (the first run)."""

    async def run(rest: Conversation) -> list | None:
        found = await rest.get(f"/artifacts/{segment(key)}/latest", missing_ok=True)
        return None if found is None else _rows(found.get("data"))

    return call(api_url, api_key, timeout, f"read artifact {key}", run)


def _rows(data: Any) -> list:
    import json

    if isinstance(data, str):
        data = json.loads(data or "[]")
    return data if isinstance(data, list) else []


def emit(events: list[dict[str, Any]]) -> None:
    """Send the events (each `event`, `resource`, `payload`) through the run's events client, which adds
    the run as a related resource and delivers them before the process ends."""
    from prefect.events import emit_event

    for item in events:
        emit_event(item["event"], resource=item["resource"], payload=item.get("payload"))


def publish(report_key: str, markdown: str, state_key: str, rows: list[dict[str, Any]], line: str) -> None:
    """The report as a markdown artifact and the findings that are not OK as a table artifact, both
    linked to the current run (an empty table too: it is what says that all is well now)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_markdown_artifact(markdown=markdown, key=report_key, description=line)
    create_table_artifact(table=rows, key=state_key, description=f"Findings not OK after this run. {line}")


def final_state(healthy: bool, message: str):
    """Completed when doctor would exit 0, else Failed: a flow returning a state ends in it."""
    from prefect.states import Completed, Failed

    return Completed(message=message) if healthy else Failed(message=message)


def flow_parameter_schema() -> dict[str, Any]:
    """The watchdog flow's parameters as the server enforces them (what `flow.deploy()` would send)."""
    from pipectl.watch_flow import watchdog

    return watchdog.parameters.model_dump_for_openapi()


# ---------------------------------------------------------------- reads for deploy and status


@dataclass(frozen=True)
class Watchdog:
    """A watchdog deployment as Prefect holds it."""

    id: str
    name: str
    work_pool: str | None
    entrypoint: str | None
    every_s: float | None
    parameters: dict[str, Any]
    paused: bool
    concurrency_limit: int | None
    pull_steps: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """What a plan compares and shows (before/after)."""
        return {"work_pool": self.work_pool, "every_s": self.every_s, "entrypoint": self.entrypoint,
                "parameters": self.parameters, "concurrency_limit": self.concurrency_limit,
                "pull_steps": self.pull_steps, "paused": self.paused}


def read_watchdog(api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT) -> Watchdog | None:
    """The deployment FLOW/NAME with its interval schedule, or None if there is none."""
    flow_name, deployment = split_deployment_name(name)

    async def run(rest: Conversation) -> Watchdog | None:
        found = await rest.get(f"/deployments/name/{segment(flow_name)}/{segment(deployment)}", missing_ok=True)
        if found is None:
            return None
        every = [s["schedule"]["interval"] for s in found.get("schedules") or []
                 if s.get("active", True) and isinstance((s.get("schedule") or {}).get("interval"), (int, float))]
        limit = concurrency_of(found)["concurrency_limit"]
        return Watchdog(str(found["id"]), name, found.get("work_pool_name"), found.get("entrypoint"),
                        float(every[0]) if every else None, found.get("parameters") or {},
                        bool(found.get("paused")), limit, found.get("pull_steps"))

    return call(api_url, api_key, timeout, f"read deployment {name}", run)


@dataclass(frozen=True)
class WatchRun:
    """One run of the watchdog: its state, what its state table says, and the events it emitted."""

    id: str
    name: str
    state_type: str | None
    state_name: str | None
    message: str | None
    expected_start: datetime | None
    start: datetime | None
    report_artifact: str | None = None
    findings: list[dict[str, Any]] | None = None
    """The rows of its state table (findings not OK); None when the run wrote none (yet)."""
    events: dict[str, int] = field(default_factory=dict)
    """How many events of each name it emitted."""


def watch_runs(api_url: str, api_key: str | None, deployment_id: str, report_key: str, state_key: str,
               limit: int = 10, timeout: float = DEFAULT_TIMEOUT) -> tuple[list[WatchRun], datetime | None]:
    """The deployment's latest runs that were due (newest first), each with its artifacts and events, and
    when the next scheduled run is due."""
    deployment = {"any_": [str(as_uuid(deployment_id, "deployment"))]}
    now = datetime.now(UTC).isoformat()

    async def run(rest: Conversation) -> tuple[list[WatchRun], datetime | None]:
        due = await rest.post("/flow_runs/filter", {
            "flow_runs": {"deployment_id": deployment, "expected_start_time": {"before_": now}},
            "sort": "EXPECTED_START_TIME_DESC", "limit": limit, "offset": 0})
        upcoming = await rest.post("/flow_runs/filter", {
            "flow_runs": {"deployment_id": deployment, "expected_start_time": {"after_": now},
                          "state": {"type": {"any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": 1, "offset": 0})
        ids = [str(r["id"]) for r in due]
        artifacts = await rest.post("/artifacts/filter", {
            "artifacts": {"key": {"any_": [report_key, state_key]}, "flow_run_id": {"any_": ids}},
            "sort": "ID_DESC", "limit": 2 * len(ids) + 2, "offset": 0}) if ids else []
        events = await _events(rest, ids) if ids else []
        runs = [_run(r, artifacts, events, report_key, state_key) for r in due]
        return runs, parse_time(upcoming[0].get("expected_start_time")) if upcoming else None

    return call(api_url, api_key, timeout, f"read runs of the watchdog deployment {deployment_id}", run)


async def _events(rest: Conversation, run_ids: list[str]) -> list[dict[str, Any]]:
    """The `pipectl.finding.*` events whose related resources include one of the runs."""
    page = await rest.post("/events/filter", {"filter": {
        "event": {"prefix": ["pipectl.finding."]},
        "related": {"id": [f"prefect.flow-run.{run_id}" for run_id in run_ids]},
        "order": "DESC"}, "limit": 50})
    found = list(page.get("events") or [])
    for _ in range(EVENT_PAGES - 1):
        token = parse_qs(urlsplit(str(page.get("next_page") or "")).query).get("page-token")
        if not token:
            break
        page = await rest.get("/events/filter/next", {"page-token": token[0]})
        found += page.get("events") or []
    return found


def _run(r: dict[str, Any], artifacts: list[dict[str, Any]], events: list[dict[str, Any]], report_key: str,
         state_key: str) -> WatchRun:
    state = r.get("state") or {}
    mine = [a for a in artifacts if str(a.get("flow_run_id")) == str(r["id"])]
    report = next((str(a["id"]) for a in mine if a.get("key") == report_key), None)
    table = next((_rows(a.get("data")) for a in mine if a.get("key") == state_key), None)
    tally: dict[str, int] = {}
    for item in events:
        if any(rel.get("prefect.resource.id") == f"prefect.flow-run.{r['id']}" for rel in item.get("related") or []):
            tally[item["event"]] = tally.get(item["event"], 0) + 1
    return WatchRun(str(r["id"]), r.get("name", ""), state.get("type"), state.get("name"), state.get("message"),
                    parse_time(r.get("expected_start_time")), parse_time(r.get("start_time")), report, table, tally)


def ui_url(api_url: str) -> str:
    """Where Prefect's UI lives for this API: the server without `/api`; on Prefect Cloud, the workspace
    at app.prefect.cloud."""
    parts = urlsplit(api_url.rstrip("/"))
    path = parts.path
    if parts.netloc.startswith("api.") and "/accounts/" in path:  # Cloud: /api/accounts/A/workspaces/W
        _, _, rest = path.partition("/accounts/")
        account, _, workspace = rest.partition("/workspaces/")
        return f"{parts.scheme}://app.{parts.netloc[4:]}/account/{account}/workspace/{workspace}"
    return f"{parts.scheme}://{parts.netloc}{path.removesuffix('/api')}"
