"""The redaction promise, swept across every command against the real sandbox.

1. Fresh credentials of a dozen kinds are planted wherever an operator's secrets live — the environment,
   Secret blocks, plain-text job variables (flat, nested, inside a string), a repository's tree and
   history, URLs with user info, the DLQ, values typed on the command line, and the error paths of a dead
   database, a Prefect that refuses (and echoes) its key, a Modal that refuses its token and an SQS that
   refuses its credentials — then every command runs, and no 8-character piece of any of them may show
   in stdout, stderr, a written file, the journal's bytes or a log record. Ordinary text (paths whose
   names share 8 characters with a credential's public prefix) must come out undamaged, and no write
   may put a credential into Prefect as plain text. Everything is collected first, so one run names it all.
2. Secrets that are everyday words (`postgres`, `prefect`, `secret`, `severity`, `2026`, `internal`)
   must not damage what pipectl prints: the same keys, check ids, statuses, run ids and fix commands
   as with random secrets, and JSON that still parses.

Each command runs in-process with the redactor cleared first, as a fresh `pipectl` process would: a
secret one command registered must not hide a leak in the next.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from pipectl.connectors import prefect as prefect_api
from pipectl.journal import Journal
from pipectl.redact import redactor
from pipectl.sandbox import prefect_stack, queues
from pipectl.sandbox.config_file import probe_toml, services_toml
from pipectl.sandbox.job_drills import suspended_subscriber
from pipectl.sandbox.layout import (
    MODAL_APP,
    MODAL_FUNCTION,
    ORCHESTRATOR,
    POOL,
    PROCESS_JOB,
    REGION,
    SUBSCRIBER,
)
from pipectl.sandbox.sqs_server import set_auth
from tests.fixtures.planted import Detector, Leak, Planted, files_under, generate, rand, read_bytes_text

FORMATS = ("terminal", "json", "markdown", "junit", "sarif", "github")
LOGGERS = ("pipectl", "prefect", "httpx", "httpcore", "botocore", "boto3", "urllib3", "modal", "grpclib",
           "psycopg", "asyncio", "git", "detect_secrets", "sqlalchemy", "moto", "pydantic", "typer")
"""Library loggers whose records are captured raw: pipectl's own handler only redacts what reaches it, and
`main()` replaces the root logger's handlers (caplog's among them) on every call."""
RUN_ID = re.compile(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b")
WF = ["--table", "workflow_states"]

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "STRIPE_KEY": "stripe_key",
    "STRIPE_WEBHOOK_SIGNING_SECRET": "stripe_webhook_secret",
    "SUPABASE_SERVICE_ROLE_KEY": "supabase_service_role_jwt",
    "SUPABASE_SECRET_KEY": "supabase_secret_key",
    "STAGING_MODAL_TOKEN_ID": "modal_token_id",
    "STAGING_MODAL_TOKEN_SECRET": "modal_token_secret",
    "PREFECT_API_KEY": "prefect_api_key",
    "GITHUB_TOKEN": "github_token",
    "DB_PASSWORD": "random_password",
    "DEPLOY_PRIVATE_KEY": "private_key",
    "SLACK_BOT_TOKEN": "slack_token",
    "DEAD_PREFECT_API_KEY": "rejected_prefect_api_key",
    "REJECTED_MODAL_TOKEN_ID": "rejected_modal_token_id",
    "REJECTED_MODAL_TOKEN_SECRET": "rejected_modal_token_secret",
    "NEW_GITHUB_TOKEN": "patch_env_ref_github_token",
}
"""Environment variable → planted kind. The sandbox's own Modal tokens (planted too) come from its env
file."""


# ------------------------------------------------------------------------------------------------ helpers


class EchoServer:
    """Refuses every request with 401 and, like some proxies and APIs, echoes what it was sent (the
    Authorization header, the path with its query) in its error body."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                body = json.dumps({"detail": f"Invalid authentication credentials "
                                             f"(got {self.headers.get('Authorization')!s} for {self.path})"})
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("WWW-Authenticate", 'Bearer realm="sweep"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _refuse

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo_server():
    server = EchoServer()
    yield server
    server.close()


def with_password(url: str, password: str) -> str:
    """The sandbox's DSN (unix socket, trust auth: any password works) with a password in its user info."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{password}@{host}"))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Sweep", "-c", "user.email=sweep@example.invalid",
                    "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                   cwd=repo, check=True, capture_output=True)  # fmt: skip


def make_repo(root: Path, p: dict[str, Planted]) -> Path:
    """Credentials committed then deleted (history only), committed and kept (tree and history), and
    never committed (untracked)."""
    repo = root / "app-repo"
    (repo / "deploy").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "README.md").write_text("# app\n")
    (repo / "deploy" / "production.env").write_text(
        f"AWS_ACCESS_KEY_ID={p['aws_access_key_id'].value}\n"
        f"AWS_SECRET_ACCESS_KEY={p['aws_secret_access_key'].value}\n"
        f"STRIPE_KEY={p['stripe_key'].value}\n"
        f"SLACK_BOT_TOKEN={p['slack_token'].value}\n"
        f"GITHUB_TOKEN={p['github_token'].value}\n"
    )
    (repo / "deploy" / "deploy_key.pem").write_text(p["private_key"].value + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Add deploy settings")
    git(repo, "rm", "-q", "deploy/production.env", "deploy/deploy_key.pem")
    git(repo, "commit", "-q", "-m", "Remove deploy settings")
    (repo / "settings.py").write_text(
        f'SUPABASE_SERVICE_ROLE_KEY = "{p["supabase_service_role_jwt"].value}"\n'
        f'SUPABASE_SECRET_KEY = "{p["supabase_secret_key"].value}"\n'
        f'PREFECT_API_KEY = "{p["prefect_api_key"].value}"\n'
        f'MODAL_TOKEN_SECRET = "{p["modal_token_secret"].value}"\n'
        f'DATABASE_URL = "postgresql://app:{p["postgres_url_password"].value}@db.internal:5432/app"\n'
        f'ADMIN_PASSWORD = "{p["random_password"].value}"\n'
    )
    git(repo, "add", "settings.py")
    git(repo, "commit", "-q", "-m", "Settings")
    (repo / "notes.txt").write_text(f"webhook signing secret: {p['stripe_webhook_secret'].value}\n")
    return repo


CREDENTIALS = """
[credentials]
aws = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
stripe = ["STRIPE_KEY", "STRIPE_WEBHOOK_SIGNING_SECRET"]
supabase = ["SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SECRET_KEY"]
github = ["GITHUB_TOKEN"]
slack = ["SLACK_BOT_TOKEN"]
app = ["DB_PASSWORD", "DEPLOY_PRIVATE_KEY"]
"""

STATE_TABLES = """
[[state_tables]]
table = "workflow_states"
group_by = ["step_name"]
stuck_after = { PENDING = "10m", QUEUED = "5m", IN_PROGRESS = "30m" }
"""


def main_config(sandbox, repo: Path, p: dict[str, Planted]) -> str:
    """The sandbox, with its Prefect key, SQS endpoint and HTTP endpoints carrying credentials."""
    s = sandbox.state
    health = f"127.0.0.1:{s.prefect_port}/api/health"
    return f"""
pipeline = "sweep"
env_file = "{sandbox.layout.env_file.name}"

[database]
dsn = "env:DATABASE_URL"
{STATE_TABLES}
[[state_tables]]
table = "jobs"
stuck_after = {{ pending = "10m" }}

[prefect]
api_url = "{s.prefect_api_url}"
api_key = "env:PREFECT_API_KEY"

[[prefect.deployments]]
name = "{ORCHESTRATOR}"
work_pool = "{POOL}"
required_env = ["MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"]
moves = {{ table = "workflow_states", from_status = "PENDING", to_status = "IN_PROGRESS" }}

[[prefect.deployments]]
name = "{PROCESS_JOB}"
work_pool = "{POOL}"
entrypoint = "pipeline_flows.py:process_job"
source = "{prefect_stack.FLOWS_DIR}"
job_variables = {{ env = {{ LOG_LEVEL = "INFO", GITHUB_TOKEN = "env:GITHUB_TOKEN" }} }}

[aws]
region = "{REGION}"
endpoint_url = "http://sqsuser:{p['aws_endpoint_url_password'].value}@127.0.0.1:{s.sqs_port}"

[[queues]]
name = "jobs"
url = "{s.queue_url}"
dlq_url = "{s.dlq_url}"

[modal]
server_url = "{s.modal_server_url}"
token_id = "env:MODAL_TOKEN_ID"
token_secret = "env:MODAL_TOKEN_SECRET"
functions = ["{MODAL_APP}/{MODAL_FUNCTION}"]

[[http]]
name = "prefect-health"
url = "http://monitor:{p['http_url_password'].value}@{health}?access_token={p['http_url_query_token'].value}"

[[http]]
name = "prefect-health-token"
url = "http://{p['http_url_username_token'].value}@{health}"

{services_toml(s)}{probe_toml(s)}
[repo]
path = "{repo}"
{CREDENTIALS}"""


def dead_config(sandbox, echo: EchoServer, repo: Path) -> str:
    """Every credential refused: a dead DSN, Prefect (the echo server) and Modal refusing, SQS enforcing
    auth."""
    s = sandbox.state
    return f"""
pipeline = "sweep-dead"

[database]
dsn = "env:DEAD_DATABASE_URL"
connect_timeout = 1
{STATE_TABLES}
[prefect]
api_url = "http://127.0.0.1:{echo.port}/api"
api_key = "env:DEAD_PREFECT_API_KEY"

[[prefect.deployments]]
name = "{ORCHESTRATOR}"
work_pool = "{POOL}"
required_env = ["MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"]
moves = {{ table = "workflow_states", from_status = "PENDING", to_status = "IN_PROGRESS" }}

[aws]
region = "{REGION}"
endpoint_url = "{s.sqs_endpoint}"

[[queues]]
name = "jobs"
url = "{s.queue_url}"
dlq_url = "{s.dlq_url}"

[modal]
server_url = "{s.modal_server_url}"
token_id = "env:REJECTED_MODAL_TOKEN_ID"
token_secret = "env:REJECTED_MODAL_TOKEN_SECRET"
functions = ["{MODAL_APP}/{MODAL_FUNCTION}"]

[[http]]
name = "status-page"
url = "http://monitor:{{http_password}}@127.0.0.1:{echo.port}/status?access_token={{http_token}}"

[repo]
path = "{repo}"
{CREDENTIALS}"""


class Sweep:
    """Runs commands as fresh processes would (the redactor cleared first), searches everything each one
    produced for planted values, and collects leaks, damage and other problems instead of stopping."""

    def __init__(self, run_cli, caplog, capfd, detector: Detector, journal: Path, watched: list[Path],
                 cwd: Path, transcript: Path) -> None:
        self.run_cli, self.caplog, self.capfd = run_cli, caplog, capfd
        self.detector, self.journal, self.watched, self.cwd = detector, journal, watched, cwd
        self.transcript = transcript  # everything the commands printed, to read after a failing run
        self.leaks: list[Leak] = []
        self.damage: list[str] = []
        self.problems: list[str] = []
        self.commands: list[str] = []
        self._seen_in_files: set[tuple[str, str]] = set()

    def run(self, *args: str, expect: int | tuple[int, ...] | None = None) -> tuple[int, str, str]:
        label = self.detector.label(args)
        redactor.clear()  # a fresh process knows no secret yet
        self.caplog.clear()
        for name in LOGGERS:
            if self.caplog.handler not in logging.getLogger(name).handlers:
                logging.getLogger(name).addHandler(self.caplog.handler)
        self.capfd.readouterr()
        code, out, err = self.run_cli(*args, cwd=self.cwd)
        stray = self.capfd.readouterr()
        self.commands.append(label)
        with self.transcript.open("a") as fh:
            fh.write(f"\n===== {label}  → exit {code}\n--- stdout\n{out}\n--- stderr\n{err}\n"
                     f"--- logs\n{self.caplog.text}\n--- fd\n{stray.out}{stray.err}\n")
        self._inspect(label, {"stdout": out, "stderr": err, "log records": self.caplog.text,
                              "process stdout/stderr (fd)": stray.out + stray.err})
        expected = expect if isinstance(expect, tuple) else (expect,)
        if expect is not None and code not in expected:
            self.problems.append(f"{label}: exit {code}, expected {expect}; stderr: {err.strip()[-400:]}")
        return code, out, err

    def _inspect(self, label: str, texts: dict[str, str]) -> None:
        for where, text in texts.items():
            for kind, fragment in self.detector.find(text).items():
                self.leaks.append(Leak(label, where, kind, fragment))
        journal_files = [self.journal.with_name(self.journal.name + suffix)
                         for suffix in ("", "-wal", "-journal", "-shm")]
        for path in journal_files + files_under(*self.watched):
            if not path.is_file():
                continue
            where = f"journal file {path.name} (raw bytes)" if path in journal_files else f"file {path}"
            for kind, fragment in self.detector.find(read_bytes_text(path)).items():
                if (where, kind) not in self._seen_in_files:  # files persist: name the command that wrote it
                    self._seen_in_files.add((where, kind))
                    self.leaks.append(Leak(label, where, kind, fragment))

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def intact(self, command: str, text: str, path: Path, what: str) -> None:
        """Ordinary text — here a path — must come out of redaction as it went in."""
        if str(path) not in text:
            self.damage.append(f"{command}: {what} does not show the path {path} intact: "
                               f"{text.strip()[-240:]!r}")

    def report(self) -> str:
        lines = [(f"{len(self.leaks)} leak(s), {len(self.damage)} damaged text(s), "
                  f"{len(self.problems)} other problem(s) over {len(self.commands)} commands")]
        lines += [f"  LEAK {leak}" for leak in self.leaks]
        lines += [f"  DAMAGE {damage}" for damage in self.damage]
        lines += [f"  PROBLEM {problem}" for problem in self.problems]
        return "\n".join(lines)


def delete_secret_blocks(api_url: str, names: tuple[str, ...]) -> None:
    """Leave the sandbox's Prefect without the Secret blocks this test created (heal keeps extra blocks)."""
    from prefect.exceptions import ObjectNotFound

    async def run(client) -> None:
        for name in names:
            try:
                block = await client.read_block_document_by_name(name, "secret", include_secrets=False)
            except ObjectNotFound:
                continue
            await client.delete_block_document(block.id)

    prefect_stack._with_client(api_url, run)


def job_variables(sandbox, name: str = ORCHESTRATOR) -> dict:
    deployment = prefect_api.read_deployment(sandbox.state.prefect_api_url, None, name)
    return deployment.job_variables if deployment else {}


def run_ids(journal: Path) -> list[str]:
    return [r.id for r in Journal(journal).runs(500)]


def new_run(journal: Path, before: list[str]) -> str | None:
    return next((r for r in run_ids(journal) if r not in before), None)


# ------------------------------------------------------------------------------------------------ 1. sweep


def test_no_planted_value_leaks_from_any_command(sandbox, run_cli, caplog, capfd, tmp_path, monkeypatch,
                                                 echo_server, isolated_home, request):
    created = ("slack-bot-token", "supabase-secret-key", "deploy-private-key", "github-token", "db-pw")
    request.addfinalizer(lambda: delete_secret_blocks(sandbox.state.prefect_api_url, created))
    p = generate()
    for kind, value, prefix in (("sandbox_modal_token_id", sandbox.state.modal_token_id, "ak-"),
                                ("sandbox_modal_token_secret", sandbox.state.modal_token_secret, "as-")):
        p[kind] = Planted(kind, value, prefix)
    detector = Detector(p.values())
    # a folder whose name shares 8 characters with a credential's public prefix (`sb_secret_`)
    work, cfg_dir = tmp_path / "work", tmp_path / "client_secret_rotation"
    out_dir = cfg_dir / "reports"  # searched; the rest of cfg_dir (config, env file) holds secrets on purpose
    for folder in (work, cfg_dir, out_dir):
        folder.mkdir()
    journal = tmp_path / "state" / "journal.sqlite3"
    sweep = Sweep(run_cli, caplog, capfd, detector, journal, [work, out_dir, isolated_home], work,
                  tmp_path / "transcript.txt")
    J = ["--journal", str(journal)]
    api = sandbox.state.prefect_api_url

    # -- plant: the environment
    for name, kind in ENVIRONMENT.items():
        monkeypatch.setenv(name, p[kind].value)
    monkeypatch.setenv("DATABASE_URL",
                       with_password(sandbox.state.database_url, p["postgres_url_password"].value))
    monkeypatch.setenv("DEAD_DATABASE_URL",
                       f"postgresql://app:{p['dead_dsn_password'].value}@127.0.0.1:9/app")
    # -- plant: a repository (tree, history, untracked)
    repo = make_repo(tmp_path, p)
    assert set(detector.find((repo / "settings.py").read_text())) == {  # the detector sees what is there
        "supabase_service_role_jwt", "supabase_secret_key", "prefect_api_key", "modal_token_secret",
        "postgres_url_password", "random_password"}  # fmt: skip
    # -- plant: plain-text job variables on both deployments: flat, nested, inside a string, in a URL
    orchestrator_vars = prefect_stack.healthy_job_variables()
    orchestrator_vars["env"] |= {"STRIPE_KEY": p["stripe_key"].value,
                                 "SUPABASE_SERVICE_ROLE_KEY": p["supabase_service_role_jwt"].value,
                                 "SLACK_BOT_TOKEN": "{{ prefect.blocks.secret.slack-bot-token }}"}
    orchestrator_vars["stripe_webhook"] = {"signing_secret": p["stripe_webhook_secret"].value,
                                           "tolerance": 300}
    prefect_stack.set_job_variables(api, ORCHESTRATOR, orchestrator_vars)
    prefect_stack.set_job_variables(api, PROCESS_JOB, {"env": {
        "LOG_LEVEL": "INFO", "DB_PASSWORD": p["random_password"].value,
        "DEPLOY_PRIVATE_KEY": p["private_key"].value,
        "WORKER_ARGS": f"--api-key={p['jobvar_embedded_api_key'].value}",
        "DATABASE_URL": f"postgresql://app:{p['postgres_url_password'].value}@db.internal:5432/app"}})
    # -- plant: a dead-lettered message carrying a token
    with suspended_subscriber(sandbox.layout, sandbox.state):  # nothing else takes it meanwhile
        queues.dead_letter(sandbox.state.sqs_endpoint, sandbox.state.queue_url, sandbox.state.dlq_url,
                           [json.dumps({"job_id": 7, "slack_token": p["dlq_message_slack_token"].value})])
    sandbox.dirty()
    # -- plant: URLs with user info (and a token in a query), in the config files
    config, dead = cfg_dir / "pipectl.toml", cfg_dir / "dead.toml"
    config.write_text(main_config(sandbox, repo, p))
    shutil.copy(sandbox.layout.env_file, cfg_dir)  # the sandbox's Modal tokens and DSN, beside the config
    dead.write_text(dead_config(sandbox, echo_server, repo)
                    .replace("{http_password}", p["http_url_password"].value)
                    .replace("{http_token}", p["http_url_query_token"].value))
    C, D = ["--config", str(config)], ["--config", str(dead)]

    # -- catalogue
    sweep.run("checks", "list", expect=0)
    sweep.run("checks", "list", "--explain", expect=0)
    sweep.run("playbooks", "list", expect=0)

    # -- Secret blocks: from the environment (one referenced by the job variables, one not), from stdin
    sweep.run("secret", "set", "slack-bot-token", "--from-env", "SLACK_BOT_TOKEN", *C, "--yes", *J, expect=0)
    sweep.run("secret", "set", "supabase-secret-key", "--from-env", "SUPABASE_SECRET_KEY", *C, "--yes", *J,
              expect=0)
    monkeypatch.setattr("sys.stdin", io.StringIO(p["private_key"].value + "\n"))
    sweep.run("secret", "set", "deploy-private-key", "--stdin", *C, "--yes", *J, expect=0)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    sweep.check(prefect_api.read_secret_block(api, None, "slack-bot-token") == p["slack_token"].value,
                "secret set slack-bot-token did not store the value")
    sweep.check(prefect_api.read_secret_block(api, None, "deploy-private-key") == p["private_key"].value,
                "secret set deploy-private-key --stdin did not store the value")

    # -- doctor: every format, on stdout and into files, and the CI gate (with GitHub annotations)
    for fmt in FORMATS:
        sweep.run("doctor", *C, "--format", fmt, "--timeout", "10", *J, expect=(0, 1, 3))
        target = out_dir / f"doctor.{fmt}"
        _, _, err = sweep.run("doctor", *C, "--format", fmt, "--timeout", "10", "--output-file", str(target), *J,
                              expect=(0, 1, 3))
        sweep.intact(f"doctor --format {fmt} --output", err, target, "`report written to`")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    junit, sarif = out_dir / "ci-junit.xml", out_dir / "ci.sarif"
    _, _, err = sweep.run("doctor", *C, "--ci", "--junit", str(junit), "--sarif", str(sarif),
                          "--timeout", "10", *J, expect=(0, 1, 3))
    monkeypatch.delenv("GITHUB_ACTIONS")
    for path in (junit, sarif):
        sweep.intact("doctor --ci", err, path, "`CI artefacts:`")
    # -- the second incident's tools: a trace through the dead letter that carries a token, a hosted service
    #    given a credential from the environment, a probe through the whole pipeline
    for fmt in ("terminal", "json", "markdown"):
        sweep.run("trace", "7", *C, "-o", fmt, expect=0)
    sweep.run("service", "env", "set", SUBSCRIBER, "SLACK_BOT_TOKEN=env:SLACK_BOT_TOKEN", *C, "--yes", *J, expect=0)
    sweep.run("service", "env", "set", SUBSCRIBER, f"STRIPE_KEY={p['argv_service_env_stripe_key'].value}", *C,
              "--yes", *J, expect=2)
    sweep.run("probe", *C, "--yes", "-o", "json", *J, expect=(0, 1))
    sweep.run("doctor", *C, "--only", "service", "-o", "json", "--timeout", "10", *J, expect=(0, 1, 3))
    _, doctor_json, _ = sweep.run("doctor", *C, "--format", "json", "--timeout", "10", "--no-journal")
    findings = {f["id"]: f for f in json.loads(doctor_json)["findings"]}
    plain = findings.get(f"prefect.job_variables:{ORCHESTRATOR}", {})
    sweep.check(plain.get("status") == "fail" and "plaintext_keys" in plain.get("evidence", {}),
                f"doctor did not report the plain-text job variables of {ORCHESTRATOR}: "
                f"{plain.get('summary')}")
    sweep.intact("doctor --format json", findings.get("config.valid", {}).get("summary", ""), config,
                 "the config.valid summary")
    # a key=value DSN with a quoted password (a space inside), given through a PIPECTL_ override
    monkeypatch.setenv("PIPECTL_DATABASE__DSN", "host=127.0.0.1 port=9 user=app dbname=app connect_timeout=1 "
                                                f"password='{p['kv_dsn_password'].value}'")
    sweep.run("doctor", *C, "--only", "db", "--format", "json", "--timeout", "2", *J, expect=(1, 3))
    sweep.run("reset", "--status", "QUEUED", *WF, "--dry-run", *C, *J, expect=1)
    monkeypatch.delenv("PIPECTL_DATABASE__DSN")

    # -- patch: plain-text credentials are refused (exit 2) and nothing is written
    before = job_variables(sandbox)
    for option, spec in (
        ("--env", f"STRIPE_KEY={p['patch_refused_stripe_key'].value}"),
        ("--job-variable", f'env.MODAL_TOKEN_SECRET="{p["patch_refused_modal_secret"].value}"'),
        ("--job-variable",
         "stripe_webhook=" + json.dumps({"signing_secret": p["patch_refused_webhook_secret"].value})),
    ):
        sweep.run("patch", ORCHESTRATOR, option, spec, *C, "--yes", *J, expect=2)
    sweep.check(job_variables(sandbox) == before, "a refused patch changed the job variables")
    # -- a credential typed on the command line by mistake (an extra argument, `:` for `=`): refused and
    #    not echoed
    sweep.run("secret", "set", "stripe-key", p["argv_secret_set_stripe_key"].value, *C, "--yes", *J, expect=2)
    sweep.run("patch", ORCHESTRATOR, "--env", f"STRIPE_KEY:{p['argv_env_typo_stripe_key'].value}", *C,
              "--yes", *J, expect=2)
    sweep.run("patch", ORCHESTRATOR, "--job-variable",
              f'env.SLACK_BOT_TOKEN:"{p["argv_job_variable_typo_slack_token"].value}"', *C, "--yes", *J,
              expect=2)
    sweep.run("trigger", ORCHESTRATOR, "--param", f"api_token:{p['argv_param_typo_github_token'].value}", *C,
              "--yes", *J, expect=2)
    sweep.check(job_variables(sandbox) == before, "a refused patch changed the job variables")
    # -- patch: KEY=env:VAR of a credential becomes a Secret block and a reference to it
    runs = run_ids(journal)
    sweep.run("patch", ORCHESTRATOR, "--env", "GITHUB_TOKEN=env:NEW_GITHUB_TOKEN", *C, "--yes", *J, expect=0)
    patch_run = new_run(journal, runs)
    env = job_variables(sandbox).get("env", {})
    sweep.check(env.get("GITHUB_TOKEN") == "{{ prefect.blocks.secret.github-token }}",
                "--env GITHUB_TOKEN=env:NEW_GITHUB_TOKEN did not become a Secret block reference: "
                + detector.label([str(env.get("GITHUB_TOKEN"))]))
    stored = prefect_api.read_secret_block(api, None, "github-token")
    sweep.check(stored == p["patch_env_ref_github_token"].value,
                "--env GITHUB_TOKEN=env:NEW_GITHUB_TOKEN did not store the value in Secret block "
                "github-token")
    #    … also when the variable read is named as a credential (DB_PASSWORD) and the key it lands in is not
    sweep.run("patch", ORCHESTRATOR, "--env", "DB_PW=env:DB_PASSWORD", *C, "--yes", *J, expect=(0, 2))
    written = job_variables(sandbox).get("env", {}).get("DB_PW")
    sweep.check(p["random_password"].value not in json.dumps(job_variables(sandbox)),
                "`patch --env DB_PW=env:DB_PASSWORD --yes` wrote $DB_PASSWORD into the job variables as "
                "plain text: env.DB_PW = " + detector.label([str(written)]))
    refused_or_referenced = json.dumps(job_variables(sandbox))
    for kind in ("patch_refused_stripe_key", "patch_refused_modal_secret", "patch_refused_webhook_secret",
                 "patch_env_ref_github_token", "argv_env_typo_stripe_key",
                 "argv_job_variable_typo_slack_token"):
        sweep.check(p[kind].value not in refused_or_referenced,
                    f"the job variables hold the plain value {kind}")
    # -- patch: a plan over plain-text values (dry run, both formats), and an applied change beside them
    for fmt in ("terminal", "json"):
        sweep.run("patch", ORCHESTRATOR, "--env", "STRIPE_KEY=secret:stripe-key", "--unset-env",
                  "SUPABASE_SERVICE_ROLE_KEY", "--job-variable", 'stripe_webhook={"tolerance": 600}', *C,
                  "--dry-run", "--format", fmt, *J, expect=0)
    runs = run_ids(journal)
    sweep.run("patch", PROCESS_JOB, "--env", "LOG_LEVEL=DEBUG", *C, "--yes", *J, expect=0)
    process_patch_run = new_run(journal, runs)

    # -- trigger: a credential as a parameter is refused (flat, nested); a normal run goes through
    sweep.run("trigger", ORCHESTRATOR, "--param", f"api_token={p['trigger_refused_api_token'].value}", *C,
              "--yes", *J, expect=2)
    nested = json.dumps({"db": {"password": p["trigger_refused_nested_password"].value}})
    sweep.run("trigger", ORCHESTRATOR, "--param", f"options={nested}", *C, "--yes", *J, expect=2)
    sweep.run("trigger", ORCHESTRATOR, "--name", "sweep-run", "--param", "batch_size=40", "--wait",
              "--timeout", "3m", *C, "--yes", *J, expect=0)

    # -- reset: the run moved the rows to IN_PROGRESS; put them back to PENDING
    reset = ["reset", "--status", "IN_PROGRESS", *WF, "--older-than", "0s"]
    sweep.run(*reset, "--dry-run", *C, *J, expect=0)
    sweep.run(*reset, "--dry-run", "--format", "json", *C, *J, expect=0)
    runs = run_ids(journal)
    sweep.run(*reset, "--yes", *C, *J, expect=0)
    reset_run = new_run(journal, runs)
    sweep.check(sandbox.counts() == {"PENDING": 40}, f"reset --yes left {sandbox.counts()}")

    # -- the first incident's playbook (exit 1 allowed: its last verify still sees process_job's plain text)
    sandbox.break_("missing-modal-creds")
    sweep.run("playbook", "run", "fix-stuck-batch", "--dry-run", *C, *J, expect=0)
    runs = run_ids(journal)
    report = out_dir / "incident.md"
    _, _, err = sweep.run("playbook", "run", "fix-stuck-batch", "--yes", "--report", str(report), *C, *J,
                          expect=(0, 1))
    sweep.intact("playbook run --report", err, report, "`incident report written to`")
    sweep.check(sandbox.counts() == {"IN_PROGRESS": 40}, f"the playbook left the rows {sandbox.counts()}")
    playbook_run = new_run(journal, runs)

    # -- redrive; register (the config's job_variables say GITHUB_TOKEN = "env:GITHUB_TOKEN")
    sweep.run("redrive", "jobs", "--dry-run", *C, *J, expect=0)
    sandbox.break_("missing-deployment")
    sweep.run("deploy", "register", PROCESS_JOB, "--dry-run", *C, *J, expect=(0, 2))
    sweep.run("deploy", "register", PROCESS_JOB, "--yes", *C, *J, expect=(0, 2))
    sweep.check(p["github_token"].value not in json.dumps(job_variables(sandbox, PROCESS_JOB)),
                "`deploy register --yes` wrote $GITHUB_TOKEN (the config's job_variables.env.GITHUB_TOKEN = "
                "\"env:GITHUB_TOKEN\") into the new deployment's job variables as plain text")

    # -- history
    _, listing, _ = sweep.run("journal", "--limit", "200", *J, expect=0)
    sweep.intact("journal", listing, config, "the list of runs")
    damaged = [r.command for r in Journal(journal).runs(500)
               if "--config" in r.command and str(cfg_dir) not in r.command]
    if damaged:
        sweep.damage.append(f"the journal stores {len(damaged)} command line(s) with a damaged --config "
                            f"path, "
                            f"e.g. {damaged[0]!r}")
    sweep.run("report", *J, expect=0)
    for run_id in (patch_run, process_patch_run, reset_run, playbook_run):
        sweep.check(run_id is not None, "a repair run did not reach the journal")
        if run_id:
            target = out_dir / f"report-{run_id}.md"
            _, _, err = sweep.run("report", run_id, "--output-file", str(target), *J, expect=0)
            sweep.intact("report --output", err, target, "`report written to`")
            sweep.run("undo", run_id, "--dry-run", *C, *J, expect=(0, 1))

    # -- the sandbox's own commands
    sweep.run("sandbox", "status", "--dir", str(sandbox.layout.root))
    sweep.run("sandbox", "status", "--format", "json", "--dir", str(sandbox.layout.root))
    sweep.run("sandbox", "env", "--dir", str(sandbox.layout.root), expect=0)

    # -- error paths: a dead DSN, Prefect refusing (and echoing) the key, Modal refusing the token, SQS
    #    refusing the credentials
    set_auth(sandbox.state.sqs_endpoint, True)
    try:
        for fmt in FORMATS:
            sweep.run("doctor", *D, "--format", fmt, "--timeout", "2", *J, expect=(1, 3))
        sweep.run("doctor", *D, "--ci", "--junit", str(out_dir / "dead-junit.xml"), "--sarif",
                  str(out_dir / "dead.sarif"), "--timeout", "2", *J, expect=(1, 3))
        sweep.run("secret", "set", "stripe-key", "--from-env", "STRIPE_KEY", *D, "--yes", *J, expect=1)
        sweep.run("patch", ORCHESTRATOR, "--env", "LOG_LEVEL=DEBUG", *D, "--dry-run", *J, expect=1)
        sweep.run("patch", ORCHESTRATOR, "--env", "GITHUB_TOKEN=env:GITHUB_TOKEN", *D, "--yes", *J, expect=1)
        sweep.run("trigger", ORCHESTRATOR, *D, "--yes", *J, expect=1)
        sweep.run("reset", "--status", "QUEUED", *WF, "--dry-run", *D, *J, expect=1)
        sweep.run("reset", "--status", "QUEUED", *WF, "--dry-run", "--format", "json", *D, *J, expect=1)
        sweep.run("redrive", "jobs", "--dry-run", *D, *J, expect=1)
        if patch_run:
            sweep.run("undo", patch_run, "--dry-run", *D, *J, expect=(1, 2))
        sweep.run("journal", *J, expect=0)
        sweep.run("report", *J, expect=0)
    finally:
        set_auth(sandbox.state.sqs_endpoint, False)

    assert not sweep.leaks and not sweep.damage and not sweep.problems, sweep.report()


# ------------------------------------------------------------------------------------------------ 2. words

WORD_SECRETS = {"APP_SECRET": "secret", "ALERT_PASSWORD": "severity", "BUILD_TOKEN": "2026",
                "INTERNAL_API_KEY": "internal"}  # fmt: skip
"""Environment credentials the config names; besides them PREFECT_API_KEY=prefect, DB password `postgres`."""
_STRUCTURE = ("id", "check", "subject", "status", "severity", "component", "fix", "caused_by")


def _word_config(sandbox, path: Path) -> Path:
    """The sandbox's own config, plus a Prefect API key and the word credentials."""
    shutil.copy(sandbox.layout.env_file, path.parent)
    text = sandbox.config_path.read_text()
    text = text.replace(f'api_url = "{sandbox.state.prefect_api_url}"',
                        f'api_url = "{sandbox.state.prefect_api_url}"\napi_key = "env:PREFECT_API_KEY"', 1)
    names = ", ".join(f'"{k}"' for k in WORD_SECRETS)
    path.write_text(text.replace("[credentials]\n", f"[credentials]\napp = [{names}]\n"))
    return path


def _key_paths(value, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return {prefix} | {q for k, v in value.items() for q in _key_paths(v, f"{prefix}.{k}")}
    if isinstance(value, list):
        return {prefix} | {q for v in value for q in _key_paths(v, f"{prefix}[]")}
    return {prefix}


def _doctor_structure(document: dict) -> dict:
    return {
        "keys": sorted(_key_paths(document)),
        "schema": document.get("schema"),
        "pipeline": document.get("pipeline"),
        "summary": document.get("summary"),
        "findings": [{k: f.get(k) for k in _STRUCTURE} | {"evidence_keys": sorted(f.get("evidence", {}))}
                     for f in document.get("findings", [])],
    }


def _json_documents(text: str) -> list:
    """Every JSON document in `text` (a plan per step may follow another)."""
    decoder, documents, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        document, index = decoder.raw_decode(text, index)
        documents.append(document)
    return documents


MASKS = re.compile(r"‹secret[^›]*›|\*{4}")


def _damaged(words: str, random: str) -> bool:
    """A text damaged by redaction: the word run masks more than the random run does.

    The two doctor runs read live systems, so a status may change between them (a worker's heartbeat);
    that is not damage. Masking an ordinary word always adds a mask the random run does not have.
    """
    return _normalise(words) != _normalise(random) and len(MASKS.findall(words)) != len(MASKS.findall(random))


def _normalise(text: str) -> str:
    """Text without what differs between any two runs: run ids, times, durations and ages."""
    text = RUN_ID.sub("RUN", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[T ][\d:.]+(?:[+-]\d\d:\d\d|Z)?", "TIME", text)
    text = re.sub(r"\b\d+(?:\.\d+)?\s?(?:ms|s|m|h|min)\b", "DURATION", text)
    return re.sub(r"(\w+_(?:s|ms)\"?\s*[=:]\s*)\d+(?:\.\d+)?", r"\1N", text)  # oldest_s=2701, elapsed_ms: 12


def _run_variant(run_cli, sandbox, config: Path, journal: Path, monkeypatch, values: dict[str, str],
                 db_password: str, prefect_key: str) -> dict[str, tuple[int, str, str]]:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFECT_API_KEY", prefect_key)
    monkeypatch.setenv("DATABASE_URL", with_password(sandbox.state.database_url, db_password))
    C, J = ["--config", str(config)], ["--journal", str(journal)]
    commands = {
        "doctor json": ["doctor", *C, "--format", "json", "--timeout", "10", *J],
        "doctor terminal": ["doctor", *C, "--timeout", "10", *J],
        "checks list": ["checks", "list"],
        "checks explain": ["checks", "list", "--explain"],
        "reset json": ["reset", "--status", "IN_PROGRESS", *WF, "--dry-run", "--format", "json", *C, *J],
        "journal": ["journal", *J],  # there is no `journal --format json`
    }
    variant_dir = journal.parent.parent  # the one intended difference between the runs; also the cwd
    variant_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, args in commands.items():
        redactor.clear()  # a fresh process
        code, stdout, stderr = run_cli(*args, cwd=variant_dir)
        out[name] = (code, *(text.replace(str(variant_dir), "VARIANT") for text in (stdout, stderr)))
    return out


def test_everyday_word_secrets_leave_structure_intact(sandbox, run_cli, tmp_path, monkeypatch):
    sandbox.break_("stuck-in-progress")  # something to find, and rows for the reset plan
    sandbox.dirty()
    import psycopg

    with psycopg.connect(sandbox.state.database_url, autocommit=True) as db:
        db.execute("ANALYZE")  # row estimates in summaries must not change between the two runs (autovacuum)
    config = _word_config(sandbox, tmp_path / "pipectl.toml")
    # each journal in a folder named like one of the words, as ordinary paths may be
    journals = {variant: tmp_path / variant / "internal" / "journal.sqlite3"
                for variant in ("words", "random")}
    runs = {
        "words": _run_variant(run_cli, sandbox, config, journals["words"], monkeypatch, WORD_SECRETS,
                              db_password="postgres", prefect_key="prefect"),
        "random": _run_variant(run_cli, sandbox, config, journals["random"], monkeypatch,
                               {k: rand(24) for k in WORD_SECRETS}, db_password=rand(20),
                               prefect_key="pn" + "u_" + rand(36)),
    }
    words, randoms = runs["words"], runs["random"]
    damage: list[str] = []

    for variant, out in runs.items():
        for name, (code, _, err) in out.items():
            if code not in (0, 1, 3):
                damage.append(f"{variant}: `{name}` exited {code}: {err.strip()[-300:]}")
        for run in Journal(journals[variant]).runs():
            if str(journals[variant]) not in run.command:
                damage.append(f"{variant}: the journal stores a damaged --journal path: {run.command!r}")
        err = out["reset json"][2]
        if "journal: run" in err and not RUN_ID.search(err):
            damage.append(f"{variant}: `reset` printed a damaged run id: {err.strip()[-200:]!r}")
        if len(RUN_ID.findall(out["journal"][1])) < 3:
            damage.append(f"{variant}: `pipectl journal` shows fewer than 3 intact run ids: "
                          f"{out['journal'][1]!r}")

    # every JSON output parses, with the same structure
    documents = {}
    for variant, out in runs.items():
        for name in ("doctor json", "reset json"):
            try:
                documents[variant, name] = _json_documents(out[name][1])
            except ValueError as exc:
                damage.append(f"{variant}: `{name}` is not valid JSON: {exc}: {out[name][1][:300]!r}")
    if ("words", "doctor json") in documents and ("random", "doctor json") in documents:
        (a,), (b,) = documents["words", "doctor json"], documents["random", "doctor json"]
        sa, sb = _doctor_structure(a), _doctor_structure(b)
        for key in sa:
            if key != "findings" and _damaged(json.dumps(sa[key]), json.dumps(sb[key])):
                damage.append(f"doctor json {key}: words {sa[key]!r} vs random {sb[key]!r}")
        if [f["id"] for f in sa["findings"]] != [f["id"] for f in sb["findings"]]:
            damage.append(f"doctor json: finding ids differ: {[f['id'] for f in sa['findings']]} with words, "
                          f"{[f['id'] for f in sb['findings']]} with random secrets")
        for fa, fb in zip(sa["findings"], sb["findings"], strict=False):
            if _damaged(json.dumps(fa), json.dumps(fb)):
                damage.append(f"doctor json finding {fb['id']}: "
                              f"{ {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]} } (words, random)")
        try:
            datetime.fromisoformat(a["started_at"])
        except (KeyError, ValueError):
            damage.append(f"doctor json: started_at is no timestamp with word secrets: "
                          f"{a.get('started_at')!r}")
        for fa, fb in zip(a["findings"], b["findings"], strict=False):  # the texts around the structure
            for field in ("summary", "impact"):
                if _damaged(fa[field], fb[field]):
                    damage.append(f"doctor json {fa['id']} {field}: words {fa[field]!r} vs random "
                                  f"{fb[field]!r}")
            for key, value in fa["evidence"].items():
                other = fb["evidence"].get(key)
                if _damaged(json.dumps({key: value}), json.dumps({key: other})):
                    damage.append(f"doctor json {fa['id']} evidence.{key}: words {value!r} vs random "
                                  f"{other!r}")
    if ("words", "reset json") in documents and ("random", "reset json") in documents:
        a, b = documents["words", "reset json"], documents["random", "reset json"]
        if [sorted(_key_paths(d)) for d in a] != [sorted(_key_paths(d)) for d in b]:
            damage.append("reset --format json: the word and random runs have different keys")
        for da, db in zip(a, b, strict=False):
            for key in sorted(set(da.get("details", {})) | set(db.get("details", {}))):
                va, vb = da["details"].get(key), db["details"].get(key)
                if _damaged(json.dumps(va), json.dumps(vb)):
                    damage.append(f"reset --format json details.{key}: words {va!r} vs random {vb!r}")
            if _damaged(json.dumps(da.get("changes")), json.dumps(db.get("changes"))):
                damage.append(f"reset --format json changes: words {da.get('changes')} vs random "
                              f"{db.get('changes')}")

    # the texts a person reads: identical but for times and ids
    for name in ("doctor terminal", "checks list", "checks explain", "journal"):
        ta, tb = _normalise(words[name][1]), _normalise(randoms[name][1])
        if _damaged(ta, tb):
            differing = [(x, y) for x, y in zip(ta.splitlines(), tb.splitlines(), strict=False) if x != y]
            damage.append(f"`{name}` differs between word and random secrets (words, random): "
                          f"{differing[:4]}")
    assert damage == [], "\n".join(damage)
