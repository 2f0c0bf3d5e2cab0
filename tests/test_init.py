"""`pipectl init` against the sandbox: a config written from what the systems hold, that doctor can use."""

from __future__ import annotations

import json
import tomllib

from pipectl.connectors.discover import FoundService, FoundTable, ModalReference, modal_functions_named
from pipectl.sandbox import prefect_stack
from pipectl.sandbox.layout import MODAL_APP, MODAL_FUNCTION, ORCHESTRATOR, PROCESS_JOB, SITE
from pipectl.sandbox.prefect_stack import POOL
from pipectl.scaffold import Discovery, entry_point, render

SANDBOX_FUNCTION = f"{MODAL_APP}/{MODAL_FUNCTION}"


def _sandbox_environment(sandbox) -> dict[str, str]:
    env = dict(line.split("=", 1) for line in sandbox.layout.env_file.read_text().splitlines() if "=" in line)
    return {**env, "PREFECT_API_URL": sandbox.state.prefect_api_url, "AWS_ENDPOINT_URL_SQS": sandbox.state.sqs_endpoint,
            "AWS_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"), "RENDER_API_URL": sandbox.state.render_api_url,
            "NETLIFY_API_URL": sandbox.state.netlify_api_url, "MODAL_SERVER_URL": sandbox.state.modal_server_url}


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
    assert config["modal"] == {"server_url": sandbox.state.modal_server_url, "token_id": "env:MODAL_TOKEN_ID",
                               "token_secret": "env:MODAL_TOKEN_SECRET", "functions": [SANDBOX_FUNCTION]}
    assert f"named by {ORCHESTRATOR} (env MODAL_APP + MODAL_FUNCTION); deployed" in text  # Modal confirmed it
    assert config["probe"] == {"table": "jobs", "final_status": ["completed"]}  # no URL invented
    assert f"# Items come in through {SITE} (netlify)" in text and '# url = "' in text  # how to fill it in
    for name in ("DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "RENDER_API_KEY",
                 "NETLIFY_AUTH_TOKEN"):
        assert env[name] not in text
    code, out, err = run_cli("doctor", "--no-journal", cwd=folder)
    assert code == 0, out + err
    code, out, _ = run_cli("doctor", "--no-journal", "--only", "modal.function", "-o", "json", cwd=folder)
    (finding,) = json.loads(out)["findings"]
    assert (finding["subject"], finding["status"]) == (SANDBOX_FUNCTION, "ok")  # doctor looks at what init wrote


def test_init_offers_a_function_modal_does_not_have_without_writing_it(sandbox, run_cli, tmp_path):
    sandbox.dirty()  # heal's seed gives process_job/production its own env back
    prefect_stack.set_job_variables(sandbox.state.prefect_api_url, PROCESS_JOB,
                                    {"env": {"MODAL_FUNCTION": f"{MODAL_APP}/no_such_function", "TZ": "Europe/Paris"}})
    code, out, err = run_cli("init", "--dry-run", cwd=tmp_path, env=_sandbox_environment(sandbox))
    assert code == 0, err
    assert tomllib.loads(out)["modal"]["functions"] == [SANDBOX_FUNCTION]
    assert f'    # "{MODAL_APP}/no_such_function",  # named by {PROCESS_JOB} (env MODAL_FUNCTION); Modal says it ' \
           "is not deployed" in out
    assert f"pipectl init: Modal: {MODAL_APP}/no_such_function" in err and "left commented out" in err
    assert "Europe/Paris" not in out  # a value shaped like APP/FUNCTION under a key that does not name Modal


def test_init_without_a_modal_token_writes_the_functions_unconfirmed(sandbox, run_cli, tmp_path):
    env = {k: v for k, v in _sandbox_environment(sandbox).items() if not k.startswith("MODAL_TOKEN")}
    code, out, err = run_cli("init", "--dry-run", cwd=tmp_path, env=env)
    assert code == 0, err
    modal = tomllib.loads(out)["modal"]
    assert modal["functions"] == [SANDBOX_FUNCTION] and "token_id" not in modal
    assert "not confirmed with Modal" in out and '# token_id = "env:MODAL_TOKEN_ID"' in out
    assert "MODAL_TOKEN_ID / MODAL_TOKEN_SECRET not set" in err


def test_modal_functions_are_read_from_the_keys_that_name_them():
    env = {"MODAL_APP": "workers", "MODAL_FUNCTION": "start_a", "MODAL_TOKEN_SECRET": "as-not-read",
           "TZ": "Europe/Paris", "MODAL_CONFIG_PATH": "config/modal.toml", "LOG_LEVEL": "INFO"}
    assert modal_functions_named(env, "env") == [ModalReference("workers/start_a", "env MODAL_APP + MODAL_FUNCTION")]
    listed = modal_functions_named({"MODAL_FUNCTIONS": "workers/a, other/b"}, "env")
    assert [r.name for r in listed] == ["workers/a", "other/b"]
    params = modal_functions_named({"modal_app_name": "workers", "modal_fn": "b", "step": "x/y"}, "parameter")
    assert params == [ModalReference("workers/b", "parameter modal_app_name + modal_fn")]
    assert modal_functions_named({"MODAL_FUNCTION": "start_a"}, "env") == []  # no app: not guessed
    assert modal_functions_named({"MODAL_APP": "w", "MODAL_FUNCTION": "{{ prefect.variables.fn }}"}, "env") == []


def test_probe_section_says_how_to_fill_in_what_init_cannot_know():
    pending = FoundTable("workflow_states", "status", "updated_at", "id", ["PENDING"], [])
    text = render(_with_entry_point(Discovery(tables=[pending])), "p")
    assert tomllib.loads(text)["probe"] == {"table": "workflow_states"}  # the only table; no final status seen
    assert "# insert = {" in text and "url" not in tomllib.loads(text)["probe"]
    done = [FoundTable(name, "status", "updated_at", "id", [], ["done"]) for name in ("a", "b")]
    consumer = FoundService("render", "srv-1", "subscriber", ["SQS_QUEUE_URL", "PREFECT_API_URL"])
    text = render(_with_entry_point(Discovery(tables=done, services=[consumer])), "p")
    assert tomllib.loads(text)["probe"] == {} and '# table = one of "a", "b"' in text
    assert "come in through" not in text  # a queue's consumer with no database is no way in
    assert entry_point(Discovery()) is None and "[probe]" not in render(Discovery(), "p")


def _with_entry_point(found: Discovery) -> Discovery:
    found.probe = entry_point(found)
    return found


def test_init_never_replaces_a_file_and_says_what_it_could_not_ask(run_cli, tmp_path):
    (tmp_path / "pipectl.toml").write_text('pipeline = "mine"\n')
    code, _, err = run_cli("init", "--yes", cwd=tmp_path)
    assert code == 2 and "exists: pass --force" in err
    assert (tmp_path / "pipectl.toml").read_text() == 'pipeline = "mine"\n'
    code, out, err = run_cli("init", "--dry-run", cwd=tmp_path,
                             env={"PREFECT_API_URL": "http://127.0.0.1:9/api", "DATABASE_URL": ""})
    assert code == 0 and 'api_url = "http://127.0.0.1:9/api"' in out and "[[prefect.deployments]]" not in out
    assert "pipectl init: Prefect:" in err and "DATABASE_URL is not set" in err
