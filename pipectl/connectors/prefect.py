"""Prefect, read-only: what the checks and the repairs' plans need, as plain dataclasses.

Every function builds its own client from an explicit `api_url` and optional `api_key` (never from
the ambient Prefect profile) and runs one bounded conversation with it; see `prefect_client` for how
failures become pipectl errors. Writes live in `prefect_write`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipectl.connectors.prefect_client import (
    DEFAULT_TIMEOUT,
    SECRET_BLOCK_TYPE,
    as_datetime,
    as_uuid,
    call,
    enum_value,
    plain,
    split_deployment_name,
    status_code,
)
from pipectl.errors import UsageError

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

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    status: str  # ONLINE / OFFLINE
    last_heartbeat: datetime | None


@dataclass(frozen=True)
class WorkPoolInfo:
    id: str
    name: str
    type: str
    paused: bool
    status: str | None  # READY / NOT_READY / PAUSED
    concurrency_limit: int | None
    workers: list[WorkerInfo] = field(default_factory=list)


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

    @property
    def is_final(self) -> bool:
        return self.state_type in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _deployment_info(d: Any, flow_name: str) -> DeploymentInfo:
    return DeploymentInfo(
        id=str(d.id),
        name=d.name,
        flow_name=flow_name,
        paused=bool(d.paused),
        status=enum_value(getattr(d, "status", None)),
        work_pool_name=d.work_pool_name,
        work_queue_name=d.work_queue_name,
        job_variables=plain(d.job_variables) or {},
        entrypoint=d.entrypoint,
        pull_steps=plain(d.pull_steps),
        parameters=plain(d.parameters) or {},
        updated=as_datetime(d.updated),
        parameter_schema=plain(getattr(d, "parameter_openapi_schema", None)) or {},
    )


def _flow_run_info(r: Any) -> FlowRunInfo:
    state = r.state
    return FlowRunInfo(
        id=str(r.id),
        name=r.name,
        deployment_id=str(r.deployment_id) if r.deployment_id else None,
        state_type=enum_value(state.type) if state else None,
        state_name=state.name if state else None,
        expected_start_time=as_datetime(r.expected_start_time),
        start_time=as_datetime(r.start_time),
        end_time=as_datetime(r.end_time),
        work_pool_name=r.work_pool_name,
    )


def api_health(api_url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Check the API answers and accepts the credentials; return the server version.

    Returns "unknown" where the API does not publish its version (Prefect Cloud workspaces).
    """

    async def run(client) -> str:
        problem = await client.api_healthcheck()
        if problem is not None and status_code(problem) != 404:  # some proxies do not route /health
            raise problem
        version = "unknown"
        try:
            version = str(await client.api_version())
        except Exception as exc:  # noqa: BLE001 - only 404 means "no version endpoint"
            if status_code(exc) != 404:
                raise
        # /health may answer anonymously; an authenticated read proves the credentials.
        await client.read_work_pools(limit=1)
        return version

    return call(api_url, api_key, timeout, "health check", run)


def read_deployment(
    api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT
) -> DeploymentInfo | None:
    """The deployment "flow/deployment", or None if it does not exist."""
    flow_name, _ = split_deployment_name(name)

    async def run(client) -> DeploymentInfo | None:
        from prefect.exceptions import ObjectNotFound

        try:
            deployment = await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
        return _deployment_info(deployment, flow_name)

    return call(api_url, api_key, timeout, f"read deployment {name}", run)


def read_work_pool(
    api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT
) -> WorkPoolInfo | None:
    """The work pool with its workers (last heartbeat, ONLINE/OFFLINE), or None if it does not exist."""

    async def run(client) -> WorkPoolInfo | None:
        from prefect.exceptions import ObjectNotFound

        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            return None
        workers = await client.read_workers_for_work_pool(name)
        return WorkPoolInfo(
            id=str(pool.id),
            name=pool.name,
            type=pool.type,
            paused=bool(pool.is_paused),
            status=enum_value(pool.status),
            concurrency_limit=pool.concurrency_limit,
            workers=[
                WorkerInfo(name=w.name, status=enum_value(w.status) or "UNKNOWN", last_heartbeat=as_datetime(w.last_heartbeat_time))
                for w in workers
            ],
        )

    return call(api_url, api_key, timeout, f"read work pool {name}", run)


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
    deployment_uuid = as_uuid(deployment_id, "deployment") if deployment_id is not None else None

    async def run(client) -> int:
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterState,
            FlowRunFilterStateName,
            WorkPoolFilter,
            WorkPoolFilterName,
        )

        flow_run_filter = FlowRunFilter(
            state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Late"])),
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment_uuid]) if deployment_uuid else None,
        )
        pool_filter = WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])) if pool else None
        return await client.count_flow_runs(flow_run_filter=flow_run_filter, work_pool_filter=pool_filter)

    target = " ".join(x for x in (f"deployment {deployment_id}" if deployment_id else "", f"pool {pool}" if pool else "") if x)
    return call(api_url, api_key, timeout, f"count late runs of {target}", run)


def recent_flow_runs(
    api_url: str,
    api_key: str | None,
    deployment_id: str,
    limit: int = 10,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    state_types: list[str] | tuple[str, ...] | None = None,
) -> list[FlowRunInfo]:
    """The deployment's latest flow runs, newest (by expected start) first.

    `state_types` (e.g. COMPLETED, FAILED, CRASHED) keeps only runs in those states: without it, a
    scheduled deployment's future runs (created days ahead) fill the whole `limit`.
    """
    deployment_uuid = as_uuid(deployment_id, "deployment")
    if state_types is not None:
        unknown = [t for t in state_types if t not in _STATE_TYPES]
        if unknown:
            raise UsageError(f"unknown flow run state type(s): {', '.join(unknown)}")

    async def run(client) -> list[FlowRunInfo]:
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterDeploymentId,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        state = None
        if state_types is not None:
            state = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(t) for t in state_types]))
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_uuid]), state=state
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )
        return [_flow_run_info(r) for r in runs]

    return call(api_url, api_key, timeout, f"read flow runs of deployment {deployment_id}", run)


def read_flow_run(api_url: str, api_key: str | None, flow_run_id: str, timeout: float = DEFAULT_TIMEOUT) -> FlowRunInfo:
    """One flow run; NotFound if there is none with that id."""
    run_uuid = as_uuid(flow_run_id, "flow run")

    async def run(client) -> FlowRunInfo:
        return _flow_run_info(await client.read_flow_run(run_uuid))

    return call(api_url, api_key, timeout, f"read flow run {flow_run_id}", run)


def read_secret_block(api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """The value of Secret block `name`, or None if there is no such block.

    The caller must register the value with its redactor before doing anything else with it.
    JSON-valued secrets come back JSON-encoded.
    """

    async def run(client) -> str | None:
        from prefect.exceptions import ObjectNotFound

        try:
            document = await client.read_block_document_by_name(name, SECRET_BLOCK_TYPE, include_secrets=True)
        except ObjectNotFound:
            return None
        value = (document.data or {}).get("value")
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)

    return call(api_url, api_key, timeout, f"read Secret block {name}", run, carries_secret=True)
