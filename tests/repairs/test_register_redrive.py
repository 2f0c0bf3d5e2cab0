"""`pipectl deploy register` and `pipectl redrive` repair the second incident's breakages for real."""

from __future__ import annotations

import time

from pipectl.connectors import prefect as prefect_api
from pipectl.journal import Journal
from pipectl.sandbox import queues
from pipectl.sandbox.layout import PROCESS_JOB


def test_register_restores_the_missing_deployment(sandbox, run_cli, tmp_path):
    sandbox.break_("missing-deployment")
    journal = tmp_path / "journal.sqlite3"
    args = ["deploy", "register", PROCESS_JOB, "--config", str(sandbox.config_path), "--journal", str(journal)]
    code, out, _ = run_cli(*args, "--dry-run")
    assert code == 0 and f"Plan: register deployment {PROCESS_JOB}" in out
    assert prefect_api.read_deployment(sandbox.state.prefect_api_url, None, PROCESS_JOB) is None
    code, out, err = run_cli(*args, "--yes")
    assert code == 0, err
    found = prefect_api.read_deployment(sandbox.state.prefect_api_url, None, PROCESS_JOB)
    assert found is not None and found.work_pool_name == "managed-production"
    assert f"{PROCESS_JOB} is registered on pool managed-production" in err
    code, out, _ = run_cli(*args, "--yes")  # idempotent: a second run plans nothing
    assert code == 0 and "already registered" in out
    runs = Journal(journal).runs()
    assert [e.data["kind"] for r in runs for e in Journal(journal).events(r.id, "change")] == ["deployment_created"]


def test_register_refuses_what_the_config_cannot_describe(sandbox, run_cli, tmp_path):
    code, _, err = run_cli("deploy", "register", "orchestrator-main/data-enrichment-orchestrator", "--config",
                           str(sandbox.config_path), "--yes", "--journal", str(tmp_path / "j"))
    assert code == 2
    assert "lacks entrypoint, source" in err


def test_redrive_moves_the_dead_letters_back(sandbox, run_cli, tmp_path):
    sandbox.break_("dlq-filling")
    code, out, err = run_cli("redrive", "jobs", "--rate", "10", "--config", str(sandbox.config_path), "--yes",
                             "--journal", str(tmp_path / "j"))
    assert code == 0, err
    assert "Plan: redrive 3 message(s) to jobs" in out
    assert queues.depth_of(sandbox.state.sqs_endpoint, sandbox.state.dlq_url) == 0
    assert "moved: 3" in err
    # back on the job queue, the subscriber takes them: a run of process_job for each job they name
    deadline = time.monotonic() + 60
    while sorted(_jobs_with_runs(sandbox)) != ["1", "2", "3"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sorted(_jobs_with_runs(sandbox)) == ["1", "2", "3"]


def _jobs_with_runs(sandbox) -> list[str]:
    import httpx

    with httpx.Client(base_url=sandbox.state.prefect_api_url, timeout=10) as client:
        runs = client.post("/flow_runs/filter", json={"limit": 200}).json()
    return [str(r["parameters"]["job_id"]) for r in runs if "job_id" in (r.get("parameters") or {})]


def test_redrive_of_an_unknown_queue_is_a_usage_error(sandbox, run_cli, tmp_path):
    code, _, err = run_cli("redrive", "nope", "--config", str(sandbox.config_path), "--yes",
                           "--journal", str(tmp_path / "j"))
    assert code == 2 and "no queue 'nope' in the config (queues: jobs)" in err


def test_a_rate_sqs_refuses_is_refused_at_plan_time(sandbox, run_cli, tmp_path):
    code, out, err = run_cli("redrive", "jobs", "--rate", "9999", "--dry-run", "--config",
                             str(sandbox.config_path), "--journal", str(tmp_path / "j"))
    assert code == 2
    assert "--rate 9999: SQS moves 1 to 500 messages per second" in err


def test_register_refuses_a_credential_in_the_config_entry(sandbox, run_cli, tmp_path, monkeypatch):
    import secrets
    import shutil

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + secrets.token_hex(18))
    shutil.copy(sandbox.layout.env_file, tmp_path / "sandbox.env")
    text = sandbox.config_path.read_text().replace(
        f'name = "{PROCESS_JOB}"', f'name = "{PROCESS_JOB}"\njob_variables = {{ env = {{ GITHUB_TOKEN = '
                                   '"env:GITHUB_TOKEN", LOG_LEVEL = "INFO" } }', 1)
    config = tmp_path / "pipectl.toml"
    config.write_text(text.replace('env_file = "sandbox.env"', 'env_file = "sandbox.env"'))
    code, _, err = run_cli("deploy", "register", PROCESS_JOB, "--config", str(config), "--yes",
                           "--journal", str(tmp_path / "j"))
    assert code == 2, err
    assert "job_variables.env.GITHUB_TOKEN" in err and "would be written into the deployment as plain text" in err
    assert '"{{ prefect.blocks.secret.github-token }}"' in err
    assert "pipectl secret set github-token --from-env GITHUB_TOKEN" in err
