"""pipectl's Prefect reads over the REST API: against the sandbox's real server, and against a scripted
stand-in on 127.0.0.1 for what a real server rarely does on cue (429, 5xx, dropped connections, hangs).

Nothing here waits on the clock to synchronise: the stand-in counts and timestamps the requests it gets,
and signals when a request it will never answer has arrived.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pipectl import deadline
from pipectl.connectors import prefect as connector
from pipectl.connectors import prefect_runs
from pipectl.connectors import prefect_write as writes
from pipectl.connectors.prefect_client import WRITE_ATTEMPTS
from pipectl.errors import ConnectorError, NotFound, Unauthorized, Unreachable
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR, POOL

KEY = "pnu_rest-test-api-key-0123456789"
SECRET = "as-rest-test-secret-value-9876"
DEPLOYMENT = {"id": "6f1c1d5e-0000-4000-8000-000000000001", "name": "b", "paused": False, "status": "READY",
              "work_pool_name": "pool", "work_queue_name": "default", "job_variables": {"env": {"A": "1"}},
              "entrypoint": "f.py:main", "pull_steps": None, "parameters": {"n": 1},
              "updated": "2025-01-02T03:04:05.123456Z", "parameter_openapi_schema": {"type": "object"}}
OK = (200, DEPLOYMENT)


class Request(NamedTuple):
    method: str
    path: str  # as sent, with the query
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival


class Fake:
    """A Prefect stand-in. `routes` maps (method, path under /api) to a script of steps, served in order
    (the last one repeats): (status, JSON body[, headers: a callable value is computed when answering]),
    or "forward" (to `upstream`), "hang" (read the request, never answer), "drop" (close without
    answering), "trickle" (a valid answer, a byte every 0.1 s). Unscripted paths answer 404."""

    def __init__(self, routes: dict[tuple[str, str], list], upstream: str | None = None) -> None:
        self.routes = {key: list(steps) for key, steps in routes.items()}
        self.upstream = upstream
        self.requests: list[Request] = []
        self.hanging = threading.Event()
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": self}))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def step(self, method: str, path: str) -> Any:
        steps = self.routes.get((method, path))
        if not steps:
            return (404, {"detail": "Not Found"})
        return steps.pop(0) if len(steps) > 1 else steps[0]

    def calls(self, method: str, path: str) -> list[float]:
        """When each request to (method, path) arrived."""
        return [r.at for r in self.requests if (r.method, r.path.split("?")[0]) == (method, "/api" + path)]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    fake: Fake
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.fake
        fake.requests.append(Request(self.command, self.path, dict(self.headers),
                                     json.loads(body) if body else None, time.monotonic()))
        step = fake.step(self.command, self.path.split("?")[0].removeprefix("/api"))
        if step == "hang":
            fake.hanging.set()
            fake.release.wait(60)
            self.close_connection = True
            return
        if step == "drop":
            self.close_connection = True
            return
        if step == "trickle":
            self._send(200, json.dumps(DEPLOYMENT).encode() + b" " * 300, {}, trickle=True)
            return
        if step == "forward":
            status, data = _forward(fake.upstream + self.path.removeprefix("/api"), self.command, body)
            self._send(status, data, {})
            return
        status, payload, *headers = step
        self._send(status, json.dumps(payload).encode(), headers[0] if headers else {})

    def _send(self, status: int, data: bytes, headers: dict[str, str], trickle: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value() if callable(value) else value)  # a callable: computed on answering
        self.end_headers()
        if not trickle:
            self.wfile.write(data)
            return
        for i in range(len(data)):
            if self.fake.release.wait(0.1):
                return
            try:
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
            except OSError:  # the client gave up
                return

    do_GET = do_POST = do_PATCH = _handle

    def log_message(self, *args: Any) -> None:
        pass


def _forward(url: str, method: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body or None, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def fake():
    started: list[Fake] = []

    def start(routes: dict[tuple[str, str], list], upstream: str | None = None) -> Fake:
        started.append(Fake(routes, upstream))
        return started[-1]

    yield start
    for server in started:
        server.close()


def _truth(api_url: str, fn):
    """What the server holds, read with Prefect's own client."""
    from prefect.client.orchestration import PrefectClient

    async def main():
        async with PrefectClient(api_url) as client:
            return await fn(client)

    return asyncio.run(asyncio.wait_for(main(), 60))


# ---------------------------------------------------------------- against the real server


def test_reads_equal_what_the_server_holds(sandbox):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
        WorkPoolFilter,
        WorkPoolFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    url = sandbox.state.prefect_api_url
    deployment = connector.read_deployment(url, None, ORCHESTRATOR)
    pool = connector.read_work_pool(url, None, POOL)
    names = connector.secret_block_names(url, None)
    values = {name: connector.read_secret_block(url, None, name) for name in names}
    late = (prefect_runs.count_late_runs(url, None, pool=POOL),
            prefect_runs.count_late_runs(url, None, deployment_id=deployment.id))
    recent = prefect_runs.recent_flow_runs(url, None, deployment.id, limit=5)

    async def read(client):
        late_filter = FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Late"])))
        by_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        return {
            "deployment": await client.read_deployment_by_name(ORCHESTRATOR),
            "pool": await client.read_work_pool(POOL),
            "workers": await client.read_workers_for_work_pool(POOL),
            "blocks": await client.read_block_documents_by_type("secret", include_secrets=True),
            "late": (await client.count_flow_runs(flow_run_filter=late_filter, work_pool_filter=WorkPoolFilter(
                         name=WorkPoolFilterName(any_=[POOL]))),
                     await client.count_flow_runs(flow_run_filter=late_filter, deployment_filter=by_deployment)),
            "recent": await client.read_flow_runs(deployment_filter=by_deployment,
                                                  sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=5),
            "any_run": await client.read_flow_runs(limit=1),
        }

    truth = _truth(url, read)
    d = truth["deployment"]
    assert (deployment.id, deployment.name, deployment.full_name) == (str(d.id), d.name, ORCHESTRATOR)
    # status (READY / NOT_READY) follows the worker's polls: live state, which may change between the reads
    assert deployment.paused == d.paused and deployment.status in ("READY", "NOT_READY")
    assert (deployment.work_pool_name, deployment.work_queue_name, deployment.entrypoint) == (
        d.work_pool_name, d.work_queue_name, d.entrypoint)
    assert deployment.job_variables == d.job_variables and deployment.parameters == d.parameters
    assert deployment.pull_steps == d.pull_steps
    assert deployment.parameter_schema == d.parameter_openapi_schema
    assert deployment.updated <= d.updated and deployment.updated.tzinfo is not None  # read first, then truth

    p = truth["pool"]
    assert (pool.id, pool.name, pool.type, pool.paused, pool.concurrency_limit) == (
        str(p.id), p.name, p.type, p.is_paused, p.concurrency_limit)
    assert pool.status in ("READY", "NOT_READY", "PAUSED")  # live, like the deployment's
    assert sorted(w.name for w in pool.workers) == sorted(w.name for w in truth["workers"])
    assert all(w.last_heartbeat is None or w.last_heartbeat.tzinfo is not None for w in pool.workers)

    assert sorted(names) == sorted(b.name for b in truth["blocks"])
    assert {prefect_stack.SECRET_TOKEN_ID, prefect_stack.SECRET_TOKEN_SECRET} <= set(names)
    assert values == {b.name: b.data["value"] for b in truth["blocks"]}
    assert late == truth["late"]
    assert [r.id for r in recent] == [str(r.id) for r in truth["recent"]]

    assert connector.read_deployment(url, None, "orchestrator-main/no such deployment") is None
    assert connector.read_work_pool(url, None, "no such pool") is None
    assert connector.read_secret_block(url, None, "no-such-block") is None
    with pytest.raises(NotFound):
        prefect_runs.read_flow_run(url, None, "00000000-0000-0000-0000-000000000000")
    if truth["any_run"]:
        (r,) = truth["any_run"]
        run = prefect_runs.read_flow_run(url, None, str(r.id))
        assert (run.id, run.name, run.expected_start_time) == (str(r.id), r.name, r.expected_start_time)
        assert run.deployment_id == (str(r.deployment_id) if r.deployment_id else None)


def test_a_429_is_waited_out_once_when_retry_after_fits(sandbox, fake):
    url = sandbox.state.prefect_api_url
    flow, name = ORCHESTRATOR.split("/")
    path = f"/deployments/name/{flow}/{name}"
    server = fake({("GET", path): [(429, {"detail": "slow down"}, {"Retry-After": "1"}), "forward"]}, upstream=url)
    assert connector.read_deployment(server.url, KEY, ORCHESTRATOR, timeout=20) == \
        connector.read_deployment(url, None, ORCHESTRATOR)
    first, second = server.calls("GET", path)
    assert second - first >= 1.0  # waited at least what the server asked for (a lower bound: never flaky)


# ---------------------------------------------------------------- retries, against the stand-in


def test_retry_after_as_an_http_date_is_honoured(fake):
    server = fake({("GET", "/deployments/name/a/b"): [
        (429, {}, {"Retry-After": lambda: formatdate(time.time() + 3, usegmt=True)}), OK]})
    info = connector.read_deployment(server.url, KEY, "a/b", timeout=20)
    assert (info.id, info.flow_name, info.job_variables) == (DEPLOYMENT["id"], "a", {"env": {"A": "1"}})
    first, second = server.calls("GET", "/deployments/name/a/b")
    assert second - first >= 1.5  # whole seconds: at least 2 s of the 3 asked, however slow the machine


def test_a_5xx_is_retried_once_and_only_once(fake):
    server = fake({("GET", "/deployments/name/a/b"): [(500, {"detail": "boom"}), OK],
                   ("GET", "/work_pools/p"): [(503, {"detail": "down for a moment"})]})
    assert connector.read_deployment(server.url, KEY, "a/b", timeout=20).id == DEPLOYMENT["id"]
    assert len(server.calls("GET", "/deployments/name/a/b")) == 2
    with pytest.raises(Unreachable, match="HTTP 503") as info:
        connector.read_work_pool(server.url, KEY, "p", timeout=20)
    assert len(server.calls("GET", "/work_pools/p")) == 2
    assert server.url in str(info.value) and "read work pool p" in str(info.value)


def test_a_dropped_connection_is_retried_once(fake):
    server = fake({("POST", "/flow_runs/count"): ["drop", (200, 3)],
                   ("POST", "/work_pools/filter"): ["drop"]})
    assert prefect_runs.count_late_runs(server.url, KEY, pool="p", timeout=20) == 3
    assert len(server.calls("POST", "/flow_runs/count")) == 2
    with pytest.raises(Unreachable, match="unreachable"):
        connector.api_health(server.url, KEY, timeout=20)
    assert len(server.calls("POST", "/work_pools/filter")) == 2


def test_a_retry_after_longer_than_the_budget_fails_at_once(fake):
    server = fake({("GET", "/deployments/name/a/b"): [(429, {}, {"Retry-After": "120"}), OK]})
    with pytest.raises(Unreachable) as info:
        connector.read_deployment(server.url, KEY, "a/b", timeout=5)
    assert str(info.value) == (f"Prefect at {server.url} is rate limiting (HTTP 429, Retry-After 120s) "
                               "for: read deployment a/b")
    assert len(server.calls("GET", "/deployments/name/a/b")) == 1


# ---------------------------------------------------------------- deadlines


def test_a_hung_server_is_unreachable_within_the_budget_naming_the_url_and_the_call(fake):
    server = fake({("GET", "/deployments/name/a/b"): ["hang"]})
    seen: dict[str, Any] = {}

    def check() -> None:  # as the runner runs a check: tracked, in a thread of its own
        seen["waiting"] = deadline.track()
        try:
            connector.read_deployment(server.url, KEY, "a/b", timeout=5)
        except Exception as exc:  # noqa: BLE001 - looked at below
            seen["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(check,), daemon=True)
    thread.start()
    assert server.hanging.wait(30)
    assert seen["waiting"].last() == f"GET /deployments/name/a/b at {server.url}"
    thread.join(30)
    assert not thread.is_alive()
    error = seen["error"]
    assert isinstance(error, Unreachable)
    assert str(error) == (f"Prefect at {server.url} did not answer GET /deployments/name/a/b within 5s "
                          "(read deployment a/b)")
    assert seen["waiting"].last() == ""
    assert len(server.calls("GET", "/deployments/name/a/b")) == 1  # no retry after a timeout


def test_the_deadline_covers_the_whole_answer_and_the_retry(fake):
    """A server that keeps sending a byte now and then never trips a read timeout: the call's deadline does."""
    server = fake({("GET", "/deployments/name/a/b"): ["trickle"],
                   ("GET", "/work_pools/p"): [(502, {}), "hang"]})
    with pytest.raises(Unreachable, match=r"did not answer GET /deployments/name/a/b within 2s"):
        connector.read_deployment(server.url, KEY, "a/b", timeout=2)
    with pytest.raises(Unreachable, match=r"did not answer GET /work_pools/p within 8s \(read work pool p\)"):
        connector.read_work_pool(server.url, KEY, "p", timeout=8)
    assert len(server.calls("GET", "/work_pools/p")) == 2


# ---------------------------------------------------------------- health, credentials, names, secrets


def test_api_health_is_decided_by_the_authenticated_read(fake):
    refused = (401, {"detail": "Unauthorized"})
    server = fake({("GET", "/health"): [refused], ("GET", "/admin/version"): [refused],
                   ("POST", "/work_pools/filter"): [(200, [])]})
    assert connector.api_health(server.url, KEY, timeout=10) == "unknown"
    server = fake({("GET", "/health"): [refused], ("GET", "/admin/version"): [(200, "3.9.1")],
                   ("POST", "/work_pools/filter"): [(200, [])]})
    assert connector.api_health(server.url, KEY, timeout=10) == "3.9.1"
    server = fake({("GET", "/health"): [(200, True)], ("GET", "/admin/version"): [(200, "3.9.1")],
                   ("POST", "/work_pools/filter"): [(403, {"detail": f"key {KEY} is revoked"})]})
    with pytest.raises(Unauthorized) as info:
        connector.api_health(server.url, KEY, timeout=10)
    assert str(info.value) == f"Prefect at {server.url} refused the credentials (HTTP 403) for: health check"


def test_requests_carry_only_the_explicit_url_and_key(fake, monkeypatch):
    server = fake({("POST", "/work_pools/filter"): [(200, [])]})
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_ambient-key-that-must-not-be-used")
    connector.api_health(server.url, KEY, timeout=10)
    connector.api_health(server.url, None, timeout=10)
    auth = [r.headers.get("Authorization") for r in server.requests]
    assert auth[0] == f"Bearer {KEY}" and None in auth
    assert not any(a and "ambient" in a for a in auth)


def test_names_are_url_encoded(fake):
    server = fake({("GET", "/deployments/name/my%20flow/dep%3Fx"): [OK],
                   ("GET", "/work_pools/pool%20%231"): [(404, {"detail": "Work pool not found."})],
                   ("GET", "/block_types/slug/secret/block_documents/name/a%2Fb"): [(404, {})]})
    assert connector.read_deployment(server.url, KEY, "my flow/dep?x", timeout=10).flow_name == "my flow"
    assert connector.read_work_pool(server.url, KEY, "pool #1", timeout=10) is None
    assert connector.read_secret_block(server.url, KEY, "a/b", timeout=10) is None
    assert server.requests[-1].path == \
        "/api/block_types/slug/secret/block_documents/name/a%2Fb?include_secrets=true"


def test_a_secret_value_never_reaches_an_error(fake):
    path = "/block_types/slug/secret/block_documents/name/token"
    for answer in [(500, {"detail": f"cannot decrypt {SECRET} with {KEY}"}),
                   (422, {"detail": [{"input": SECRET}]}),
                   (200, {"data": SECRET}),  # an answer of the wrong shape
                   (200, [SECRET])]:
        server = fake({("GET", path): [answer]})
        with pytest.raises(ConnectorError) as info:
            connector.read_secret_block(server.url, KEY, "token", timeout=10)
        error = info.value
        assert SECRET not in str(error) and KEY not in str(error)
        assert error.__cause__ is None and error.__context__ is None
        assert "read Secret block token" in str(error)
    server = fake({("GET", path): [(200, {"data": {"value": {"nested": SECRET}}})]})
    assert json.loads(connector.read_secret_block(server.url, KEY, "token", timeout=10)) == {"nested": SECRET}
    # elsewhere the API's detail is kept, without the key
    server = fake({("GET", "/work_pools/p"): [(400, {"detail": f"bad key {KEY}"})]})
    with pytest.raises(ConnectorError, match=r"HTTP 400 to: read work pool p \(GET /work_pools/p\): bad key \*\*\*$"):
        connector.read_work_pool(server.url, KEY, "p", timeout=10)


def test_secret_block_names_read_every_page(fake):
    page = [{"name": n} for n in "ab"]
    server = fake({("POST", "/block_documents/filter"): [(200, page), (200, [{"name": "c"}, {"name": "d"}]),
                                                         (200, [{"name": "e"}])]})
    assert connector.secret_block_names(server.url, KEY, timeout=10) == list("abcde")
    assert [r.body["offset"] for r in server.requests] == [0, 2, 4]
    assert server.requests[0].body["block_types"] == {"slug": {"any_": ["secret"]}}
    assert server.requests[0].body["include_secrets"] is False
    server = fake({("POST", "/block_documents/filter"): [(200, page)]})  # a server that ignores the offset
    assert connector.secret_block_names(server.url, KEY, timeout=10) == ["a", "b"]


def test_a_csrf_protected_server_gets_a_token(fake):
    server = fake({("POST", "/flow_runs/count"): [(403, {"detail": "Missing CSRF token."}), (200, 0)],
                   ("GET", "/csrf-token"): [(200, {"token": "tok", "expiration": "2999-01-01T00:00:00Z"})]})
    assert prefect_runs.count_late_runs(server.url, KEY, pool="p", timeout=10) == 0
    last = [r for r in server.requests if r.method == "POST"][-1]
    assert last.headers.get("Prefect-Csrf-Token") == "tok"
    assert last.body["work_pools"] == {"name": {"any_": ["p"]}}


WRITE_DEADLINE = 120
"""Seconds for a write with its repeats: ample, so only the count of attempts is tested, not the machine's speed."""


def test_writes_through_the_prefect_client_are_repeated_by_pipectl_only_when_not_carried_out(fake):
    """The Prefect client's own retries are off; pipectl repeats a write (a few times, within the deadline)
    only when the server says it did nothing (503: Prefect's database was busy)."""
    import prefect.client.orchestration  # noqa: F401 - loaded before any deadline starts, as pipectl's CLI does

    path = f"/deployments/{DEPLOYMENT['id']}"
    server = fake({("PATCH", path): [(503, {"exception_message": "Service Unavailable"})],
                   ("GET", "/csrf-token"): [(422, {"detail": "CSRF protection is disabled."})]})
    with pytest.raises(Unreachable, match="HTTP 503"):
        writes.update_job_variables(server.url, KEY, DEPLOYMENT["id"], {"env": {}}, timeout=WRITE_DEADLINE)
    assert len(server.calls("PATCH", path)) == WRITE_ATTEMPTS
    server = fake({("PATCH", path): [(503, {}), (204, None)],
                   ("GET", "/csrf-token"): [(422, {"detail": "CSRF protection is disabled."})]})
    writes.update_job_variables(server.url, KEY, DEPLOYMENT["id"], {"env": {}}, timeout=WRITE_DEADLINE)
    assert len(server.calls("PATCH", path)) == 2
    server = fake({("PATCH", path): [(502, {})],  # it may have been done: not repeated
                   ("GET", "/csrf-token"): [(422, {"detail": "CSRF protection is disabled."})]})
    with pytest.raises(Unreachable, match="HTTP 502"):
        writes.update_job_variables(server.url, KEY, DEPLOYMENT["id"], {"env": {}}, timeout=WRITE_DEADLINE)
    assert len(server.calls("PATCH", path)) == 1


def test_importing_the_read_connector_does_not_import_prefect():
    code = "import pipectl.connectors.prefect, sys; assert 'prefect' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
