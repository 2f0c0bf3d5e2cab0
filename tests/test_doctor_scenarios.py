"""For every drill, `pipectl doctor` names the cause, its severity, and links the symptom to it."""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from pipectl.sandbox.layout import ORCHESTRATOR, PROCESS_JOB

ORCH_STUCK_QUEUED = "db.stuck:workflow_states/QUEUED/normalize_company_name"
ORCH_STUCK_PENDING = "db.stuck:workflow_states/PENDING/normalize_company_name"

# scenario → (cause id, cause severity, symptom id or None)
CASES = {
    "missing-modal-creds": (f"prefect.job_variables:{ORCHESTRATOR}", "P0", ORCH_STUCK_QUEUED),
    "modal-bad-token": (f"modal.auth:{ORCHESTRATOR}", "P0", ORCH_STUCK_QUEUED),
    "modal-function-missing": ("modal.function:data-enrichment-workers/start_normalize_company_name", "P0",
                               ORCH_STUCK_QUEUED),
    "missing-deployment": (f"prefect.deployment:{PROCESS_JOB}", "P0", "db.stuck:jobs/pending"),
    "no-worker": ("prefect.work_pool:managed-production", "P0", ORCH_STUCK_PENDING),
    "queue-unreachable": ("sqs.queue:jobs", "P0", None),
    "dlq-filling": ("sqs.dlq:jobs", "P1", None),
    "missing-aws-env": ("credentials.present:aws", "P0", None),
    "leaked-credentials": ("repo.secrets:RAILWAY_QUICK_DEPLOY.md", "P1", None),
    "stuck-in-progress": ("db.stuck:workflow_states/IN_PROGRESS/normalize_company_name", "P0", None),
}


def doctor(run_cli, sandbox, *extra: str) -> tuple[int, dict]:
    code, out, err = run_cli("doctor", "--config", str(sandbox.config_path), "--format", "json", "--no-journal",
                             *extra)
    return code, {f["id"]: f for f in json.loads(out)["findings"]}


@pytest.mark.parametrize("scenario", list(CASES))
def test_doctor_names_the_cause_of_each_drill(sandbox, run_cli, scenario, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    cause_id, severity, symptom_id = CASES[scenario]
    sandbox.break_(scenario)
    code, findings = doctor(run_cli, sandbox)
    assert code == 1
    assert cause_id in findings, sorted(i for i, f in findings.items() if f["status"] != "ok")
    cause = findings[cause_id]
    assert (cause["status"], cause["severity"]) == ("fail", severity)
    assert cause["fix"]
    if symptom_id:
        assert findings[symptom_id]["status"] == "fail"
        assert cause_id in findings[symptom_id]["caused_by"]


def test_healthy_sandbox_is_all_ok(sandbox, run_cli):
    code, findings = doctor(run_cli, sandbox)
    assert {i: f["summary"] for i, f in findings.items() if f["status"] not in ("ok", "skipped")} == {}
    assert code == 0


def test_a_component_that_accepts_but_never_answers_is_an_error_within_the_timeout(sandbox, run_cli, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
    port = silent.getsockname()[1]
    text = sandbox.config_path.read_text().replace(sandbox.state.prefect_api_url, f"http://127.0.0.1:{port}/api")
    shutil.copy(sandbox.layout.env_file, tmp_path / "sandbox.env")
    config = tmp_path / "pipectl.toml"
    config.write_text(text)
    try:
        code, out, _ = run_cli("doctor", "--config", str(config), "--format", "json", "--no-journal",
                               "--timeout", "2")
    finally:
        silent.close()
    findings = json.loads(out)["findings"]
    prefect = [f for f in findings if f["component"] == "prefect" and f["check"] != "modal.auth"]
    others = [f for f in findings if f["component"] in ("database", "sqs")]
    assert prefect and all(f["status"] == "error" for f in prefect if f["check"] == "prefect.api")
    assert all(f["status"] in ("ok", "skipped", "error") for f in prefect)
    assert others and all(f["status"] == "ok" for f in others)
    assert code == 3
