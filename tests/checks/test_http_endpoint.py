"""http.endpoint against a real local HTTP server: status, the JSON field that tells the truth, outages."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipectl.checks.http_endpoint import HttpEndpoint, lookup, same_json
from pipectl.config import PipelineConfig
from pipectl.interface import Context
from pipectl.model import DoctorResult, Status
from pipectl.redact import redactor
from pipectl.report import json as json_report
from pipectl.report import markdown as markdown_report
from pipectl.runner import run_checks

ROUTES = {
    "/together": (200, {"status": "ok"}),
    "/healthz": (200, {"status": "ok", "data": {"queued": 3, "workers": [{"id": "w1"}]}}),
    "/enqueue": (201, {"success": True, "queued": False}),  # the second incident: success, nothing queued
    "/enqueue-ok": (201, {"success": True, "queued": True}),
    "/count": (200, {"queued": 1}),
    "/broken": (500, {"error": "boom"}),
    "/page": (200, "<html>not json</html>"),
    "/moved": (302, ""),
}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        path = self.path.split("?")[0]
        self.server.requests.append((self.command, self.path))  # type: ignore[attr-defined]
        if path == "/slow":
            time.sleep(3)
        if path == "/together":  # answers only once three requests are in flight at the same time
            try:
                self.server.together.wait()  # type: ignore[attr-defined]
            except threading.BrokenBarrierError:
                path = "/broken"
        status, body = ROUTES.get(path, (404, {"error": "no route"}))
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
        if status == 302:
            self.send_header("Location", "/healthz")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []  # type: ignore[attr-defined]
    httpd.together = threading.Barrier(3, timeout=60)  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def doctor(endpoints: list[dict], timeout: float = 10) -> DoctorResult:
    config = PipelineConfig(http=endpoints)
    return run_checks([HttpEndpoint], Context(config=config, timeout=timeout))


# route, extra [[http]] keys, expected status, expected summary fragment, expected evidence subset
QUEUED = {"json_field": "queued", "json_value": True}
CASES = {
    "healthy": ("/healthz", {}, "ok", "200 in", {"status": 200}),
    "healthy field": (
        "/healthz", {"json_field": "data.queued", "json_value": 3}, "ok", "data.queued = 3", {"got": 3},
    ),
    "field in a list": ("/healthz", {"json_field": "data.workers.0.id", "json_value": "w1"}, "ok", "w1", {}),
    "truthy without a value": (
        "/healthz", {"json_field": "data.queued"}, "ok", "", {"expected": "present and truthy"},
    ),
    "claims success, queued nothing": (
        "/enqueue", {"method": "POST", "expect_status": 201, **QUEUED},
        "fail", "queued is false, expected true",
        {"status": 201, "field": "queued", "expected": True, "got": False, "method": "POST"},
    ),
    "claims success, falsy field": (
        "/enqueue", {"expect_status": 201, "json_field": "queued"}, "fail", "queued is false", {},
    ),
    "queued for real": ("/enqueue-ok", {"expect_status": 201, **QUEUED}, "ok", "", {}),
    "true is not 1": ("/count", QUEUED, "fail", "queued is 1, expected true", {}),
    "wrong status": (
        "/enqueue", {}, "fail", "answered 201, expected 200", {"status": 201, "expected_status": 200},
    ),
    "server error": ("/broken", {}, "fail", "answered 500, expected 200", {"status": 500}),
    "field missing": (
        "/healthz", {"json_field": "data.nope", "json_value": 1},
        "fail", "body has no data.nope", {"got": None},
    ),
    "not json": ("/page", QUEUED, "fail", "body is not JSON", {}),
    "redirect not followed": ("/moved", {}, "fail", "answered 302", {"status": 302}),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_http_endpoint(case, server):
    route, extra, status, summary, evidence = CASES[case]
    [finding] = doctor([{"url": base(server) + route, **extra}]).findings
    assert finding.status.value == status, finding.summary
    assert summary in finding.summary
    assert {k: finding.evidence.get(k) for k in evidence} == evidence
    assert finding.evidence["url"] == base(server) + route
    assert (finding.component, finding.severity.value) == ("http", "P1")


def test_the_incident_finding_explains_itself_and_hides_credentials_in_the_url(server):
    password, token = "Pw9" + "Xk2Vm7Qz4Rt", "tk_" + "Qz7Wm2XpHd3N"
    port = server.server_address[1]
    url = f"http://ops:{password}@127.0.0.1:{port}/enqueue?token={token}&dry=0"
    result = doctor([{"name": "enqueue", "url": url, "method": "POST", "expect_status": 201,
                      "json_field": "queued", "json_value": True}])  # fmt: skip
    [finding] = result.findings
    assert finding.status is Status.FAIL and finding.subject == "enqueue"
    assert finding.evidence["url"] == f"http://127.0.0.1:{port}/enqueue"
    assert "success" in finding.impact and "jq .queued" in finding.advice and finding.fix == ()
    rendered = json_report.render(result) + markdown_report.render(result)
    assert [v for v in (password, token) for i in range(len(v) - 3) if v[i : i + 4] in rendered] == []
    assert redactor(f"{password} {token}") == "**** ****"
    assert ("POST", f"/enqueue?token={token}&dry=0") in server.requests


def test_a_closed_port_is_an_error_within_the_timeout():
    [finding] = doctor([{"url": f"http://127.0.0.1:{closed_port()}/healthz"}], timeout=2).findings
    assert finding.status is Status.ERROR
    assert "could not be reached: connection refused" in finding.summary


def test_a_hanging_endpoint_is_an_error_before_the_run_times_out(server):
    """The probe's own message (naming the URL), not the runner's generic one: it gave up first."""
    [finding] = doctor([{"url": base(server) + "/slow"}], timeout=1).findings
    assert finding.status is Status.ERROR
    assert f"{base(server)}/slow did not answer within 1s" in finding.summary


def test_endpoints_are_probed_at_once(server):
    # one after the other, the first request would wait at the barrier for the two that never come
    result = doctor([{"url": base(server) + "/together", "name": f"together {i}"} for i in range(3)], timeout=90)
    assert [f.status for f in result.findings] == [Status.OK] * 3


def test_a_slow_endpoint_is_an_error_naming_its_url(server):
    [finding] = doctor([{"url": base(server) + "/slow", "name": "slow"}], timeout=1).findings
    assert finding.status is Status.ERROR


def test_several_endpoints_one_finding_each(server):
    result = doctor([{"url": base(server) + "/healthz", "name": "api"}, {"url": base(server) + "/broken"}])
    assert [(f.subject, f.status.value) for f in result.findings] == [
        ("api", "ok"),
        (base(server) + "/broken", "fail"),
    ]


def test_no_endpoints_is_skipped():
    [finding] = doctor([]).findings
    assert finding.status is Status.SKIPPED


def test_a_bad_method_is_an_error_not_a_request(server):
    [finding] = doctor([{"url": base(server) + "/healthz", "method": "BREW"}]).findings
    assert finding.status is Status.ERROR and "BREW" in finding.summary


@pytest.mark.parametrize(
    ("got", "expected", "same"),
    [(True, True, True), (1, True, False), (True, 1, False), ("true", True, False), (1, 1.0, True),
     (None, None, True), ([1, {"a": True}], [1, {"a": True}], True), ({"a": 1}, {"a": True}, False),
     ("x", "x", True)],
)  # fmt: skip
def test_json_equality_is_strict(got, expected, same):
    assert same_json(got, expected) is same


def test_lookup_by_dotted_path():
    document = {"data": {"items": [{"id": 7}], "queued": 0}}
    assert lookup(document, "data.items.0.id") == 7
    assert lookup(document, "data.queued") == 0
    assert lookup(document, "data.items.5") is not None and lookup(document, "data.items.5") is lookup(
        document, "x"
    )
