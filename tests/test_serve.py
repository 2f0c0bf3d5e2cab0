"""`pipectl serve` on the real sandbox: /healthz and /metrics while healthy and after a drill, one check run
shared by concurrent scrapes, bad input, and a clean stop on SIGTERM and Ctrl-C."""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipectl.config_load import load_config
from pipectl.sandbox.procs import free_port
from pipectl.serve import Exporter, build
from tests.conftest import default_signals, python_env

DEADLINE = 240.0
"""Seconds a condition may take to come true: several check runs on a busy two-core machine."""
POLL = 0.2


@contextlib.contextmanager
def serving(sandbox, interval: float, lines: list[str] | None = None) -> Iterator[Exporter]:
    """The server built as `pipectl serve` builds it, answering in a background thread until the test ends."""
    exporter = build(load_config(sandbox.config_path), host="127.0.0.1", port=free_port(), interval=interval,
                     progress=(lines if lines is not None else []).append)
    thread = threading.Thread(target=exporter.serve_forever, name="test-serve", daemon=True)
    thread.start()
    try:
        yield exporter
    finally:
        exporter.close()
        thread.join(10)
        assert not thread.is_alive()


def wait_for(what: str, condition: Callable[[], object]) -> object:
    """Poll until `condition()` is truthy; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + DEADLINE
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(POLL)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def health(exporter: Exporter) -> tuple[int, dict]:
    answer = httpx.get(f"{exporter.url}/healthz", timeout=10)
    assert answer.headers["content-type"] == "application/json"
    return answer.status_code, answer.json()


def samples(exporter: Exporter) -> dict[str, list]:
    """Metric name → samples of one scrape, parsed as Prometheus parses the text format."""
    answer = httpx.get(f"{exporter.url}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list], name: str, **labels: str) -> float | None:
    """The sum of `name`'s samples carrying these labels (None when there is none)."""
    matching = [s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(matching) if matching else None


def test_healthy_then_a_drill_flips_healthz_and_shows_the_stuck_rows(sandbox):
    lines: list[str] = []
    with serving(sandbox, interval=2.0, lines=lines) as exporter:
        assert lines[0] == f"serving {exporter.url}/healthz and /metrics; checks every 2s"
        wait_for("a healthy verdict", lambda: health(exporter)[0] == 200)
        _, body = health(exporter)
        assert body["status"] == "ok" and body["failing"] == [] and body["checked_at"], body
        assert "findings" in body["summary"]
        found = samples(exporter)
        assert value(found, "pipectl_check_status", check="db.stuck", component="database") == 0
        assert value(found, "pipectl_findings", status="ok") > 0
        assert value(found, "pipectl_findings", status="fail") == 0
        assert value(found, "pipectl_runs_total") >= 1
        assert value(found, "pipectl_last_run_timestamp_seconds") > 0
        assert value(found, "pipectl_last_run_duration_seconds") > 0
        assert value(found, "pipectl_stuck_rows", table="workflow_states", status="IN_PROGRESS") == 0
        visible = value(found, "pipectl_queue_messages", kind="visible")
        assert visible is not None and visible >= 0
        assert value(found, "pipectl_queue_messages", kind="dlq") == 0
        assert httpx.get(f"{exporter.url}/other", timeout=10).status_code == 404
        assert any("ok (200)" in line for line in lines[1:]), lines  # one line per run on stderr

        sandbox.break_("stuck-in-progress")
        stuck = "db.stuck:workflow_states/IN_PROGRESS/normalize_company_name"

        def flipped() -> bool:
            code, body = health(exporter)
            return code == 503 and body["status"] == "failing" and stuck in body["failing"]

        wait_for("/healthz to turn 503", flipped)

        def forty_stuck() -> dict[str, list] | None:
            found = samples(exporter)
            return found if value(found, "pipectl_stuck_rows", table="workflow_states",
                                  status="IN_PROGRESS") == 40 else None

        found = wait_for("40 stuck rows in the metrics", forty_stuck)
        (row,) = [s for s in found["pipectl_stuck_rows"] if s.labels["status"] == "IN_PROGRESS"]
        assert row.labels == {"table": "workflow_states", "status": "IN_PROGRESS", "group": "normalize_company_name"}
        assert value(found, "pipectl_check_status", check="db.stuck", severity="P0") == 2
        assert value(found, "pipectl_findings", status="fail") >= 1
        assert any("failing (503)" in line for line in lines), lines


def test_concurrent_scrapes_share_one_run(sandbox):
    with serving(sandbox, interval=600.0) as exporter:
        paths = ["/metrics", "/healthz"] * 10

        def scrape_all() -> list[int]:
            with ThreadPoolExecutor(max_workers=20) as pool:
                return list(pool.map(lambda p: httpx.get(exporter.url + p, timeout=30).status_code, paths))

        during = scrape_all()  # while the first run is (most likely) still in flight
        assert set(during) <= {200, 503}
        wait_for("the first run", lambda: health(exporter)[1]["status"] != "starting")
        after = scrape_all()
        assert after.count(200) >= 10  # every /metrics answers
        assert exporter.runner.started == 1
        assert value(samples(exporter), "pipectl_runs_total") == 1


def test_before_the_first_run_healthz_says_starting():
    from pipectl.model import Severity
    from pipectl.report.metrics import Snapshot, families, healthz

    code, body = healthz(Snapshot(), Severity.P2)
    assert (code, body["status"], body["failing"], body["checked_at"]) == (503, "starting", [], None)
    assert [f.name for f in families(Snapshot())] == ["pipectl_runs"]


def test_labels_never_carry_a_secret():
    from datetime import UTC, datetime

    from pipectl.model import DoctorResult, Finding, Severity, Status
    from pipectl.redact import redactor
    from pipectl.report.metrics import Snapshot, families

    secret = "sk_" + "live_" + secrets.token_hex(10)  # drawn now: no real-looking literal in the source
    redactor.add(secret)
    finding = Finding("db.stuck", Status.FAIL, Severity.P0, "database", "10 rows stuck",
                      subject=f"jobs/QUEUED/{secret}", evidence={"table": "jobs", "status": "QUEUED", "rows": 10})
    result = DoctorResult("p", datetime.now(UTC), 1.0, (finding,))
    labels = [v for family in families(Snapshot(result, 1)) for s in family.samples for v in s.labels.values()]
    assert labels and not any(secret[8:16] in v for v in labels)
    assert "jobs" in labels


def test_bad_input_is_one_line_and_exit_2(sandbox, run_cli):
    config = str(sandbox.config_path)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cases = {
            ("--interval", "30"): "--interval",
            ("--interval", "soon"): "--interval",
            ("--interval", "0s"): "--interval",
            ("--only", "no.such.check"): "unknown check",
            ("--port", str(busy.getsockname()[1])): "cannot listen",
            ("--port", "70000"): "--port",
        }
        for args, says in cases.items():
            code, out, err = run_cli("--config", config, "serve", *args)
            assert code == 2, (args, err)
            assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
            assert says in err, (args, err)
    finally:
        busy.close()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_stops_it_cleanly(sandbox, stop):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipectl", "--config", str(sandbox.config_path), "serve", "--port", str(port),
         "--interval", "1m"], env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_signals)  # noqa: PLW1509 - it only resets two signal dispositions
    try:
        def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code in (200, 503)
            return process.poll() is not None  # it died: stop waiting, the asserts below say why

        wait_for("the server to answer", answers)
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert err.startswith(f"serving http://127.0.0.1:{port}/healthz and /metrics; checks every 1m\n"), err
    assert err.rstrip().endswith("stopped") and "Traceback" not in err and out == "", err
