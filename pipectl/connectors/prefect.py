"""Prefect, read-only: what the checks and the repairs' plans need, as plain dataclasses.

Every function asks Prefect's REST API directly (see `prefect_rest`), from an explicit `api_url` and
optional `api_key` (never the ambient Prefect profile), within one deadline for the whole call. The
Prefect client is not imported: `pipectl doctor` starts fast, and pipectl owns retries and deadlines.
Writes live in `prefect_write`, flow runs in `prefect_runs`.
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
    call,
    parse_time,
    segment,
    split_deployment_name,
)
from pipectl.errors import ConnectorError
from pipectl.shared_reads import shared


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

