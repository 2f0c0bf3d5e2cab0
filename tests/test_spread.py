"""A doctor run spread over two processes finds what a one-process run finds, and masks what either found."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import default_signals, python_env


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()


def _leaky_repo(folder: Path) -> str:
    """A git repository with an AWS secret key committed and deleted later; returns the key, drawn now."""
    key = "".join(secrets.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))
    key_id = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=folder,
                       check=True, capture_output=True)

    git("init", "-q")
    (folder / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{key_id}"\nAWS_SECRET_ACCESS_KEY = "{key}"\n')
    git("add", ".")
    git("commit", "-qm", "settings")
    (folder / "settings.py").write_text("import os\n")
    git("commit", "-qam", "read keys from the environment")
    return key


def _doctor(config: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipectl", "-v", "doctor", "--config", str(config), "-o", "json",
                           "--no-journal"], capture_output=True, text=True, timeout=300, check=False,
                          env=python_env(**env), preexec_fn=default_signals)


def test_both_processes_find_the_same_and_the_childs_secrets_stay_masked(tmp_path, endpoint):
    key = _leaky_repo(tmp_path)
    config = tmp_path / "pipectl.toml"
    config.write_text(f'pipeline = "spread"\n[[http]]\nurl = "{endpoint}"\nname = "api"\n')

    spread, single = _doctor(config), _doctor(config, PIPECTL_ONE_PROCESS="1")
    assert "in a second process" in spread.stderr and "in a second process" not in single.stderr
    findings = {f["id"]: f["status"] for f in json.loads(spread.stdout)["findings"]}
    assert findings == {f["id"]: f["status"] for f in json.loads(single.stdout)["findings"]}
    assert findings["http.endpoint:api"] == "ok"  # run by the parent
    assert any(i.startswith("repo.secrets") and s == "fail" for i, s in findings.items())  # by the child
    assert spread.returncode == single.returncode == 1
    for output in (spread.stdout, spread.stderr):
        assert key not in output and key[:20] not in output and key[-20:] not in output


_SCRIPT = """
import os, sys
from pipectl.config import PipelineConfig
from pipectl.interface import Check, Context
from pipectl.redact import redactor
from pipectl.report import json as report
from pipectl.runner import run_checks

class AskedOverHttp(Check):
    id, component, libraries = "test.parent", "http", ("httpx",)
    def run(self, ctx):
        return [self.ok(f"ran in {os.getpid()}")]

class FoundLocally(Check):
    id, component = "test.child", "repo"
    def run(self, ctx):
        value = ctx.environ["PLANTED"]
        redactor.add(value)  # found by this check alone: only the child's redactor knows it at first
        return [self.fail(f"found {value} in {os.getpid()}")]

result = run_checks([AskedOverHttp, FoundLocally], Context(config=PipelineConfig(), environ=dict(os.environ)))
sys.stdout.write(redactor(report.render(result)))
"""


def test_a_secret_only_the_child_found_is_masked_in_what_the_parent_prints():
    planted = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False,
                          env=python_env(PLANTED=planted), preexec_fn=default_signals)
    assert done.returncode == 0, done.stderr[-2000:]
    findings = {f["check"]: f["summary"] for f in json.loads(done.stdout)["findings"]}
    parent_pid, child_pid = findings["test.parent"].split()[-1], findings["test.child"].split()[-1]
    assert parent_pid != child_pid  # the two really ran in two processes
    assert planted not in done.stdout and planted[:8] not in done.stdout and planted[-8:] not in done.stdout


def test_a_child_that_dies_turns_its_checks_into_errors_and_the_parent_goes_on():
    script = _SCRIPT.replace('value = ctx.environ["PLANTED"]', 'import signal; os.kill(os.getpid(), signal.SIGKILL)')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                          env=python_env(), preexec_fn=default_signals)
    assert done.returncode == 0, done.stderr[-2000:]
    findings = {f["check"]: f for f in json.loads(done.stdout)["findings"]}
    assert findings["test.parent"]["status"] == "ok"
    assert findings["test.child"]["status"] == "error" and "crashed" in findings["test.child"]["summary"]


_CHECKS_MODULE = '''
import os
from pipectl.interface import Check
from pipectl.redact import redactor

class AskedOverHttp(Check):
    id, component, libraries = "test.parent", "http", ("httpx",)
    def run(self, ctx):
        return [self.ok(f"ran in {os.getpid()}")]

class EchoesPlanted(Check):
    id, component, libraries = "test.child", "database", ("psycopg",)
    def run(self, ctx):
        return [self.fail(redactor(f"the server said {ctx.environ['PLANTED']}") + f" in {os.getpid()}")]
'''

_HELPER_SCRIPT = """
import os, sys
from pipectl import spread
from pipectl.config import PipelineConfig
from pipectl.interface import Context
from pipectl.redact import redactor
from pipectl.report import json as report
from pipectl.runner import run_checks

spread.start_helper()  # as `pipectl doctor` does, before the config is read
helper = spread._helper.pid if spread._helper else None
redactor.add(os.environ["PLANTED"])  # learnt afterwards, as the config's secrets are
from planted_checks import AskedOverHttp, EchoesPlanted
result = run_checks([AskedOverHttp, EchoesPlanted], Context(config=PipelineConfig(), environ=dict(os.environ)))
sys.stdout.write(f"{helper}\\n" + report.render(result))  # not redacted again here: the helper's own text
"""


def test_the_helper_forked_before_the_config_runs_the_childs_checks_and_masks_what_the_parent_learnt_since(
        tmp_path):
    (tmp_path / "planted_checks.py").write_text(_CHECKS_MODULE)
    planted = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    env = python_env(PLANTED=planted)
    env["PYTHONPATH"] = f"{tmp_path}:{env.get('PYTHONPATH', '')}"
    done = subprocess.run([sys.executable, "-c", _HELPER_SCRIPT], capture_output=True, text=True, timeout=120,
                          check=False, env=env, preexec_fn=default_signals)
    assert done.returncode == 0, done.stderr[-2000:]
    helper, _, body = done.stdout.partition("\n")
    findings = {f["check"]: f["summary"] for f in json.loads(body)["findings"]}
    assert findings["test.parent"].split()[-1] != helper
    assert findings["test.child"].split()[-1] == helper  # the helper ran it, not a process forked later
    assert "the server said" in findings["test.child"]
    assert planted not in done.stdout and planted[:8] not in done.stdout and planted[-8:] not in done.stdout
