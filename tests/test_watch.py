"""`pipectl watch` on the real sandbox: the deployment `watch deploy` registers, runs of it on the sandbox's own
worker (report artifact, events only on change, read back through Prefect's REST API), `watch status`, and
bad input. The pure parts (what counts as a change, what an event carries) are checked without servers."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from dotenv import dotenv_values

from pipectl.journal import Journal
from pipectl.model import DoctorResult, Finding, Severity, Status
from pipectl.redact import redactor
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import ORCHESTRATOR
from pipectl.watch import (
    EVENTS,
    RESOLVED,
    changes,
    event,
    from_rows,
    report_key,
    rows,
    slug,
    state_key,
    tracked,
)
from tests.conftest import default_signals, python_env

WATCHDOG = "pipectl-watch/sandbox"
DEADLINE = 240.0
"""Seconds a run or an event may take to show: a flow run starts a Python process on a busy two-core machine."""
PAUSED = f"prefect.deployment:{ORCHESTRATOR}"
"""The finding the deployment-paused drill makes FAIL."""
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
HOOK_BLOCK = "pipectl-watch-test-hook"


def finding(check: str, status: Status, subject: str = "", summary: str = "s", **more) -> Finding:
    return Finding(check=check, status=status, severity=Severity.P0, component=check.split(".")[0],
                   summary=summary, subject=subject, **more)


def result_of(*findings: Finding) -> DoctorResult:
    return DoctorResult(pipeline="shop/prod", started_at=datetime.now(UTC), duration_s=0.1, findings=findings)


# ---------------------------------------------------------------- without servers


def test_a_change_is_a_new_status_and_the_first_run_counts_every_finding_that_is_not_ok():
    first = tracked(result_of(finding("db.stuck", Status.FAIL, "t"), finding("sqs.dlq", Status.WARN),
                              finding("modal.auth", Status.OK), finding("repo.secrets", Status.SKIPPED)))
    assert sorted(first) == ["db.stuck:t", "sqs.dlq"]  # OK and SKIPPED are not tracked
    assert sorted((c.event, c.previous) for c in changes(None, first)) == [
        (EVENTS["fail"], "ok"), (EVENTS["warn"], "ok")]
    stored = from_rows(json.loads(json.dumps(rows(first))))  # as the table artifact gives it back
    assert changes(stored, first) == []  # nothing changed: nothing to say
    second = tracked(result_of(finding("db.stuck", Status.WARN, "t"), finding("http.endpoint", Status.ERROR)))
    found = {c.finding.id: (c.event, c.previous, c.current) for c in changes(stored, second)}
    assert found == {"db.stuck:t": (EVENTS["warn"], "fail", "warn"), "http.endpoint": (EVENTS["error"], "ok", "error"),
                     "sqs.dlq": (RESOLVED, "warn", "ok")}


def test_an_event_carries_labels_to_match_on_and_no_secret():
    secret = "sk_live_" + "Q7v" * 8
    redactor.add(secret)
    cause = finding("prefect.job_variables", Status.FAIL, "flow/prod", summary=f"env holds {secret}",
                    fix=("pipectl patch flow/prod --env KEY=secret:key",))
    symptom = finding("db.stuck", Status.FAIL, "jobs", caused_by=(cause.id,))
    result = result_of(cause, symptom)
    sent = {c.finding.id: event(c, "shop/prod", result) for c in changes(None, tracked(result))}
    assert sent[cause.id]["event"] == "pipectl.finding.failed"
    assert sent[cause.id]["resource"] == {
        "prefect.resource.id": f"pipectl.finding.{slug('shop/prod')}.prefect.job_variables:flow/prod",
        "prefect.resource.name": "prefect.job_variables:flow/prod", "pipectl.pipeline": "shop/prod",
        "pipectl.check": "prefect.job_variables", "pipectl.component": "prefect", "pipectl.severity": "P0",
        "pipectl.status": "fail", "pipectl.cause": "true"}
    assert sent[symptom.id]["resource"]["pipectl.cause"] == "false"
    assert sent[cause.id]["payload"]["fix"] == ["pipectl patch flow/prod --env KEY=secret:key"]
    assert secret not in json.dumps(sent)
    assert sent[cause.id]["payload"]["summary"].startswith("env holds sk_") and "****" in json.dumps(sent)


def test_keys_are_what_prefect_accepts_and_differ_per_pipeline():
    assert report_key("sandbox") == "pipectl-watch-sandbox"
    assert state_key("sandbox") == "pipectl-findings-sandbox"
    names = ["Shop/Prod", "shop-prod", "shop prod", "ünïcode", "", "shop-prod-findings"]
    keys = [key(name) for name in names for key in (report_key, state_key)]
    assert all(re.fullmatch(r"[a-z0-9-]+", k) for k in keys), keys
    assert len(set(keys)) == len(keys)  # no two pipelines, and no report and state, share a key


@pytest.mark.parametrize(("args", "message"), [
    (["--every", "10s", "--work-pool", "p"], "--every must be at least 1m (each run starts a process on a worker)"),
    (["--every", "soon", "--work-pool", "p"], "--every: invalid duration 'soon'"),
    (["--every", "5m", "--work-pool", "p", "--name", "a/b"], "--name 'a/b': give the deployment's own name"),
    (["--every", "5m", "--work-pool", "p", "--timeout", "0"], "--timeout must be a positive number of seconds"),
    (["--every", "5m", "--work-pool", "p", "--worker-config", "pipectl.toml"],
     "--worker-config 'pipectl.toml': give an absolute path"),
])
def test_bad_input_to_deploy_is_one_line_and_exit_2(run_cli, write_config, args, message):
    config = write_config('pipeline = "shop"\n[prefect]\napi_url = "http://127.0.0.1:9/api"\n')
    code, out, err = run_cli("watch", "deploy", *args, "--config", str(config), "--yes")
    assert code == 2 and out == ""
    assert err.startswith(f"pipectl: {message}") and err.count("\n") == 1, err


def test_status_refuses_a_limit_out_of_range(run_cli, write_config):
    config = write_config('pipeline = "shop"\n[prefect]\napi_url = "http://127.0.0.1:9/api"\n')
    code, out, err = run_cli("watch", "status", "--limit", "0", "--config", str(config))
    assert code == 2 and out == "" and err == "pipectl: --limit must be between 1 and 100, not 0\n"


# ---------------------------------------------------------------- on the sandbox


class Prefect:
    """The sandbox's Prefect API, read (and, for cleanup, written) the way any client would."""

    def __init__(self, api_url: str) -> None:
        self.api = api_url

    def request(self, method: str, path: str, **options) -> httpx.Response:
        """One request, sent again while the server says it is busy (503, 429: its SQLite database was locked),
        as Prefect's own client does."""
        answer = httpx.request(method, self.api + path, timeout=30, **options)
        for pause in (0.5, 1, 2, 4, 8):
            if answer.status_code not in (429, 503):
                break
            time.sleep(pause)
            answer = httpx.request(method, self.api + path, timeout=30, **options)
        return answer

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body: dict):
        return self.request("POST", path, json=body).raise_for_status().json()

    def delete(self, path: str) -> None:
        self.request("DELETE", path).raise_for_status()

    def deployment(self):
        answer = self.get(f"/deployments/name/{WATCHDOG}")
        return None if answer.status_code == 404 else answer.raise_for_status().json()

    def artifacts(self, key: str, flow_run_id: str | None = None) -> list[dict]:
        artifacts: dict = {"key": {"any_": [key]}}
        if flow_run_id:
            artifacts["flow_run_id"] = {"any_": [flow_run_id]}
        return self.post("/artifacts/filter", {"artifacts": artifacts, "sort": "CREATED_DESC", "limit": 50})

    def events(self, flow_run_id: str) -> list[dict]:
        """The `pipectl.finding.*` events whose related resources name the run."""
        page = self.post("/events/filter", {"filter": {"event": {"prefix": ["pipectl.finding."]},
                                                       "related": {"id": [f"prefect.flow-run.{flow_run_id}"]}},
                                            "limit": 50})
        return page["events"]

    def forget_watchdog(self) -> None:
        """No watchdog flow, deployment (its schedule) or artifacts left: other tests count deployments, and a
        next run of this test must start with no previous state."""
        for key in (report_key("sandbox"), state_key("sandbox")):
            for artifact in self.artifacts(key):
                self.request("DELETE", f"/artifacts/{artifact['id']}")
        flow = self.get("/flows/name/pipectl-watch")
        if flow.status_code == 200:
            self.delete(f"/flows/{flow.json()['id']}")
        for automation in self.post("/automations/filter", {}):
            if automation["name"] == "pipectl findings":
                self.delete(f"/automations/{automation['id']}")
        block = self.get(f"/block_types/slug/custom-webhook/block_documents/name/{HOOK_BLOCK}")
        if block.status_code == 200:
            self.delete(f"/block_documents/{block.json()['id']}")


def wait_for(what: str, condition: Callable[[], object]) -> object:
    """Poll until `condition()` is truthy; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + DEADLINE
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def run_watchdog(sandbox) -> tuple[str, str]:
    """One run of the watchdog on the sandbox's worker, started through the API; (run id, final state type)."""
    api = sandbox.state.prefect_api_url
    run_id = prefect_stack.trigger(api, WATCHDOG)
    return run_id, prefect_stack.wait_for_run(api, run_id, DEADLINE)


@pytest.fixture
def prefect(sandbox):
    api = Prefect(sandbox.state.prefect_api_url)
    api.forget_watchdog()
    yield api
    api.forget_watchdog()


def test_a_dry_run_or_no_terminal_deploys_nothing(sandbox, prefect, run_cli, tmp_path):
    base = ["watch", "deploy", "--every", "5m", "--work-pool", "managed-production", "--config",
            str(sandbox.config_path), "--journal", str(tmp_path / "j")]
    code, out, err = run_cli(*base, "--dry-run")
    assert code == 0, err
    assert f"Plan: deploy the watchdog {WATCHDOG}" in out and "create: doctor every 5m on pool managed-production" in out
    code, out, err = run_cli(*base)
    assert code == 2 and "refusing to change anything without --yes" in err
    assert prefect.deployment() is None
    code, out, err = run_cli(*base[:5], "no-such-pool", *base[6:], "--yes")
    assert code == 2 and "--work-pool no-such-pool: Prefect at" in err and "has no such work pool" in err
    assert prefect.deployment() is None
    code, out, err = run_cli("watch", "status", "--config", str(sandbox.config_path))
    assert code == 1 and out == ""
    assert err.startswith(f"pipectl: no watchdog {WATCHDOG} in Prefect at ") and "pipectl watch deploy" in err


@contextlib.contextmanager
def webhook() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP endpoint standing in for Slack: the texts of the notifications Prefect posts to it."""
    received: list[str] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"])))["text"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, name="test-webhook", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def notify_as_the_readme_says(sandbox, url: str, folder: Path) -> None:
    """A notification block posting to `url`, and the README's automation, created with the command the README
    gives (`prefect automation create --from-file`) and its YAML, filled in for the sandbox."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: sandbox.state.prefect_api_url}):
        block_id = CustomWebhookNotificationBlock(name=HOOK_BLOCK, url=url, json_data={
            "text": "{{subject}}: {{body}}"}).save(HOOK_BLOCK, overwrite=True)
    section = README[README.index("## Watching production on Prefect"):]
    yaml = section[section.index("```yaml\n") + 8:section.index("```", section.index("```yaml\n") + 8)]
    assert 'block_document_id: "ID-OF-YOUR-NOTIFICATION-BLOCK"' in yaml and '"my-pipeline"' in yaml
    spec = folder / "pipectl-notify.yaml"
    spec.write_text(yaml.replace("ID-OF-YOUR-NOTIFICATION-BLOCK", str(block_id)).replace("my-pipeline", "sandbox"))
    done = subprocess.run([sys.executable, "-m", "prefect", "automation", "create", "--from-file", str(spec)],
                          check=False, env=python_env(PREFECT_API_URL=sandbox.state.prefect_api_url,
                                         PREFECT_HOME=str(folder / "prefect-home")),
                          capture_output=True, text=True, timeout=120, preexec_fn=default_signals)
    assert done.returncode == 0 and "Created automation 'pipectl findings'" in done.stdout, done.stdout + done.stderr


def test_the_watchdog_reports_every_run_and_notifies_only_on_change(sandbox, prefect, run_cli, tmp_path):
    sandbox.dirty()
    deploy = ["watch", "deploy", "--every", "1h", "--work-pool", "managed-production", "--timeout", "30",
              "--config", str(sandbox.config_path), "--journal", str(tmp_path / "j"), "--yes"]
    code, out, err = run_cli(*deploy)
    assert code == 0, err
    assert f"{WATCHDOG} runs doctor every 1h on pool managed-production" in err
    deployment = prefect.deployment()
    assert deployment["entrypoint"] == "pipectl.watch_flow.watchdog"
    assert deployment["work_pool_name"] == "managed-production"
    assert [(s["schedule"]["interval"], s["active"]) for s in deployment["schedules"]] == [(3600.0, True)]
    assert deployment["parameters"] == {"config": str(sandbox.config_path.resolve()), "context": None,
                                        "timeout": 30.0}
    assert deployment["global_concurrency_limit"]["limit"] == 1  # runs never overlap: one previous state
    code, out, err = run_cli(*deploy)  # the same again: nothing to change
    assert code == 0 and f"{WATCHDOG} already watches as asked" in out
    book = Journal(tmp_path / "j")
    assert [e.data["kind"] for r in book.runs() for e in book.events(r.id, "change")] == ["deployment_created"]
    code, out, err = run_cli("watch", "status", "--config", str(sandbox.config_path))
    assert code == 0 and "No run yet" in out  # its first scheduled run is an hour away

    with webhook() as (url, notified):
        notify_as_the_readme_says(sandbox, url, tmp_path)
        healthy, state = run_watchdog(sandbox)
        assert state == "COMPLETED"
        [report] = prefect.artifacts(report_key("sandbox"), healthy)
        assert report["type"] == "markdown" and report["data"].startswith("# Pipeline diagnosis: sandbox")
        assert "healthy" in report["description"]
        [table] = prefect.artifacts(state_key("sandbox"), healthy)
        assert json.loads(table["data"]) == []  # nothing is not OK, and that is recorded too

        sandbox.break_("deployment-paused")
        broken, state = run_watchdog(sandbox)
        assert state == "FAILED"  # doctor would exit 1: the run says so to Prefect's own automations
        [failed] = wait_for("the failed event", lambda: prefect.events(broken))
        assert failed["event"] == "pipectl.finding.failed"
        assert failed["resource"]["prefect.resource.id"] == f"pipectl.finding.sandbox.{PAUSED}"
        labels = ("pipectl.pipeline", "pipectl.check", "pipectl.component", "pipectl.severity", "pipectl.status")
        assert {k: failed["resource"][k] for k in labels} == {
            "pipectl.pipeline": "sandbox", "pipectl.check": "prefect.deployment", "pipectl.component": "prefect",
            "pipectl.severity": "P0", "pipectl.status": "fail"}
        assert failed["payload"]["previous"] == "ok" and "is paused" in failed["payload"]["summary"]
        related = {r["prefect.resource.role"]: r.get("prefect.resource.name") for r in failed["related"]}
        assert related["deployment"] == "sandbox" and related["flow"] == "pipectl-watch"
        wait_for("the notification of the failure", lambda: notified)
        assert notified == [f"pipectl.finding.failed: {PAUSED}: deployment {ORCHESTRATOR} is paused"]

        unchanged, state = run_watchdog(sandbox)  # still broken, nothing new
        assert state == "FAILED"
        code, out, err = run_cli("watch", "status", "--config", str(sandbox.config_path))
        assert code == 0, err
        assert f"Watchdog {WATCHDOG} on pool managed-production, every 1h" in out
        assert [line.split()[2] for line in out.splitlines() if line.startswith("20")] == [
            "Failed", "Failed", "Completed"]
        code, out, err = run_cli("watch", "status", "--limit", "2", "-o", "json", "--config",
                                 str(sandbox.config_path))
        assert code == 0, err
        shown = json.loads(out)
        one_failing = {"fail": 1, "warn": 0, "error": 0}
        assert [(r["flow_run_id"], r["state_type"], r["counts"]) for r in shown["runs"]] == [
            (unchanged, "FAILED", one_failing), (broken, "FAILED", one_failing)]
        assert shown["runs"][1]["events"] == {"pipectl.finding.failed": 1}
        [broken_report] = prefect.artifacts(report_key("sandbox"), broken)
        assert shown["runs"][1]["report"].endswith(f"/artifacts/artifact/{broken_report['id']}")

        sandbox.heal()
        resolved, state = run_watchdog(sandbox)
        assert state == "COMPLETED"
        [back] = wait_for("the resolved event", lambda: prefect.events(resolved))
        assert back["event"] == "pipectl.finding.resolved"
        assert back["resource"]["prefect.resource.id"] == f"pipectl.finding.sandbox.{PAUSED}"
        assert back["resource"]["pipectl.status"] == "ok" and back["payload"]["previous"] == "fail"
        wait_for("the notification of the resolution", lambda: len(notified) > 1)
        # the runs with nothing new sent nothing, so nobody was told twice (they ended before the last run began)
        assert prefect.events(healthy) == [] and prefect.events(unchanged) == []
        assert notified == [f"pipectl.finding.failed: {PAUSED}: deployment {ORCHESTRATOR} is paused",
                            f"pipectl.finding.resolved: {PAUSED}: deployment {ORCHESTRATOR} is paused"]

    secrets = [v for k, v in dotenv_values(sandbox.layout.env_file).items()
               if v and len(v) >= 8 and any(word in k for word in ("TOKEN", "SECRET", "KEY", "DATABASE_URL"))]
    published = json.dumps([prefect.artifacts(report_key("sandbox")), prefect.artifacts(state_key("sandbox")),
                            failed, back])
    assert secrets and not [s for s in secrets if s in published]


def test_a_config_the_worker_cannot_read_fails_the_run_in_one_line(sandbox, prefect, run_cli, tmp_path):
    missing = tmp_path / "nowhere" / "pipectl.toml"
    code, _, err = run_cli("watch", "deploy", "--every", "1h", "--work-pool", "managed-production",
                           "--worker-config", str(missing), "--config", str(sandbox.config_path),
                           "--journal", str(tmp_path / "j"), "--yes")
    assert code == 0, err
    run_id, state = run_watchdog(sandbox)
    assert state == "FAILED"
    message = prefect.get(f"/flow_runs/{run_id}").json()["state"]["message"]
    assert str(missing) in message and "Traceback" not in message
    assert prefect.artifacts(report_key("sandbox")) == []  # no report, no state: the next run starts afresh
