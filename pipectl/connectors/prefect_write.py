"""Prefect, writes: job variables, flow runs, Secret blocks and deployments, for pipectl's repairs."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from pipectl.connectors.prefect_client import (
    DEFAULT_TIMEOUT,
    SECRET_BLOCK_TYPE,
    as_uuid,
    call,
    safe_url,
    split_deployment_name,
)
from pipectl.errors import ConnectorError, UsageError


def update_job_variables(
    api_url: str,
    api_key: str | None,
    deployment_id: str,
    job_variables: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Replace the deployment's job variables with `job_variables` (the whole dict, not a merge)."""
    deployment_uuid = as_uuid(deployment_id, "deployment")
    job_variables = copy.deepcopy(job_variables)

    async def run(client) -> None:
        from prefect.client.schemas.actions import DeploymentUpdate

        await client.update_deployment(deployment_uuid, DeploymentUpdate(job_variables=job_variables))

    call(api_url, api_key, timeout, f"update job variables of deployment {deployment_id}", run)


def create_flow_run(
    api_url: str,
    api_key: str | None,
    deployment_id: str,
    name: str | None = None,
    parameters: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Schedule a run of the deployment now; returns the flow run id."""
    deployment_uuid = as_uuid(deployment_id, "deployment")
    once = str(uuid.uuid4())  # a repeated request (after a 503) returns the run the first one created

    async def run(client) -> str:
        flow_run = await client.create_flow_run_from_deployment(
            deployment_uuid, parameters=dict(parameters or {}), name=name, idempotency_key=once
        )
        return str(flow_run.id)

    return call(api_url, api_key, timeout, f"create a flow run of deployment {deployment_id}", run)


def delete_flow_run(api_url: str, api_key: str | None, flow_run_id: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Delete a flow run (the probe's own, when it cleans up); False when it was already gone."""
    from prefect.exceptions import ObjectNotFound

    run_uuid = as_uuid(flow_run_id, "flow run")

    async def run(client) -> bool:
        try:
            await client.delete_flow_run(run_uuid)
        except ObjectNotFound:
            return False
        return True

    return call(api_url, api_key, timeout, f"delete flow run {flow_run_id}", run)


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
            raise ConnectorError(f"Prefect at {safe_url(api_url)} has no schema for the Secret block type")
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

    call(api_url, api_key, timeout, f"save Secret block {name}", run, secrets=(value,), carries_secret=True)


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
    schedule_every: float | None = None,
    concurrency_limit: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str:
    """Register a deployment that is missing; returns its id.

    The code comes from `path` (a directory on the worker's machine: a set_working_directory pull
    step) or from explicit `pull_steps` (e.g. a git_clone step; none for a module-path entrypoint of an
    installed package). Without `parameter_schema` the server does not enforce parameters. Refuses to
    touch an existing deployment unless `replace` (the server then replaces its schedules too).
    `schedule_every` (seconds) gives it one interval schedule; `concurrency_limit` caps its runs at once.
    """
    if (path is None) == (pull_steps is None):
        raise UsageError("create_deployment needs exactly one of path or pull_steps")
    steps = pull_steps if pull_steps is not None else [
        {"prefect.deployments.steps.set_working_directory": {"directory": path}}
    ]
    full_name = f"{flow_name}/{name}"
    split_deployment_name(full_name)

    async def run(client) -> str:
        from prefect.exceptions import ObjectNotFound

        try:
            existing = await client.read_deployment_by_name(full_name)
        except ObjectNotFound:
            existing = None
        if existing is not None and not replace:
            raise ConnectorError(f"deployment {full_name} already exists (id {existing.id}); not replacing it")
        flow_id = await client.create_flow_from_name(flow_name)
        schedules = None
        if schedule_every is not None:
            from datetime import timedelta

            from prefect.client.schemas.actions import DeploymentScheduleCreate
            from prefect.client.schemas.schedules import IntervalSchedule

            interval = IntervalSchedule(interval=timedelta(seconds=schedule_every))
            schedules = [DeploymentScheduleCreate(schedule=interval, active=True)]
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
            schedules=schedules,
            concurrency_limit=concurrency_limit,
        )
        return str(deployment_id)

    return call(api_url, api_key, timeout, f"create deployment {full_name}", run)
