"""The sandbox's Prefect (server + process worker + seed) and pipectl's Prefect connector, end to end.

One Postgres, one Prefect server and one worker for the whole module; everything lives under a
temporary directory (PREFECT_HOME included) and is stopped at the end.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.postgres import create_database, drop_database

from pipectl import errors
from pipectl.connectors import prefect as connector
from pipectl.connectors import prefect_runs
from pipectl.connectors import prefect_write as writes
from pipectl.sandbox import prefect_stack as stack
from pipectl.sandbox import procs

TOKEN_ID = "ak-sandbox-token-id"
TOKEN_SECRET = "as-sandbox-token-secret-value"

SCHEMA = """
CREATE TABLE workflow_states (
    id bigserial PRIMARY KEY,
    batch_id int,
    step_name text,
    status text,
    payload jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
)
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prefect-stack")


@pytest.fixture(scope="module", autouse=True)
def isolated_env(base):
    """Nothing may touch ~/.prefect or ~/.modal.toml; credentials in *our* env must not reach flows."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_HOME", str(base / "client-home"))
    mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    mp.setenv("MODAL_CONFIG_PATH", str(base / "modal.toml"))
    # Present in the parent on purpose: start_worker must strip them (else the incident can't happen).
    mp.setenv("MODAL_TOKEN_ID", "ak-leaked-from-parent")
    mp.setenv("MODAL_TOKEN_SECRET", "as-leaked-from-parent")
    (base / "modal.toml").write_text("")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def database_url(pg_server) -> str:
    import psycopg

    uri = create_database(pg_server)
    with psycopg.connect(uri) as conn:
        conn.execute(SCHEMA)
    yield uri
    drop_database(pg_server, uri)


@pytest.fixture(scope="module")
def api_url(base) -> str:
    run_dir = base / "run"
    port = procs.free_port()
    started = time.monotonic()
    stack.start_server(base / "prefect-home", port, run_dir)
    print(f"\nprefect server ready in {time.monotonic() - started:.1f}s")
    try:
        yield stack.api_url_for(port)
    finally:
        stack.stop_worker(run_dir)
        stack.stop_server(run_dir)


@pytest.fixture(scope="module")
def seeded(api_url) -> dict[str, str]:
    return stack.seed(api_url, modal_token_id=TOKEN_ID, modal_token_secret=TOKEN_SECRET)


@pytest.fixture(scope="module")
def worker(api_url, seeded, database_url, base):
    started = time.monotonic()
    env = {
        "DATABASE_URL": database_url,
        "MODAL_SERVER_URL": f"http://127.0.0.1:{procs.free_port()}",  # nothing listens there
        "MODAL_CONFIG_PATH": str(base / "modal.toml"),
        "MODAL_DISABLE_API_PROXY": "1",
        "MODAL_TOKEN_ID": "ak-leaked-from-caller",  # must be dropped too
    }
    proc = stack.start_worker(api_url, stack.POOL, base / "run", env)
    print(f"\nprefect worker heartbeating in {time.monotonic() - started:.1f}s")
    yield proc
    stack.stop_worker(base / "run")


# ---------------------------------------------------------------- seed


def test_seed_is_idempotent_and_resets(api_url, seeded):
    assert set(seeded) == {stack.ORCHESTRATOR, stack.PROCESS_JOB}
    # Drift the setup the way the incident did, then re-seed: same ids, everything back.
    stack.set_job_variables(api_url, stack.ORCHESTRATOR, stack.broken_job_variables())
    stack.pause_deployment(api_url, stack.ORCHESTRATOR)
    again = stack.seed(api_url, modal_token_id="ak-other", modal_token_secret="as-other")
    assert again == seeded
    assert connector.read_secret_block(api_url, None, stack.SECRET_TOKEN_ID) == "ak-other"
    again = stack.seed(api_url, modal_token_id=TOKEN_ID, modal_token_secret=TOKEN_SECRET)
    assert again == seeded

    deployment = connector.read_deployment(api_url, None, stack.ORCHESTRATOR)
    assert deployment.job_variables == stack.healthy_job_variables()
    assert not deployment.paused
    assert connector.read_secret_block(api_url, None, stack.SECRET_TOKEN_SECRET) == TOKEN_SECRET


# ---------------------------------------------------------------- connector reads


def test_connector_reads(api_url, seeded, worker):
    from importlib.metadata import version

    assert connector.api_health(api_url, None, timeout=5) == version("prefect")  # the server the sandbox runs

    deployment = connector.read_deployment(api_url, None, stack.ORCHESTRATOR)
    assert deployment.id == seeded[stack.ORCHESTRATOR]
    assert deployment.full_name == stack.ORCHESTRATOR
    assert deployment.work_pool_name == stack.POOL
    assert deployment.entrypoint == "pipeline_flows.py:orchestrator_main"
    assert deployment.job_variables["env"]["MODAL_TOKEN_ID"] == "{{ prefect.blocks.secret.modal-token-id }}"
    assert deployment.updated is not None and deployment.updated.tzinfo is not None
    assert type(deployment.updated) is datetime

    pool = connector.read_work_pool(api_url, None, stack.POOL)
    assert (pool.type, pool.paused) == ("process", False)
    [live] = [w for w in pool.workers if w.name == "sandbox-worker"]
    assert live.status == "ONLINE"
    assert datetime.now(timezone.utc) - live.last_heartbeat < timedelta(seconds=60)

    assert connector.read_secret_block(api_url, None, stack.SECRET_TOKEN_ID) == TOKEN_ID
    assert connector.read_secret_block(api_url, None, "no-such-block") is None
    assert connector.read_deployment(api_url, None, "process_job/no-such") is None
    assert connector.read_work_pool(api_url, None, "no-such-pool") is None
    assert prefect_runs.count_late_runs(api_url, None, pool=stack.POOL) == 0
    with pytest.raises(errors.NotFound):
        prefect_runs.read_flow_run(api_url, None, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(errors.UsageError):
        connector.read_deployment(api_url, None, "no-slash")


# ---------------------------------------------------------------- connector repairs


def test_connector_repairs(api_url, seeded):
    deployment_id = seeded[stack.ORCHESTRATOR]
    fixed = {**stack.broken_job_variables(), "env": {**stack.healthy_job_variables()["env"], "EXTRA": "1"}}
    writes.update_job_variables(api_url, None, deployment_id, fixed)
    assert connector.read_deployment(api_url, None, stack.ORCHESTRATOR).job_variables == fixed

    writes.save_secret_block(api_url, None, "pipectl-test-secret", "first-value")
    writes.save_secret_block(api_url, None, "pipectl-test-secret", "second-value")
    assert connector.read_secret_block(api_url, None, "pipectl-test-secret") == "second-value"

    # The second incident: process_job/production was never registered.
    assert stack.delete_deployment(api_url, stack.PROCESS_JOB)
    assert connector.read_deployment(api_url, None, stack.PROCESS_JOB) is None
    new_id = writes.create_deployment(
        api_url, None, flow_name="process_job", name="production",
        entrypoint="pipeline_flows.py:process_job", work_pool=stack.POOL,
        job_variables={"env": {"LOG_LEVEL": "INFO"}}, path=str(stack.FLOWS_DIR),
    )
    created = connector.read_deployment(api_url, None, stack.PROCESS_JOB)
    assert created.id == new_id and created.work_pool_name == stack.POOL
    assert created.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(stack.FLOWS_DIR)}}]
    with pytest.raises(errors.ConnectorError, match="already exists"):
        writes.create_deployment(
            api_url, None, flow_name="process_job", name="production",
            entrypoint="pipeline_flows.py:process_job", work_pool=stack.POOL, path=str(stack.FLOWS_DIR))
    stack.seed(api_url, modal_token_id=TOKEN_ID, modal_token_secret=TOKEN_SECRET)


# ---------------------------------------------------------------- the incident


def test_incident_run_completes_while_rows_stay_queued(api_url, seeded, worker, database_url, base):
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM workflow_states")
        conn.execute(
            "INSERT INTO workflow_states (batch_id, step_name, status, payload) "
            "SELECT 7, 'normalize_company_name', 'PENDING', jsonb_build_object('n', n) FROM generate_series(1, 5) n")

    stack.seed(api_url, modal_token_id=TOKEN_ID, modal_token_secret=TOKEN_SECRET, healthy=False)
    try:
        deployment = connector.read_deployment(api_url, None, stack.ORCHESTRATOR)
        assert "MODAL_TOKEN_ID" not in deployment.job_variables.get("env", {})

        started = time.monotonic()
        run_id = writes.create_flow_run(api_url, None, deployment.id, name="incident-repro")
        picked_up = None
        deadline = time.monotonic() + 90
        while True:
            run = prefect_runs.read_flow_run(api_url, None, run_id)
            if picked_up is None and run.state_type != "SCHEDULED":
                picked_up = time.monotonic() - started
            if run.is_final:
                break
            assert time.monotonic() < deadline, f"flow run still {run.state_type} after 90s"
            time.sleep(0.25)
        print(f"\nrun picked up after {picked_up:.1f}s, {run.state_type} after {time.monotonic() - started:.1f}s")
    finally:
        stack.seed(api_url, modal_token_id=TOKEN_ID, modal_token_secret=TOKEN_SECRET)

    assert run.state_type == "COMPLETED"
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute("SELECT status, count(*) FROM workflow_states GROUP BY status").fetchall()
    assert statuses == [("QUEUED", 5)]
    # The flow got no Modal credentials: neither ours nor the worker caller's leaked into it.
    assert "AuthError" in (base / "run" / "prefect-worker.log").read_text()

    recent = prefect_runs.recent_flow_runs(api_url, None, deployment.id, limit=5)
    assert recent[0].id == run_id and recent[0].name == "incident-repro"
    assert recent[0].start_time <= recent[0].end_time


# ---------------------------------------------------------------- error translation


class _Stub(BaseHTTPRequestHandler):
    """Answers every request with `status`, except the (method, path) pairs listed in `routes`.

    A route whose body is None answers 422 and echoes the request body back, as FastAPI does.
    """

    status = 401
    routes: dict[tuple[str, str], tuple[int, bytes | None]] = {}

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        request = self.rfile.read(length).decode() if length else ""
        status, payload = self.routes.get((self.command, self.path.split("?")[0]), (self.status, b"{}"))
        if payload is None:
            payload = json.dumps({"detail": [{"msg": "invalid", "input": request}]}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args):
        pass


@pytest.fixture()
def stub():
    servers = []

    def start(status: int, routes: dict | None = None) -> str:
        handler = type("Handler", (_Stub,), {"status": status, "routes": routes or {}})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/api"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _fetch(url: str, body: dict | None = None) -> bytes:
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read()


def test_connector_errors(stub, api_url):
    key = "pnu_supersecretapikey"
    with pytest.raises(errors.Unauthorized) as info:
        connector.api_health(stub(401), key, timeout=5)
    assert key not in str(info.value)
    with pytest.raises(errors.Unauthorized):
        connector.read_deployment(stub(403), key, "a/b", timeout=5)
    with pytest.raises(errors.Unreachable):
        connector.read_work_pool(stub(500), key, "p", timeout=5)
    with pytest.raises(errors.Unreachable):
        connector.api_health(f"http://127.0.0.1:{procs.free_port()}/api", key, timeout=5)

    # A server that echoes the secret back in its 422: the error must not carry it, nor any cause.
    block_type = _fetch(f"{api_url}/block_types/slug/secret")
    block_type_id = json.loads(block_type)["id"]
    schemas = _fetch(f"{api_url}/block_schemas/filter",
                     {"block_schemas": {"block_type_id": {"any_": [block_type_id]}}})
    url = stub(404, {
        ("GET", "/api/block_types/slug/secret"): (200, block_type),
        ("POST", "/api/block_schemas/filter"): (200, schemas),
        ("POST", "/api/block_documents/"): (422, None),
    })
    with pytest.raises(errors.ConnectorError) as info:
        writes.save_secret_block(url, key, "modal-token-secret", "as-very-secret-value", timeout=5)
    message = str(info.value)
    assert "HTTP 422" in message
    assert "as-very-secret-value" not in message and key not in message
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_importing_connector_does_not_import_prefect():
    import subprocess
    import sys

    code = ("import sys, pipectl.connectors.prefect, pipectl.connectors.prefect_write; "
            "assert 'prefect' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
