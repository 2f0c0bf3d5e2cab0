"""Prefect, read-only: what the checks and the repairs' plans need, as plain dataclasses.

Every function asks Prefect's REST API directly (see `prefect_rest`), from an explicit `api_url` and
optional `api_key` (never the ambient Prefect profile), within one deadline for the whole call. The
Prefect client is not imported: `pipectl doctor` starts fast, and pipectl owns retries and deadlines.
Writes live in `prefect_write`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipectl.connectors.prefect_rest import (
    DEFAULT_TIMEOUT,
    SECRET_BLOCK_TYPE,
    Conversation,
    as_uuid,
    call,
    parse_time,
    segment,
    split_deployment_name,
)
from pipectl.errors import ConnectorError, UsageError
from pipectl.shared_reads import shared

_STATE_TYPES = (
    "SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING",
)


@dataclass(frozen=True)
class DeploymentInfo:
    id: str
    name: str  # the deployment's own name, e.g. "data-enrichment-orchestrator"
    flow_name: str
    paused: bool
    status: str | None  # READY / NOT_READY (None on servers that do not report it)
    work_pool_name: str | None
    work_queue_name: str | None
    job_variables: dict[str, Any]
    entrypoint: str | None
    pull_steps: list[dict[str, Any]] | None
    parameters: dict[str, Any]
    updated: datetime | None
    parameter_schema: dict[str, Any] = field(default_factory=dict)
    """The flow's parameters as JSON Schema (`parameter_openapi_schema`): names, types, which are required."""
    concurrency_limit: int | None = None
    """How many of its runs may run at once (None: no limit; 0: none ever starts)."""
    concurrency_active: bool = True
    """Whether that limit is enabled: newer servers (3.9 among them) keep it as a global concurrency limit,
    which can be disabled (a 3.9.1 server then starts none of the deployment's runs: they wait for a slot)."""
    concurrency_limit_name: str | None = None
    """That global concurrency limit's name: `deployment:<id>` for its own, another for a shared one; None
    on servers that report the limit as a plain number."""
    concurrency_slots_taken: int | None = None
    """Slots the limit counts as taken (`active_slots`); None where the server does not say."""

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    status: str  # ONLINE / OFFLINE
    last_heartbeat: datetime | None


@dataclass(frozen=True)
class WorkQueueInfo:
    name: str
    paused: bool
    concurrency_limit: int | None


@dataclass(frozen=True)
class WorkPoolInfo:
    id: str
    name: str
    type: str
    paused: bool
    status: str | None  # READY / NOT_READY / PAUSED
    concurrency_limit: int | None
    workers: list[WorkerInfo] = field(default_factory=list)
    queues: list[WorkQueueInfo] = field(default_factory=list)
    """The pool's work queues: a paused queue, or one limited to 0, starts none of its runs."""


@dataclass(frozen=True)
class FlowRunInfo:
    id: str
    name: str
    deployment_id: str | None
    state_type: str | None  # SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, CANCELLED, ...
    state_name: str | None  # e.g. "Late" for a SCHEDULED run that is overdue
    expected_start_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    work_pool_name: str | None
    state_since: datetime | None = None
    """When the run entered its current state."""

    @property
    def is_final(self) -> bool:
        return self.state_type in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _deployment_info(d: dict[str, Any], flow_name: str) -> DeploymentInfo:
    return DeploymentInfo(
        id=str(d["id"]),
        name=d["name"],
        flow_name=flow_name,
        paused=bool(d.get("paused")),
        status=d.get("status"),
        work_pool_name=d.get("work_pool_name"),
        work_queue_name=d.get("work_queue_name"),
        job_variables=d.get("job_variables") or {},
        entrypoint=d.get("entrypoint"),
        pull_steps=d.get("pull_steps"),
        parameters=d.get("parameters") or {},
        updated=parse_time(d.get("updated")),
        parameter_schema=d.get("parameter_openapi_schema") or {},
        **concurrency_of(d),
    )


AWAITING_SLOT = "AwaitingConcurrencySlot"
"""The name of the SCHEDULED state Prefect gives a run its deployment's concurrency limit holds back (set
again at every attempt; the run keeps its expected start time and never goes Late)."""


def concurrency_of(d: dict[str, Any]) -> dict[str, Any]:
    """The deployment's concurrency limit from either shape: newer servers (3.9 among them) report it as an object,
    `global_concurrency_limit` (`limit`, `active`, `active_slots`, `name` …), and leave the old
    `concurrency_limit` null; older servers report only that number."""
    shared = d.get("global_concurrency_limit")
    if isinstance(shared, dict) and shared.get("limit") is not None:
        taken = shared.get("active_slots")
        return {"concurrency_limit": int(shared["limit"]), "concurrency_active": shared.get("active") is not False,
                "concurrency_limit_name": shared.get("name"),
                "concurrency_slots_taken": None if taken is None else int(taken)}
    limit = d.get("concurrency_limit")
    return {"concurrency_limit": None if limit is None else int(limit)}


def _flow_run_info(r: dict[str, Any]) -> FlowRunInfo:
    state = r.get("state") or {}
    return FlowRunInfo(
        id=str(r["id"]),
        name=r["name"],
        deployment_id=str(r["deployment_id"]) if r.get("deployment_id") else None,
        state_type=state.get("type"),
        state_name=state.get("name"),
        expected_start_time=parse_time(r.get("expected_start_time")),
        start_time=parse_time(r.get("start_time")),
        end_time=parse_time(r.get("end_time")),
        work_pool_name=r.get("work_pool_name"),
        state_since=parse_time(state.get("timestamp")),
    )


def _worker_info(w: dict[str, Any]) -> WorkerInfo:
    return WorkerInfo(name=w["name"], status=w.get("status") or "UNKNOWN",
                      last_heartbeat=parse_time(w.get("last_heartbeat_time")))


@shared
def api_health(api_url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Check the API answers and accepts the credentials; return the server version.

    An authenticated read decides both: /health answers anonymously (or not at all on Prefect Cloud)
    and proves nothing more. Returns "unknown" where the API does not publish its version (Cloud).
    """

    async def run(rest: Conversation) -> str:
        await rest.post("/work_pools/filter", {"limit": 1, "offset": 0})
        try:
            version = await rest.get("/admin/version")
        except ConnectorError:  # optional: 401/403/404 on Cloud, or no time left for it
            return "unknown"
        return version if isinstance(version, str) and version else "unknown"

    return call(api_url, api_key, timeout, "health check", run)


@shared
def read_deployment(
    api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT
) -> DeploymentInfo | None:
    """The deployment "flow/deployment", or None if it does not exist."""
    flow_name, deployment_name = split_deployment_name(name)

    async def run(rest: Conversation) -> DeploymentInfo | None:
        path = f"/deployments/name/{segment(flow_name)}/{segment(deployment_name)}"
        found = await rest.get(path, missing_ok=True)
        return None if found is None else _deployment_info(found, flow_name)

    return call(api_url, api_key, timeout, f"read deployment {name}", run)


@shared
def read_work_pool(
    api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT
) -> WorkPoolInfo | None:
    """The work pool with its workers (last heartbeat, ONLINE/OFFLINE), or None if it does not exist."""

    async def run(rest: Conversation) -> WorkPoolInfo | None:
        pool = await rest.get(f"/work_pools/{segment(name)}", missing_ok=True)
        if pool is None:
            return None
        workers = await rest.post(f"/work_pools/{segment(name)}/workers/filter", {})
        queues = await rest.post(f"/work_pools/{segment(name)}/queues/filter", {"limit": 200, "offset": 0})
        return WorkPoolInfo(
            id=str(pool["id"]),
            name=pool["name"],
            type=pool["type"],
            paused=bool(pool.get("is_paused")),
            status=pool.get("status"),
            concurrency_limit=pool.get("concurrency_limit"),
            workers=[_worker_info(w) for w in workers],
            queues=[WorkQueueInfo(q["name"], bool(q.get("is_paused")), q.get("concurrency_limit")) for q in queues],
        )

    return call(api_url, api_key, timeout, f"read work pool {name}", run)


@shared
def count_late_runs(
    api_url: str,
    api_key: str | None,
    *,
    deployment_id: str | None = None,
    pool: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """How many flow runs are in the "Late" state, for a deployment and/or a work pool."""
    if deployment_id is None and pool is None:
        raise UsageError("count_late_runs needs a deployment id or a work pool name")
    flow_runs: dict[str, Any] = {"state": {"name": {"any_": ["Late"]}}}
    if deployment_id is not None:
        flow_runs["deployment_id"] = {"any_": [str(as_uuid(deployment_id, "deployment"))]}
    body: dict[str, Any] = {"flow_runs": flow_runs}
    if pool:
        body["work_pools"] = {"name": {"any_": [pool]}}

    async def run(rest: Conversation) -> int:
        return int(await rest.post("/flow_runs/count", body))

    target = " ".join(x for x in (f"deployment {deployment_id}" if deployment_id else "", f"pool {pool}" if pool else "") if x)
    return call(api_url, api_key, timeout, f"count late runs of {target}", run)


@shared
def count_moving_runs(api_url: str, api_key: str | None, deployment_ids: list[str],
                      timeout: float = DEFAULT_TIMEOUT) -> int:
    """Runs of these deployments that are on their way: scheduled (Late ones too: a worker just started
    picks them up), pending or running."""
    ids = {"any_": [str(as_uuid(i, "deployment")) for i in deployment_ids]}
    body = {"flow_runs": {"deployment_id": ids, "state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}}}}

    async def run(rest: Conversation) -> int:
        return int(await rest.post("/flow_runs/count", body))

    return call(api_url, api_key, timeout, "count the runs on their way", run)


@shared
def recent_flow_runs(
    api_url: str,
    api_key: str | None,
    deployment_id: str,
    limit: int = 10,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    state_types: list[str] | tuple[str, ...] | None = None,
    state_names: list[str] | tuple[str, ...] | None = None,
) -> list[FlowRunInfo]:
    """The deployment's latest flow runs, newest (by expected start) first.

    `state_types` (e.g. COMPLETED, FAILED, CRASHED) keeps only runs in those states: without it, a
    scheduled deployment's future runs (created days ahead) fill the whole `limit`. `state_names` keeps
    only runs whose state is named so (e.g. AWAITING_SLOT).
    """
    flow_runs: dict[str, Any] = {"deployment_id": {"any_": [str(as_uuid(deployment_id, "deployment"))]}}
    if state_types is not None:
        unknown = [t for t in state_types if t not in _STATE_TYPES]
        if unknown:
            raise UsageError(f"unknown flow run state type(s): {', '.join(unknown)}")
        flow_runs["state"] = {"type": {"any_": list(state_types)}}
    if state_names is not None:
        flow_runs.setdefault("state", {})["name"] = {"any_": list(state_names)}
    body = {"flow_runs": flow_runs, "sort": "EXPECTED_START_TIME_DESC", "limit": limit, "offset": 0}

    async def run(rest: Conversation) -> list[FlowRunInfo]:
        return [_flow_run_info(r) for r in await rest.post("/flow_runs/filter", body)]

    return call(api_url, api_key, timeout, f"read flow runs of deployment {deployment_id}", run)


@shared
def read_flow_run(api_url: str, api_key: str | None, flow_run_id: str, timeout: float = DEFAULT_TIMEOUT) -> FlowRunInfo:
    """One flow run; NotFound if there is none with that id."""
    run_uuid = as_uuid(flow_run_id, "flow run")

    async def run(rest: Conversation) -> FlowRunInfo:
        return _flow_run_info(await rest.get(f"/flow_runs/{run_uuid}"))

    return call(api_url, api_key, timeout, f"read flow run {flow_run_id}", run)


@shared
def read_secret_block(api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The value of Secret block `name`, or None if there is no such block.

    The caller must register the value with its redactor before doing anything else with it.
    JSON-valued secrets come back JSON-encoded.
    """
    path = f"/block_types/slug/{SECRET_BLOCK_TYPE}/block_documents/name/{segment(name)}"

    async def run(rest: Conversation) -> str | None:
        document = await rest.get(path, {"include_secrets": "true"}, missing_ok=True)
        if document is None:
            return None
        value = (document.get("data") or {}).get("value")
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)

    return call(api_url, api_key, timeout, f"read Secret block {name}", run, carries_secret=True)


@shared
def secret_block_names(api_url: str, api_key: str | None, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """The names of every Secret block (values are not read), a page (the server's default size) at a time."""
    query: dict[str, Any] = {
        "block_types": {"slug": {"any_": [SECRET_BLOCK_TYPE]}},
        "block_documents": {"is_anonymous": {"eq_": False}},
        "include_secrets": False,
        "sort": "NAME_ASC",
    }

    async def run(rest: Conversation) -> list[str]:
        names: dict[str, None] = {}
        offset = page_size = 0
        while True:
            page = await rest.post("/block_documents/filter", {**query, "offset": offset})
            known = len(names)
            names.update((d["name"], None) for d in page if d.get("name"))
            offset += len(page)
            page_size = page_size or len(page)
            if len(page) < page_size or not page or len(names) == known:  # the last page, or offset ignored
                return list(names)

    return call(api_url, api_key, timeout, "list Secret blocks", run)


@dataclass(frozen=True)
class StateInfo:
    """One state a flow run passed through, as its history (`/flow_run_states/`) lists it."""

    type: str | None
    name: str | None
    timestamp: datetime | None
    message: str | None


RUN_PAGE = 200
"""The largest page Prefect's /flow_runs/filter serves by default (PREFECT_API_DEFAULT_LIMIT)."""


@shared
def flow_runs_with_parameters(
    api_url: str, api_key: str | None, deployment_id: str, limit: int = 1000, timeout: float = DEFAULT_TIMEOUT
) -> list[tuple[FlowRunInfo, dict[str, Any]]]:
    """The deployment's latest `limit` flow runs (newest expected start first), each with its parameters:
    Prefect's filter cannot match parameter values, so a caller looking for one reads them here."""
    flow_runs = {"deployment_id": {"any_": [str(as_uuid(deployment_id, "deployment"))]}}

    async def run(rest: Conversation) -> list[tuple[FlowRunInfo, dict[str, Any]]]:
        found: list[tuple[FlowRunInfo, dict[str, Any]]] = []
        while len(found) < limit:
            size = min(RUN_PAGE, limit - len(found))
            page = await rest.post("/flow_runs/filter", {"flow_runs": flow_runs, "sort": "EXPECTED_START_TIME_DESC",
                                                         "limit": size, "offset": len(found)})
            found += [(_flow_run_info(r), r.get("parameters") or {}) for r in page]
            if len(page) < size:
                break
        return found

    return call(api_url, api_key, timeout, f"read flow runs of deployment {deployment_id}", run)


@shared
def flow_run_states(
    api_url: str, api_key: str | None, flow_run_ids: list[str], timeout: float = DEFAULT_TIMEOUT
) -> dict[str, list[StateInfo]]:
    """The state history of each flow run, oldest first, in one conversation (the requests run at once)."""
    import asyncio

    ids = [str(as_uuid(i, "flow run")) for i in flow_run_ids]

    async def history(rest: Conversation, run_id: str) -> list[StateInfo]:
        states = await rest.get("/flow_run_states/", {"flow_run_id": run_id})
        found = [StateInfo(s.get("type"), s.get("name"), parse_time(s.get("timestamp")), s.get("message"))
                 for s in states]
        return sorted(found, key=lambda s: (s.timestamp is None, s.timestamp or datetime.min))

    async def run(rest: Conversation) -> dict[str, list[StateInfo]]:
        return dict(zip(ids, await asyncio.gather(*(history(rest, i) for i in ids)), strict=True))

    return call(api_url, api_key, timeout, "read flow run state histories", run)
