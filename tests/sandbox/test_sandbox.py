"""The sandbox reproduces the incidents for real: every symptom is measured with the real clients."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from pipectl.connectors import prefect as prefect_api
from pipectl.connectors import prefect_runs
from pipectl.connectors import sqs as sqs_api
from pipectl.errors import NotFound
from pipectl.sandbox import prefect_stack, procs, stack
from pipectl.sandbox.layout import ORCHESTRATOR, PROCESS_JOB, ROWS, Layout


def latest_run(sandbox):
    deployment = prefect_api.read_deployment(sandbox.state.prefect_api_url, None, ORCHESTRATOR)
    return prefect_runs.recent_flow_runs(sandbox.state.prefect_api_url, None, deployment.id, limit=1)[0]


def test_healthy_sandbox_runs_the_orchestrator_end_to_end(sandbox):
    assert sandbox.counts() == {"PENDING": ROWS}
    run_id = prefect_stack.trigger(sandbox.state.prefect_api_url, ORCHESTRATOR)
    sandbox.dirty()
    assert prefect_stack.wait_for_run(sandbox.state.prefect_api_url, run_id, 90) == "COMPLETED"
    # the Modal fake played the worker for every spawned call: PENDING → QUEUED → IN_PROGRESS
    assert sandbox.counts() == {"IN_PROGRESS": ROWS}
    calls = sandbox.layout.modal_calls.read_text().splitlines()
    assert len(calls) >= ROWS


def test_missing_modal_creds_reproduces_the_first_incident(sandbox):
    sandbox.break_("missing-modal-creds")
    assert sandbox.counts() == {"QUEUED": ROWS}
    run = latest_run(sandbox)
    assert run.state_type == "COMPLETED"  # the silent failure: the run says all is well
    deployment = prefect_api.read_deployment(sandbox.state.prefect_api_url, None, ORCHESTRATOR)
    assert "MODAL_TOKEN_ID" not in deployment.job_variables.get("env", {})


@pytest.mark.parametrize("scenario", ["modal-bad-token", "modal-function-missing"])
def test_modal_failures_leave_rows_queued(sandbox, scenario):
    sandbox.break_(scenario)
    assert sandbox.counts() == {"QUEUED": ROWS}
    assert latest_run(sandbox).state_type == "COMPLETED"


def test_missing_deployment(sandbox):
    sandbox.break_("missing-deployment")
    assert prefect_api.read_deployment(sandbox.state.prefect_api_url, None, PROCESS_JOB) is None
    assert sandbox.counts("jobs")["pending"] == 5


def test_no_worker_makes_runs_late(sandbox):
    sandbox.break_("no-worker")
    assert not stack.worker_running(sandbox.layout)
    deployment = prefect_api.read_deployment(sandbox.state.prefect_api_url, None, ORCHESTRATOR)
    assert prefect_runs.count_late_runs(sandbox.state.prefect_api_url, None, deployment_id=deployment.id) == 1
    assert sandbox.counts() == {"PENDING": ROWS}


def test_queue_unreachable_points_the_config_at_a_missing_queue(sandbox):
    from pipectl.config_load import environment, load_config

    sandbox.break_("queue-unreachable")
    config = load_config(sandbox.config_path)
    with pytest.raises(NotFound):
        sqs_api.queue_stats(config.queues[0].url, endpoint_url=sandbox.state.sqs_endpoint, region="us-east-1",
                            environ=environment(config.source))


def test_dlq_filling(sandbox, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    sandbox.break_("dlq-filling")
    stats = sqs_api.queue_stats(sandbox.state.dlq_url, endpoint_url=sandbox.state.sqs_endpoint, region="us-east-1")
    assert stats.visible == 3
    source = sqs_api.queue_stats(sandbox.state.queue_url, endpoint_url=sandbox.state.sqs_endpoint, region="us-east-1")
    assert source.redrive is not None and source.redrive.max_receive_count == 3


def test_missing_aws_env(sandbox):
    sandbox.break_("missing-aws-env")
    assert "AWS_ACCESS_KEY_ID" not in sandbox.layout.env_file.read_text()


def test_leaked_credentials_stay_in_history(sandbox):
    sandbox.break_("leaked-credentials")
    repo = sandbox.layout.repo
    assert not (repo / "RAILWAY_QUICK_DEPLOY.md").exists()
    history = subprocess.run(["git", "log", "--all", "-p"], cwd=repo, capture_output=True, text=True).stdout
    assert re.search(r"^-AWS_DEFAULT_ACCESS_KEY_ID=AKIA[A-Z2-7]{16}$", history, re.MULTILINE)  # deleted, still there


def test_stuck_in_progress(sandbox):
    sandbox.break_("stuck-in-progress")
    assert sandbox.counts() == {"IN_PROGRESS": ROWS}


def test_healthy_doctor_is_all_ok(sandbox, run_cli):
    code, out, err = run_cli("doctor", "--config", str(sandbox.config_path), "--format", "json")
    findings = json.loads(out)["findings"]
    assert [f for f in findings if f["status"] != "ok"] == []
    assert code == 0


def test_up_and_down_leave_no_port_or_process(sandbox, tmp_path):
    layout = Layout.at(tmp_path / "second")
    # reuse the session's Postgres through --dsn: this test is about our own processes
    state = stack.up(layout, dsn=sandbox.state.database_url)
    try:
        ports = [state.prefect_port, state.sqs_port, state.modal_port]
        assert all(procs.port_open(p) for p in ports)
        pids = [int((layout.run_dir / f"{n}.pid").read_text()) for n in ("prefect-server", "prefect-worker")]
    finally:
        stopped = stack.down(layout)
    sandbox.dirty()  # the second sandbox re-seeded the shared database
    assert set(stopped) >= {"prefect-server", "prefect-worker", "sqs-server", "modal-fake"}
    assert not any(procs.port_open(p) for p in ports)
    assert not any(procs.pid_alive(p) for p in pids)
    assert list(layout.run_dir.glob("*.pid")) == []


def test_status_and_env_commands(sandbox, run_cli):
    folder = str(sandbox.layout.root)
    code, out, _ = run_cli("sandbox", "status", "--dir", folder, "--format", "json")
    assert code == 0
    assert {c["name"] for c in json.loads(out) if c["healthy"]} == {
        "prefect-server", "prefect-worker", "sqs", "modal", "postgres", "hosting (render, netlify)",
        "push-endpoint", "subscriber"}
    code, out, _ = run_cli("sandbox", "env", "--dir", folder)
    assert code == 0
    assert f"export PREFECT_API_URL={sandbox.state.prefect_api_url}" in out
    assert sandbox.state.modal_token_secret[:8] not in out  # secrets stay in the env file
    code, out, _ = run_cli("sandbox", "break", "--list")
    assert code == 0 and "missing-modal-creds" in out and "leaked-credentials" in out


def test_up_refuses_a_second_sandbox_in_the_same_folder_and_leaves_it_running(sandbox, run_cli):
    code, _, err = run_cli("sandbox", "up", "--dir", str(sandbox.layout.root))
    assert code == 2 and "a sandbox is already running" in err
    assert all(c.healthy for c in stack.status(sandbox.layout))
