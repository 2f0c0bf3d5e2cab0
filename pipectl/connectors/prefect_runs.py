"""Prefect flow runs, read-only: how many are Late or on their way, the latest of a deployment, one run,
and a run's state history, as plain dataclasses. Asked through `prefect_rest` like every read (see
`prefect`); inside a doctor run, repeated questions are shared (`shared_reads`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipectl.connectors.prefect_rest import DEFAULT_TIMEOUT, Conversation, as_uuid, call, parse_time
from pipectl.errors import UsageError
from pipectl.shared_reads import shared

_STATE_TYPES = (
    "SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING",
)


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
