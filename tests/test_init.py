"""`pipectl init` against the sandbox: a config written from what the systems hold, that doctor can use."""

from __future__ import annotations

import tomllib

from pipectl.sandbox.layout import ORCHESTRATOR, PROCESS_JOB
from pipectl.sandbox.prefect_stack import POOL


def _sandbox_environment(sandbox) -> dict[str, str]:
    env = dict(line.split("=", 1) for line in sandbox.layout.env_file.read_text().splitlines() if "=" in line)
    return {**env, "PREFECT_API_URL": sandbox.state.prefect_api_url, "AWS_ENDPOINT_URL_SQS": sandbox.state.sqs_endpoint,
            "AWS_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"), "RENDER_API_URL": sandbox.state.render_api_url,
            "NETLIFY_API_URL": sandbox.state.netlify_api_url}


def test_init_writes_a_config_doctor_passes_with_and_no_credential(sandbox, run_cli, tmp_path, monkeypatch):
    env = _sandbox_environment(sandbox)
    folder = tmp_path / "team-pipeline"
    folder.mkdir()
    code, _, err = run_cli("init", cwd=folder, env=env)
    assert code == 2 and "pass --yes" in err and not (folder / "pipectl.toml").exists()  # no terminal to ask on
    code, _, err = run_cli("init", "--yes", cwd=folder, env=env)
    assert code == 0, err
    assert "`pipectl doctor` exits 0" in err
    text = (folder / "pipectl.toml").read_text()
    config = tomllib.loads(text)
    assert config["pipeline"] == "team-pipeline"
    assert {(d["name"], d["work_pool"]) for d in config["prefect"]["deployments"]} == {(ORCHESTRATOR, POOL),
                                                                                     (PROCESS_JOB, POOL)}
    required = {d["name"]: d.get("required_env") for d in config["prefect"]["deployments"]}
    assert {"MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"} <= set(required[ORCHESTRATOR])  # the keys its env carries
    tables = {t["table"]: t for t in config["state_tables"]}
    assert tables["workflow_states"]["stuck_after"] == {"PENDING": "10m"}  # the only status rows are in now
    assert tables["jobs"]["stuck_after"] == {}  # every job is completed: nothing can be stuck yet
    (queue,) = config["queues"]
    assert queue["url"] == sandbox.state.queue_url and queue["dlq_url"] == sandbox.state.dlq_url
    assert config["database"]["dsn"] == "env:DATABASE_URL"
    services = {s["name"]: s for s in config["services"]}  # the hosted services the tokens see
    assert set(services) == {"job-frontend", "job-subscriber", "job-worker"}
    assert services["job-subscriber"]["provider"] == "render" and services["job-frontend"]["provider"] == "netlify"
    assert {"AWS_ACCESS_KEY_ID", "SQS_QUEUE_URL"} <= set(services["job-subscriber"]["required_env"])
    for name in ("DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "MODAL_TOKEN_SECRET", "RENDER_API_KEY"):
        assert env[name] not in text
    code, out, err = run_cli("doctor", "--no-journal", cwd=folder)
    assert code == 0, out + err


def test_init_never_replaces_a_file_and_says_what_it_could_not_ask(run_cli, tmp_path):
    (tmp_path / "pipectl.toml").write_text('pipeline = "mine"\n')
    code, _, err = run_cli("init", "--yes", cwd=tmp_path)
    assert code == 2 and "exists: pass --force" in err
    assert (tmp_path / "pipectl.toml").read_text() == 'pipeline = "mine"\n'
    code, out, err = run_cli("init", "--dry-run", cwd=tmp_path,
                             env={"PREFECT_API_URL": "http://127.0.0.1:9/api", "DATABASE_URL": ""})
    assert code == 0 and 'api_url = "http://127.0.0.1:9/api"' in out and "[[prefect.deployments]]" not in out
    assert "pipectl init: Prefect:" in err and "DATABASE_URL is not set" in err
