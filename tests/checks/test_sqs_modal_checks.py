"""sqs.queue, sqs.dlq, modal.auth and modal.function against the running sandbox, healthy and broken.

One table, one helper. Cases that only need a changed config run on a copy of the sandbox's, so only the five
drills break (and later heal) the shared sandbox; the config-only cases come first and need no heal.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pipectl.config_load
import pipectl.runner
from pipectl.checks.modal_auth import ModalAuth
from pipectl.checks.modal_function import ModalFunction
from pipectl.checks.sqs_dlq import SqsDlq
from pipectl.checks.sqs_queue import SqsQueue
from pipectl.interface import Context
from pipectl.model import DoctorResult
from pipectl.report import json as json_report
from pipectl.sandbox import procs
from pipectl.sandbox.layout import MODAL_APP, MODAL_FUNCTION, ORCHESTRATOR

CHECKS = [SqsQueue, SqsDlq, ModalAuth, ModalFunction]
QUEUE = "jobs"  # the sandbox config's [[queues]] name
FUNCTION = f"{MODAL_APP}/{MODAL_FUNCTION}"


@dataclass(frozen=True)
class Expect:
    """One finding that must be there: check and subject, then what it must say."""

    check: str
    subject: str
    status: str
    severity: str
    evidence: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # a part of the summary


@dataclass(frozen=True)
class Case:
    name: str
    breaks: tuple[str, ...] = ()  # drills applied in order
    edit: dict[str, str] = field(default_factory=dict)  # `key = "…"` lines to change in a copy of the config
    expect: tuple[Expect, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # set in the process environment for the case
    all_ok: bool = False  # besides `expect`: every finding of these checks is OK
    timeout: float = 10.0


def closed_port() -> int:
    return procs.free_port()  # free now, and nothing of ours listens on it


HEALTHY = (
    Expect("sqs.queue", QUEUE, "ok", "P0", {"queue": "job-queue", "visible": 0, "in_flight": 0}),
    Expect("sqs.dlq", QUEUE, "ok", "P1", {"dlq": "job-queue-dlq", "messages": 0}),
    Expect("modal.auth", "local", "ok", "P0", {"workspace": "sandbox"}),
    Expect("modal.auth", ORCHESTRATOR, "ok", "P0", {"blocks": ["modal-token-id", "modal-token-secret"]}),
    Expect("modal.function", FUNCTION, "ok", "P0", {"app": MODAL_APP, "function": MODAL_FUNCTION}),
)

CASES = [
    Case("healthy", expect=HEALTHY, all_ok=True),
    Case("malformed-queue-url", edit={"url": "http://{sqs}/12345/job-queue"}, expect=(
        Expect("sqs.queue", QUEUE, "fail", "P0", {"key": "queues[0].url"},
               "account ID in queue URL must be 12 digits (got '12345')"),
        Expect("sqs.dlq", QUEUE, "skipped", "P1", summary="see sqs.queue"),
    )),
    # a refused connection is named at once (the whole `modal` client retried it for a minute)
    Case("modal-unreachable", edit={"server_url": "http://127.0.0.1:{closed}"}, timeout=5.0, expect=(
        Expect("modal.auth", "local", "error", "P0", summary="is unreachable or unavailable (ConnectionRefused"),
        Expect("modal.auth", ORCHESTRATOR, "error", "P0", summary="is unreachable or unavailable (ConnectionRef"),
        Expect("modal.function", FUNCTION, "error", "P0", summary="is unreachable or unavailable (ConnectionRef"),
        Expect("sqs.queue", QUEUE, "ok", "P0"),
    )),
    Case("local-token-unset", edit={"token_id": "env:TEST_UNSET_MODAL_TOKEN_ID"}, expect=(
        Expect("modal.auth", "local", "skipped", "P0", {"missing": ["TEST_UNSET_MODAL_TOKEN_ID"]},
               "TEST_UNSET_MODAL_TOKEN_ID not set"),
        Expect("modal.auth", ORCHESTRATOR, "ok", "P0"),  # its own token, from the Secret blocks
        Expect("modal.function", FUNCTION, "skipped", "P0", summary="cannot look without a working token"),
    )),
    Case("local-token-rejected", edit={"token_secret": "env:TEST_WRONG_MODAL_TOKEN_SECRET"},
         env={"TEST_WRONG_MODAL_TOKEN_SECRET": "as-" + "f" * 32}, expect=(
        Expect("modal.auth", "local", "fail", "P0",
               {"variables": ["MODAL_TOKEN_ID", "TEST_WRONG_MODAL_TOKEN_SECRET"]},
               "the local Modal token (MODAL_TOKEN_ID, TEST_WRONG_MODAL_TOKEN_SECRET) is rejected"),
        Expect("modal.auth", ORCHESTRATOR, "ok", "P0"),
        Expect("modal.function", FUNCTION, "skipped", "P0", summary="the local token is rejected"),
    )),
    Case("queue-unreachable", breaks=("queue-unreachable",), expect=(
        Expect("sqs.queue", QUEUE, "fail", "P0", {"queue": "job-queue-typo", "account": "123456789012"},
               "queue job-queue-typo does not exist in account 123456789012, region us-east-1"),
        Expect("sqs.dlq", QUEUE, "skipped", "P1", summary="see sqs.queue"),
        Expect("modal.auth", "local", "ok", "P0"),
    )),
    Case("missing-aws-env", breaks=("missing-aws-env",), expect=(
        Expect("sqs.queue", QUEUE, "fail", "P0", {"missing": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]},
               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set"),
        Expect("sqs.dlq", QUEUE, "skipped", "P1"),
        Expect("modal.function", FUNCTION, "ok", "P0"),
    )),
    Case("dlq-filling", breaks=("dlq-filling",), expect=(
        Expect("sqs.queue", QUEUE, "ok", "P0"),
        Expect("sqs.dlq", QUEUE, "fail", "P1",
               {"messages": 3, "dlq": "job-queue-dlq", "max_receive_count": 3},
               "3 message(s) in dead-letter queue job-queue-dlq"),
    )),
    Case("modal-bad-token", breaks=("modal-bad-token",), expect=(
        Expect("modal.auth", "local", "ok", "P0"),
        Expect("modal.auth", ORCHESTRATOR, "fail", "P0", {"blocks": ["modal-token-id", "modal-token-secret"]},
               f"the token deployment {ORCHESTRATOR} runs with is rejected by Modal"),
        Expect("modal.function", FUNCTION, "ok", "P0"),
    )),
    Case("prefect-unreachable", edit={"api_url": "http://127.0.0.1:{closed}/api"}, expect=(
        Expect("modal.auth", "local", "ok", "P0"),
        # the deployment's token could not be tried: an ERROR, never a skip that reads as all-clear
        Expect("modal.auth", ORCHESTRATOR, "error", "P0", summary="cannot read deployment"),
    )),
    Case("modal-function-missing", breaks=("modal-function-missing",), expect=(
        Expect("modal.auth", "local", "ok", "P0"),
        Expect("modal.auth", ORCHESTRATOR, "ok", "P0"),
        Expect("modal.function", FUNCTION, "fail", "P0", {"app": MODAL_APP},
               f"function {MODAL_FUNCTION} is not deployed in app {MODAL_APP}"),
    )),
]  # fmt: skip


def edited_config(sandbox, edit: dict[str, str], folder: Path) -> Path:
    """A copy of the sandbox config with the first `key = "…"` line replaced, its env file copied beside it."""
    text = sandbox.config_path.read_text()
    shutil.copy(sandbox.layout.env_file, folder / "sandbox.env")
    text = re.sub(r'(?m)^env_file = ".*"$', 'env_file = "sandbox.env"', text)
    values = {"sqs": sandbox.state.sqs_endpoint.removeprefix("http://"), "closed": str(closed_port())}
    for key, value in edit.items():
        text, n = re.subn(rf'(?m)^{key} = ".*"$', f'{key} = "{value.format(**values)}"', text, count=1)
        assert n == 1, f"{key} is not a line of the sandbox config"
    path = folder / "pipectl.toml"
    path.write_text(text)
    return path


def run(config_path: Path, timeout: float) -> DoctorResult:
    cfg = pipectl.config_load.load_config(config_path)
    ctx = Context(cfg, timeout=timeout, environ=pipectl.config_load.environment(cfg.source))
    return pipectl.runner.run_checks(CHECKS, ctx)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_checks(sandbox, case: Case, tmp_path, monkeypatch):
    # only the config's env file may supply AWS credentials: nothing from this process or ~/.aws
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    for scenario in case.breaks:
        sandbox.break_(scenario)
    config_path = edited_config(sandbox, case.edit, tmp_path) if case.edit else sandbox.config_path

    result = run(config_path, case.timeout)

    found = {(f.check, f.subject): f for f in result.findings}
    assert len(found) == len(result.findings), "two findings share a check and subject"
    for e in case.expect:
        f = found.get((e.check, e.subject))
        assert f is not None, f"no {e.check} finding for {e.subject!r}: {sorted(found)}"
        got = (f.status.value, f.severity.value, {k: f.evidence.get(k) for k in e.evidence})
        assert got == (e.status, e.severity, e.evidence), f"{e.check}:{e.subject}: {f.summary}"
        assert e.summary in f.summary
        if f.status.value in ("fail", "warn", "error"):
            assert f.fix or f.advice, f"{f.id} has neither fix nor advice"
    if case.all_ok:
        assert [f.id for f in result.findings if f.status.value != "ok"] == []
    # the tokens are read, never shown; a fixed clock keeps the date out of the comparison
    text = json_report.render(replace(result, started_at=datetime(1999, 12, 31, tzinfo=UTC), duration_s=0.0))
    secret = sandbox.state.modal_token_secret
    # 8 characters, as the sweep counts a leak: 4 hex digits turn up by chance in ports and deploy ids
    assert [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in text] == []


def test_a_token_with_a_trailing_newline_in_its_secret_block_fails_naming_the_block(sandbox):
    from pipectl.connectors import prefect_write

    prefect_write.save_secret_block(sandbox.state.prefect_api_url, None, "modal-token-secret",
                                    sandbox.state.modal_token_secret + "\n")
    sandbox.dirty()
    result = run(sandbox.config_path, 10.0)
    (finding,) = [f for f in result.findings if f.check == "modal.auth" and f.subject == ORCHESTRATOR]
    assert finding.status.value == "fail"
    assert "Secret block modal-token-secret" in finding.summary and "whitespace" in finding.summary
    assert "pipectl secret set modal-token-secret --from-env MODAL_TOKEN_SECRET" in finding.fix
