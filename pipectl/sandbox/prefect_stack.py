"""The sandbox's Prefect: the seed that reproduces the production setup (work pool, Secret blocks,
deployments), the drills' helpers, and the server and worker processes (from `prefect_procs`).

This is sandbox-side code: it talks to its own server directly with the Prefect client. pipectl's
checks and repairs go through `pipectl.connectors.prefect` instead. Prefect is imported lazily so
that importing this module (e.g. for `sandbox down`) stays cheap.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipectl.sandbox.layout import MODAL_APP, MODAL_FUNCTION
from pipectl.sandbox.prefect_procs import (  # noqa: F401 - re-exported: the processes live there
    SERVER,
    WORKER,
    WORKER_UNSET,
    api_url_for,
    await_server,
    spawn_server,
    start_server,
    start_worker,
    stop_server,
    stop_worker,
    wait_for_health,
    wait_for_worker,
)
from pipectl.sandbox.prefect_procs import with_client as _with_client

FLOWS_DIR = Path(__file__).resolve().parent / "flows"
FLOWS_FILE = "pipeline_flows.py"

POOL = "managed-production"
ORCHESTRATOR = "orchestrator-main/data-enrichment-orchestrator"
PROCESS_JOB = "process_job/production"
SECRET_TOKEN_ID = "modal-token-id"
SECRET_TOKEN_SECRET = "modal-token-secret"

# What the production deployment has besides the Modal credentials; the process worker ignores
# job variables its base job template does not declare (pip_packages is a managed-pool variable).
EXTRA_JOB_VARIABLES: dict[str, Any] = {"pip_packages": ["modal>=1.0", "psycopg[binary]>=3.1"]}
EXTRA_ENV = {"LOG_LEVEL": "INFO"}
ORCHESTRATOR_ENV = {"MODAL_APP": MODAL_APP, "MODAL_FUNCTION": MODAL_FUNCTION}
"""Which Modal function the orchestrator spawns, named in its env as teams do (and `pipectl init` reads);
the incident lost the tokens, not these."""


def healthy_job_variables() -> dict[str, Any]:
    """The fixed production job variables: env taken from the Secret blocks at run start."""
    return {
        "env": {
            "MODAL_TOKEN_ID": "{{ prefect.blocks.secret.%s }}" % SECRET_TOKEN_ID,
            "MODAL_TOKEN_SECRET": "{{ prefect.blocks.secret.%s }}" % SECRET_TOKEN_SECRET,
            **ORCHESTRATOR_ENV,
            **EXTRA_ENV,
        },
        **EXTRA_JOB_VARIABLES,
    }


def broken_job_variables() -> dict[str, Any]:
    """The incident's job variables: no MODAL_TOKEN_* in env."""
    return {"env": {**ORCHESTRATOR_ENV, **EXTRA_ENV}, **EXTRA_JOB_VARIABLES}


# ---------------------------------------------------------------- client plumbing


def _flow_schema(function: str) -> dict[str, Any]:
    """The parameter schema of a flow in FLOWS_FILE (what `flow.from_source(...).deploy()` would send)."""
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint(f"{FLOWS_DIR / FLOWS_FILE}:{function}")
    return flow.parameters.model_dump_for_openapi()


async def _upsert_secret(client, name: str, value: str) -> None:
    from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate
    from prefect.exceptions import ObjectNotFound

    block_type = await client.read_block_type_by_slug("secret")
    schema = await client.get_most_recent_block_schema_for_block_type(block_type.id)
    try:
        existing = await client.read_block_document_by_name(name, "secret", include_secrets=False)
    except ObjectNotFound:
        existing = None
    if existing is None:
        await client.create_block_document(BlockDocumentCreate(
            name=name, block_type_id=block_type.id, block_schema_id=schema.id, data={"value": value}))
    else:
        await client.update_block_document(existing.id, BlockDocumentUpdate(
            block_schema_id=schema.id, data={"value": value}, merge_existing_data=False))


async def _upsert_deployment(client, full_name: str, function: str, schema: dict, job_variables: dict) -> str:
    flow_name, name = full_name.split("/", 1)
    flow_id = await client.create_flow_from_name(flow_name)
    # POST /deployments/ upserts on (flow, name): re-seeding resets every field we pass.
    deployment_id = await client.create_deployment(
        flow_id,
        name,
        work_pool_name=POOL,
        entrypoint=f"{FLOWS_FILE}:{function}",
        pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(FLOWS_DIR)}}],
        parameter_openapi_schema=schema,
        enforce_parameter_schema=True,
        job_variables=job_variables,
        paused=False,
        tags=["sandbox"],
    )
    return str(deployment_id)


# ---------------------------------------------------------------- seed and scenario helpers


def seed(api_url: str, *, modal_token_id: str, modal_token_secret: str, healthy: bool = True) -> dict[str, str]:
    """Create or reset the production setup. Idempotent. Returns {deployment name: id}.

    Resets the pool (and its work queues) to unpaused without concurrency limits, the Secret blocks'
    values, and every field of both deployments (job variables, pool, paused, schedules, limits).

    healthy=False leaves out the Modal credentials from the orchestrator's job variables (the incident).
    """
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    schemas = {fn: _flow_schema(fn) for fn in ("orchestrator_main", "process_job")}
    orchestrator_vars = healthy_job_variables() if healthy else broken_job_variables()

    async def run(client) -> dict[str, str]:
        await client.create_work_pool(
            WorkPoolCreate(name=POOL, type="process",
                           base_job_template=ProcessWorker.get_default_base_job_template(), is_paused=False),
            overwrite=True,  # also clears is_paused and the pool's concurrency limit
        )
        for queue in await client.read_work_queues(work_pool_name=POOL):
            if queue.is_paused or queue.concurrency_limit is not None:
                await client.update_work_queue(queue.id, is_paused=False, concurrency_limit=None)
        await _upsert_secret(client, SECRET_TOKEN_ID, modal_token_id)
        await _upsert_secret(client, SECRET_TOKEN_SECRET, modal_token_secret)
        return {
            ORCHESTRATOR: await _upsert_deployment(
                client, ORCHESTRATOR, "orchestrator_main", schemas["orchestrator_main"], orchestrator_vars),
            PROCESS_JOB: await _upsert_deployment(
                client, PROCESS_JOB, "process_job", schemas["process_job"], {"env": dict(EXTRA_ENV)}),
        }

    return _with_client(api_url, run)


async def _deployment_id(client, name: str):
    return (await client.read_deployment_by_name(name)).id


def set_job_variables(api_url: str, deployment: str, job_variables: dict[str, Any]) -> None:
    """Replace the deployment's job variables (e.g. broken_job_variables() to break it again)."""
    from prefect.client.schemas.actions import DeploymentUpdate

    async def run(client):
        await client.update_deployment(
            await _deployment_id(client, deployment), DeploymentUpdate(job_variables=job_variables))

    _with_client(api_url, run)


def delete_deployment(api_url: str, deployment: str) -> bool:
    """Delete e.g. process_job/production (the 'never registered' incident). False if it did not exist."""
    from prefect.exceptions import ObjectNotFound

    async def run(client) -> bool:
        try:
            await client.delete_deployment(await _deployment_id(client, deployment))
        except ObjectNotFound:
            return False
        return True

    return _with_client(api_url, run)


def pause_deployment(api_url: str, deployment: str, paused: bool = True) -> None:
    async def run(client):
        deployment_id = await _deployment_id(client, deployment)
        if paused:
            await client.pause_deployment(deployment_id)
        else:
            await client.resume_deployment(deployment_id)

    _with_client(api_url, run)


def pause_pool(api_url: str, pool: str = POOL, paused: bool = True) -> None:
    from prefect.client.schemas.actions import WorkPoolUpdate

    async def run(client):
        await client.update_work_pool(pool, WorkPoolUpdate(is_paused=paused))

    _with_client(api_url, run)


def trigger(api_url: str, deployment: str, parameters: dict[str, Any] | None = None) -> str:
    """Create a flow run of the deployment (scheduled now); returns its id."""

    async def run(client) -> str:
        flow_run = await client.create_flow_run_from_deployment(
            await _deployment_id(client, deployment), parameters=parameters or {})
        return str(flow_run.id)

    return _with_client(api_url, run)


def wait_for_run(api_url: str, run_id: str, timeout: float, state_name: str | None = None) -> str:
    """Poll until the flow run is final (or, with `state_name`, named so, e.g. Late); returns its state type."""
    from uuid import UUID

    deadline = time.monotonic() + timeout
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        async def read(client):
            return await client.read_flow_run(UUID(run_id))

        flow_run = _with_client(api_url, read)
        if flow_run.state is not None:
            state = flow_run.state.type.value
            if flow_run.state.name == state_name or (state_name is None and flow_run.state.is_final()):
                return state
        time.sleep(0.25)
    raise TimeoutError(f"flow run {run_id} still {state} after {timeout:.0f}s")



ACTIVE = ("PENDING", "RUNNING", "CANCELLING", "PAUSED")


def active_runs(api_url: str) -> int:
    """How many flow runs are executing (or about to): a heal must not reseed under their feet."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    async def run(client) -> int:
        kinds = FlowRunFilterStateType(any_=[StateType(kind) for kind in ACTIVE])
        states = FlowRunFilter(state=FlowRunFilterState(type=kinds))
        return await client.count_flow_runs(flow_run_filter=states)

    return _with_client(api_url, run)


def delete_flow_runs(api_url: str, batch: int = 200, timeout: float = 60.0) -> int:
    """Delete every flow run (Late, Crashed, Failed, Completed...): `up` leaves no run history either,
    and `prefect.runs` judges the latest runs. Returns how many were deleted."""
    from prefect.exceptions import ObjectNotFound

    async def run(client) -> int:
        deleted = 0
        while runs := await client.read_flow_runs(limit=batch):
            for flow_run in runs:
                try:
                    await client.delete_flow_run(flow_run.id)
                except ObjectNotFound:
                    pass
                deleted += 1
        return deleted

    return _with_client(api_url, run, timeout)
