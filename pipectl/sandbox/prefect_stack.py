"""The sandbox's Prefect: a local `prefect server` (SQLite, UI off), a process worker, and the seed
that reproduces the production setup (work pool, Secret blocks, deployments).

This is sandbox-side code: it talks to its own server directly with the Prefect client. pipectl's
checks and repairs go through `pipectl.connectors.prefect` instead. Prefect is imported lazily so
that importing this module (e.g. for `sandbox down`) stays cheap.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pipectl.sandbox import procs

FLOWS_DIR = Path(__file__).resolve().parent / "flows"
FLOWS_FILE = "pipeline_flows.py"

POOL = "managed-production"
ORCHESTRATOR = "orchestrator-main/data-enrichment-orchestrator"
PROCESS_JOB = "process_job/production"
SECRET_TOKEN_ID = "modal-token-id"
SECRET_TOKEN_SECRET = "modal-token-secret"

SERVER = "prefect-server"
WORKER = "prefect-worker"

# What the production deployment has besides the Modal credentials; the process worker ignores
# job variables its base job template does not declare (pip_packages is a managed-pool variable).
EXTRA_JOB_VARIABLES: dict[str, Any] = {"pip_packages": ["modal>=1.0", "psycopg[binary]>=3.1"]}
EXTRA_ENV = {"LOG_LEVEL": "INFO"}

# Environment variables the flow run must NOT inherit from the worker: it gets the Modal
# credentials only through the deployment's job variables, as in production.
WORKER_UNSET = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE", "PREFECT_API_KEY", "PREFECT_PROFILE")


def api_url_for(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def healthy_job_variables() -> dict[str, Any]:
    """The fixed production job variables: env taken from the Secret blocks at run start."""
    return {
        "env": {
            "MODAL_TOKEN_ID": "{{ prefect.blocks.secret.%s }}" % SECRET_TOKEN_ID,
            "MODAL_TOKEN_SECRET": "{{ prefect.blocks.secret.%s }}" % SECRET_TOKEN_SECRET,
            **EXTRA_ENV,
        },
        **EXTRA_JOB_VARIABLES,
    }


def broken_job_variables() -> dict[str, Any]:
    """The incident's job variables: no MODAL_TOKEN_* in env."""
    return {"env": dict(EXTRA_ENV), **EXTRA_JOB_VARIABLES}


def _quiet_env(home: Path) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
    }


# ---------------------------------------------------------------- processes


def start_server(home: Path, port: int, run_dir: Path, timeout: float = 90.0) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1:port with its own PREFECT_HOME and SQLite database.

    Returns once /api/health answers; raises (and stops the server) if it does not in time.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **_quiet_env(home),
        "PREFECT_SERVER_UI_ENABLED": "false",
        # runs nobody picks up are marked Late after 1 s, so the no-worker drill shows at once
        "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_API_URL": api_url_for(port),
    }
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.spawn(SERVER, argv, run_dir, env)
    try:
        wait_for_health(api_url_for(port), timeout, proc)
    except BaseException as exc:
        procs.stop(SERVER, run_dir)
        if isinstance(exc, Exception):
            raise RuntimeError(f"{exc} (see {run_dir / (SERVER + '.log')})") from exc
        raise
    return proc


def wait_for_health(api_url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"prefect server at {api_url} did not answer /health within {timeout:.0f}s")


def start_worker(
    api_url: str,
    pool: str,
    run_dir: Path,
    env: dict[str, str] | None = None,
    *,
    name: str = "sandbox-worker",
    wait: float | None = 60.0,
) -> subprocess.Popen:
    """`prefect worker start --pool POOL --type process`, polling every second.

    `env` (DATABASE_URL, MODAL_SERVER_URL, ...) reaches the flow runs; MODAL_TOKEN_ID/SECRET (and
    other credentials) are removed from the worker's environment even if this process has them.
    With `wait`, returns only once the worker has sent its first heartbeat.
    """
    env = dict(env or {})
    for key in WORKER_UNSET:
        env.pop(key, None)
    home = Path(env.get("PREFECT_HOME") or run_dir / "prefect-worker-home")
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **_quiet_env(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        **env,
    }
    unset: list[str] = []
    for key in WORKER_UNSET:
        unset += ["-u", key]
    argv = ["env", *unset, sys.executable, "-m", "prefect", "worker", "start",
            "--pool", pool, "--type", "process", "--name", name]
    proc = procs.spawn(WORKER, argv, run_dir, env)
    if wait:
        try:
            wait_for_worker(api_url, pool, name, wait, proc)
        except BaseException as exc:
            procs.stop(WORKER, run_dir)
            if isinstance(exc, Exception):
                raise RuntimeError(f"{exc} (see {run_dir / (WORKER + '.log')})") from exc
            raise
    return proc


def wait_for_worker(api_url: str, pool: str, name: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Block until worker `name` of `pool` has a heartbeat newer than when we started waiting."""
    from datetime import datetime, timedelta, timezone

    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    deadline = time.monotonic() + timeout

    async def beat(client) -> bool:
        try:
            workers = await client.read_workers_for_work_pool(pool)
        except Exception:  # noqa: BLE001 - the pool appears when the worker creates it
            return False
        return any(w.name == name and w.last_heartbeat_time and w.last_heartbeat_time >= since for w in workers)

    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"prefect worker exited with code {proc.returncode} before its first heartbeat")
        if _with_client(api_url, beat):
            return
        time.sleep(0.25)
    raise TimeoutError(f"prefect worker {name} did not heartbeat on pool {pool} within {timeout:.0f}s")


def stop_worker(run_dir: Path) -> bool:
    return procs.stop(WORKER, run_dir)


def stop_server(run_dir: Path) -> bool:
    return procs.stop(SERVER, run_dir)


# ---------------------------------------------------------------- client plumbing


def _with_client(api_url: str, fn, timeout: float = 30.0):
    """Run `await fn(client)` with a fresh Prefect client for `api_url`, bounded by `timeout`."""
    from prefect.client.orchestration import PrefectClient

    async def main():
        async with PrefectClient(api_url) as client:
            return await fn(client)

    return asyncio.run(asyncio.wait_for(main(), timeout))


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
            overwrite=True,
        )
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

