"""Checks and repairs against a user's Prefect (Cloud or self-hosted server), via the official client.

Every function builds its own client from an explicit `api_url` and optional `api_key` (never from
the ambient Prefect profile), runs one bounded async conversation with it, and returns plain
dataclasses. Failures surface as pipectl errors:

- `Unreachable`: connection failed, timed out, or the API answered 5xx / 429 (an outage);
- `Unauthorized`: HTTP 401/403;
- `NotFound`: the named thing does not exist (where "absent" is not an answer of its own);
- `ConnectorError`: any other refusal.

Error messages never contain an API key or a Secret block value. Prefect is imported lazily, so
importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable, UsageError

DEFAULT_TIMEOUT = 15.0
SECRET_BLOCK_TYPE = "secret"
_STATE_TYPES = (
    "SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING",
)

T = TypeVar("T")


# ---------------------------------------------------------------- results


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


# ---------------------------------------------------------------- plumbing


def _safe_url(api_url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(api_url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=host)
    return urlunsplit(parts)


def _scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _http_detail(exc: Exception) -> str:
    """A short reason from a Prefect/httpx HTTP error: the API's `detail`, never the request."""
    response = getattr(exc, "response", None)
    if response is None:
        return ""
    try:
        detail = response.json().get("detail", "")
    except Exception:  # noqa: BLE001 - not JSON
        detail = response.text or ""
    if not isinstance(detail, str):
        detail = json.dumps(detail)
    return " ".join(detail.split())[:200]


def _status_code(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, also from code that already runs an event loop (then in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="pipectl-prefect", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _call(
    api_url: str,
    api_key: str | None,
    timeout: float,
    what: str,
    fn: Callable[[Any], Awaitable[T]],
    *,
    secrets: tuple[str | None, ...] = (),
    carries_secret: bool = False,
) -> T:
    """Run `await fn(client)` against the API within `timeout` seconds, translating failures.

    `what` names the operation in messages ("read deployment x/y"). With `carries_secret` the
    request or response holds a secret value: the API's error detail is left out of the message
    and the original exception is not chained.
    """
    import httpx
    from prefect.client.orchestration import PrefectClient

    where = _safe_url(api_url)
    hidden = (api_key, *secrets)

    async def main() -> T:
        client = PrefectClient(
            api_url,
            api_key=api_key or None,
            httpx_settings={"timeout": httpx.Timeout(timeout)},
        )
        async with client:
            return await fn(client)

    try:
        return _run_sync(lambda: asyncio.wait_for(main(), timeout))
    except (ConnectorError, UsageError):
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a one-line pipectl error
        cause: Exception = exc
        error = _translate(exc, where, what, timeout, hidden, carries_secret)
    if carries_secret:
        # Raised outside the except block: no __context__ that could lead back to the request body.
        raise error from None
    raise error from cause


def _translate(
    exc: Exception, where: str, what: str, timeout: float, hidden: tuple[str | None, ...], carries_secret: bool
) -> Exception:
    import httpx
    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, ObjectNotFound):
        return NotFound(f"Prefect at {where}: {what}: not found")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Unreachable(f"Prefect at {where} did not answer within {timeout:g}s ({what})")
    if isinstance(exc, httpx.HTTPStatusError):  # PrefectHTTPStatusError is a subclass
        code = _status_code(exc)
        if code in (401, 403):
            return Unauthorized(f"Prefect at {where} refused the credentials (HTTP {code}) for: {what}")
        if code == 404:
            return NotFound(f"Prefect at {where}: {what}: not found (HTTP 404)")
        detail = "" if carries_secret else _scrub(_http_detail(exc), hidden)
        message = f"Prefect at {where} answered HTTP {code} to: {what}" + (f": {detail}" if detail else "")
        if code is not None and (code >= 500 or code in (408, 429)):
            return Unreachable(message)
        return ConnectorError(message)
    if isinstance(exc, (httpx.TransportError, OSError)):
        return Unreachable(f"Prefect at {where} is unreachable ({type(exc).__name__}) for: {what}")
    detail = "" if carries_secret else _scrub(" ".join(str(exc).split())[:200], hidden)
    return ConnectorError(f"Prefect at {where}: {what} failed: {type(exc).__name__}" + (f": {detail}" if detail else ""))


def _dt(value: Any) -> datetime | None:
    """A plain, timezone-aware stdlib datetime (Prefect returns its own subclasses)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)


def _plain(value: Any) -> Any:
    """Deep plain-JSON copy (dicts, lists, str, numbers) of what the API returned."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


def _enum(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _uuid(value: str | UUID, what: str) -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        raise UsageError(f"not a valid {what} id: {value!r}") from None


def _split_deployment_name(name: str) -> tuple[str, str]:
    flow_name, sep, deployment_name = name.partition("/")
    if not sep or not flow_name or not deployment_name or "/" in deployment_name:
        raise UsageError(f"deployment name must be FLOW/DEPLOYMENT, got {name!r}")
    return flow_name, deployment_name


def _deployment_info(d: Any, flow_name: str) -> DeploymentInfo:
    return DeploymentInfo(
        id=str(d.id),
        name=d.name,
        flow_name=flow_name,
        paused=bool(d.paused),
        status=_enum(getattr(d, "status", None)),
        work_pool_name=d.work_pool_name,
        work_queue_name=d.work_queue_name,
        job_variables=_plain(d.job_variables) or {},
        entrypoint=d.entrypoint,
        pull_steps=_plain(d.pull_steps),
        parameters=_plain(d.parameters) or {},
        updated=_dt(d.updated),
    )


def _flow_run_info(r: Any) -> FlowRunInfo:
    state = r.state
    return FlowRunInfo(
        id=str(r.id),
        name=r.name,
        deployment_id=str(r.deployment_id) if r.deployment_id else None,
        state_type=_enum(state.type) if state else None,
        state_name=state.name if state else None,
        expected_start_time=_dt(r.expected_start_time),
        start_time=_dt(r.start_time),
        end_time=_dt(r.end_time),
        work_pool_name=r.work_pool_name,
    )


# ---------------------------------------------------------------- checks (read-only)


def api_health(api_url: str, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Check the API answers and accepts the credentials; return the server version.

    Returns "unknown" where the API does not publish its version (Prefect Cloud workspaces).
    """

    async def run(client) -> str:
        problem = await client.api_healthcheck()
        if problem is not None and _status_code(problem) != 404:  # some proxies do not route /health
            raise problem
        version = "unknown"
        try:
            version = str(await client.api_version())
        except Exception as exc:  # noqa: BLE001 - only 404 means "no version endpoint"
            if _status_code(exc) != 404:
                raise
        # /health may answer anonymously; an authenticated read proves the credentials.
        await client.read_work_pools(limit=1)
        return version

    return _call(api_url, api_key, timeout, "health check", run)


def read_deployment(
    api_url: str, api_key: str | None, name: str, timeout: float = DEFAULT_TIMEOUT
) -> DeploymentInfo | None:
    """The deployment "flow/deployment", or None if it does not exist."""
    flow_name, _ = _split_deployment_name(name)

    async def run(client) -> DeploymentInfo | None:
        from prefect.exceptions import ObjectNotFound

        try:
            deployment = await client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None
        return _deployment_info(deployment, flow_name)

    return _call(api_url, api_key, timeout, f"read deployment {name}", run)


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
            status=_enum(pool.status),
            concurrency_limit=pool.concurrency_limit,
            workers=[
                WorkerInfo(name=w.name, status=_enum(w.status) or "UNKNOWN", last_heartbeat=_dt(w.last_heartbeat_time))
                for w in workers
            ],
        )

    return _call(api_url, api_key, timeout, f"read work pool {name}", run)


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
    deployment_uuid = _uuid(deployment_id, "deployment") if deployment_id is not None else None

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
    return _call(api_url, api_key, timeout, f"count late runs of {target}", run)


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
    deployment_uuid = _uuid(deployment_id, "deployment")
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

    return _call(api_url, api_key, timeout, f"read flow runs of deployment {deployment_id}", run)


def read_flow_run(api_url: str, api_key: str | None, flow_run_id: str, timeout: float = DEFAULT_TIMEOUT) -> FlowRunInfo:
    """One flow run; NotFound if there is none with that id."""
    run_uuid = _uuid(flow_run_id, "flow run")

    async def run(client) -> FlowRunInfo:
        return _flow_run_info(await client.read_flow_run(run_uuid))

    return _call(api_url, api_key, timeout, f"read flow run {flow_run_id}", run)


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

    return _call(api_url, api_key, timeout, f"read Secret block {name}", run, carries_secret=True)


# ---------------------------------------------------------------- repairs (writes)


def update_job_variables(
    api_url: str,
    api_key: str | None,
    deployment_id: str,
    job_variables: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Replace the deployment's job variables with `job_variables` (the whole dict, not a merge)."""
    deployment_uuid = _uuid(deployment_id, "deployment")
    job_variables = copy.deepcopy(job_variables)

    async def run(client) -> None:
        from prefect.client.schemas.actions import DeploymentUpdate

        await client.update_deployment(deployment_uuid, DeploymentUpdate(job_variables=job_variables))

    _call(api_url, api_key, timeout, f"update job variables of deployment {deployment_id}", run)


def create_flow_run(
    api_url: str,
    api_key: str | None,
    deployment_id: str,
    name: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Schedule a run of the deployment now; returns the flow run id."""
    deployment_uuid = _uuid(deployment_id, "deployment")

    async def run(client) -> str:
        flow_run = await client.create_flow_run_from_deployment(
            deployment_uuid, parameters=dict(parameters or {}), name=name
        )
        return str(flow_run.id)

    return _call(api_url, api_key, timeout, f"create a flow run of deployment {deployment_id}", run)


def save_secret_block(
    api_url: str, api_key: str | None, name: str, value: str, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Create Secret block `name`, or overwrite its value if it exists."""

    async def run(client) -> None:
        from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
        from prefect.exceptions import ObjectNotFound

        block_type = await client.read_block_type_by_slug(SECRET_BLOCK_TYPE)
        schema = await client.get_most_recent_block_schema_for_block_type(block_type.id)
        if schema is None:
            raise ConnectorError(f"Prefect at {_safe_url(api_url)} has no schema for the Secret block type")
        try:
            existing = await client.read_block_document_by_name(name, SECRET_BLOCK_TYPE, include_secrets=False)
        except ObjectNotFound:
            existing = None
        if existing is None:
            await client.create_block_document(
                BlockDocumentCreate(
                    name=name, block_type_id=block_type.id, block_schema_id=schema.id, data={"value": value}
                )
            )
        else:
            await client.update_block_document(
                existing.id,
                BlockDocumentUpdate(block_schema_id=schema.id, data={"value": value}, merge_existing_data=False),
            )

    _call(api_url, api_key, timeout, f"save Secret block {name}", run, secrets=(value,), carries_secret=True)


def create_deployment(
    api_url: str,
    api_key: str | None,
    *,
    flow_name: str,
    name: str,
    entrypoint: str,
    work_pool: str,
    job_variables: dict[str, Any] | None = None,
    path: str | None = None,
    pull_steps: list[dict[str, Any]] | None = None,
    parameters: dict[str, Any] | None = None,
    parameter_schema: dict[str, Any] | None = None,
    work_queue_name: str | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
    replace: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Register a deployment that is missing; returns its id.

    The code comes from `path` (a directory on the worker's machine: a set_working_directory pull
    step) or from explicit `pull_steps` (e.g. a git_clone step). Without `parameter_schema` the
    server does not enforce parameters. Refuses to touch an existing deployment unless `replace`.
    """
    if (path is None) == (pull_steps is None):
        raise UsageError("create_deployment needs exactly one of path or pull_steps")
    steps = pull_steps if pull_steps is not None else [
        {"prefect.deployments.steps.set_working_directory": {"directory": path}}
    ]
    full_name = f"{flow_name}/{name}"
    _split_deployment_name(full_name)

    async def run(client) -> str:
        from prefect.exceptions import ObjectNotFound

        try:
            existing = await client.read_deployment_by_name(full_name)
        except ObjectNotFound:
            existing = None
        if existing is not None and not replace:
            raise ConnectorError(f"deployment {full_name} already exists (id {existing.id}); not replacing it")
        flow_id = await client.create_flow_from_name(flow_name)
        deployment_id = await client.create_deployment(
            flow_id,
            name,
            work_pool_name=work_pool,
            work_queue_name=work_queue_name,
            entrypoint=entrypoint,
            pull_steps=copy.deepcopy(steps),
            job_variables=copy.deepcopy(job_variables or {}),
            parameters=copy.deepcopy(parameters or {}),
            parameter_openapi_schema=parameter_schema,
            enforce_parameter_schema=parameter_schema is not None,
            tags=list(tags or []),
            description=description,
        )
        return str(deployment_id)

    return _call(api_url, api_key, timeout, f"create deployment {full_name}", run)
